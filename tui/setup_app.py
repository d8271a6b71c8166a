"""The setup screen as an app of its own: what ``kittiwake`` opens on a terminal when there
is no config yet, and ``kittiwake setup`` without ``--email``. It exits with one sentence
naming the saved account (the caller then opens the mailbox), or None."""

from __future__ import annotations

from textual.app import App
from textual.theme import Theme

from kittiwake.core.setup.service import SetupService
from kittiwake.tui.screens.setup import SetupScreen
from kittiwake.tui.themes import (
    completed_theme,
    load_themes,
    pick_theme,
    register_themes,
)


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

    def get_theme(self, theme_name: str) -> Theme | None:
        return completed_theme(self, super().get_theme(theme_name))

    def on_mount(self) -> None:
        self.push_screen(SetupScreen(self.service, self.email, self.person), self.exit)
