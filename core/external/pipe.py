"""Piping messages into a command the user typed (``|``), and the history of those commands.

The command line is the user's and is run by their shell (``$SHELL -c``), as in mutt; the
messages go on its standard input only, through a pipe. Its output is passed through to the
terminal while the app steps aside (through a pseudo-terminal, ``relay``, so that a pager
pages), and the last line is kept to be shown when the app comes back (the terminal is the
app's again by then).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from kittiwake.core import paths
from kittiwake.core.external.relay import last_line, open_output, relay, stepped_aside
from kittiwake.core.files import PRIVATE_FILE, atomic_write, make_private_dirs

HISTORY_KEPT = 100


@dataclass(frozen=True, slots=True)
class PipeResult:
    status: int
    """The exit status (negative: killed by that signal); 127: the shell found no command."""
    last_line: str
    """The last non-blank line it wrote, as text, escape sequences gone: of its stdout, and
    of its stderr too when it ran without a terminal (on one, stderr is the terminal's:
    ``relay``). After a full-screen program (``less``) only what came once it left its
    screen, so often empty."""

    def describe(self, command: str) -> str:
        said = f"“{command}” exited with status {self.status}"
        if self.status == 0:
            said = f"“{command}” done"
        return f"{said}: {self.last_line}" if self.last_line else said


def shell() -> str:
    return os.environ.get("SHELL") or "/bin/sh"


def run_pipe(
    command: str, data: bytes, echo: BinaryIO | None = None, *, terminal: int | None = None
) -> PipeResult:
    """Run ``command`` with ``data`` on its stdin; its output goes to ``echo`` as it comes.
    With ``terminal`` (the real terminal's descriptor, the app having stepped aside) its
    stdout is a pseudo-terminal of that size and its stderr that terminal (``relay``), so
    that ``less`` pages; without, both are a pipe. A command that stops reading early
    (``head``) is not an error of ours."""
    ours, theirs = open_output(terminal)
    try:
        proc = subprocess.Popen(
            [shell(), "-c", command],
            stdin=subprocess.PIPE,
            stdout=theirs,
            stderr=theirs if terminal is None else terminal,
        )
    except OSError:
        os.close(ours)
        raise
    finally:
        os.close(theirs)  # the command's alone now: its end closing ends the relay
    assert proc.stdin is not None
    stdin = proc.stdin

    def feed() -> None:
        with contextlib.suppress(BrokenPipeError, OSError):
            stdin.write(data)
        with contextlib.suppress(BrokenPipeError, OSError):
            stdin.close()

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    try:
        with stepped_aside(terminal, ours, proc.pid) as wake:
            tail = relay(ours, echo, wake)
            status = proc.wait()
    finally:
        os.close(ours)
    writer.join()
    return PipeResult(status, last_line(tail))


class PipeHistory:
    """The command lines piped into, newest last, in the state directory (they may name
    private paths: the file is 0600). A line repeated moves to the end."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or paths.state_dir() / "pipe-history"

    def load(self) -> list[str]:
        try:
            text = self.path.read_text("utf-8")
        except (OSError, UnicodeDecodeError):
            return []
        return [line for line in text.splitlines() if line.strip()][-HISTORY_KEPT:]

    def add(self, command: str) -> None:
        command = command.strip()
        if not command or "\n" in command:
            return
        lines = [line for line in self.load() if line != command] + [command]
        try:
            make_private_dirs(self.path.parent)
            data = "".join(f"{line}\n" for line in lines[-HISTORY_KEPT:]).encode()
            atomic_write(self.path, data, PRIVATE_FILE)
        except OSError:
            pass  # a history not kept is no reason to fail the pipe
