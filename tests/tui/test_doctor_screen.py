"""An account that cannot connect: the status bar says why in a word and ctrl+d (or a click
on it) opens the doctor's checks for it, layer by layer, against the real Dovecot."""

from __future__ import annotations

import io
from pathlib import Path

from harness import Dovecot, User
from harness.ui import app_config, until
from rich.console import Console

from kittiwake.tui.app import KittiwakeApp
from kittiwake.tui.screens.doctor import DoctorScreen, render_checks
from kittiwake.tui.widgets.status_bar import StatusBar


async def test_ctrl_d_explains_a_refused_login(xdg: Path, dovecot: Dovecot, user: User) -> None:
    wrong = User(user.login, "not-the-password", user.email)  # the user's typo
    config = app_config(dovecot, wrong)
    app = KittiwakeApp(config)
    async with app.run_test(size=(100, 30)) as pilot:
        bar = app.screen.query_one(StatusBar)
        await until(pilot, lambda: "(ctrl+d: why)" in str(bar.render()), timeout=20)
        await pilot.press("ctrl+d")
        await until(pilot, lambda: isinstance(app.screen, DoctorScreen), timeout=5)
        screen = app.screen
        assert isinstance(screen, DoctorScreen)
        await until(pilot, lambda: screen.finished, timeout=30)
        console = Console(width=80, record=True, file=io.StringIO())
        console.print(render_checks(screen.account, screen.done, running=False))
        shown = console.export_text()
        words = " ".join(shown.split())
        assert "✓ IMAP TLS" in words and "✓ IMAP capabilities Kittiwake will use: IDLE" in words
        assert "✗ IMAP login" in words
        assert "fix: check the user name and password" in shown
        assert "not-the-password" not in shown
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, DoctorScreen), timeout=5)
