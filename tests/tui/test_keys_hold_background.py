"""A key reaches the engine as "the user is typing": the background decode pass waits while
keys are drawn (on the app's event loop its slices ran between every step of a key)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from harness.ui import synced

from kittiwake.core.config import Config
from kittiwake.tui.app import KittiwakeApp


async def test_a_key_holds_the_decode_pass(xdg: Path, mailbox: Callable[..., Config]) -> None:
    app = KittiwakeApp(mailbox(3))
    async with app.run_test(size=(100, 30)) as pilot:
        await synced(app)
        account = app.api.engine.imap["mine"]
        account.hold_background(0)
        assert account._held_until <= time.monotonic()
        await pilot.press("j")
        assert account._held_until > time.monotonic()  # held for a moment after the key
