"""Text from mail, servers and the user is never read as Textual markup: one "[/bold]" in
a subject, a folder name or a query crashed the app (MarkupError) in notices, titles, the
palette and the folder picker before."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from harness import Dovecot, User
from harness.clients import imap_device
from harness.ui import synced, until
from textual.widgets import Input

from kittiwake.core.config import Config
from kittiwake.tui.app import KittiwakeApp
from kittiwake.tui.screens.mailbox import MailboxScreen
from kittiwake.tui.screens.pickers import Picker
from kittiwake.tui.screens.search import SearchPrompt, SearchScreen
from kittiwake.tui.screens.thread_reader import ThreadReaderScreen
from kittiwake.tui.screens.thread_view import ConversationsScreen

EVIL = "closing [/bold] tag and [link=https://evil.example]click[/link]"


def hostile(n: int) -> bytes:
    return (
        f'From: "[/b] Mallory" <m@example.org>'
        f"\r\nSubject: {EVIL} {n}\r\n"
        f"Message-ID: <evil{n}@example.org>\r\nDate: 27 Mar 2025 10:0{n}:00 +0000\r\n"
        "\r\nbody [/i]\r\n"
    ).encode()


def seen_notices(app: KittiwakeApp) -> list[str]:
    return [n.message for n in app._notifications]


async def test_markup_in_mail_folders_and_queries_is_shown_as_written(
    xdg: Path, mailbox: Callable[..., Config], dovecot: Dovecot, user: User
) -> None:
    config = mailbox(3, extra=[hostile(1)])
    device = imap_device(dovecot, user)
    device.create("[/b] odd")
    device.subscribe("[/b] odd")
    app = KittiwakeApp(config)
    async with app.run_test(size=(100, 30), notifications=True) as pilot:
        await synced(app)
        # New mail with markup in its subject and sender: a notice, shown literally.
        device.append("INBOX", "", None, hostile(2))
        await until(pilot, lambda: any(EVIL in m for m in seen_notices(app)), timeout=5)
        assert any("[/b] Mallory" in m for m in seen_notices(app))
        # The folder picker and the palette list a folder named with markup.
        await pilot.press("o")
        await until(pilot, lambda: isinstance(app.screen, Picker))
        app.screen.query_one(Input).value = "odd"
        await pilot.pause(0.1)
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, MailboxScreen))
        await pilot.press("ctrl+p")
        await pilot.pause(0.1)
        app.screen.query_one(Input).value = "odd"
        await pilot.pause(0.3)
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, MailboxScreen))
        # A query with markup in it: the results' title says it as typed.
        await pilot.press("slash")
        await until(pilot, lambda: isinstance(app.screen, SearchPrompt))
        app.screen.query_one(Input).value = "[/b]"
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, SearchScreen))
        screen = app.screen
        assert isinstance(screen, SearchScreen)
        await until(pilot, lambda: "[/b]" in screen.title_text)
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, MailboxScreen))
        # Conversations, and the thread reader whose title is the subject.
        await pilot.press("t")
        await until(pilot, lambda: isinstance(app.screen, ConversationsScreen))
        await pilot.press("home", "enter")
        await until(pilot, lambda: isinstance(app.screen, ThreadReaderScreen))
        title = str(app.screen.query_one("#thread-title").render())
        assert EVIL in title
    assert app.return_code in (0, None)
