"""The list repaints exactly the rows that changed, and the terminal ends up showing what
the list draws (``harness.ui.Terminal`` keeps the cells from the frames the app writes).
A row left out of a repaint stays wrong on screen until something else repaints it: the
cursor after a scroll was, when rows were named on screen instead of in the folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import Dovecot, User
from harness.clients import imap_device
from harness.ui import Terminal, synced, until
from textual.geometry import Region
from textual.widget import Widget

from kittiwake.core.config import Config
from kittiwake.tui.app import KittiwakeApp
from kittiwake.tui.widgets.message_list import MessageList


async def test_keys_and_live_flags_leave_the_terminal_showing_the_list(
    xdg: Path, mailbox: Callable[..., Config], dovecot: Dovecot, user: User
) -> None:
    app = KittiwakeApp(mailbox(80))
    async with app.run_test(size=(100, 30)) as pilot:
        await synced(app)
        messages = app.screen.query_one(MessageList)
        await until(pilot, lambda: len(messages.index) == 80 and not messages._pending_reload)
        await pilot.pause()
        terminal = Terminal(app)
        top = messages.region.y
        for key in ("j", "pagedown", "j", "j", "k", "pagedown", "j", "G", "k", "pageup", "j"):
            await pilot.press(key)
            await until(pilot, terminal.shows, timeout=2)
            assert messages.scroll_offset.y > 0 or key == "j"
            # The cursor's row on the terminal is the one the list highlights.
            row = top + messages.cursor - messages.scroll_offset.y
            cursor_cells = terminal.rows[row][messages.region.x + 5 :][:40]
            other = terminal.rows[row + 1 if row == top else row - 1][messages.region.x + 5 :][:40]
            assert {style for _, style in cursor_cells} != {style for _, style in other}
        # A flag set on another device, on a row of a scrolled list (not the cursor's).
        assert messages.scroll_offset.y > 0
        screen_row = 3
        uid = messages.index[messages.scroll_offset.y + screen_row]
        assert uid != messages.current_uid
        x = messages.region.x
        assert terminal.text(top + screen_row)[x + 1] == " "
        device = imap_device(dovecot, user)
        device.select("INBOX")
        device.uid("STORE", str(uid), "+FLAGS.SILENT", "(\\Flagged)")
        device.logout()
        await until(pilot, lambda: terminal.text(top + screen_row)[x + 1] == "!", timeout=10)
        await until(pilot, terminal.shows, timeout=2)


async def test_the_list_draws_its_lines_as_textual_would(
    xdg: Path, mailbox: Callable[..., Config]
) -> None:
    """``MessageList.render_lines`` hands over the rows it keeps drawn, without Textual's
    line cache: the same cells as Textual's own ``render_lines`` (padding, colour filter)."""
    app = KittiwakeApp(mailbox(40))
    async with app.run_test(size=(100, 30)) as pilot:
        await synced(app)
        messages = app.screen.query_one(MessageList)
        await until(pilot, lambda: len(messages.index) == 40 and not messages._pending_reload)
        for key in ("j", "pagedown", "G"):
            await pilot.press(key)
            await pilot.pause()
            width = messages.size.width
            for crop in (messages.size.region, Region(3, 2, width - 10, 5)):
                ours = [list(strip) for strip in messages.render_lines(crop)]
                messages._styles_cache.clear()  # Textual's drawing, not its cached lines
                textual = [list(strip) for strip in Widget.render_lines(messages, crop)]
                assert ours == textual
            assert messages.render_lines(crop)[0] is messages.render_lines(crop)[0]


async def test_a_cursor_move_is_drawn_as_the_key_moves_it(
    xdg: Path, mailbox: Callable[..., Config]
) -> None:
    """A key that moves the cursor has its frame written inside the move (``tui/paint.py``),
    not after the list's repaint has gone to the screen as a message and waited for the
    screen's 60 fps timer."""
    app = KittiwakeApp(mailbox(80))
    async with app.run_test(size=(100, 30)) as pilot:
        await synced(app)
        messages = app.screen.query_one(MessageList)
        await until(pilot, lambda: len(messages.index) == 80 and not messages._pending_reload)
        await pilot.pause(0.1)
        inside: list[int] = []  # frames written while the cursor moved
        moving: list[int] = []
        display = app._display

        def recorded(screen: Any, update: Any) -> None:
            if moving and update is not None:
                inside.append(len(update.render_segments(app.console)))
            display(screen, update)

        watch = messages.watch_cursor

        def watch_cursor(old: int, new: int) -> None:
            moving.append(1)
            try:
                watch(old, new)
            finally:
                moving.pop()

        app._display = recorded  # type: ignore[method-assign]
        messages.watch_cursor = watch_cursor  # type: ignore[method-assign]
        for key in ("j", "pagedown", "G", "k", "g"):
            inside.clear()
            await pilot.pause(0.05)  # (one frame per frame period: not at key-repeat pace)
            await pilot.press(key)
            assert inside, key
