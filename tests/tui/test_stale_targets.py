"""A key acts on the message the user sees, against the real Dovecot: when another device
expunges the message open in the reader, or deletes and recreates the folder on screen (new
UIDVALIDITY, the same UIDs naming other messages), no key reaches a message never shown,
and the screen says what happened."""

from __future__ import annotations

import imaplib
from collections.abc import Callable
from pathlib import Path

from harness import Dovecot, TcpProxy, User
from harness.clients import imap_device, imap_fetch_all
from harness.ui import message, synced, until
from textual.widgets import Input

from kittiwake.core.api import Hit
from kittiwake.core.config import Config, config_from_dict
from kittiwake.tui.app import KittiwakeApp
from kittiwake.tui.screens.mailbox import MailboxScreen
from kittiwake.tui.screens.reader import GONE, RECREATED, ReaderScreen
from kittiwake.tui.screens.search import SearchPrompt, SearchScreen
from kittiwake.tui.widgets.message_list import MessageList
from kittiwake.tui.widgets.thread_list import ThreadList


def list_of(app: KittiwakeApp) -> MessageList:
    mailbox = next(s for s in app.screen_stack if isinstance(s, MailboxScreen))
    return mailbox.query_one(MessageList)


def noticed(app: KittiwakeApp, words: str) -> bool:
    return any(words in n.message for n in app._notifications)


def server_flags(device: imaplib.IMAP4, folder: str) -> dict[int, bytes]:
    device.select(folder, readonly=True)
    _, data = device.uid("FETCH", "1:*", "(FLAGS)")
    out: dict[int, bytes] = {}
    for item in data:
        if isinstance(item, bytes):
            uid = int(item.split(b"UID ")[1].split()[0].rstrip(b")"))
            out[uid] = item.split(b"FLAGS (")[1].split(b")")[0]
    return out


def expunge_elsewhere(dovecot: Dovecot, user: User, uid: int) -> None:
    device = imap_device(dovecot, user)
    try:
        device.select("INBOX")
        device.uid("STORE", str(uid), "+FLAGS", "(\\Deleted)")
        device.expunge()
    finally:
        device.logout()


def recreate_elsewhere(dovecot: Dovecot, user: User, folder: str, first: int) -> None:
    """Delete ``folder`` and make a new one of that name with three other messages."""
    device = imap_device(dovecot, user)
    try:
        device.delete(folder)
        device.create(folder)
        device.subscribe(folder)
        for n in range(first, first + 3):
            device.append(folder, "", None, message(n, f"Other {n}"))
    finally:
        device.logout()


async def open_reader(app: KittiwakeApp, pilot: object, *keys: str) -> ReaderScreen:
    await pilot.press(*keys, "enter")  # type: ignore[attr-defined]
    await until(
        pilot, lambda: isinstance(app.screen, ReaderScreen) and app.screen.parsed is not None
    )
    assert isinstance(app.screen, ReaderScreen)
    return app.screen


async def test_reader_keys_on_a_message_expunged_elsewhere_touch_nothing(
    xdg: Path, mailbox: Callable[..., Config], dovecot: Dovecot, user: User
) -> None:
    app = KittiwakeApp(mailbox(5))
    async with app.run_test(size=(80, 24)) as pilot:
        await synced(app)
        imap = app.api.engine.imap["mine"]
        messages = list_of(app)
        await until(pilot, lambda: list(messages.index) == [5, 4, 3, 2, 1])
        reader = await open_reader(app, pilot, "j")
        assert reader.uid == 4
        expunge_elsewhere(dovecot, user, 4)
        await until(pilot, lambda: list(messages.index) == [5, 3, 2, 1])  # the cursor row is 3 now
        await until(pilot, lambda: reader.gone)  # the reader says its message is gone
        assert str(reader.query_one("#gone").render()) == GONE
        assert reader.parsed is not None and reader.parsed.subject == "Message 4"
        await pilot.press("d")
        await until(pilot, lambda: noticed(app, "moved or deleted on another device"))
        assert not noticed(app, "Moved 1 message")
        await pilot.press("s")
        await imap.flush_actions()
        assert app.screen is reader and reader.uid == 4  # still there, saying it is gone
        device = imap_device(dovecot, user)
        assert imap_fetch_all(device, "Trash") == []
        assert server_flags(device, "INBOX") == {5: b"", 3: b"", 2: b"", 1: b""}
        assert app.api.pending_actions("mine") == 0
        # J still goes on from where the message was.
        await pilot.press("J")
        await until(pilot, lambda: reader.parsed is not None and reader.uid == 3)
        assert not reader.gone


async def test_a_move_from_the_reader_after_the_picker_shows_the_next_message(
    xdg: Path, mailbox: Callable[..., Config], dovecot: Dovecot, user: User
) -> None:
    app = KittiwakeApp(mailbox(5))
    async with app.run_test(size=(80, 24)) as pilot:
        await synced(app)
        messages = list_of(app)
        await until(pilot, lambda: list(messages.index) == [5, 4, 3, 2, 1])
        reader = await open_reader(app, pilot, "j")
        await pilot.press("m", *"Work", "enter")
        await until(pilot, lambda: reader.uid == 3 and reader.parsed is not None)
        assert not reader.gone and app.screen is reader
        await app.api.engine.imap["mine"].flush_actions()
        subjects = [m for m in imap_fetch_all(imap_device(dovecot, user), "Work")]
        assert any(b"Subject: Message 4" in raw for raw in subjects)


async def test_a_folder_recreated_on_screen_shows_its_new_messages(
    xdg: Path, mailbox: Callable[..., Config], dovecot: Dovecot, user: User
) -> None:
    device = imap_device(dovecot, user)
    device.create("Proj")
    device.subscribe("Proj")
    for n in range(1, 4):
        device.append("Proj", "", None, message(n, f"Old {n}"))
    device.logout()
    app = KittiwakeApp(mailbox(2))
    async with app.run_test(size=(80, 24)) as pilot:
        await synced(app)
        imap = app.api.engine.imap["mine"]
        screen = app.screen
        assert isinstance(screen, MailboxScreen)
        screen.show_folder("mine", "Proj")
        messages = list_of(app)
        await until(pilot, lambda: list(messages.index) == [3, 2, 1])
        reader = await open_reader(app, pilot)  # Old 3 read once: its body is kept
        assert reader.parsed is not None and reader.parsed.subject == "Old 3"
        await pilot.press("escape")
        recreate_elsewhere(dovecot, user, "Proj", 7)
        await until(pilot, lambda: "Other 9" in messages.render_line(0).text, timeout=10)
        assert list(messages.index) == [3, 2, 1]
        assert all("Old" not in messages.render_line(row).text for row in range(3))
        reader = await open_reader(app, pilot)
        assert reader.parsed is not None and reader.parsed.subject == "Other 9"
        # While the reader shows a message, its folder is recreated again: it says so, and
        # its keys act on nothing (the new UID 3 was never shown).
        recreate_elsewhere(dovecot, user, "Proj", 20)
        await until(pilot, lambda: reader.gone, timeout=10)
        assert str(reader.query_one("#gone").render()) == RECREATED
        await until(pilot, lambda: "Other 22" in messages.render_line(0).text, timeout=10)
        await pilot.press("s")
        await until(pilot, lambda: noticed(app, "recreated"))
        # A reply would read UID 3 again: the new folder's message, never shown. Refused.
        await pilot.press("r")
        await until(pilot, lambda: noticed(app, RECREATED))
        assert app.screen is reader
        await imap.flush_actions()
        device = imap_device(dovecot, user)
        assert server_flags(device, "Proj") == {1: b"", 2: b"", 3: b""}


async def test_search_results_of_a_recreated_folder_go_and_keys_reach_nothing_new(
    xdg: Path, mailbox: Callable[..., Config], dovecot: Dovecot, user: User
) -> None:
    device = imap_device(dovecot, user)
    device.create("Proj")
    device.subscribe("Proj")
    for n in range(1, 4):
        device.append("Proj", "", None, message(n, f"Old {n}"))
    device.logout()
    app = KittiwakeApp(mailbox(2))
    async with app.run_test(size=(80, 24)) as pilot:
        await synced(app)
        imap = app.api.engine.imap["mine"]
        screen = app.screen
        assert isinstance(screen, MailboxScreen)
        screen.show_folder("mine", "Proj")
        await until(pilot, lambda: list(list_of(app).index) == [3, 2, 1])
        await pilot.press("slash")
        await until(pilot, lambda: isinstance(app.screen, SearchPrompt))
        prompt = app.screen
        assert isinstance(prompt, SearchPrompt)
        prompt.query_one(Input).value = "subject:old"
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, SearchScreen))
        results = app.screen.query_one(ThreadList)
        await until(pilot, lambda: results.hits == [Hit("Proj", 3), Hit("Proj", 2), Hit("Proj", 1)])
        recreate_elsewhere(dovecot, user, "Proj", 7)
        await until(pilot, lambda: results.hits == [], timeout=10)  # the old rows go
        await until(pilot, lambda: imap.cache.uids("Proj") == [1, 2, 3], timeout=10)
        await pilot.press("s")  # on no row: nothing
        await imap.flush_actions()
        assert server_flags(imap_device(dovecot, user), "Proj") == {1: b"", 2: b"", 3: b""}


async def test_offline_triage_in_a_folder_recreated_meanwhile_is_dropped_on_reconnect(
    xdg: Path,
    mailbox: Callable[..., Config],
    dovecot: Dovecot,
    user: User,
    proxy_factory: Callable[[str, int], TcpProxy],
) -> None:
    device = imap_device(dovecot, user)
    device.create("Proj")
    device.subscribe("Proj")
    for n in range(1, 4):
        device.append("Proj", "", None, message(n, f"Old {n}"))
    device.logout()
    mailbox(2)
    proxy = proxy_factory(dovecot.host, dovecot.ports.imaps)
    config = config_from_dict(
        {
            "accounts": {
                "mine": {
                    "email": user.email,
                    "imap": {
                        "host": proxy.host,
                        "port": proxy.port,
                        "user": user.login,
                        "password": user.password,
                        "ca_file": str(dovecot.ca_file),
                        "timeout": 5,
                    },
                }
            }
        }
    )
    app = KittiwakeApp(config)
    async with app.run_test(size=(80, 24)) as pilot:
        await synced(app)
        imap = app.api.engine.imap["mine"]
        screen = app.screen
        assert isinstance(screen, MailboxScreen)
        screen.show_folder("mine", "Proj")
        messages = list_of(app)
        await until(pilot, lambda: list(messages.index) == [3, 2, 1])
        proxy.refuse_new_connections()
        proxy.kill_connections()
        await until(pilot, lambda: "offline" in str(screen.query_one("#status").render()))
        await pilot.press("s", "j", "u", "j", "d")  # flag 3, read 2, delete 1: all offline
        await until(pilot, lambda: list(messages.index) == [3, 2])
        assert messages.render_line(0).text[1] == "!"
        recreate_elsewhere(dovecot, user, "Proj", 7)
        proxy.accept_new_connections()
        await until(pilot, lambda: noticed(app, "recreated"), timeout=15)
        await until(pilot, lambda: list(messages.index) == [3, 2, 1], timeout=10)
        await until(pilot, lambda: "Other 9" in messages.render_line(0).text)
        rows = [messages.render_line(row).text for row in range(3)]
        assert all("Old" not in row and row[1] == " " for row in rows)  # nothing flagged
        assert app.api.pending_actions("mine") == 0
        await pilot.press("g")
        reader = await open_reader(app, pilot)
        assert reader.parsed is not None and reader.parsed.subject == "Other 9"
        await imap.flush_actions()
        assert server_flags(imap_device(dovecot, user), "Proj") == {1: b"", 2: b"", 3: b"\\Seen"}
        assert imap_fetch_all(imap_device(dovecot, user), "Trash") == []
