"""A slow password_command (a password manager waiting for its passphrase) leaves the app
alive: the status bar says what it waits for, keys work, and quitting does not wait for it."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from pathlib import Path

from harness import Dovecot, User
from harness.ui import synced, until

from kittiwake.core.config import Config, config_from_dict
from kittiwake.tui.app import KittiwakeApp
from kittiwake.tui.screens.help import HelpScreen


def _config(dovecot: Dovecot, user: User, gate: Path) -> Config:
    """The password comes from a command that notes its pid and waits for ``gate/go``."""
    script = (
        "import os, pathlib, time\n"
        f"d = pathlib.Path({str(gate)!r})\n"
        "(d / 'pid').write_text(str(os.getpid()))\n"
        "while not (d / 'go').exists():\n"
        "    time.sleep(0.02)\n"
        f"print({user.password!r})\n"
    )
    return config_from_dict(
        {
            "accounts": {
                "mine": {
                    "email": user.email,
                    "imap": {
                        "host": dovecot.host,
                        "port": dovecot.ports.imaps,
                        "user": user.login,
                        "password_command": [sys.executable, "-c", script],
                        "ca_file": str(dovecot.ca_file),
                        "timeout": 5,
                    },
                }
            }
        }
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_the_app_stays_usable_while_password_command_runs(
    xdg: Path, mailbox: Callable[..., Config], dovecot: Dovecot, user: User
) -> None:
    """The command ran on the event loop: the screen froze for as long as it took."""
    mailbox(3)
    gate = xdg / "gate"
    gate.mkdir()
    app = KittiwakeApp(_config(dovecot, user, gate))
    async with app.run_test(size=(120, 30)) as pilot:
        status = app.screen.query_one("#status")
        await until(pilot, lambda: "waiting for password_command" in str(status.render()))
        await pilot.press("question_mark")  # keys work meanwhile
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        await pilot.press("escape")
        (gate / "go").touch()
        await synced(app)
        await until(pilot, lambda: "online" in str(status.render()))


async def test_quitting_does_not_wait_for_password_command(
    xdg: Path, mailbox: Callable[..., Config], dovecot: Dovecot, user: User
) -> None:
    """`q` took 54 s with "sleep 60" as the command; now the command is killed at once."""
    mailbox(1)
    gate = xdg / "gate"
    gate.mkdir()
    app = KittiwakeApp(_config(dovecot, user, gate))
    async with app.run_test(size=(120, 30)) as pilot:
        status = app.screen.query_one("#status")
        await until(pilot, lambda: "waiting for password_command" in str(status.render()))
        await until(pilot, lambda: bool((gate / "pid").exists() and (gate / "pid").read_text()))
        pid = int((gate / "pid").read_text())
        pressed = asyncio.get_running_loop().time()
        await pilot.press("q")
    assert asyncio.get_running_loop().time() - pressed < 5  # the app is gone, not waiting
    assert not _alive(pid)
