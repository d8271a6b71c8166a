"""A program in a detached tmux session of a given size, read off its screen as a user reads
it (``capture-pane``), driven by keys (``send-keys``)."""

from __future__ import annotations

import shlex
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from .clients import wait_for


class Tmux:
    """``command`` run in tmux (a private server socket), in ``workdir`` with ``env``; its exit
    status is written to ``status_dir`` when it ends."""

    def __init__(
        self,
        command: list[str],
        env: dict[str, str],
        workdir: Path,
        status_dir: Path,
        *,
        width: int = 100,
        height: int = 30,
    ) -> None:
        self.command = command
        self.env = env
        self.workdir = workdir
        self.size = (width, height)
        self.socket = f"kw-test-{uuid.uuid4().hex[:10]}"
        self.status = status_dir / f"exit-{self.socket}"

    def _tmux(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["tmux", "-L", self.socket, "-f", "/dev/null", *args],
            env=self.env,
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=30,
            check=check,
        )

    def __enter__(self) -> Tmux:
        command = shlex.join(self.command)
        width, height = self.size
        self._tmux(
            "new-session", "-d", "-x", str(width), "-y", str(height),
            f"{command}; echo $? > {shlex.quote(str(self.status))}",
        )  # fmt: skip
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._tmux("kill-server", check=False)

    def text(self) -> str:
        done = self._tmux("capture-pane", "-p", check=False)
        return done.stdout

    def wait_until(self, shown: str, check: Callable[[str], bool], timeout: float) -> str:
        """The screen once ``check(screen)`` holds; an AssertionError showing the screen when
        it does not within ``timeout`` seconds. ``shown`` says what was awaited."""

        def now() -> str:
            text = self.text()
            return text if check(text) else ""

        try:
            return wait_for(now, timeout=timeout, message=shown)
        except TimeoutError as exc:
            raise AssertionError(f"{exc}; the screen shows:\n{self.text()}") from None

    def wait_for_text(self, needle: str, timeout: float) -> str:
        return self.wait_until(f"{needle!r} on screen", lambda text: needle in text, timeout)

    def press(self, *keys: str) -> None:
        self._tmux("send-keys", *keys)

    def wait_for_exit(self, timeout: float) -> int:
        """The program's exit status once it has ended."""
        text = wait_for(
            lambda: self.status.exists() and self.status.read_text().strip(),
            timeout=timeout,
            message="the app to exit",
        )
        return int(text)
