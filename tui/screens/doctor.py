"""``ctrl+d`` (or a click on the status bar): ``kittiwake doctor`` for the account on screen,
its checks appearing as they run, so "offline: ..." in the status bar turns into which layer
fails and what to do about it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import ClassVar

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from kittiwake.core.sanitize import clean_line
from kittiwake.core.setup.doctor import Check


def render_checks(account: str, checks: list[Check], running: bool) -> Group:
    """A table, so a long sentence wraps under itself, not under the marks."""
    table = Table.grid(padding=(0, 1))
    table.add_column(width=1)
    table.add_column(no_wrap=True)
    table.add_column(no_wrap=True)
    table.add_column(ratio=1)
    for check in checks:
        if not check.ok:
            mark = Text("✗", style="bold red")
        elif check.warning:
            mark = Text("!", style="bold yellow")
        else:
            mark = Text("✓", style="green")
        sentence = Text(clean_line(check.sentence))
        if check.fix:
            sentence.append(f"\nfix: {clean_line(check.fix)}", style="bold")
        table.add_row(mark, Text(check.server.upper(), style="bold"), check.layer, sentence)
    title = Text(f"Checking {account}, layer by layer (nothing is sent)\n", style="bold")
    if running:
        end = Text("\n… checking", style="dim")
    else:
        failed = sum(not c.ok for c in checks)
        end = Text("\nEverything works." if not failed else f"\n{failed} check(s) failed.")
        end.stylize("bold")
        end.append("  escape closes", style="dim")
    return Group(title, table, end)


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
