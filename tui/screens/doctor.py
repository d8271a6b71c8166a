"""``ctrl+d`` (or a click on the status bar): ``kittiwake doctor`` for the account on screen,
its checks appearing as they run, so "offline: ..." in the status bar turns into which layer
fails and what to do about it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from kittiwake.core.sanitize import clean_line
from kittiwake.core.setup.doctor import Check


def render_checks(account: str, checks: list[Check], running: bool) -> Text:
    text = Text(f"Checking {account}, layer by layer (nothing is sent)\n\n", style="bold")
    for check in checks:
        if not check.ok:
            text.append(" ✗ ", style="bold red")
        elif check.warning:
            text.append(" ! ", style="bold yellow")
        else:
            text.append(" ✓ ", style="green")
        text.append(f"{check.server.upper():<5}{check.layer:<13}", style="bold")
        text.append(clean_line(check.sentence) + "\n")
        if check.fix:
            text.append(f"      fix: {clean_line(check.fix)}\n", style="bold")
    if running:
        text.append("\n … checking", style="dim")
    else:
        failed = sum(not c.ok for c in checks)
        text.append(
            "\n Everything works." if not failed else f"\n {failed} check(s) failed.",
            style="bold",
        )
        text.append("  escape closes", style="dim")
    return text


class DoctorScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "dismiss", "Close", id="doctor.close"),
        Binding("j,down", "scroll_down", "Down", show=False),
        Binding("k,up", "scroll_up", "Up", show=False),
    ]

    DEFAULT_CSS = """
    DoctorScreen { align: center middle; }
    DoctorScreen > VerticalScroll {
        width: 95%; max-width: 110; height: 90%;
        background: $surface; border: tall $accent; padding: 0 1;
    }
    """

    def __init__(self, account: str, checks: AsyncIterator[Check]) -> None:
        super().__init__()
        self.account = account
        self.checks = checks
        self.done: list[Check] = []
        self.finished = False

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(render_checks(self.account, [], True), id="checks")

    def on_mount(self) -> None:
        self.run_checks()

    @work(exclusive=True, exit_on_error=False)
    async def run_checks(self) -> None:
        shown = self.query_one("#checks", Static)
        async for check in self.checks:
            self.done.append(check)
            shown.update(render_checks(self.account, self.done, True))
        self.finished = True
        shown.update(render_checks(self.account, self.done, False))

    def action_scroll_down(self) -> None:
        self.query_one(VerticalScroll).scroll_down()

    def action_scroll_up(self) -> None:
        self.query_one(VerticalScroll).scroll_up()
