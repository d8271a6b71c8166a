"""The key hints line, compact on narrow terminals so the keys that matter still fit."""

from __future__ import annotations

from textual import events
from textual.widgets import Footer

#: Below this width the hints drop their padding (80 columns would otherwise cut them).
COMPACT_BELOW = 100


class KeyFooter(Footer):
    def on_resize(self, event: events.Resize) -> None:
        self.compact = event.size.width < COMPACT_BELOW
