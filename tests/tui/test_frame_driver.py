"""Small frames are written on the event loop (``tui/driver.py``), large ones by Textual's
writer thread: whichever way, the terminal gets every write, in the order made, and a
write no flush follows (the bell) goes out too."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import threading

from kittiwake.tui.driver import WRITE_AT_ONCE, FrameDriver


async def test_writes_reach_the_terminal_in_order() -> None:
    read_end, write_end = os.pipe()
    driver = FrameDriver(None)  # type: ignore[arg-type]  # the writes need no app
    driver._file = os.fdopen(write_end, "w", encoding="utf-8")  # the "terminal"
    driver._start_writer()
    # Larger than the pipe holds: the thread blocks on it until the reader drains it.
    large = "L" * (4 * WRITE_AT_ONCE)
    expected = large + "frame" + "\x07"

    def read_all() -> bytes:
        data = b""
        while len(data) < len(expected):
            chunk = os.read(read_end, 65536)
            if not chunk:
                break
            data += chunk
        return data

    reading = asyncio.get_running_loop().run_in_executor(None, read_all)
    try:
        driver.write(large)
        driver.flush()  # to the thread
        driver.write("frame")
        driver.flush()  # small, but the thread still writes: behind it, not before it
        driver.write("\x07")  # no flush follows
        got = await asyncio.wait_for(reading, timeout=10)
    finally:
        driver.close()
        driver._file.close()
        os.close(read_end)
    assert got.decode() == expected
    assert driver._writer is not None and driver._writer.idle()


async def test_a_small_frame_is_written_at_once() -> None:
    read_end, write_end = os.pipe()
    driver = FrameDriver(None)  # type: ignore[arg-type]
    driver._file = os.fdopen(write_end, "w", encoding="utf-8")
    driver._start_writer()
    try:
        driver.write("\x1b[1;1Hframe")
        driver.flush()
        # Written before flush() returned, on this thread: readable without a loop turn.
        os.set_blocking(read_end, False)
        assert os.read(read_end, 100) == b"\x1b[1;1Hframe"
    finally:
        driver.close()
        driver._file.close()
        os.close(read_end)


async def test_a_stalled_terminal_does_not_stop_the_loop() -> None:
    """The terminal takes nothing (its buffer full: a stalled SSH link, a terminal that stopped
    reading): a frame goes to the thread, and flush() returns at once instead of blocking the
    event loop until the terminal reads again."""
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    filled = 0
    while True:
        try:
            filled += os.write(write_end, b"x" * 4096)
        except OSError as exc:
            assert exc.errno == errno.EAGAIN
            break
    os.set_blocking(write_end, True)
    driver = FrameDriver(None)  # type: ignore[arg-type]
    driver._file = os.fdopen(write_end, "w", encoding="utf-8")
    driver._start_writer()
    flushed = threading.Event()
    rescued = threading.Event()

    def rescue() -> None:
        # Only if flush() blocked: drain the pipe so that the test ends (and fails).
        if not flushed.wait(10):
            rescued.set()
            os.set_blocking(read_end, False)
            while flushed.wait(0.01) is False:
                with contextlib.suppress(BlockingIOError):
                    os.read(read_end, 65536)

    helper = threading.Thread(target=rescue, daemon=True)
    helper.start()
    try:
        driver.write("\x1b[1;1Hframe")
        driver.flush()
        flushed.set()
        helper.join(10)
        assert not rescued.is_set(), "flush() blocked on the stalled terminal"
        # The terminal reads again: everything arrives, the frame after what was there.
        got = b""
        os.set_blocking(read_end, True)
        while len(got) < filled + len(b"\x1b[1;1Hframe"):
            got += os.read(read_end, 65536)
        assert got.endswith(b"\x1b[1;1Hframe")
    finally:
        driver.close()
        driver._file.close()
        os.close(read_end)
