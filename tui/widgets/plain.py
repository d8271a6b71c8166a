"""A one-line bar whose text is never read as markup."""

from __future__ import annotations

from rich.text import Text
from textual.content import Content
from textual.fuzzy import Matcher
from textual.visual import VisualType
from textual.widgets import Static


class PlainBar(Static):
    """Status and title bars show folder names, subjects, queries and server words: a
    string given to ``update`` is shown as it is, so "[/b]" in any of them cannot crash
    the app or restyle the line."""

    def update(self, content: VisualType = "", *, layout: bool = True) -> None:
        if isinstance(content, str):  # one line; a cut shows as "…"
            content = Text(content, no_wrap=True, overflow="ellipsis")
        super().update(content, layout=layout)


def highlight(matcher: Matcher, label: str) -> Content:
    """``Matcher.highlight`` without reading ``label`` as markup (it does: a folder named
    "[/b]" raised MarkupError in the palette and the folder picker)."""
    content = Content(label)
    score, offsets = matcher.fuzzy_search.match(matcher.query, label)
    if not score:
        return content
    for offset in offsets:
        if not label[offset].isspace():
            content = content.stylize(matcher.match_style, offset, offset + 1)
    return content
