"""The C heap under bulk work: a first sync and the decode pass of a big folder.

glibc's malloc serves blocks of up to ``M_MMAP_THRESHOLD`` from its heap and larger ones
with their own ``mmap``, given back whole when freed. The threshold starts at 128 KiB and
moves up (to 32 MiB at most) each time such a block is freed, so after the first socket
buffer or response of a few hundred KiB every later one of that size comes from the heap,
among small long-lived objects that then pin it: at 100,000 messages a first sync with its
decode pass left 19 MB of the heap free but not returnable: VmHWM 77 MB, 62 MB with the
threshold fixed at 64 KiB (``benches/bench_memory.py --cold``). ``mallopt`` fixes it, which
also stops the moving. Elsewhere (musl, macOS) nothing is done.
"""

from __future__ import annotations

import functools
import logging
import sys

log = logging.getLogger(__name__)

#: Blocks of this size and more get their own mapping, returned to the system when freed.
MMAP_THRESHOLD = 64 * 1024
_M_MMAP_THRESHOLD = -3  # glibc's malloc.h


@functools.cache
def keep_heap_small() -> bool:
    """Fix glibc's mmap threshold (once per process; ctypes is imported only here, so a
    warm start that syncs nothing big never pays for it). True if it was set."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # noqa: B018  # glibc only: musl's mallopt does nothing
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    done = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    if not done:
        log.debug("mallopt(M_MMAP_THRESHOLD) refused")
    return done
