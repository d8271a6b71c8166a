"""core.memory: glibc's mmap threshold stays put, so big buffers never pin the heap."""

from __future__ import annotations

import ctypes
import subprocess
import sys

import pytest

PROBE = """
import ctypes, sys

class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
        "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = Info
if sys.argv[1] == "fixed":
    from kittiwake.core.memory import keep_heap_small
    assert keep_heap_small()
big = bytearray(4 << 20)  # freed: glibc alone would now serve up to 4 MiB from the heap
del big
before = libc.mallinfo2().hblkhd
buffer = bytearray(256 << 10)
print(libc.mallinfo2().hblkhd - before)
"""


def _mapped_for_a_buffer(mode: str) -> int:
    """Bytes glibc mapped for a 256 KiB buffer made after a 4 MiB one was freed (fresh
    process: the threshold is per process)."""
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True
    )
    return int(out.stdout)


def _glibc_with_mallinfo2() -> bool:
    try:
        libc = ctypes.CDLL(None)
        return hasattr(libc, "gnu_get_libc_version") and hasattr(libc, "mallinfo2")
    except OSError:
        return False


@pytest.mark.skipif(not _glibc_with_mallinfo2(), reason="glibc's malloc only (mallinfo2)")
def test_a_big_buffer_gets_its_own_mapping_after_a_bigger_one_was_freed() -> None:
    assert _mapped_for_a_buffer("glibc") == 0  # what it fixes: the heap served it
    assert _mapped_for_a_buffer("fixed") >= 256 << 10


def test_it_is_done_once() -> None:
    from kittiwake.core.memory import keep_heap_small

    assert keep_heap_small() is keep_heap_small()
