"""Piping messages into a command the user typed (``|``), and the history of those commands.

The command line is the user's and is run by their shell (``$SHELL -c``), as in mutt; the
messages go on its standard input only. Its output is passed through to the terminal while
the app steps aside, and the last line is kept to be shown when the app comes back (the
terminal is the app's again by then).
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
from kittiwake.core.files import PRIVATE_FILE, atomic_write, make_private_dirs

HISTORY_KEPT = 100
_TAIL = 4096


@dataclass(frozen=True, slots=True)
class PipeResult:
    status: int
    """The exit status (negative: killed by that signal); 127: the shell found no command."""
    last_line: str
    """The last non-blank line it wrote (stdout and stderr), as text; may be empty."""

    def describe(self, command: str) -> str:
        said = f"“{command}” exited with status {self.status}"
        if self.status == 0:
            said = f"“{command}” done"
        return f"{said}: {self.last_line}" if self.last_line else said


def shell() -> str:
    return os.environ.get("SHELL") or "/bin/sh"


def run_pipe(command: str, data: bytes, echo: BinaryIO | None = None) -> PipeResult:
    """Run ``command`` with ``data`` on its stdin; its output goes to ``echo`` as it comes.
    A command that stops reading early (``head``) is not an error of ours."""
    proc = subprocess.Popen(
        [shell(), "-c", command],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert proc.stdin is not None and proc.stdout is not None
    stdin = proc.stdin

    def feed() -> None:
        with contextlib.suppress(BrokenPipeError, OSError):
            stdin.write(data)
        with contextlib.suppress(BrokenPipeError, OSError):
            stdin.close()

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    tail = b""
    while chunk := os.read(proc.stdout.fileno(), 65536):
        if echo is not None:
            with contextlib.suppress(OSError, ValueError):
                echo.write(chunk)
                echo.flush()
        tail = (tail + chunk)[-_TAIL:]
    status = proc.wait()
    writer.join()
    lines = [line.strip() for line in tail.decode("utf-8", "replace").splitlines()]
    last = next((line for line in reversed(lines) if line), "")
    return PipeResult(status, last)


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
