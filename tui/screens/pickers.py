"""Small modal pickers: type to filter fuzzily, enter to choose, escape to cancel."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Generic, TypeVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.fuzzy import Matcher
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList
from textual.widgets.option_list import Option

from kittiwake.tui.widgets.plain import highlight

T = TypeVar("T")


class Picker(ModalScreen[T | None], Generic[T]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="picker.cancel"),
        Binding("down", "next", "Next", id="picker.next", show=False),
        Binding("up", "previous", "Previous", id="picker.previous", show=False),
    ]

    DEFAULT_CSS = """
    Picker {
        align: center top;
    }
    Picker > Vertical {
        margin-top: 2;
        width: 70%;
        max-width: 80;
        height: auto;
        max-height: 70%;
        background: $surface;
        border: tall $accent;
        padding: 0 1;
    }
    Picker OptionList {
        height: auto;
        max-height: 20;
        border: none;
    }
    """

    def __init__(self, title: str, items: Sequence[tuple[str, T]]) -> None:
        super().__init__()
        self.title_text = title
        self.items = list(items)
        self._shown: list[T] = []

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Input(placeholder=self.title_text, id="query")
            yield OptionList(id="choices")

    def on_mount(self) -> None:
        self._filter("")
        self.query_one(Input).focus()

    @on(Input.Changed, "#query")
    def _changed(self, event: Input.Changed) -> None:
        self._filter(event.value)

    def _filter(self, query: str) -> None:
        options = self.query_one(OptionList)
        options.clear_options()
        self._shown = []
        matcher = Matcher(query) if query else None
        scored = []
        for label, value in self.items:
            score = matcher.match(label) if matcher else 1.0
            if score > 0:
                scored.append((score, label, value))
        if matcher:
            scored.sort(key=lambda s: -s[0])
        # One add_options call: each add_option refreshes the list (10,000 attachments).
        shown: list[Option] = []
        for _score, label, value in scored:
            shown.append(Option(highlight(matcher, label) if matcher else Text(label)))
            self._shown.append(value)
        for label, value in self.extra_items(query):
            shown.append(Option(Text(label, style="italic")))
            self._shown.append(value)
        options.add_options(shown)
        if self._shown:
            options.highlighted = 0

    def extra_items(self, query: str) -> list[tuple[str, T]]:
        """Choices that depend on what was typed (e.g. "create this folder")."""
        return []

    def action_next(self) -> None:
        self.query_one(OptionList).action_cursor_down()

    def action_previous(self) -> None:
        self.query_one(OptionList).action_cursor_up()

    @on(Input.Submitted, "#query")
    def _submitted(self) -> None:
        index = self.query_one(OptionList).highlighted
        if index is not None and 0 <= index < len(self._shown):
            self.dismiss(self._shown[index])

    @on(OptionList.OptionSelected, "#choices")
    def _selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self._shown[event.option_index])

    def action_cancel(self) -> None:
        self.dismiss(None)
