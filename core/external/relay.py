"""A piped-into command's output: on a pseudo-terminal of its own when the app has stepped
aside from a real terminal, relayed to that terminal as it comes, its tail kept.

Why a pty: a command decides how to behave by whether its output is a terminal. Through a
plain pipe (needed to keep the last line) ``less`` saw none and just printed, ``git am``
lost its colours. The pty is only the command's stdout, and never its controlling terminal
(no new session). Its stderr stays the real terminal: ``less`` reads its keys from the
terminal its stderr is (``ttyname(2)``; /dev/tty only without one) and asks that for its
size, and nothing here passes keys on. So what a command says on stderr is seen but not
kept for the last line, and ^C typed on the real terminal reaches the command as it would
from a shell.

The pty does no output processing (no ``\\n`` to ``\\r\\n``): the bytes reach the real
terminal as written, and it processes them in whatever mode the command set on it (cooked
for ``wc``, raw for ``less``), exactly once.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import select
import signal
import struct
import termios
import threading
from collections.abc import Iterator
from typing import Any, BinaryIO

from kittiwake.core.sanitize import clean_line, strip_escapes

TAIL = 4096
"""Bytes of output kept for the last line."""

#: Leaving the alternate screen (xterm's 1049 and its older 47 and 1047): a full-screen
#: program (``less``, ``tig``) has ended and taken its screen with it; what it drew there is
#: no "output" to repeat afterwards.
_ALT_SCREEN_LEFT = re.compile(rb"\x1b\[\?(?:1049|1047|47)l")


def open_output(terminal: int | None) -> tuple[int, int]:
    """(the end read here, the end given to the command as stdout): a pty the size of
    ``terminal`` when there is one, else a pipe (then its stderr too)."""
    if terminal is None:
        return os.pipe()
    ours, theirs = os.openpty()
    try:
        attrs = termios.tcgetattr(theirs)
        attrs[1] &= ~termios.OPOST  # oflag: the real terminal processes the output
        termios.tcsetattr(theirs, termios.TCSANOW, attrs)
        copy_size(terminal, ours)
    except OSError:
        os.close(ours)
        os.close(theirs)
        raise
    return ours, theirs


def copy_size(terminal: int, pty: int) -> None:
    """The real terminal's rows and columns onto the pty (a command asks its stdout)."""
    with contextlib.suppress(OSError):
        size = fcntl.ioctl(terminal, termios.TIOCGWINSZ, struct.pack("HHHH", 0, 0, 0, 0))
        fcntl.ioctl(pty, termios.TIOCSWINSZ, size)


@contextlib.contextmanager
def stepped_aside(terminal: int | None, pty: int, pid: int) -> Iterator[int | None]:
    """While the command has the terminal: a resize is copied onto its pty (and it is told,
    the terminal only told the processes of its own), and ^C or ^\\ typed for the command
    does not end the app, which is in the same process group. Handlers, not SIG_IGN, so
    that what the command starts gets the default again.

    Yields a descriptor that becomes readable when a signal comes (``relay`` waits on it
    too: a signal landing just before a blocking read would wait for the next output)."""
    if terminal is None or threading.current_thread() is not threading.main_thread():
        yield None  # signal handlers are the main thread's alone
        return

    def resized(signum: int, frame: Any) -> None:
        copy_size(terminal, pty)
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGWINCH)

    def ignored(signum: int, frame: Any) -> None:
        pass

    wake, woken = os.pipe()
    os.set_blocking(wake, False)
    os.set_blocking(woken, False)
    wakeup_before = signal.set_wakeup_fd(woken, warn_on_full_buffer=False)
    before = {
        sig: signal.signal(sig, handler)
        for sig, handler in (
            (signal.SIGWINCH, resized),
            (signal.SIGINT, ignored),
            (signal.SIGQUIT, ignored),
        )
    }
    try:
        yield wake
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
        signal.set_wakeup_fd(wakeup_before)  # asyncio's, as it was
        os.close(wake)
        os.close(woken)


def relay(fd: int, echo: BinaryIO | None, wake: int | None = None) -> bytes:
    """Copy what comes on ``fd`` to ``echo`` until the command's end closes; the tail of it,
    begun afresh each time a full-screen program leaves the alternate screen. ``wake``
    (from ``stepped_aside``) interrupts the wait so that a signal's handler runs."""
    tail = b""
    while True:
        if wake is not None:
            ready, _, _ = select.select([fd, wake], [], [])
            if wake in ready:
                with contextlib.suppress(BlockingIOError):
                    os.read(wake, 512)  # the handler has run by now
            if fd not in ready:
                continue
        try:
            chunk = os.read(fd, 65536)
        except OSError as exc:  # a pty's reading end says EIO once every writer is gone
            if exc.errno == errno.EIO:
                break
            raise
        if not chunk:
            break
        if echo is not None:
            with contextlib.suppress(OSError, ValueError):
                echo.write(chunk)
                echo.flush()
        tail += chunk  # the tail before it too: a sequence split between two reads
        ends = [m.end() for m in _ALT_SCREEN_LEFT.finditer(tail)]
        if ends:
            tail = tail[ends[-1] :]
        tail = tail[-TAIL:]
    return tail


def last_line(tail: bytes) -> str:
    """The last non-blank line of ``tail`` as it would read on a terminal: escape sequences
    gone, a line rewritten after ``\\r`` (progress counters) as its last version."""
    text = strip_escapes(tail.decode("utf-8", "replace"))
    for line in reversed(text.split("\n")):
        for version in reversed(line.split("\r")):
            if cleaned := clean_line(version):
                return cleaned
    return ""
