"""The setup screen as an app of its own: what ``kittiwake`` opens on a terminal when there
is no config yet, and ``kittiwake setup`` without ``--email``. It exits with one sentence
naming the saved account (the caller then opens the mailbox), or None."""

from __future__ import annotations

from textual.app import App

from kittiwake.core.setup.service import SetupService
from kittiwake.tui.screens.setup import SetupScreen
from kittiwake.tui.themes import load_themes, pick_theme, register_themes


class SetupApp(App[str | None]):
    TITLE = "Kittiwake setup"

    def __init__(self, service: SetupService, email: str = "", name: str = "") -> None:
        super().__init__()
        self.service = service
        self.email = email
        self.person = name
        themes, _warnings = load_themes()
        register_themes(self, themes)
        pick_theme(self, "kittiwake-dark", themes)

    def on_mount(self) -> None:
        self.push_screen(SetupScreen(self.service, self.email, self.person), self.exit)
