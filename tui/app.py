"""The Textual application."""

from __future__ import annotations

from typing import ClassVar

from textual.app import App, ComposeResult
from textual.widgets import Footer, Header, Static

from kittiwake.core.config import Config


class KittiwakeApp(App[None]):
    """Placeholder shell until the mailbox screen lands: shows the configured accounts."""

    TITLE = "Kittiwake"
    BINDINGS: ClassVar = [("q", "quit", "Quit")]

    def __init__(self, config: Config) -> None:
        super().__init__()
        self.config = config

    def compose(self) -> ComposeResult:
        yield Header()
        lines = [f"{a.key}: {a.email} ({a.kind})" for a in self.config.accounts.values()]
        yield Static("\n".join(["Accounts:", *lines]), markup=False)
        yield Footer()
