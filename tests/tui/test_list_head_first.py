"""A folder's first screenful is drawn from the head of its index and its count; the whole
index (~0.3 s of CPU at 1,000,000 messages) is read after that first frame (issue 19). Keys
pressed before it is read act on the whole folder. ``HEAD_ROWS`` is made small here so that a
folder of 100 messages (on a real Dovecot) has a head (two screenfuls of a 30-row terminal)
and a rest."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from harness.ui import screen_text, synced, until

from kittiwake.core.config import Config
from kittiwake.core.engine import Engine
from kittiwake.core.search.order import SortOrder
from kittiwake.tui.app import KittiwakeApp
from kittiwake.tui.widgets import message_list
from kittiwake.tui.widgets.message_list import MessageList

HEAD = 8
COUNT = 100


async def warm_config(mailbox: Callable[..., Config], monkeypatch: pytest.MonkeyPatch) -> Config:
    """A folder of ``COUNT`` messages synced by a previous run, and a head of ``HEAD`` rows."""
    config = mailbox(count=COUNT)
    engine = Engine(config)
    await engine.sync_once()
    await engine.stop()
    monkeypatch.setattr(message_list, "HEAD_ROWS", HEAD)
    return config


async def test_the_first_frame_comes_from_the_head_and_the_index_follows(
    xdg: Path, mailbox: Callable[..., Config], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = await warm_config(mailbox, monkeypatch)
    app = KittiwakeApp(config)
    first_frame: list[tuple[bool, int]] = []  # (index read in full?, rows known)
    line = MessageList._line  # (render_line's, and render_lines' for each of its lines)

    def list_line(self: MessageList, y: int, *args: object):  # type: ignore[no-untyped-def]
        strip = line(self, y, *args)
        if self.row_count and y == self.size.height - 1 and not first_frame:
            first_frame.append((self.index_complete, self.row_count))  # its last line drawn
        return strip

    monkeypatch.setattr(MessageList, "_line", list_line)
    monkeypatch.setattr(message_list, "INDEX_SLICE", 7)
    slices: list[int] = []  # rows read when each slice is asked for
    read_more = MessageList._read_more

    def counting_read_more(self: MessageList, reads: int, waited: int = 0) -> None:
        slices.append(len(self._index))
        read_more(self, reads, waited)

    monkeypatch.setattr(MessageList, "_read_more", counting_read_more)
    async with app.run_test(size=(100, 30)) as pilot:
        messages = app.screen.query_one(MessageList)
        # No key: the rest of the index is read once the first frame is out.
        await until(pilot, lambda: messages.index_complete)
        assert first_frame == [(False, COUNT)]  # drawn from the head, the size from a count
        # two screenfuls, then 7 at a time (a step may be put off while a message waits)
        assert list(dict.fromkeys(slices)) == [60, 67, 74, 81, 88, 95]
        assert f"Message {COUNT}" in screen_text(app)
        assert messages.virtual_size.height == COUNT
        full = app.api.message_index("mine", "INBOX")
        assert list(messages.index) == list(full) and len(full) == COUNT
        await synced(app)


async def test_keys_before_the_index_is_read_act_on_the_whole_folder(
    xdg: Path, mailbox: Callable[..., Config], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = await warm_config(mailbox, monkeypatch)
    # The background read never comes: only what a key needs reads the index.
    monkeypatch.setattr(MessageList, "_read_more_soon", lambda self, reads: None)
    app = KittiwakeApp(config)
    async with app.run_test(size=(100, 30)) as pilot:
        messages = app.screen.query_one(MessageList)
        await until(pilot, lambda: f"Message {COUNT}" in screen_text(app))
        await pilot.press("j", "j")
        assert messages.current_uid == COUNT - 2
        assert not messages.index_complete  # rows of the head: nothing more was read
        await pilot.press("asterisk")  # select all: every message, not the head's
        assert messages.selected == set(range(1, COUNT + 1))
        assert messages.index_complete
        await synced(app)


async def test_the_last_row_before_the_index_is_read_is_the_folders_last(
    xdg: Path, mailbox: Callable[..., Config], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = await warm_config(mailbox, monkeypatch)
    monkeypatch.setattr(MessageList, "_read_more_soon", lambda self, reads: None)
    app = KittiwakeApp(config)
    async with app.run_test(size=(100, 30)) as pilot:
        messages = app.screen.query_one(MessageList)
        await until(pilot, lambda: f"Message {COUNT}" in screen_text(app))
        await pilot.press("G")  # the last row: past the head
        await until(pilot, lambda: "Message 1 " in screen_text(app))
        assert messages.cursor == COUNT - 1 and messages.current_uid == 1
        assert messages.index_complete
        await synced(app)


async def test_paging_past_the_head_reads_the_index_and_keeps_the_selection(
    xdg: Path, mailbox: Callable[..., Config], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = await warm_config(mailbox, monkeypatch)
    monkeypatch.setattr(MessageList, "_read_more_soon", lambda self, reads: None)
    app = KittiwakeApp(config)
    async with app.run_test(size=(100, 30)) as pilot:
        messages = app.screen.query_one(MessageList)
        await until(pilot, lambda: f"Message {COUNT}" in screen_text(app))
        await pilot.press("x", "x")  # select, one down, select
        assert messages.selected == {COUNT, COUNT - 1}
        assert not messages.index_complete
        for _ in range(6):
            await pilot.press("pagedown")
        await until(pilot, lambda: "Message 1 " in screen_text(app))
        assert messages.cursor == COUNT - 1 and messages.current_uid == 1
        assert messages.index_complete
        assert messages.targets() == (COUNT, COUNT - 1)  # in the list's order
        await synced(app)


async def test_an_order_without_a_cheap_head_reads_the_whole_index_first(
    xdg: Path, mailbox: Callable[..., Config], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = await warm_config(mailbox, monkeypatch)
    app = KittiwakeApp(config)
    app.api.set_sort_order("mine", "INBOX", SortOrder("subject", False))
    async with app.run_test(size=(100, 30)) as pilot:
        messages = app.screen.query_one(MessageList)
        await until(pilot, lambda: messages.row_count == COUNT)
        assert messages.index_complete
        assert list(messages.index) == list(
            app.api.message_index("mine", "INBOX", SortOrder("subject", False))
        )
        await synced(app)
