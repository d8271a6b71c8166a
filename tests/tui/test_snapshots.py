"""Snapshots of the main screen and the reader at 80x24 and 120x40, against the real Dovecot.

Update after an intended change with ``pytest tests/tui/test_snapshots.py --snapshot-update``
and look at the report before committing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from harness.ui import synced, until

from kittiwake.core.config import Config
from kittiwake.tui.app import KittiwakeApp
from kittiwake.tui.screens.mailbox import MailboxScreen
from kittiwake.tui.screens.reader import ReaderScreen
from kittiwake.tui.widgets.message_list import MessageList

SIZES = [(80, 24), (120, 40)]


def _ready(app: KittiwakeApp, count: int) -> Callable[[Any], Any]:
    async def run_before(pilot: Any) -> None:
        await synced(app)
        mailbox = app.screen
        assert isinstance(mailbox, MailboxScreen)
        await until(pilot, lambda: len(mailbox.query_one(MessageList).index) == count)
        await pilot.pause()

    return run_before


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_main_screen(
    snap_compare: Any, xdg: Path, mailbox: Callable[..., Config], size: tuple[int, int]
) -> None:
    app = KittiwakeApp(mailbox(45))
    assert snap_compare(app, terminal_size=size, run_before=_ready(app, 45))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_reader(
    snap_compare: Any, xdg: Path, mailbox: Callable[..., Config], size: tuple[int, int]
) -> None:
    app = KittiwakeApp(mailbox(45))
    ready = _ready(app, 45)

    async def run_before(pilot: Any) -> None:
        await ready(pilot)
        await pilot.press("j", "j", "j", "j", "j", "enter")  # message 40, with an attachment
        await until(
            pilot, lambda: isinstance(app.screen, ReaderScreen) and app.screen.parsed is not None
        )
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=run_before)
