"""Keys typed ahead across a screen change apply in order, to the screen they were meant for
(mutt users type ``Enter q j j Enter`` without looking). Textual forwards each key to the
widget focused when it arrives: a key typed before a push or a pop has finished went to the
screen being left (and was lost with it), or ran before the push it should have followed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from harness.ui import synced, until
from textual import events

from kittiwake.core.config import Config
from kittiwake.tui.app import KittiwakeApp
from kittiwake.tui.screens.mailbox import MailboxScreen
from kittiwake.tui.screens.reader import ReaderScreen
from kittiwake.tui.widgets.message_list import MessageList

CHARS = {"enter": "\r", "escape": "\x1b"}


def type_ahead(app: KittiwakeApp, *keys: str) -> None:
    """The keys arrive at once, as from a fast typist: none waits for the one before it."""
    for key in keys:
        app.post_message(events.Key(key, CHARS.get(key, key)))


def readers(app: KittiwakeApp) -> list[ReaderScreen]:
    return [s for s in app.screen_stack if isinstance(s, ReaderScreen)]


async def test_keys_typed_ahead_across_a_push_and_a_pop(
    xdg: Path, mailbox: Callable[..., Config]
) -> None:
    app = KittiwakeApp(mailbox(6))
    async with app.run_test(size=(100, 30)) as pilot:
        await synced(app)
        mailbox_screen = app.screen
        assert isinstance(mailbox_screen, MailboxScreen)
        messages = mailbox_screen.query_one(MessageList)
        await until(pilot, lambda: list(messages.index) == [6, 5, 4, 3, 2, 1])
        # Open the newest, scroll it, back to the list, two down, open that one.
        type_ahead(app, "enter", "j", "escape", "j", "j", "enter", "K")
        await until(
            pilot,
            lambda: (
                isinstance(app.screen, ReaderScreen)
                and app.screen.parsed is not None
                and app.screen.uid == 5
            ),
        )
        await pilot.pause()
        assert len(readers(app)) == 1  # one reader: the first was closed by escape
        assert messages.current_uid == 5  # K in the reader moved the list's cursor along


async def test_keys_typed_ahead_from_the_reader(xdg: Path, mailbox: Callable[..., Config]) -> None:
    app = KittiwakeApp(mailbox(6))
    async with app.run_test(size=(100, 30)) as pilot:
        await synced(app)
        messages = app.screen.query_one(MessageList)
        await until(pilot, lambda: list(messages.index) == [6, 5, 4, 3, 2, 1])
        await pilot.press("enter")
        await until(
            pilot, lambda: isinstance(app.screen, ReaderScreen) and app.screen.parsed is not None
        )
        type_ahead(app, "escape", "j", "j", "j", "enter")
        await until(
            pilot,
            lambda: (
                isinstance(app.screen, ReaderScreen)
                and app.screen.parsed is not None
                and app.screen.uid == 3
            ),
        )
        await pilot.pause()
        assert len(readers(app)) == 1
        assert messages.current_uid == 3
