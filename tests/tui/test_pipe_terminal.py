"""``|`` on a real terminal (tmux): the command's output is a terminal, so ``less`` pages
(one screenful, its prompt, keys from the user) and ``q`` brings the app back with the
command's end said; a command that prints has Enter asked for first. The app is the demo
(its own IMAP and SMTP servers on loopback), run from this checkout's venv."""

from __future__ import annotations

import sys
from pathlib import Path

from harness.installed import Installed
from harness.tmux import Tmux

KITTIWAKE = Path(sys.executable).parent / "kittiwake"
STATUS = "demo · INBOX · 3,0"  # the demo's inbox, ready (mail keeps arriving: 3,000 and up)


def demo(tmp_path: Path) -> Tmux:
    env = Installed.home_env(tmp_path / "home")
    env.pop("LESS", None)  # less as it comes: no -F or -X from the developer's shell
    env.pop("LESSOPEN", None)
    env["SHELL"] = "/bin/sh"
    return Tmux([str(KITTIWAKE), "--demo"], env, tmp_path, tmp_path, width=100, height=30)


def last_line(screen: str) -> str:
    lines = screen.rstrip("\n").split("\n")
    return lines[-1].rstrip() if lines else ""


def test_less_pages_and_a_command_that_prints_asks_for_enter(tmp_path: Path) -> None:
    """One demo for both (it takes a while to start)."""
    with demo(tmp_path) as app:
        app.wait_for_text(STATUS, timeout=90)
        app.press("|")
        app.wait_for_text("Pipe this message to:", timeout=20)
        app.press("less", "Enter")
        # less's prompt on the last line, the first screenful of the raw message above it.
        shown = app.wait_until("less's ':' prompt", lambda s: last_line(s) == ":", timeout=20)
        assert "Subject: =?utf-8?q?Welcome_to_the_Kittiwake_demo" in shown
        assert STATUS not in shown  # the app stepped aside
        assert "--_kw.1.00001.0_--" not in shown  # the message's end is further down
        app.press("Space")  # a key for less, from the real terminal
        app.wait_until("the end of the message", lambda s: "--_kw.1.00001.0_--" in s, timeout=20)
        app.press("q")
        # No Enter asked for: less's screen is gone, the app is back and says how it ended.
        back = app.wait_for_text("“less” done", timeout=20)
        assert STATUS in back and "Press Enter" not in back

        # A command that prints: Enter is asked for, then its last line is said.
        app.press("|")
        app.wait_for_text("Pipe this message to:", timeout=20)
        app.press("test -t 1 && echo tty", "Enter")  # its stdout is a terminal
        asked = app.wait_for_text("Press Enter to return.", timeout=20)
        assert "tty" in asked.split("\n") and "[exit status 0]" in asked
        app.press("Enter")
        back = app.wait_for_text("“test -t 1 && echo tty” done: tty", timeout=20)
        assert STATUS in back
        app.press("q")
        assert app.wait_for_exit(timeout=30) == 0
