"""The core server scenarios against every server the harness runs: Dovecot, Cyrus IMAP,
Courier-IMAP, and the Gmail and Exchange profiles (tests/harness/: dovecot, cyrus, courier,
gmail, exchange).

Where a server differs by design, ``EXPECT`` below says how, and the scenarios check that:
Dovecot and the Exchange profile (Dovecot behind a proxy that answers as Exchange: no NOTIFY,
QRESYNC, CONDSTORE, SPECIAL-USE advertised) keep folders at the top with separator ``/``;
Cyrus and Courier under the personal namespace ``INBOX.`` with separator ``.`` (Courier has no
SPECIAL-USE, refuses folders outside ``INBOX.``, and its SELECT says no ``[UIDNEXT]``); Gmail
has its ``[Gmail]/`` folders, archive takes the Inbox label off (the message stays in All
Mail) and Trash and Spam take a message out of All Mail. The server's state is checked over a
separate imaplib connection (another device), as in test_triage.py.
"""

from __future__ import annotations

import contextlib
import imaplib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from harness import User
from harness.clients import imap_device, wait_for_async
from harness.mail import append_many, message
from test_triage import server_flags, subjects

from kittiwake.core.api import MailApi
from kittiwake.core.cache import Cache, FolderState
from kittiwake.core.config import config_from_dict
from kittiwake.core.engine import Engine
from kittiwake.core.events import EventBus, FlagsChanged, FolderListChanged, Subscription
from kittiwake.core.imap.account import ImapAccount, Tuning
from kittiwake.core.imap.client import ImapClient
from kittiwake.core.imap.search import server_search, to_imap_search
from kittiwake.core.imap.uidset import UidSet
from kittiwake.core.journal import Action
from kittiwake.core.models import ANSWERED, DRAFT, FLAGGED, JUNK, SEEN, FolderRole
from kittiwake.core.search.query import parse_query

Server = Any  # harness.Dovecot, .cyrus.Cyrus, .courier.Courier, .gmail.GmailProfile,
# .exchange.ExchangeProfile: the same duck-typed interface (host, ports.imaps, ca, add_user)

SERVERS = ["dovecot", "cyrus", "courier", "gmail", "exchange"]
pytestmark = pytest.mark.parametrize("server", SERVERS, indirect=True)


@dataclass(frozen=True)
class Expect:
    """What one server does by design where servers differ."""

    top: str
    """Where a user's own folders go: the personal namespace's prefix."""
    separator: str
    trash: str
    sent: str
    drafts: str
    junk: str
    archive: str | None
    """The archive folder the account finds; None: the user is offered to create one."""
    archive_keeps_all: bool = False
    """Gmail: the archive folder (All Mail) holds every message, archived or not."""


_DOVECOT = Expect("", "/", "Trash", "Sent", "Drafts", "Junk", "Archive")
_INBOX_DOT = Expect(
    "INBOX.", ".", "INBOX.Trash", "INBOX.Sent", "INBOX.Drafts", "INBOX.Junk", "INBOX.Archive"
)
EXPECT = {
    "dovecot": _DOVECOT,
    "exchange": _DOVECOT,  # Dovecot's folders; the LIST attributes pass the proxy
    "cyrus": _INBOX_DOT,  # by SPECIAL-USE
    "courier": Expect(**{**_INBOX_DOT.__dict__, "archive": None}),  # by name under INBOX.
    "gmail": Expect(
        "",
        "/",
        "[Gmail]/Trash",
        "[Gmail]/Sent Mail",
        "[Gmail]/Drafts",
        "[Gmail]/Spam",
        "[Gmail]/All Mail",
        archive_keeps_all=True,
    ),
}


@pytest.fixture
def server(request: pytest.FixtureRequest) -> Server:
    return request.getfixturevalue(request.param)


@pytest.fixture
def expect(server: Server) -> Expect:
    return EXPECT[server.kind]


@pytest.fixture
def person(server: Server) -> User:
    return server.add_user("alice")


@pytest.fixture
def device(server: Server, person: User) -> Iterator[imaplib.IMAP4_SSL]:
    """Another client of the same account (also makes Cyrus create the user's folders)."""
    imap = imap_device(server, person)
    yield imap
    with contextlib.suppress(imaplib.IMAP4.error, OSError):
        imap.logout()


def _config(server: Server, user: User) -> dict[str, Any]:
    return {
        "email": user.email,
        "imap": {
            "host": server.host,
            "port": server.ports.imaps,
            "user": user.login,
            "password": user.password,
            "ca_file": str(server.ca_file),
            "timeout": 5,
        },
    }


def _tuning(**kw: Any) -> Tuning:
    return Tuning(backoff_min=0.05, backoff_max=0.5, first_window=10, batch=20, **kw)


@pytest.fixture
async def engine(
    tmp_path: Path, server: Server, person: User
) -> AsyncIterator[Callable[..., ImapAccount]]:
    made: list[ImapAccount] = []

    def make(tuning: Tuning | None = None) -> ImapAccount:
        config = config_from_dict({"accounts": {"acct": _config(server, person)}})
        account = ImapAccount(
            config.accounts["acct"],
            Cache(tmp_path / "acct.sqlite3"),
            EventBus(),
            tuning or _tuning(),
        )
        made.append(account)
        return account

    yield make
    for account in made:
        await account.stop()
        account.cache.close()


@pytest.fixture
async def api(tmp_path: Path, server: Server, person: User) -> AsyncIterator[MailApi]:
    config = config_from_dict({"accounts": {"me": _config(server, person)}})
    made = MailApi(Engine(config, tmp_path / "cache", _tuning()))
    yield made
    await made.stop()


async def _started(api: MailApi) -> None:
    api.start()
    await api.engine.imap["me"].wait_synced(15)


async def _settled(api: MailApi) -> None:
    await api.engine.imap["me"].flush_actions()
    assert api.pending_actions("me") == 0


def _server_uids(device: imaplib.IMAP4, folder: str) -> set[int]:
    return set(server_flags(device, folder))


def _numbered(device: imaplib.IMAP4, folder: str = "INBOX") -> dict[int, int]:
    """The n-th message's UID, for n from 1: a server may start anywhere (Gmail's profile, as
    pymap, at 101)."""
    return dict(enumerate(sorted(_server_uids(device, folder)), start=1))


def _cached_flags(account: ImapAccount, folder: str) -> dict[int, set[str]]:
    return {uid: set(flags) for uid, flags in account.cache.flags(folder).items()}


def _inbox_action(kind: str, uids: tuple[int, ...], **kw: Any) -> Action:
    return Action(kind=kind, folder="INBOX", uidvalidity=None, uids=uids, **kw)  # type: ignore[arg-type]


# -- sync ------------------------------------------------------------------------------------


async def test_first_sync_and_roles_from_the_namespace(
    server: Server, expect: Expect, device: imaplib.IMAP4, engine: Callable[..., ImapAccount]
) -> None:
    append_many(device, 45)
    account = engine()
    await account.connect_once()
    stats = await account.sync_all()
    assert account.cache.counts("INBOX") == (45, 45) and stats.fetched == 45
    roles = {f.role: f.name for f in account.cache.folders() if f.role is not None}
    # Cyrus, Dovecot and Gmail say so by SPECIAL-USE, Exchange by LIST attributes without
    # advertising it, Courier by name under its personal namespace INBOX.
    assert roles[FolderRole.TRASH] == expect.trash
    assert roles[FolderRole.SENT] == expect.sent
    assert roles[FolderRole.DRAFTS] == expect.drafts
    assert roles[FolderRole.JUNK] == expect.junk


async def test_resync_after_another_client_changed_flags_expunged_and_added(
    server: Server, device: imaplib.IMAP4, engine: Callable[..., ImapAccount]
) -> None:
    append_many(device, 12)
    first = engine()
    await first.connect_once()
    await first.sync_all()
    await first.stop()
    first.cache.close()
    u = _numbered(device)
    device.select("INBOX")
    device.uid("STORE", str(u[3]), "+FLAGS", "(\\Flagged)")
    device.uid("STORE", str(u[4]), "+FLAGS", "(\\Seen)")
    device.uid("STORE", str(u[5]), "+FLAGS", "(\\Deleted)")
    device.expunge()
    append_many(device, 2, start=100)
    again = engine()
    await again.connect_once()
    await again.sync_all()
    assert _cached_flags(again, "INBOX") == server_flags(device, "INBOX")
    assert FLAGGED in _cached_flags(again, "INBOX")[u[3]]
    assert again.cache.counts("INBOX") == (13, 12)
    # and once more with nothing changed: still the same, and the UIDNEXT was learned
    await again.sync_all()
    assert _cached_flags(again, "INBOX") == server_flags(device, "INBOX")
    state = again.cache.folder_state("INBOX")
    assert state is not None and state.uidnext == u[12] + 3


async def test_a_cache_without_uidnext_refetches_flags(
    server: Server, device: imaplib.IMAP4, engine: Callable[..., ImapAccount]
) -> None:
    """An interrupted first sync, or a cache filled before Courier's UIDNEXT was learned:
    the next sync fetches what is missing and brings the flags of what is cached up to date."""
    append_many(device, 8)
    account = engine(_tuning(flags_slice=3))  # the flags stored in slices, the last one short
    await account.connect_once()
    await account.sync_all()
    state = account.cache.folder_state("INBOX")
    assert state is not None
    account.cache.set_folder_state("INBOX", FolderState(state.uidvalidity, None, None))
    u = _numbered(device)
    account.cache.remove("INBOX", [u[8]])
    device.select("INBOX")
    device.uid("STORE", str(u[1]), "+FLAGS", "(\\Flagged)")
    device.uid("STORE", str(u[7]), "+FLAGS", "(\\Seen)")
    device.uid("STORE", str(u[5]), "+FLAGS", "(\\Answered)")
    await account.sync_folder("INBOX")
    assert _cached_flags(account, "INBOX") == server_flags(device, "INBOX")
    assert FLAGGED in _cached_flags(account, "INBOX")[u[1]]
    assert SEEN in _cached_flags(account, "INBOX")[u[7]]  # a later slice than u[1]'s
    assert ANSWERED in _cached_flags(account, "INBOX")[u[5]]
    assert account.cache.uids("INBOX") == sorted(u.values())


async def test_flag_changes_made_elsewhere_arrive_while_running(
    server: Server, device: imaplib.IMAP4, engine: Callable[..., ImapAccount]
) -> None:
    append_many(device, 5)
    account = engine()
    events: Subscription = account.bus.subscribe()
    account.start()
    await account.wait_synced(15)
    await account.watch_folder("INBOX")
    two = _numbered(device)[2]
    device.select("INBOX")
    device.uid("STORE", str(two), "+FLAGS", "(\\Flagged \\Seen)")

    def arrived() -> bool:
        return any(
            isinstance(e, FlagsChanged) and two in e.flags and FLAGGED in e.flags[two]
            for e in events.pending()
        )

    await wait_for_async(arrived, timeout=10, message="the flag change reaching the engine")
    assert account.cache.counts("INBOX") == (5, 4)


async def test_a_folder_made_elsewhere_and_mail_in_other_folders_show_at_the_poll(
    server: Server, expect: Expect, device: imaplib.IMAP4, engine: Callable[..., ImapAccount]
) -> None:
    account = engine(_tuning(poll_every=0.5))
    events = account.bus.subscribe()
    account.start()
    await account.wait_synced(15)
    projects = expect.top + "Projects"
    typ, _ = device.create(projects)
    assert typ == "OK"
    device.subscribe(projects)
    append_many(device, 2, mailbox=projects)
    append_many(device, 1, mailbox=_quoted(expect.drafts))

    def listed() -> bool:
        return any(
            isinstance(e, FolderListChanged) and projects in {f.name for f in e.folders}
            for e in events.pending()
        )

    await wait_for_async(listed, timeout=10, message="the new folder in the folder list")
    await wait_for_async(
        lambda: (
            account.cache.counts(projects)[0] == 2 and account.cache.counts(expect.drafts)[0] == 1
        ),
        timeout=10,
        message="the other folders' new mail",
    )


async def test_non_ascii_folder_names(
    server: Server, expect: Expect, device: imaplib.IMAP4, engine: Callable[..., ImapAccount]
) -> None:
    top, sep = expect.top, expect.separator
    raw = top + "Gr&APwA3w-e"  # Grüße in modified UTF-7
    typ, _ = device.create(raw)
    assert typ == "OK"
    device.subscribe(raw)
    typ, _ = device.append(raw, "", None, message(1, "Aus Köln"))
    assert typ == "OK"
    account = engine()
    await account.connect_once()
    await account.sync_all()
    assert account.cache.counts(f"{top}Grüße") == (1, 1)
    await account.create_folder(f"{top}Grüße{sep}Köln")
    typ, data = device.list('""', f"{top}Gr*")
    child = f"{raw}{sep}K&APY-ln".encode()
    assert typ == "OK" and any(child in line for line in data), data


async def test_search_on_the_server(
    server: Server, device: imaplib.IMAP4, engine: Callable[..., ImapAccount]
) -> None:
    for n, subject in enumerate(["Quarterly numbers", "Lunch?", "Numbers again"], start=1):
        device.append("INBOX", "", None, message(n, subject))
    account = engine()
    await account.connect_once()
    await account.sync_all()

    async def run(text: str) -> set[int]:
        search = to_imap_search(parse_query(text))

        async def action(client: ImapClient) -> UidSet:
            return await server_search(client, "INBOX", search)

        result = await account.run_locked(action)
        assert isinstance(result, UidSet)
        return set(result)

    u = _numbered(device)
    assert await run("subject:numbers") == {u[1], u[3]}
    assert await run("body:message") == {u[1], u[2], u[3]}
    assert await run("lunch") == {u[2]}


async def test_append_a_draft(
    server: Server, device: imaplib.IMAP4, engine: Callable[..., ImapAccount]
) -> None:
    account = engine()
    await account.connect_once()
    await account.sync_all()
    drafts = next(f.name for f in account.cache.folders() if f.role is FolderRole.DRAFTS)
    raw = message(1, "Half written").replace(b"\n", b"\r\n")  # as the composer writes it
    uid = await account.append(drafts, raw, frozenset({DRAFT, SEEN}))
    assert uid is not None  # APPENDUID: both have UIDPLUS
    assert subjects(device, drafts) == ["Half written"]
    assert server_flags(device, drafts)[uid] == {DRAFT, SEEN}
    assert account.cache.counts(drafts) == (1, 0)


# -- triage, each action and its undo ------------------------------------------------------


async def test_flag_and_read_and_their_undo(
    server: Server, device: imaplib.IMAP4, api: MailApi
) -> None:
    append_many(device, 6)
    u = _numbered(device)
    await _started(api)
    api.act("me", _inbox_action("flags", (u[1], u[2]), add=(FLAGGED,)))
    api.act("me", _inbox_action("flags", (u[3],), add=(SEEN,)))
    await _settled(api)
    flags = server_flags(device, "INBOX")
    assert flags[u[1]] == flags[u[2]] == {FLAGGED} and flags[u[3]] == {SEEN}
    assert api.undo().startswith("Undone")
    assert api.undo().startswith("Undone")
    await _settled(api)
    assert all(f == set() for f in server_flags(device, "INBOX").values())


@pytest.mark.parametrize("kind", ["archive", "move"])
async def test_archive_and_move_and_their_undo(
    server: Server, expect: Expect, device: imaplib.IMAP4, api: MailApi, kind: str
) -> None:
    append_many(device, 6)
    await _started(api)
    keeps_all = False
    if kind == "archive":
        dest = api.archive_folder("me")
        assert dest == expect.archive
        if dest is None:  # Courier has none: what the TUI offers to create
            dest = api.new_folder_name("me", "Archive")
            assert dest == expect.top + "Archive"
            await api.create_folder_for_move("me", dest)
        keeps_all = expect.archive_keeps_all
    else:
        dest = expect.drafts
    u = _numbered(device)
    api.act("me", _inbox_action("move", (u[2], u[3]), dest=dest))
    await _settled(api)
    # Gmail's All Mail holds the four still in the inbox too, and keeps the two after the undo
    # (the Inbox label goes back on): "in the archive" there is "in All Mail, not in INBOX".
    assert len(subjects(device, dest)) == (6 if keeps_all else 2)
    assert _server_uids(device, "INBOX") == {u[1], u[4], u[5], u[6]}
    assert api.undo().startswith("Undone")
    await _settled(api)
    assert len(subjects(device, dest)) == (6 if keeps_all else 0)
    assert len(_server_uids(device, "INBOX")) == 6


async def test_delete_moves_to_trash_and_undo_brings_it_back(
    server: Server, expect: Expect, device: imaplib.IMAP4, api: MailApi
) -> None:
    append_many(device, 4)
    await _started(api)
    trash = api.role_folder("me", FolderRole.TRASH)
    assert trash == expect.trash  # without it, ``d`` deletes for good
    api.act("me", _inbox_action("move", (_numbered(device)[1],), dest=trash))
    await _settled(api)
    assert subjects(device, trash) == ["Message 1"]
    assert api.undo().startswith("Undone")
    await _settled(api)
    assert subjects(device, trash) == [] and len(_server_uids(device, "INBOX")) == 4


async def test_junk_and_undo(
    server: Server, expect: Expect, device: imaplib.IMAP4, api: MailApi
) -> None:
    append_many(device, 3)
    await _started(api)
    junk = api.role_folder("me", FolderRole.JUNK)
    assert junk == expect.junk
    two = _numbered(device)[2]
    api.act_many(
        "me",
        [
            _inbox_action("flags", (two,), add=(JUNK,)),
            _inbox_action("move", (two,), dest=junk),
        ],
    )
    await _settled(api)
    assert subjects(device, junk) == ["Message 2"]
    assert JUNK in next(iter(server_flags(device, junk).values()))
    assert api.undo().startswith("Undone")
    await _settled(api)
    assert subjects(device, junk) == []
    back = server_flags(device, "INBOX")
    assert len(back) == 3 and all(JUNK not in f for f in back.values())


async def test_expunge_for_good(server: Server, device: imaplib.IMAP4, api: MailApi) -> None:
    append_many(device, 3)
    u = _numbered(device)
    device.select("INBOX")
    device.uid("STORE", str(u[3]), "+FLAGS", "(\\Deleted)")  # another device's: must survive
    await _started(api)
    api.act("me", _inbox_action("expunge", (u[1],)), undoable=False)
    await _settled(api)
    assert _server_uids(device, "INBOX") == {u[2], u[3]}


def _quoted(name: str) -> str:
    """A mailbox name as imaplib must be given it when it has a space (Gmail's)."""
    return f'"{name}"' if " " in name else name
