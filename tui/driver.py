"""Frames reach the terminal as soon as they are made.

Textual hands every write to a thread of its own (``WriterThread``), so that a slow terminal
does not hold up the event loop. But that thread needs the GIL to write, and after a frame
the loop goes on running Python (the status line, the rows drawn ahead): the thread waits
for the interpreter's switch interval (5 ms) before it may take the GIL, and a key's frame
reached the terminal 3-5 ms after it was made. Here a frame is written on the loop itself
when nothing is queued for the thread (so the order of writes holds) and it is small (a
full screen of a 100x30 terminal is ~10 KB: a write that the pty takes at once); anything
larger, written while the thread still has work, or meeting a terminal that takes nothing now
(a stalled SSH link, a terminal that stopped reading: the pty's buffer full) goes through the
thread as before, so a stalled terminal never stops the event loop (IDLE, the outbox, timers).
"""

from __future__ import annotations

import select
import threading

from textual.drivers._writer_thread import WriterThread
from textual.drivers.linux_driver import LinuxDriver

#: Frames up to this many characters are written on the event loop.
WRITE_AT_ONCE = 32 * 1024


class _Writer(WriterThread):
    """Textual's writer thread, which also says when it has nothing left to write."""

    def write(self, text: str) -> None:
        self._queue.put(text)

    def idle(self) -> bool:
        """Nothing queued and nothing being written: the loop may write to the file."""
        return self._queue.unfinished_tasks == 0

    def ready(self) -> bool:
        """The terminal takes a write now: the pty (or pipe) reports room for one. A pty
        whose reader is behind (a stalled SSH link) reports none."""
        try:
            return bool(select.select([], [self._file], [], 0)[1])
        except (OSError, ValueError):  # no descriptor to ask: the thread, which may block
            return False

    def write_now(self, text: str) -> None:
        self._file.write(text)
        self._file.flush()

    def run(self) -> None:
        write, flush = self._file.write, self._file.flush
        queue = self._queue
        while True:
            text = queue.get()
            if text is None:
                queue.task_done()
                break
            write(text)
            if queue.qsize() == 0:
                flush()
            queue.task_done()
        flush()


class FrameDriver(LinuxDriver):
    """Textual's Linux driver, writing small frames on the event loop (module docstring)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._pending: list[str] = []
        self._writer: _Writer | None = None
        self._loop_thread = threading.get_ident()
        self._flush_scheduled = False

    def start_application_mode(self) -> None:
        before = self._writer_thread  # the writer of a run before a suspend ($EDITOR)
        super().start_application_mode()  # type: ignore[no-untyped-call]
        self._loop_thread = threading.get_ident()
        for started in (before, self._writer_thread):
            if started is not None and started.is_alive():  # (a suspend stopped the one before)
                started.stop()  # what it holds is written first: the order of writes holds
        self._start_writer()

    def _start_writer(self) -> None:
        out = self._file
        assert out is not None  # sys.__stderr__, as for Textual's own writer
        self._writer_thread = self._writer = _Writer(out)
        self._writer.start()

    def write(self, data: str) -> None:
        writer = self._writer
        if writer is None or threading.get_ident() != self._loop_thread:
            super().write(data)
            return
        self._pending.append(data)
        if not self._flush_scheduled:  # a write no flush follows (the bell) still goes out
            self._flush_scheduled = True
            try:
                self._loop.call_soon(self.flush)
            except RuntimeError:  # the loop has closed (the app is ending): now, then
                self.flush()

    def flush(self) -> None:
        self._flush_scheduled = False
        writer = self._writer
        if writer is None or not self._pending:
            return
        text = "".join(self._pending)
        self._pending.clear()
        if len(text) <= WRITE_AT_ONCE and writer.idle() and writer.ready():
            writer.write_now(text)
        else:
            writer.write(text)

    def stop_application_mode(self) -> None:
        self.flush()
        super().stop_application_mode()  # its last writes are flushed by it
        self._writer = None  # until started again, writes go through the thread
