"""What a start does first (issue 19): with a cached folder, its rows reach the screen before
the engine starts connecting (its TLS context and the resync's replies would otherwise compete
with the first frame); with nothing cached, the engine starts before the first screen is even
built, since the server's newest page is what that screen waits for."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from harness.ui import synced, until

from kittiwake.core.config import Config
from kittiwake.core.engine import Engine
from kittiwake.tui.app import KittiwakeApp
from kittiwake.tui.screens.mailbox import MailboxScreen
from kittiwake.tui.widgets.message_list import MessageList


def record_order(app: KittiwakeApp, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A list that gets "compose" when the first screen is built, "row" when the list first
    draws a message's row, and "start" when the engine is started."""
    order: list[str] = []
    start, compose = app.api.start, MailboxScreen.compose
    line = MessageList._line  # (render_line's, and render_lines' for each of its lines)

    def api_start() -> None:
        order.append("start")
        start()

    def screen_compose(self: MailboxScreen):  # type: ignore[no-untyped-def]
        order.append("compose")
        return compose(self)

    def list_line(self: MessageList, y: int, *args: object):  # type: ignore[no-untyped-def]
        if self.scroll_offset.y + y < len(self.index) and "row" not in order:
            order.append("row")
        return line(self, y, *args)

    monkeypatch.setattr(app.api, "start", api_start)
    monkeypatch.setattr(MailboxScreen, "compose", screen_compose)
    monkeypatch.setattr(MessageList, "_line", list_line)
    return order


async def test_warm_start_draws_cached_rows_before_connecting(
    xdg: Path, mailbox: Callable[..., Config], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = mailbox(count=12)
    engine = Engine(config)  # a previous run: the cache holds the folder
    await engine.sync_once()
    await engine.stop()
    app = KittiwakeApp(config)
    order = record_order(app, monkeypatch)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: "start" in order)
        assert order == ["compose", "row", "start"]
        await synced(app)  # and the engine then runs as ever
        messages = app.screen.query_one(MessageList)
        assert len(messages.index) == 12


async def test_cold_start_connects_before_building_the_screen(
    xdg: Path, mailbox: Callable[..., Config], monkeypatch: pytest.MonkeyPatch
) -> None:
    app = KittiwakeApp(mailbox(count=12))
    order = record_order(app, monkeypatch)
    async with app.run_test(size=(100, 30)) as pilot:
        await synced(app)
        messages = app.screen.query_one(MessageList)
        await until(pilot, lambda: len(messages.index) == 12)
        assert order[:2] == ["start", "compose"]
        assert order.count("start") == 1  # the screen's own call did not start it again
