"""The key hints line, compact on narrow terminals so the keys that matter still fit."""

from __future__ import annotations

from textual import events
from textual.widgets import Footer

#: Below this width the hints drop their padding (80 columns would otherwise cut them).
COMPACT_BELOW = 100


class KeyFooter(Footer):
    """Below ``COMPACT_BELOW`` columns the hints lose their padding and the "^p Commands"
    corner (ctrl+p still works, and the help screen lists it), whose docked box otherwise
    hid the hints behind it and left a stray letter at the edge."""

    def on_resize(self, event: events.Resize) -> None:
        narrow = event.size.width < COMPACT_BELOW
        self.compact = narrow
        self.show_command_palette = not narrow
