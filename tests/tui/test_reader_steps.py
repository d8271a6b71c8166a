"""The message reader's J/K step from the message it shows, against the real Dovecot: when
another device expunges that message, J opens the one after it (not the one after that),
and the help lists Kittiwake's keys, not Textual's own."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from harness import Dovecot, User
from harness.clients import imap_device
from harness.ui import synced, until

from kittiwake.core.config import Config
from kittiwake.tui.app import KittiwakeApp
from kittiwake.tui.screens.help import HelpScreen
from kittiwake.tui.screens.mailbox import MailboxScreen
from kittiwake.tui.screens.reader import ReaderScreen
from kittiwake.tui.widgets.message_list import MessageList

TEXTUAL_OWN = {"Focus Next", "Focus Previous", "Page Left", "Page Right", "Copy selected text"}


def expunge(dovecot: Dovecot, user: User, uid: int) -> None:
    """Another device deletes message ``uid`` of the INBOX for good."""
    device = imap_device(dovecot, user)
    try:
        device.select("INBOX")
        device.uid("STORE", str(uid), "+FLAGS", "(\\Deleted)")
        device.expunge()
    finally:
        device.logout()


async def test_j_after_the_open_message_was_expunged_elsewhere(
    xdg: Path, mailbox: Callable[..., Config], dovecot: Dovecot, user: User
) -> None:
    app = KittiwakeApp(mailbox(5))
    async with app.run_test(size=(100, 30)) as pilot:
        await synced(app)
        mailbox_screen = app.screen
        assert isinstance(mailbox_screen, MailboxScreen)
        messages = mailbox_screen.query_one(MessageList)
        await until(pilot, lambda: list(messages.index) == [5, 4, 3, 2, 1])
        await pilot.press("j", "enter")
        await until(
            pilot, lambda: isinstance(app.screen, ReaderScreen) and app.screen.parsed is not None
        )
        reader = app.screen
        assert isinstance(reader, ReaderScreen) and reader.uid == 4
        expunge(dovecot, user, 4)
        await until(pilot, lambda: list(messages.index) == [5, 3, 2, 1])
        assert reader.uid == 4  # still on screen
        await pilot.press("J")  # the one after message 4
        await until(pilot, lambda: reader.parsed is not None and reader.uid == 3)
        assert reader.parsed.subject == "Message 3" and messages.current_uid == 3
        expunge(dovecot, user, 3)
        await until(pilot, lambda: list(messages.index) == [5, 2, 1])
        await pilot.press("K")  # the one before message 3
        await until(pilot, lambda: reader.parsed is not None and reader.uid == 5)
        assert messages.current_uid == 5


async def test_help_lists_only_kittiwakes_keys(xdg: Path, mailbox: Callable[..., Config]) -> None:
    app = KittiwakeApp(mailbox(3))
    async with app.run_test(size=(80, 24)) as pilot:
        await synced(app)
        for screen_type in (MailboxScreen, ReaderScreen):
            await until(pilot, lambda: isinstance(app.screen, screen_type))  # noqa: B023
            await pilot.press("question_mark")
            await until(pilot, lambda: isinstance(app.screen, HelpScreen))
            help_screen = app.screen
            assert isinstance(help_screen, HelpScreen)
            assert not {row[1] for row in help_screen.rows} & TEXTUAL_OWN
            assert all("." in row[2] for row in help_screen.rows)  # every one has an id
            await pilot.press("escape")
            await pilot.press("enter")
