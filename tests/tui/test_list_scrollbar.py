"""The message list draws its scroll bar itself (``ListScrollBar``, cheaper on each page
key): row for row the same as Textual's own drawing, with the thumb where the list is."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from harness.ui import synced, until
from textual.geometry import Region
from textual.scrollbar import ScrollBar

from kittiwake.core.config import Config
from kittiwake.tui.app import KittiwakeApp
from kittiwake.tui.widgets.message_list import ListScrollBar, MessageList


async def test_the_list_scroll_bar_draws_as_textual_does(
    xdg: Path, mailbox: Callable[..., Config]
) -> None:
    app = KittiwakeApp(mailbox(80))
    async with app.run_test(size=(100, 30)) as pilot:
        await synced(app)
        messages = app.screen.query_one(MessageList)
        await until(pilot, lambda: len(messages.index) == 80)
        bar = messages.vertical_scrollbar
        assert isinstance(bar, ListScrollBar)
        await until(pilot, lambda: bar.display and bar.size.height > 0)
        thumbs = set()
        for key in ("g", "pagedown", "pagedown", "G", "pageup", "g"):
            await pilot.press(key)
            await pilot.pause()
            width, height = bar.size
            for crop in (Region(0, 0, width, height), Region(0, 2, width, 5)):
                ours = [list(strip) for strip in bar.render_lines(crop)]
                bar.refresh()  # Textual's drawing, not its cached lines
                textual = [list(strip) for strip in ScrollBar.render_lines(bar, crop)]
                assert ours == textual
            rows = bar.render_lines(Region(0, 0, width, height))
            thumbs.add(
                tuple(
                    y
                    for y, strip in enumerate(rows)
                    if any(seg.text.strip() or (seg.style and seg.style.reverse) for seg in strip)
                )
            )
        assert len(thumbs) >= 3  # the thumb moved with the list: top, middle, bottom
