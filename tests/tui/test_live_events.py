"""Engine events reach the widgets that show them (``tui/events.py``): each test publishes on
the engine's bus, as the engine does after writing its cache, and reads what the widget shows."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from harness import Dovecot, User
from harness.clients import imap_device
from harness.mail import message
from harness.ui import screen_text, synced, until

from kittiwake.core.cache import Cache
from kittiwake.core.config import Config
from kittiwake.core.events import (
    ConnectionChanged,
    ConnState,
    DraftsRecovered,
    FlagsChanged,
    FolderCountsChanged,
    FolderListChanged,
    MessagesAdded,
    MessageSent,
    SendFailed,
    SyncError,
    SyncProgress,
)
from kittiwake.core.models import FLAGGED, SEEN, FolderInfo
from kittiwake.tui.app import KittiwakeApp
from kittiwake.tui.screens.mailbox import MailboxScreen
from kittiwake.tui.screens.reader import ReaderScreen
from kittiwake.tui.screens.thread_reader import ThreadReaderScreen
from kittiwake.tui.screens.thread_view import ConversationsScreen
from kittiwake.tui.widgets.folder_tree import FolderTree
from kittiwake.tui.widgets.message_list import MessageList
from kittiwake.tui.widgets.status_bar import StatusBar


def _mailbox(app: KittiwakeApp) -> MailboxScreen:
    return next(s for s in app.screen_stack if isinstance(s, MailboxScreen))


def _cache(app: KittiwakeApp) -> Cache:
    return app.api.engine.imap["mine"].cache


def _count_calls(app: KittiwakeApp) -> list[tuple[str, str]]:
    """The (account, folder) of each ``api.counts`` call from now on."""
    counted: list[tuple[str, str]] = []
    real = app.api.counts

    def counts(account: str, folder: str) -> tuple[int, int]:
        counted.append((account, folder))
        return real(account, folder)

    app.api.counts = counts  # type: ignore[method-assign]
    return counted


def _publish(app: KittiwakeApp, *events: Any) -> None:
    for event in events:
        app.api.engine.bus.publish(event)


def _label(tree: FolderTree, folder: str) -> str:
    return tree._folder_nodes[("mine", folder)].label.plain  # type: ignore[union-attr]


async def test_the_folder_tree_follows_folder_lists_and_counts(
    xdg: Path, mailbox: Callable[..., Config]
) -> None:
    app = KittiwakeApp(mailbox(3))
    async with app.run_test(size=(100, 30)) as pilot:
        await synced(app)
        tree = _mailbox(app).query_one(FolderTree)
        await until(pilot, lambda: _label(tree, "Work") == "Work (1)")
        _cache(app).set_flags("Work", {1: frozenset({SEEN})})  # read on another device
        _publish(app, FolderCountsChanged("mine", "Work", 1, 0))
        await until(pilot, lambda: _label(tree, "Work") == "Work")
        # A sync of 200 folders ends each with its counts: the event's own are shown, not
        # every folder's counted again (each time a count of every message).
        listed: list[str] = []
        real = app.api.folders
        app.api.folders = lambda account: listed.append(account) or real(account)  # type: ignore[method-assign]
        for unread in range(1, 201):
            _publish(app, FolderCountsChanged("mine", "Work", 300, unread))
        await until(pilot, lambda: _label(tree, "Work") == "Work (200)")
        assert listed == []
        app.api.folders = real  # type: ignore[method-assign]
        mailbox_screen = _mailbox(app)
        mailbox_screen.folder = None  # as before any folder was known
        folders = (*_cache(app).folders(), FolderInfo("Projects", "/"))
        _publish(app, FolderListChanged("mine", folders))
        await until(pilot, lambda: any(r.folder == "Projects" for r in tree.folder_refs()))
        assert _label(tree, "Projects") == "Projects"
        # The tree says so (FolderTree.Changed), and the mailbox, which had no folder, opens
        # the account's inbox.
        await until(pilot, lambda: mailbox_screen.folder == "INBOX")


async def test_the_message_list_follows_its_folder_coalescing_bursts(
    xdg: Path, mailbox: Callable[..., Config]
) -> None:
    app = KittiwakeApp(mailbox(8))
    async with app.run_test(size=(100, 30)) as pilot:
        await synced(app)
        messages = _mailbox(app).query_one(MessageList)
        await until(pilot, lambda: len(messages.index) == 8 and not messages._pending_reload)
        row = messages.index.index(3)  # message 3: read, not flagged
        assert messages.render_line(row).text[:2] == "  "
        reloads: list[frozenset[int]] = []
        reload = messages.reload

        def counted(
            *,
            forget: frozenset[int] = frozenset(),
            forget_all: bool = False,
            index: list[int] | None = None,
        ) -> None:
            reloads.append(forget)
            reload(forget=forget, forget_all=forget_all, index=index)

        messages.reload = counted  # type: ignore[method-assign]
        flagged = frozenset({SEEN, FLAGGED})
        _cache(app).set_flags("INBOX", {3: flagged})
        _publish(
            app,
            FlagsChanged("mine", "Work", {1: flagged}),  # another folder: not this list's
            FlagsChanged("other", "INBOX", {4: flagged}),  # another account
            *[MessagesAdded("mine", "INBOX", ()) for _ in range(20)],
            FlagsChanged("mine", "INBOX", {3: flagged}),
        )
        await until(pilot, lambda: messages.render_line(row).text[:2] == " !")
        await until(pilot, lambda: not messages._pending_reload)
        # The burst: at once, then the rest in one more reload at most. The flag change
        # needs none (same rows, same order): row 3 alone is read again and redrawn.
        assert 1 <= len(reloads) <= 2
        assert all(not forget for forget in reloads)
        assert messages.current_uid == 8
        before = len(reloads)
        _cache(app).set_flags("INBOX", {3: frozenset({FLAGGED})})  # unread again, elsewhere
        _publish(app, FlagsChanged("mine", "INBOX", {3: frozenset({FLAGGED})}))
        await until(pilot, lambda: messages.render_line(row).text[:2] == "N!")
        assert len(reloads) == before  # redrawn without re-reading the index


async def test_new_mail_joins_the_head_of_the_list_without_reading_the_index_again(
    xdg: Path, mailbox: Callable[..., Config], dovecot: Dovecot, user: User
) -> None:
    """New mail, the newest, is put on top from the head of the cache's order (reading the
    whole index again costs tens of ms at 100,000 messages); mail that sorts deeper has
    the index read again, and lands where the cache's order puts it."""
    app = KittiwakeApp(mailbox(40))
    async with app.run_test(size=(100, 30)) as pilot:
        await synced(app)
        messages = _mailbox(app).query_one(MessageList)
        await until(pilot, lambda: len(messages.index) == 40 and not messages._pending_reload)
        reads: list[int] = []
        read = messages._read_index

        def counted() -> list[int]:
            reads.append(1)
            return read()

        messages._read_index = counted  # type: ignore[method-assign]
        device = imap_device(dovecot, user)
        device.append("INBOX", "", None, message(41, "Fresh news"))
        await until(pilot, lambda: len(messages.index) == 41, timeout=10)
        assert messages.index == app.api.message_index("mine", "INBOX")
        assert messages.index[0] == 41
        assert reads == []
        # The scroll bar knows the new height (updated without a layout pass).
        assert messages.virtual_size.height == 41
        assert messages.vertical_scrollbar.window_virtual_size == 41
        await until(pilot, lambda: "Fresh news" in screen_text(app))
        older = message(42, "From the archive").replace(
            b"Thu, 26 Nov 2026 10:00:00 +0000", b"Mon, 02 Mar 2020 10:00:00 +0000"
        )
        device.append("INBOX", "", None, older)
        device.logout()
        await until(pilot, lambda: len(messages.index) == 42, timeout=10)
        assert reads
        assert messages.index == app.api.message_index("mine", "INBOX")
        assert messages.index[-1] == 42


@pytest.mark.parametrize("count", [12, 40])  # without a scroll bar, and with one
async def test_a_live_change_is_drawn_by_the_list_itself_not_at_the_next_frame_tick(
    xdg: Path, mailbox: Callable[..., Config], dovecot: Dovecot, user: User, count: int
) -> None:
    """New mail and a flag set on another device are on the terminal when the list has
    taken them in (``tui/paint.py``): the frame holding the row is written inside the
    list's own reload or redraw, not later at the screen's 60 fps tick."""
    app = KittiwakeApp(mailbox(count))
    async with app.run_test(size=(100, 30)) as pilot:
        await synced(app)
        messages = _mailbox(app).query_one(MessageList)
        await until(pilot, lambda: len(messages.index) == count and not messages._pending_reload)
        frames: list[str] = []
        inside: list[str] = []  # frames written while the list took a change in
        display = app._display

        def recorded(screen: Any, update: Any) -> None:
            text = update.render_segments(app.console) if update is not None else ""
            frames.append(text)
            if taking:
                inside.append(text)
            display(screen, update)

        taking: list[int] = []

        def wrapped(method: Callable[..., None]) -> Callable[..., None]:
            def call(*args: Any) -> None:
                taking.append(1)
                try:
                    method(*args)
                finally:
                    taking.pop()

            return call

        app._display = recorded  # type: ignore[method-assign]
        messages._reload_now = wrapped(messages._reload_now)  # type: ignore[method-assign]
        messages._redraw = wrapped(messages._redraw)  # type: ignore[method-assign]
        device = imap_device(dovecot, user)
        device.select("INBOX")
        device.append("INBOX", "", None, message(count + 1, "Fresh news"))
        await until(pilot, lambda: any("Fresh news" in f for f in frames), timeout=10)
        assert any("Fresh news" in f for f in inside)
        first = next(f for f in frames if "Fresh news" in f)
        assert first in inside
        row = messages.index.index(count + 1)
        assert messages.render_line(row).text.startswith("N")
        frames.clear()
        inside.clear()
        device.uid("STORE", str(count + 1), "+FLAGS.SILENT", "(\\Seen)")
        device.logout()
        await until(pilot, lambda: any("Fresh news" in f for f in frames), timeout=10)
        first = next(f for f in frames if "Fresh news" in f)
        assert first in inside
        assert not messages.render_line(row).text.startswith("N")


async def test_the_status_bar_follows_connection_progress_and_counts(
    xdg: Path, mailbox: Callable[..., Config]
) -> None:
    app = KittiwakeApp(mailbox(8))
    async with app.run_test(size=(160, 30)) as pilot:
        await synced(app)
        bar = _mailbox(app).query_one(StatusBar)

        def shown() -> str:
            return str(bar.render())

        await until(pilot, lambda: shown() == "mine · INBOX · 8 messages · 5 unread · online")
        _publish(app, SyncProgress("mine", "INBOX", 1200, 5000))
        await until(pilot, lambda: shown().endswith(" · syncing 1,200/5,000"))
        _cache(app).set_flags("INBOX", {3: frozenset()})  # marked unread on another device
        _publish(app, FolderCountsChanged("mine", "INBOX", 8, 6))  # and the sync is done
        await until(pilot, lambda: shown() == "mine · INBOX · 8 messages · 6 unread · online")
        _publish(app, ConnectionChanged("mine", ConnState.OFFLINE, "the link went", 30.0))
        await until(pilot, lambda: "offline (ctrl+d: why), retry in" in shown())
        assert shown().endswith("s: the link went")


async def test_the_status_bar_counts_a_syncing_folder_at_most_once_a_second(
    xdg: Path, mailbox: Callable[..., Config]
) -> None:
    """A first sync of 1,000,000 messages sends a thousand batch events, and a count then
    costs ~50 ms: recounted on each, the sync was quadratic. The counts that end a sync
    come with its event and are shown as they are."""
    app = KittiwakeApp(mailbox(8))
    async with app.run_test(size=(160, 30)) as pilot:
        await synced(app)
        bar = _mailbox(app).query_one(StatusBar)
        await until(pilot, lambda: str(bar.render()).startswith("mine · INBOX · 8 messages"))
        counted = _count_calls(app)
        for done in range(100, 5100, 100):
            _publish(
                app,
                MessagesAdded("mine", "INBOX", ()),
                SyncProgress("mine", "INBOX", done, 5000),
            )
        await until(pilot, lambda: str(bar.render()).endswith(" · syncing 5,000/5,000"))
        assert len(counted) <= 1
        _publish(app, FolderCountsChanged("mine", "INBOX", 5008, 7))
        await until(pilot, lambda: "5,008 messages · 7 unread" in str(bar.render()))
        assert len(counted) <= 1


async def test_the_status_bar_leaves_new_mail_to_the_engines_count(
    xdg: Path, mailbox: Callable[..., Config]
) -> None:
    """New mail from another device is counted by the engine right after it is stored
    (``FolderCountsChanged``): the status bar shows that count instead of counting the
    folder again itself (~10 ms at 100,000 messages, which delayed a next change). Mail
    whose count never comes is counted by the status bar a second later."""
    app = KittiwakeApp(mailbox(8))
    async with app.run_test(size=(160, 30)) as pilot:
        await synced(app)
        bar = _mailbox(app).query_one(StatusBar)
        await until(pilot, lambda: str(bar.render()).startswith("mine · INBOX · 8 messages"))
        counted = _count_calls(app)
        # (the last count a second old or more: before, new mail was counted again at once)
        await until(pilot, lambda: time.monotonic() - bar._counted[("mine", "INBOX")] >= 1.1)
        _publish(app, MessagesAdded("mine", "INBOX", ()))
        await until(pilot, lambda: ("mine", "INBOX") in bar._stale)
        await pilot.pause()  # the list's frame and what follows it, before the engine counts
        _publish(app, FolderCountsChanged("mine", "INBOX", 9, 6))
        await until(pilot, lambda: "9 messages · 6 unread" in str(bar.render()))
        assert counted == []
        _cache(app).set_flags("INBOX", {2: frozenset()})  # its count never comes
        _publish(app, MessagesAdded("mine", "INBOX", ()))
        await until(pilot, lambda: "9 messages · 6 unread" not in str(bar.render()), timeout=3)
        assert counted == [("mine", "INBOX")]
        assert "8 messages · 6 unread" in str(bar.render())


async def test_the_app_tells_new_mail_and_what_sending_and_syncing_said(
    xdg: Path, mailbox: Callable[..., Config]
) -> None:
    app = KittiwakeApp(mailbox(3))
    async with app.run_test(size=(100, 30)) as pilot:
        await synced(app)
        await until(pilot, lambda: len(_mailbox(app).query_one(MessageList).index) == 3)
        await pilot.press("enter")  # whatever screen is on top
        await until(pilot, lambda: isinstance(app.screen, ReaderScreen))
        told: list[Any] = []
        app.new_mail = told.append  # type: ignore[method-assign]
        added = MessagesAdded("mine", "INBOX", ())
        _publish(
            app,
            added,
            SyncError("mine", "Work: [b]refused[/b]"),
            SendFailed("mine", "<a@b>", "550 no such user"),
            MessageSent("mine", "<c@d>", refused=(("x@y", "551 moved"),)),
            DraftsRecovered("mine", "Drafts", ("Plans",)),
        )
        await until(pilot, lambda: len(app._notifications) == 4)
        notes = [(n.severity, n.message) for n in app._notifications]
        assert notes[0] == ("warning", "Work: [b]refused[/b]")
        assert notes[1][0] == "error" and notes[1][1].startswith("Not sent: 550 no such user.")
        assert notes[2] == ("warning", "Message sent; refused: x@y: 551 moved")
        assert notes[3][1] == "Recovered 1 unsaved draft(s) into Drafts: Plans"
        assert told == [added]


async def test_closed_screens_stop_following(xdg: Path, mailbox: Callable[..., Config]) -> None:
    app = KittiwakeApp(mailbox(3))
    async with app.run_test(size=(100, 30)) as pilot:
        await synced(app)
        mailbox_screen = _mailbox(app)
        followers = app.engine_events.followers
        await until(pilot, lambda: len(followers()) == 4)
        assert set(followers()) == {
            app,
            mailbox_screen.query_one(FolderTree),
            mailbox_screen.query_one(MessageList),
            mailbox_screen.query_one(StatusBar),
        }
        before = set(followers())
        await until(pilot, lambda: len(mailbox_screen.query_one(MessageList).index) == 3)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ReaderScreen))
        reader = app.screen
        assert reader in followers()
        await pilot.press("escape")
        await until(pilot, lambda: set(followers()) == before)
        await pilot.press("t")  # conversations, then one read
        await until(pilot, lambda: isinstance(app.screen, ConversationsScreen))
        threads = app.screen
        await until(pilot, lambda: threads in followers())
        await until(pilot, lambda: threads.results().threading is not None)  # type: ignore[attr-defined]
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ThreadReaderScreen))
        assert {threads, app.screen} <= set(followers())
        await pilot.press("escape", "escape")
        await until(pilot, lambda: set(followers()) == before)
        assert reader.parent is None  # gone from the DOM, and from the followers
