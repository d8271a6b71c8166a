"""Hostile MIME structure through the real Dovecot: a message nested 1,000 levels deep (as
multiparts, or as attached messages) opens in the reader, shows what lies beyond the depth
limit as a raw part (with a paperclip in the list, from Dovecot's BODYSTRUCTURE), and ``H``
and ``V`` always open."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from harness.mail import INNERMOST, nested_messages, nested_multipart
from harness.ui import synced, until

from kittiwake.core.config import Config
from kittiwake.tui.app import KittiwakeApp
from kittiwake.tui.screens.mailbox import MailboxScreen
from kittiwake.tui.screens.reader import ReaderScreen
from kittiwake.tui.widgets.message_list import MessageList


@pytest.mark.parametrize(
    "raw", [nested_multipart(1000), nested_messages(1000)], ids=["multipart", "rfc822"]
)
async def test_a_message_nested_1000_deep_opens_and_its_source_shows(
    xdg: Path, mailbox: Callable[..., Config], raw: bytes
) -> None:
    app = KittiwakeApp(mailbox(2, extra=[raw]))
    async with app.run_test(size=(100, 30)) as pilot:
        await synced(app)
        screen = app.screen
        assert isinstance(screen, MailboxScreen)
        messages = screen.query_one(MessageList)
        await until(pilot, lambda: len(messages.index) == 3)
        assert messages.cursor == 0  # the hostile message is the newest
        # Its BODYSTRUCTURE (Dovecot sends 100 of the 1,000 levels) gives the list a paperclip.
        summary = messages.summary(messages.index[0])
        assert summary is not None and summary.has_attachments
        await pilot.press("enter")
        await until(
            pilot,
            lambda: isinstance(app.screen, ReaderScreen) and app.screen.parsed is not None,
            timeout=20,
        )
        reader = app.screen
        assert isinstance(reader, ReaderScreen)
        body = str(reader.query_one("#body").render())
        assert "could not load" not in body
        # Beyond the depth limit the rest is one raw part, listed (and saved with S).
        listed = str(reader.query_one("#attachments").render())
        assert "part-1.1.1" in listed or "level 998.eml" in listed
        await pilot.press("H")
        await until(
            pilot, lambda: "MIME-Version: 1.0" in str(reader.query_one("#headers").render())
        )
        await pilot.press("V")
        await until(
            pilot,
            lambda: INNERMOST.decode() in str(reader.query_one("#body").render()),
            timeout=20,
        )
