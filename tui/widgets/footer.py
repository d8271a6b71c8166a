"""The key hints line, compact on narrow terminals so the keys that matter still fit."""

from __future__ import annotations

from textual import events
from textual.app import ComposeResult
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

#: Below this width the hints drop their padding (80 columns would otherwise cut them).
COMPACT_BELOW = 100


class KeyFooter(Footer):
    """Below ``COMPACT_BELOW`` columns the hints lose their padding and the "^p Commands"
    corner (ctrl+p still works, and the help screen lists it), whose docked box otherwise
    hid the hints behind it and left a stray letter at the edge."""

    def __init__(self) -> None:
        super().__init__()
        # It spans the terminal: styled for its width now, its keys are made as they are drawn
        # instead of being made again (and restyled) at its first resize.
        self._apply_width(self.app.size.width, update=False)

    def _apply_width(self, width: int, update: bool = True) -> None:
        narrow = width < COMPACT_BELOW
        if update:
            self.compact = narrow
            self.show_command_palette = not narrow
        else:
            self.set_reactive(Footer.compact, narrow)
            self.set_class(narrow, "-compact", update=False)
            self.set_reactive(Footer.show_command_palette, not narrow)

    def on_resize(self, event: events.Resize) -> None:
        self._apply_width(event.size.width)

    def compose(self) -> ComposeResult:
        """Textual's keys, each made as compact as the footer before it is mounted.

        A key starts compact and is then bound to the footer's ``compact``: each key was
        styled twice more (its class set, then taken off) before the first frame. The
        command palette's key is not bound, so it is left as Textual makes it."""
        for widget in super().compose():
            if isinstance(widget, FooterKey) and "compact" in (widget._reactive_connect or {}):
                widget.set_reactive(FooterKey.compact, self.compact)
                widget.set_class(self.compact, "-compact", update=False)
            yield widget
