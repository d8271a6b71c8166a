"""A live change or a cursor move drawn at once, not at the screen's next frame tick (issue 19).

Textual draws a widget's repaint in stages: the widget's idle handler posts ``Update`` to its
screen, the screen's idle handler resumes its update timer, and that timer fires on a 60 fps
grid: 0-16 ms after the change, plus a task switch per stage. Measured at 10,000 messages,
a new message from another device waited 2-10 ms between the list's change and the frame
start, more on a loaded machine. ``draw_now`` hands the widgets' repaints to the screen and
renders the frame there and then, as the timer would have (``Screen._on_timer_update``).

What else the screen has pending (another widget's layout or scroll: the status line's new
count, say, when its handler ran first) is done in the same frame, as the timer would have
done it. Not when the widget itself still has a layout or a scroll of its own to hand over
(the frame would miss it), during a batch of updates, nor more than once per frame period,
so a burst of changes costs no more frames than Textual's own pace: the usual path draws
those. The message list calls it for live changes and for each move of its cursor (a key:
at 100,000 messages, 2.6-2.9 ms of CPU from the key to the frame written, was 5.6-6.1).
"""

from __future__ import annotations

import time

from textual.screen import UPDATE_PERIOD
from textual.widget import Widget


def draw_now(widget: Widget, *also: Widget) -> bool:
    """Render the repaints ``widget`` (and ``also``: its scroll bar) asked for, now, when it
    is on the screen on top and asks for nothing more than a repaint; True when drawn."""
    if not widget.is_attached:
        return False
    screen, app = widget.screen, widget.app
    now = time.monotonic()
    if (
        app.screen is not screen
        or app._batch_count
        or widget._layout_required
        or widget._scroll_required
        or not widget._repaint_required
        or widget not in screen._compositor.visible_widgets
        or now - getattr(screen, "_kw_drawn_at", 0.0) < UPDATE_PERIOD
    ):
        return False
    for dirty in (widget, *also):
        if dirty._repaint_required and not dirty._layout_required:
            dirty._repaint_required = False
            screen._dirty_widgets.add(dirty)
    screen._kw_drawn_at = now  # type: ignore[attr-defined]
    with screen._context():  # as the screen's own timer runs it
        screen._on_timer_update()
    return True
