"""Opening a part with another program: the ``[open]`` table first (mailcap-style: a type
pattern, a command with ``%s`` for the file), else ``xdg-open`` (``$BROWSER`` for HTML) where
a display exists; without one (over SSH) the caller saves the file and says where.

The command the user configured is split with shlex and ``%s`` replaced inside one argv
element: the file's path (whose name came from the mail, made safe first) is never parsed by
a shell. The files live in a private (0700) directory removed when the app exits; a
program that keeps the terminal has its file removed as soon as it returns.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from kittiwake.core.config import OpenRule


@dataclass(frozen=True, slots=True)
class Viewer:
    argv: list[str]
    terminal: bool
    """It needs the terminal: the app steps aside and waits (else it runs beside the app)."""


def has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _argv(command: str, path: Path) -> list[str] | None:
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    if not words:
        return None
    if not any("%s" in word for word in words):
        return [*words, str(path)]
    return [word.replace("%s", str(path)) for word in words]


def viewer_for(
    rules: tuple[tuple[str, OpenRule], ...], content_type: str, path: Path
) -> Viewer | None:
    """The program that opens ``path`` (of ``content_type``), or None: save it instead."""
    kind = content_type.lower().split(";", 1)[0].strip()
    for pattern, rule in rules:
        if fnmatch.fnmatchcase(kind, pattern) and (argv := _argv(rule.command, path)):
            return Viewer(argv, rule.terminal)
    if not has_display():
        return None
    browser = os.environ.get("BROWSER", "").split(":")[0]
    if kind == "text/html" and browser and (argv := _argv(browser, path)):
        return Viewer(argv, False)
    if shutil.which("xdg-open"):
        return Viewer(["xdg-open", str(path)], False)
    return None


def start_beside(viewer: Viewer) -> None:
    """A program that does not need the terminal: started in its own session, its output
    discarded (it must not draw over the app)."""
    subprocess.Popen(
        viewer.argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


class PrivateFiles:
    """A private directory for the files handed to other programs, made when first needed."""

    def __init__(self) -> None:
        self._dir: Path | None = None

    def write(self, name: str | None, data: bytes, fallback: str = "attachment") -> Path:
        if self._dir is None or not self._dir.is_dir():
            self._dir = Path(tempfile.mkdtemp(prefix="kittiwake-open-"))  # mode 0700
        # One subdirectory per file: two attachments called "a.pdf" never meet.
        holder = Path(tempfile.mkdtemp(dir=self._dir))
        from kittiwake.core.message.mime import safe_filename  # MIME: loaded when first used

        path = holder / safe_filename(name, fallback)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        return path

    def remove(self, path: Path) -> None:
        if self._dir is not None and path.parent.parent == self._dir:
            shutil.rmtree(path.parent, ignore_errors=True)

    def clear(self) -> None:
        """Everything (the app exits)."""
        if self._dir is not None:
            with contextlib.suppress(OSError):
                shutil.rmtree(self._dir)
            self._dir = None
