"""Triage is one command set wherever a message is shown (the message list, the reader,
search results, conversations and the conversation reader), against the real Dovecot:
a ``[keys] triage.*`` remapping reaches every one of them, undoing junk takes the ``$Junk``
flag away with the move (one step), and deleting for good is never on the undo stack."""

from __future__ import annotations

import email
import imaplib
from collections.abc import Callable
from email import policy
from pathlib import Path

import pytest
from harness import Dovecot, User
from harness.clients import imap_device
from harness.ui import message, synced, until
from textual.widgets import Input

from kittiwake.core.api import Hit
from kittiwake.core.config import Config
from kittiwake.core.models import JUNK
from kittiwake.tui.app import KittiwakeApp
from kittiwake.tui.screens.confirm import Confirm
from kittiwake.tui.screens.mailbox import MailboxScreen
from kittiwake.tui.screens.reader import ReaderScreen
from kittiwake.tui.screens.search import SearchPrompt, SearchScreen
from kittiwake.tui.screens.thread_reader import ThreadReaderScreen
from kittiwake.tui.screens.thread_view import ConversationsScreen
from kittiwake.tui.widgets.message_list import MessageList
from kittiwake.tui.widgets.thread_list import ThreadList

PLACES = ["mailbox", "reader", "results", "conversations", "thread_reader"]


def mailbox_of(app: KittiwakeApp) -> MailboxScreen:
    return next(s for s in app.screen_stack if isinstance(s, MailboxScreen))


def server_messages(dovecot: Dovecot, user: User, folder: str) -> dict[str, set[str]]:
    """Each message of ``folder`` on the server: its subject and its flags."""
    device = imap_device(dovecot, user)
    try:
        device.select(folder, readonly=True)
        _, data = device.uid("FETCH", "1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        out: dict[str, set[str]] = {}
        for item in data:
            if not isinstance(item, tuple):
                continue
            flags = imaplib.ParseFlags(item[0]) or ()
            header = email.message_from_bytes(item[1], policy=policy.default)
            out[str(header["Subject"])] = {f.decode() for f in flags}
        return out
    finally:
        device.logout()


def noticed(app: KittiwakeApp, words: str) -> bool:
    return any(words in n.message for n in app._notifications)


async def open_on(app: KittiwakeApp, pilot: object, place: str, folder: str, subject: str) -> None:
    """Show the message ``subject`` of ``folder`` in ``place``, under the cursor or marker."""
    press = pilot.press  # type: ignore[attr-defined]
    mailbox = mailbox_of(app)
    messages = mailbox.query_one(MessageList)
    if mailbox.folder != folder:
        mailbox.show_folder("mine", folder)
    api = app.api

    def uid_of_subject() -> int | None:
        rows = api.summaries("mine", folder, list(messages.index))
        return next((u for u, s in rows.items() if s.envelope.subject == subject), None)

    await until(pilot, lambda: messages.folder == folder and uid_of_subject() is not None)
    uid = uid_of_subject()
    assert uid is not None
    if place in ("mailbox", "reader"):
        messages.go_to_uid(uid)
        assert messages.current_uid == uid
        if place == "reader":
            await press("enter")
            await until(
                pilot,
                lambda: isinstance(app.screen, ReaderScreen) and app.screen.parsed is not None,
            )
        return
    if place == "results":
        await press("slash")
        await until(pilot, lambda: isinstance(app.screen, SearchPrompt))
        app.screen.query_one(Input).value = f'subject:"{subject}"'
        await press("enter")
        await until(pilot, lambda: isinstance(app.screen, SearchScreen))
        results = app.screen.query_one(ThreadList)
        await until(pilot, lambda: results.hits == [Hit(folder, uid)])
        return
    await press("t")
    await until(pilot, lambda: isinstance(app.screen, ConversationsScreen))
    threads = app.screen.query_one(ThreadList)
    await until(pilot, lambda: threads.threading is not None and Hit(folder, uid) in threads.hits)
    threads.go_to(Hit(folder, uid))
    assert threads.current_hit == Hit(folder, uid)
    if place == "thread_reader":
        await press("enter")
        await until(pilot, lambda: isinstance(app.screen, ThreadReaderScreen))
        reader = app.screen
        assert isinstance(reader, ThreadReaderScreen)
        await until(pilot, lambda: [p.hit for p in reader.parts()] == [Hit(folder, uid)])


# -- a [keys] triage.* remapping holds everywhere -----------------------------------------------


@pytest.mark.parametrize("place", PLACES)
async def test_a_remapped_triage_key_works_everywhere(
    xdg: Path, mailbox: Callable[..., Config], place: str
) -> None:
    """``triage.delete = "delete"``: the Delete key deletes in every place a message is
    shown (the reader's own ``reader.delete`` ignored it), and ``d`` no longer does."""
    app = KittiwakeApp(mailbox(5, keys={"triage.delete": "delete"}))
    async with app.run_test(size=(100, 30)) as pilot:
        await synced(app)
        api = app.api
        assert not app.startup_warnings
        await open_on(app, pilot, place, "INBOX", "Message 3")
        on = app.screen
        await pilot.press("d")
        await pilot.pause()
        assert app.screen is on and api.pending_actions("mine") == 0
        assert api.counts("mine", "INBOX")[0] == 5
        await pilot.press("delete")
        await until(pilot, lambda: api.counts("mine", "INBOX")[0] == 4)
        await until(pilot, lambda: api.counts("mine", "Trash")[0] == 1)
        assert noticed(app, "Moved 1 message to Trash")


async def test_the_readers_old_ids_are_still_accepted(
    xdg: Path, mailbox: Callable[..., Config]
) -> None:
    """A ``[keys]`` table written for the reader's own ids (``reader.flag`` ...) still works:
    they are the triage ids now, and the user is told once which name to use."""
    app = KittiwakeApp(mailbox(5, keys={"reader.flag": "plus"}))
    async with app.run_test(size=(100, 30)) as pilot:
        await synced(app)
        assert app.startup_warnings == [
            "config: keys.reader.flag is now called triage.flag (it applies everywhere)"
        ]
        await open_on(app, pilot, "reader", "INBOX", "Message 3")
        await pilot.press("plus")
        uid = mailbox_of(app).query_one(MessageList).current_uid
        assert uid is not None
        await until(
            pilot, lambda: "\\Flagged" in app.api.summaries("mine", "INBOX", [uid])[uid].flags
        )


# -- undoing junk takes $Junk away too ---------------------------------------------------------


@pytest.mark.parametrize("place", PLACES)
async def test_undoing_junk_takes_the_junk_flag_away(
    xdg: Path, mailbox: Callable[..., Config], dovecot: Dovecot, user: User, place: str
) -> None:
    """``!`` flags ``$Junk`` and moves to Junk; ``z`` (once) moves it back *and* takes the
    flag away, on the server too."""
    app = KittiwakeApp(mailbox(5))
    async with app.run_test(size=(100, 30)) as pilot:
        await synced(app)
        imap = app.api.engine.imap["mine"]
        await open_on(app, pilot, place, "INBOX", "Message 3")
        await pilot.press("exclamation_mark")
        await until(pilot, lambda: app.api.counts("mine", "INBOX")[0] == 4)
        await imap.flush_actions()
        assert JUNK in server_messages(dovecot, user, "Junk")["Message 3"]
        await pilot.press("z")
        await until(pilot, lambda: noticed(app, "Undone"))
        await imap.flush_actions()
        await until(pilot, lambda: "Message 3" in server_messages(dovecot, user, "INBOX"))
        await imap.flush_actions()
        assert server_messages(dovecot, user, "Junk") == {}
        assert JUNK not in server_messages(dovecot, user, "INBOX")["Message 3"]
        assert app.api.undo("mine") == "Nothing to undo"  # one step, undone whole


# -- deleting for good is never on the undo stack -----------------------------------------------


@pytest.mark.parametrize("place", PLACES)
async def test_delete_for_good_is_not_undoable(
    xdg: Path, mailbox: Callable[..., Config], dovecot: Dovecot, user: User, place: str
) -> None:
    device = imap_device(dovecot, user)
    device.append("Trash", "(\\Seen)", None, message(70, "Doomed"))
    device.logout()
    app = KittiwakeApp(mailbox(3))
    async with app.run_test(size=(100, 30)) as pilot:
        await synced(app)
        api = app.api
        imap = api.engine.imap["mine"]
        await open_on(app, pilot, place, "Trash", "Doomed")
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, Confirm))
        await pilot.press("y")
        await until(pilot, lambda: noticed(app, "Deleted 1 message for good"))
        assert not noticed(app, "z to undo")
        await imap.flush_actions()
        assert server_messages(dovecot, user, "Trash") == {}
        await pilot.press("z")
        await until(pilot, lambda: noticed(app, "Nothing to undo"))
        assert api.undo("mine") == "Nothing to undo"
