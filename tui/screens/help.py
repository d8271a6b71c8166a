"""``?``: every key of the screen you came from, with what it does and its id for [keys]."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static


def binding_rows(screen: Screen[object]) -> list[tuple[str, str, str]]:
    """(keys, description, id) for every binding of Kittiwake's (those with an id, which
    ``[keys]`` can remap) active on ``screen``, deduplicated."""
    rows: dict[str, tuple[str, str, str]] = {}
    for key, active in screen.active_bindings.items():
        binding = active.binding
        if binding.system or not binding.description or binding.id is None:
            continue  # Textual's own (focus next, page left, copy text): only Kittiwake's keys
        ident = binding.id or binding.action
        display = screen.app.get_key_display(binding)
        keys, desc, _ = rows.get(ident, ("", binding.description, ident))
        if display not in keys.split(", "):
            keys = f"{keys}, {display}" if keys else display
        rows[ident] = (keys, desc, ident)
        del key
    return sorted(rows.values(), key=lambda r: r[1].lower())


COMPOSE_HELP = "\n".join(
    (
        "From (o): every account and [[accounts.NAME.identities]] that can send; the signature "
        "block follows the choice. A reply starts from the identity the message was sent to.",
        'Signature: the signature or signature_file of the account or identity, below "-- ", '
        'at the end or (signature_position = "above-quote") above the quoted text; never twice.',
        "To, Cc, Bcc (→ accepts a suggestion): [aliases] names (expanded when the field is "
        "read), people in your mail, then [addressbook] query_command (mutt's protocol, run "
        "without a shell).",
    )
)


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "dismiss", "Close", id="help.close"),
        Binding("j,down", "scroll_down", "Down", show=False),
        Binding("k,up", "scroll_up", "Up", show=False),
    ]

    DEFAULT_CSS = """
    HelpScreen {
        align: center middle;
    }
    HelpScreen > VerticalScroll {
        width: 90%;
        max-width: 100;
        height: 90%;
        background: $surface;
        border: tall $accent;
        padding: 0 1;
    }
    """

    def __init__(self, rows: list[tuple[str, str, str]], title: str, notes: str = "") -> None:
        super().__init__()
        self.rows = rows
        self.title_text = title
        self.notes = notes  # e.g. the search query language, under the keys

    def compose(self) -> ComposeResult:
        table = Table(box=None, expand=True, show_header=True, header_style="bold")
        table.add_column("Key", no_wrap=True)
        table.add_column("Action")
        table.add_column("[keys] id", style="dim", no_wrap=True)
        for keys, desc, ident in self.rows:
            table.add_row(keys, desc, ident)
        with VerticalScroll():
            yield Static(Text(self.title_text, style="bold"))
            yield Static(table)
            if self.notes:
                yield Static(Text("\n" + self.notes))
            yield Static(
                Text(
                    "Change a key in the [keys] table of the config, e.g.  "
                    '"list.next" = "n"   (several keys: "n,down").  '
                    "ctrl+p opens the command palette.",
                    style="dim",
                )
            )

    def action_dismiss(self) -> None:  # type: ignore[override]
        self.dismiss(None)

    def action_scroll_down(self) -> None:
        self.query_one(VerticalScroll).scroll_down(animate=False)

    def action_scroll_up(self) -> None:
        self.query_one(VerticalScroll).scroll_up(animate=False)
