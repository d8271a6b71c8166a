"""The mailbox's status line: where the user is, the counts, the connection, the outbox."""

from __future__ import annotations

from kittiwake.tui.widgets.plain import PlainBar


class StatusBar(PlainBar):
    DEFAULT_CSS = """
    StatusBar {
        height: 1;
        background: $panel;
        color: $foreground;
        padding: 0 1;
    }
    """
