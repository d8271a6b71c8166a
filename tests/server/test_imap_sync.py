"""The IMAP engine against the real Dovecot: first sync, resync, and live updates from another device."""

from __future__ import annotations

import asyncio
import dataclasses
import imaplib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
from harness import Dovecot, User
from harness.clients import imap_device, wait_for_async
from harness.mail import BARE_CAPS, append_many, message
from harness.proxy import TcpProxy

from kittiwake.core.cache import SCHEMA_VERSION, Cache, LazySummaries
from kittiwake.core.config import config_from_dict
from kittiwake.core.events import (
    ConnectionChanged,
    ConnState,
    EventBus,
    FlagsChanged,
    FolderCountsChanged,
    FolderListChanged,
    FolderReset,
    MessagesAdded,
    MessagesExpunged,
    Subscription,
)
from kittiwake.core.imap.account import ImapAccount, Tuning
from kittiwake.core.imap.lazy import decode_pass
from kittiwake.core.message.dates import sort_date
from kittiwake.core.models import FLAGGED, SEEN, FolderRole, MessageSummary
from kittiwake.core.search import index as searchindex
from kittiwake.core.search.service import local_hits

LIVE = 1.0  # seconds: the bound for another device's change to reach the event stream


EngineFactory = Callable[..., Awaitable[tuple[ImapAccount, Subscription]]]


@pytest.fixture
async def engine(tmp_path: Path, dovecot: Dovecot) -> AsyncIterator[EngineFactory]:
    started: list[ImapAccount] = []

    async def make(
        user: User,
        server: Dovecot | None = None,
        *,
        port: int | None = None,
        host: str | None = None,
        cache_name: str = "acct.sqlite3",
        security: str = "tls",
        tuning: Tuning | None = None,
        disable: list[str] | None = None,
    ) -> tuple[ImapAccount, Subscription]:
        srv = server or dovecot
        config = config_from_dict(
            {
                "accounts": {
                    "acct": {
                        "email": user.email,
                        "imap": {
                            "host": host or srv.host,
                            "port": port
                            or (srv.ports.imaps if security == "tls" else srv.ports.imap),
                            "security": security,
                            "user": user.login,
                            "password": user.password,
                            "ca_file": str(srv.ca_file),
                            "timeout": 5,
                            "disable": disable or [],
                        },
                    }
                }
            }
        )
        bus = EventBus()
        sub = bus.subscribe()
        account = ImapAccount(
            config.accounts["acct"],
            Cache(tmp_path / cache_name),
            bus,
            tuning or Tuning(backoff_min=0.05, backoff_max=0.5, first_window=100, batch=500),
        )
        started.append(account)
        return account, sub

    yield make
    for account in started:
        await account.stop()
        account.cache.close()


async def test_first_sync_newest_first_then_everything(
    engine: EngineFactory, dovecot: Dovecot, user: User
) -> None:
    device = imap_device(dovecot, user)
    append_many(device, 1234)
    account, events = await engine(user)
    await account.connect_once()
    stats = await account.sync_all()
    assert account.cache.counts("INBOX") == (1234, 1234)
    assert stats.fetched == 1234
    added = [e for e in events.pending() if isinstance(e, MessagesAdded) and e.folder == "INBOX"]
    # The first batch is the newest screenful; the rest streams in behind it, newest first.
    assert sorted(added[0].uids) == list(range(1135, 1235))
    assert max(added[1].uids) == 1134
    assert sorted(u for e in added for u in e.uids) == list(range(1, 1235))
    page, _ = account.cache.page("INBOX", 3)
    assert [s.envelope.subject for s in page] == ["Message 1234", "Message 1233", "Message 1232"]
    folders = {f.name: f for f in account.cache.folders()}
    assert folders["Sent"].role is FolderRole.SENT and folders["INBOX"].role is FolderRole.INBOX


def _varied(n: int) -> bytes:
    """Messages of every shape the lazy path must get right: encoded and raw 8-bit names and
    subjects, folded headers, quotes, attachments, threads, odd dates."""
    subjects = [
        f"Plain {n}",
        f"=?UTF-8?B?w4lsb2RpZSB7bn0=?= {n}",
        f'Quote "this" and \\ that {n}',
        f"Raw 8-bit Grüße {n}",
        f"A long subject {n} " + "word " * 30,
    ]
    senders = [
        '"Smith, John" <js@example.org>',
        "Zoë <zoe@example.org>",
        "=?ISO-8859-1?Q?J=F6rg?= <j@x.org>",
    ]
    dates = [
        "Thu, 26 Nov 2026 10:00:00 +0000",
        "26 Nov 2026 11:00 -0800",
        "garbage",
        "Mon, 1 Jan 2035 00:00:00 +0000",
    ]
    head = [
        f"From: {senders[n % 3]}",
        "To: me@example.test, Other <o@example.test>",
        f"Subject: {subjects[n % 5]}",
        f"Date: {dates[n % 4]}",
        f"Message-ID: <v{n}@example.org>",
    ]
    if n % 2:
        head += [
            f"In-Reply-To: <v{n - 1}@example.org>",
            f"References: <v0@example.org>\r\n <v{n - 1}@example.org>",
        ]
    if n % 7 == 0:
        head += ['Content-Type: multipart/mixed; boundary="b"']
        body = (
            '--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b\r\nContent-Type: application/pdf; name="r.pdf"\r\n'
            'Content-Disposition: attachment; filename="r.pdf"\r\n\r\nxx\r\n--b--\r\n'
        )
    else:
        head += ["Content-Type: text/plain; charset=utf-8"]
        body = f"Body {n}\r\n"
    return ("\r\n".join(head) + "\r\n\r\n" + body).encode("utf-8")


async def test_bulk_batches_are_stored_lazily_and_read_back_as_the_full_decoder_reads_them(
    engine: EngineFactory, dovecot: Dovecot, user: User
) -> None:
    device = imap_device(dovecot, user)
    for n in range(1, 701):
        flags = "(\\Seen)" if n % 3 else "(\\Flagged $Forwarded)"
        assert device.append("INBOX", flags, None, _varied(n))[0] == "OK"
    device.logout()
    account, events = await engine(user, tuning=Tuning(first_window=50, batch=600))
    await account.connect_once()
    await account.sync_all()
    added = [e for e in events.pending() if isinstance(e, MessagesAdded) and e.folder == "INBOX"]
    assert [len(e.summaries) for e in added] == [50, 600, 50]
    assert isinstance(added[1].summaries, LazySummaries)  # the bulk batch
    undecoded = len(account.cache.undecoded("INBOX", 10_000))
    assert undecoded >= 590  # a few may have needed the full decoder
    # The full decoder's view of every message (a "n:*" fetch is never lazy).
    full = {s.uid: s for s in await account.client.uid_fetch_summaries("1:*")}
    assert len(full) == 700
    utc = {
        u: dataclasses.replace(
            s,
            internal_date=s.internal_date.astimezone(UTC) if s.internal_date else None,
        )
        for u, s in full.items()
    }
    assert account.cache.summaries("INBOX", list(full)) == utc
    assert {s.uid: s for e in added for s in e.summaries} == utc
    assert await decode_pass(account.cache, "INBOX") == undecoded
    assert account.cache.summaries("INBOX", list(full)) == utc
    assert list(account.cache.ordered_uids("INBOX")[:3]) == [
        s.uid for s in sorted(utc.values(), key=lambda s: (sort_date(s), s.uid), reverse=True)[:3]
    ]


async def test_a_folder_not_shown_is_fetched_in_bulk_batches_only(
    engine: EngineFactory, dovecot: Dovecot, user: User
) -> None:
    """The small first window is for the screen: INBOX and the open folder get it, the other
    folders of an account of 200 come in bulk batches, stored raw, in fewer commands."""
    device = imap_device(dovecot, user)
    for name in ("Work", "Lists/py"):
        device.create(name)
        device.subscribe(name)
        append_many(device, 700, name)
    append_many(device, 700)
    device.logout()
    account, events = await engine(user, tuning=Tuning(first_window=50, batch=600))
    account.set_open_folder("Work")
    await account.connect_once()
    await account.sync_all()
    added: dict[str, list[int]] = {}
    for e in events.pending():
        if isinstance(e, MessagesAdded):
            added.setdefault(e.folder, []).append(len(e.summaries))
    assert added == {"INBOX": [50, 600, 50], "Work": [50, 600, 50], "Lists/py": [600, 100]}
    assert len(account.cache.undecoded("Lists/py", 10_000)) >= 590
    assert account.cache.counts("Lists/py") == (700, 700)


async def test_a_running_account_decodes_what_its_first_sync_stored_raw(
    engine: EngineFactory, dovecot: Dovecot, user: User
) -> None:
    """By default the rows a first sync stored raw are decoded right after it, unasked; their
    search index waits for a first search, which finds them all the same and has them
    indexed."""
    append_many(imap_device(dovecot, user), 900)
    account, _ = await engine(user, tuning=Tuning(first_window=50, batch=600))
    account.start()
    await account.wait_synced(30)
    assert account._decoder is not None  # started with the end of the sync, nothing asked
    await account.wait_decoded(30)
    db = account.cache.db
    assert account.cache.undecoded("INBOX", 10) == []
    deferred = searchindex.deferred(db)
    assert deferred >= 590  # the bulk batch, decoded and not indexed
    indexed = db.execute(f"SELECT count(*) FROM {searchindex.TABLE}").fetchone()[0]
    assert indexed == 900 - deferred
    hits = local_hits(account.cache, ["INBOX"], "subject:message")
    assert len(hits) == 900
    await account.wait_decoded(30)  # the pass the search asked for: the index
    assert searchindex.deferred(db) == 0
    assert db.execute(f"SELECT count(*) FROM {searchindex.TABLE}").fetchone()[0] == 900
    assert len(local_hits(account.cache, ["INBOX"], "subject:message")) == 900
    await account.stop()


async def test_the_decode_pass_stands_aside_while_the_user_types(
    engine: EngineFactory, dovecot: Dovecot, user: User
) -> None:
    """Keys held the pass (its slices ran between every step of drawing a key); it goes on
    once the keys stop."""
    append_many(imap_device(dovecot, user), 900)
    account, _ = await engine(user, tuning=Tuning(first_window=50, batch=600))
    account.hold_background(120)  # a key, as the app reports it (here: held for long)
    account.start()
    await account.wait_synced(30)
    await asyncio.wait_for(account.decode_held.wait(), 30)
    raw = len(account.cache.undecoded("INBOX", 1000))
    assert raw > 0
    assert account._decoder is not None and not account._decoder.done()
    account.hold_background(0)  # the keys stopped
    await account.wait_decoded(30)
    assert account.cache.undecoded("INBOX", 10) == []
    await account.stop()


async def test_a_running_account_decodes_what_its_first_sync_stored_raw_once_searched(
    engine: EngineFactory, dovecot: Dovecot, user: User
) -> None:
    """With decode_after_sync off, the rows a first sync stored raw stay raw while the user
    only reads (the machine goes quiet after a first start: issue 19); the first search
    starts the decode pass."""
    append_many(imap_device(dovecot, user), 900)
    tuning = Tuning(first_window=50, batch=600, decode_after_sync=False)
    account, _ = await engine(user, tuning=tuning)
    account.start()
    await account.wait_synced(30)
    assert len(account.cache.undecoded("INBOX", 1000)) == 600  # the bulk batch (LAZY_MIN+)
    account.cache.page("INBOX", 50)  # reading a screenful decodes only those, and keeps them raw
    assert account._decoder is None
    hits = local_hits(account.cache, ["INBOX"], "subject:message")
    assert len(hits) == 900  # judged one by one while raw
    await account.wait_decoded(30)
    assert account.cache.undecoded("INBOX", 10) == []
    page, _ = account.cache.page("INBOX", 900)
    assert sorted(s.uid for s in page) == list(range(1, 901))
    assert {s.envelope.subject for s in page} == {f"Message {n}" for n in range(1, 901)}


async def test_restart_resyncs_with_qresync_and_fetches_nothing_known(
    engine: EngineFactory, dovecot: Dovecot, user: User
) -> None:
    device = imap_device(dovecot, user)
    append_many(device, 300)
    first, _ = await engine(user)
    await first.connect_once()
    await first.sync_all()
    await first.stop()
    first.cache.close()

    device.select("INBOX")
    device.store("1:5", "+FLAGS", "(\\Seen)")
    device.store("10", "+FLAGS", "(\\Deleted)")
    device.expunge()
    append_many(device, 2, start=301)

    second, events = await engine(user)
    await second.connect_once()
    assert second.client.qresync
    stats = await second.sync_all()
    assert stats.fetched == 2  # only the two new messages: nothing already cached came again
    assert second.cache.counts("INBOX") == (301, 296)
    assert 10 not in second.cache.uids("INBOX")
    kinds = {type(e) for e in events.pending()}
    assert {FlagsChanged, MessagesExpunged, MessagesAdded} <= kinds


async def test_warm_restart_with_nothing_changed_selects_nothing(
    engine: EngineFactory, dovecot: Dovecot, user: User
) -> None:
    device = imap_device(dovecot, user)
    append_many(device, 50)
    first, _ = await engine(user)
    await first.connect_once()
    await first.sync_all()
    await first.stop()
    first.cache.close()
    second, events = await engine(user)
    await second.connect_once()
    stats = await second.sync_all()
    assert stats.fetched == 0
    assert not [
        e
        for e in events.pending()
        if isinstance(e, MessagesAdded | FlagsChanged | MessagesExpunged)
    ]


async def test_uidvalidity_change_drops_and_refetches(
    engine: EngineFactory, dovecot: Dovecot, user: User
) -> None:
    device = imap_device(dovecot, user)
    device.create("Lists")
    device.subscribe("Lists")
    append_many(device, 5, "Lists")
    account, events = await engine(user)
    await account.connect_once()
    await account.sync_all()
    old = account.cache.folder_state("Lists")
    assert old is not None and len(account.cache.uids("Lists")) == 5
    device.delete("Lists")
    device.create("Lists")
    device.subscribe("Lists")
    append_many(device, 3, "Lists", start=100)
    await account.sync_all()
    new = account.cache.folder_state("Lists")
    assert new is not None and new.uidvalidity != old.uidvalidity
    assert any(isinstance(e, FolderReset) and e.folder == "Lists" for e in events.pending())
    subjects = sorted(s.envelope.subject for s in account.cache.page("Lists", 10)[0])
    assert subjects == ["Message 100", "Message 101", "Message 102"]


async def test_non_ascii_subjects_and_folder_names(
    engine: EngineFactory, dovecot: Dovecot, user: User
) -> None:
    device = imap_device(dovecot, user)
    name = "Entwürfe/日本語"
    from kittiwake.core.message import utf7

    wire = utf7.encode(name)
    device.create(f'"{wire}"')
    device.subscribe(f'"{wire}"')
    raw_latin1 = (
        b"From: =?ISO-8859-1?Q?J=F6rg_M=FCller?= <jm@example.org>\r\n"
        b"Subject: =?ISO-8859-1?Q?Gr=FC=DFe_aus_K=F6ln?=\r\n"
        b"Message-ID: <l1@example.org>\r\n\r\nhallo\r\n"
    )
    raw_utf8 = (
        b"From: =?UTF-8?B?5bGx55Sw5aSq6YOO?= <yamada@example.jp>\r\n"
        b"Subject: =?UTF-8?Q?caf=C3=A9?= =?UTF-8?Q?_na=C3=AFve?= =?utf-8?b?IOKcqA==?=\r\n"
        b"Message-ID: <u1@example.org>\r\n\r\nhi\r\n"
    )
    for raw in (raw_latin1, raw_utf8):
        assert device.append(f'"{wire}"', "", None, raw)[0] == "OK"
    account, _ = await engine(user)
    await account.connect_once()
    await account.sync_all()
    assert name in {f.name for f in account.cache.folders()}
    page, _ = account.cache.page(name, 10)
    got = {s.envelope.subject: s.envelope.from_[0].name for s in page}
    assert got == {"Grüße aus Köln": "Jörg Müller", "café naïve ✨": "山田太郎"}


async def wait_event(
    events: Subscription, kind: type, timeout: float = LIVE, **match: object
) -> object:
    return await events.wait_for(kind, timeout, **match)


async def wait_all(
    events: Subscription, *wanted: tuple[type, dict[str, object]], timeout: float = LIVE
) -> list[object]:
    """Wait for one event matching each of ``wanted``, in any order."""
    found: list[object | None] = [None] * len(wanted)

    async def collect() -> None:
        async for event in events:
            for i, (kind, match) in enumerate(wanted):
                if (
                    found[i] is None
                    and isinstance(event, kind)
                    and all(getattr(event, k) == v for k, v in match.items())
                ):
                    found[i] = event
                    break
            if all(f is not None for f in found):
                return

    await asyncio.wait_for(collect(), timeout)
    return list(found)


async def test_two_devices_live(engine: EngineFactory, dovecot: Dovecot, user: User) -> None:
    device = imap_device(dovecot, user)
    append_many(device, 3)
    device.create("Work")
    device.subscribe("Work")
    account, events = await engine(user)
    account.start()
    await account.wait_online(5)
    await account.wait_synced(10)
    assert account.cache.counts("INBOX")[0] == 3
    events.pending()

    device.select("INBOX")
    device.uid("STORE", "2", "+FLAGS", "(\\Flagged \\Seen)")
    ev = await wait_event(events, FlagsChanged, folder="INBOX")
    assert ev.flags == {2: frozenset({FLAGGED, SEEN})}

    device.uid("STORE", "2", "-FLAGS", "(\\Flagged)")
    ev = await wait_event(events, FlagsChanged, folder="INBOX")
    assert ev.flags == {2: frozenset({SEEN})}

    device.append("INBOX", "", None, message(4, "Fresh news"))
    ev = await wait_event(events, MessagesAdded, folder="INBOX")
    assert [s.envelope.subject for s in ev.summaries] == ["Fresh news"]

    device.uid("MOVE", "1", "Work")
    gone, came = await wait_all(
        events, (MessagesExpunged, {"folder": "INBOX"}), (MessagesAdded, {"folder": "Work"})
    )
    assert gone.uids == (1,)
    assert [s.envelope.subject for s in came.summaries] == ["Message 1"]

    device.uid("STORE", "3", "+FLAGS", "(\\Deleted)")
    device.expunge()
    ev = await wait_event(events, MessagesExpunged, folder="INBOX")
    assert ev.uids == (3,)

    device.create("Projects")
    device.subscribe("Projects")
    ev = await wait_event(events, FolderListChanged)
    assert "Projects" in {f.name for f in ev.folders}

    # A change in a folder that is not open and not INBOX is live too.
    device.select("Work")
    device.store("1", "+FLAGS", "(\\Seen)")
    ev = await wait_event(events, FlagsChanged, folder="Work")
    assert list(ev.flags.values()) == [frozenset({SEEN})]
    assert account.cache.counts("INBOX") == (2, 1)
    # ... also when no count changes (a flag that is not \Seen).
    device.store("1", "+FLAGS", "(\\Flagged)")
    ev = await wait_event(events, FlagsChanged, folder="Work")
    assert list(ev.flags.values()) == [frozenset({SEEN, FLAGGED})]


async def test_a_flag_change_elsewhere_is_shown_from_the_notification_itself(
    engine: EngineFactory, dovecot: Dovecot, user: User
) -> None:
    """The watch connection's FETCH carries the new flags (and, with QRESYNC, the UID): they
    reach the event stream without waiting for a resync on the command connection, which
    here cannot run (its lock is held)."""
    device = imap_device(dovecot, user)
    append_many(device, 3)
    account, events = await engine(user)
    account.start()
    await account.wait_online(5)
    await account.wait_synced(10)
    events.pending()
    device.select("INBOX")
    async with account._lock:  # no resync, no command at all, until released
        device.uid("STORE", "2", "+FLAGS", "(\\Seen)")
        ev = await wait_event(events, FlagsChanged, timeout=5, folder="INBOX")
        assert ev.flags == {2: frozenset({SEEN})}
        assert account.cache.flags("INBOX", [2]) == {2: frozenset({SEEN})}
    # The resync that follows finds the cache in step: no second event for the same change.
    device.uid("STORE", "3", "+FLAGS", "(\\Flagged)")
    ev = await wait_event(events, FlagsChanged, timeout=5, folder="INBOX")
    assert ev.flags == {3: frozenset({FLAGGED})}
    device.logout()


async def test_with_notify_the_open_folder_is_examined_and_its_flags_come_at_once(
    engine: EngineFactory, dovecot: Dovecot, user: User
) -> None:
    """NOTIFY tells of a folder that is not selected with STATUS only (the folder is then
    resynced); the watch connection examines the folder the user has open instead, so its
    flag changes come as FETCH and are shown at once, as INBOX's are."""
    device = imap_device(dovecot, user)
    device.create("Work")
    device.subscribe("Work")
    append_many(device, 2, "Work", start=10)
    account, events = await engine(user)
    account.start()
    await account.wait_synced(10)
    assert account.client.has("NOTIFY")
    assert account.notify_examines == "INBOX"
    await account.watch_folder("Work")
    await wait_for_async(lambda: account.notify_examines == "Work", message="Work examined")
    events.pending()
    device.select("Work")
    async with account._lock:  # no resync until released: the FETCH alone must show it
        device.uid("STORE", "1", "+FLAGS", "(\\Flagged)")
        ev = await wait_event(events, FlagsChanged, timeout=5, folder="Work")
        assert ev.flags == {1: frozenset({FLAGGED})}
    # INBOX, no longer examined, is still followed (by STATUS, then a resync).
    device.append("INBOX", "", None, message(1, "Still heard"))
    ev = await wait_event(events, MessagesAdded, timeout=5, folder="INBOX")
    assert [s.envelope.subject for s in ev.summaries] == ["Still heard"]
    device.logout()


async def test_new_mail_is_published_before_the_folder_is_scanned_for_flag_changes(
    engine: EngineFactory, dovecot: Dovecot, user: User
) -> None:
    """A live resync of the selected folder fetches the new message at once (what the user
    waits for), then asks what else changed (a pass over every mod-sequence of the folder)."""
    device = imap_device(dovecot, user)
    append_many(device, 3)
    first, _ = await engine(user)
    first.start()
    await first.wait_synced(10)
    await first.stop()
    # A warm start, as people have: the fresh user's special-use folders, made by Dovecot
    # during the first one, are then settled (their LIST notifications had the folders
    # resynced, leaving another one selected).
    account, events = await engine(user)
    account.start()
    await account.wait_online(5)
    await account.wait_synced(10)
    await wait_for_async(
        lambda: (
            account.client.selected == "INBOX"
            and not account._dirty.wake.is_set()
            and not account._lock.locked()
        ),
        message="the account quiet, INBOX selected",
    )
    # The commands of each live resync, in order: "new" (the summaries of new UIDs, with
    # whether the new message came) and "changed" (what else changed).
    resyncs: list[list[tuple[str, bool]]] = []
    client = account.client
    quick, fetch_new, scan = account._quick_resync, account._fetch_new, client.uid_fetch_changed

    inside: list[list[tuple[str, bool]]] = []  # the resync running now, if any

    async def quick_recorded(*args: Any) -> int:
        inside[:] = [[]]
        resyncs.append(inside[0])
        try:
            return await quick(*args)
        finally:
            inside.clear()

    async def new_recorded(*args: Any) -> list[MessageSummary]:
        fresh = await fetch_new(*args)
        for calls in inside:
            calls.append(("new", any(s.uid == 4 for s in fresh)))
        return fresh

    async def scan_recorded(*args: Any, **kwargs: Any) -> Any:
        for calls in inside:
            calls.append(("changed", False))
        return await scan(*args, **kwargs)

    account._quick_resync = quick_recorded  # type: ignore[method-assign]
    account._fetch_new = new_recorded  # type: ignore[method-assign]
    client.uid_fetch_changed = scan_recorded  # type: ignore[method-assign]
    device.append("INBOX", "", None, message(4, "Fresh news"))
    ev = await wait_event(events, MessagesAdded, timeout=5, folder="INBOX")
    assert [s.uid for s in ev.summaries] == [4]
    await wait_event(events, FolderCountsChanged, timeout=5, folder="INBOX")  # resync done
    # The first resync after the notification brings it (a FETCH alone would not see it:
    # the server tells a session of new mail after a command), before asking what changed.
    assert resyncs[0] == [("new", True), ("changed", False)], resyncs
    device.logout()


async def test_server_restart_during_idle_reconnects_and_catches_up(
    engine: EngineFactory, dovecot_factory: Callable[..., Dovecot]
) -> None:
    server = dovecot_factory()
    user = server.add_user("carol")
    device = imap_device(server, user)
    append_many(device, 4)
    device.logout()
    account, events = await engine(user, server)
    account.start()
    await account.wait_online(5)
    await account.wait_synced(10)
    assert account.cache.counts("INBOX")[0] == 4
    server.restart(graceful=False)
    await events.wait_for(ConnectionChanged, 5, state=ConnState.OFFLINE)
    device = imap_device(server, user)
    append_many(device, 1, start=5)
    await events.wait_for(ConnectionChanged, 10, state=ConnState.ONLINE)
    await account.wait_synced(10)
    assert account.cache.counts("INBOX")[0] == 5


async def test_without_condstore_qresync_notify_everything_still_syncs_live(
    engine: EngineFactory, dovecot_factory: Callable[..., Dovecot]
) -> None:
    server = dovecot_factory(extra_conf=BARE_CAPS)
    user = server.add_user("dora")
    device = imap_device(server, user)
    append_many(device, 6)
    device.create("Work")
    device.subscribe("Work")
    append_many(device, 2, "Work", start=50)
    account, events = await engine(
        user, server, tuning=Tuning(backoff_min=0.05, backoff_max=0.5, poll_every=0.2)
    )
    account.start()
    await account.wait_synced(10)
    client = account.client
    assert not client.condstore and not client.qresync and not client.has("NOTIFY")
    assert account.cache.counts("INBOX") == (6, 6)
    roles = {f.name: f.role for f in account.cache.folders()}
    assert roles["Sent"] is FolderRole.SENT and roles["Trash"] is FolderRole.TRASH  # by name
    events.pending()

    device.select("INBOX")
    device.store("2", "+FLAGS", "(\\Seen)")
    ev = await wait_event(events, FlagsChanged, folder="INBOX")
    assert ev.flags == {2: frozenset({SEEN})}
    device.store("3", "+FLAGS", "(\\Deleted)")
    device.expunge()
    ev = await wait_event(events, MessagesExpunged, folder="INBOX")
    assert ev.uids == (3,)
    # Work is neither INBOX nor open: the STATUS poll finds the change.
    append_many(device, 1, "Work", start=60)
    ev = await wait_event(events, MessagesAdded, timeout=3, folder="Work")
    assert [s.envelope.subject for s in ev.summaries] == ["Message 60"]


async def test_without_notify_a_poll_of_every_folder_is_one_list_status(
    engine: EngineFactory, dovecot_factory: Callable[..., Dovecot]
) -> None:
    """Polled folders (no NOTIFY) are checked with the STATUS LIST-STATUS brought along:
    an account of 200 folders polled each minute sent 200 STATUS commands. A change in a
    folder is still found."""
    server = dovecot_factory()
    user = server.add_user("dana")
    device = imap_device(server, user)
    for i in range(6):
        device.create(f"Lists/l{i}")
        device.subscribe(f"Lists/l{i}")
        append_many(device, 1, f"Lists/l{i}", start=10 + i)
    account, events = await engine(user, server, tuning=Tuning(poll_every=0.2), disable=["notify"])
    account.start()
    await account.wait_synced(10)
    assert account.client.has("LIST-STATUS") and not account.client.has("NOTIFY")
    asked: list[str] = []
    client = account.client
    real = client.status

    async def status(folder: str) -> object:
        asked.append(folder)
        return await real(folder)

    client.status = status  # type: ignore[method-assign, assignment]
    events.pending()
    append_many(device, 1, "Lists/l3", start=60)
    ev = await wait_event(events, MessagesAdded, timeout=5, folder="Lists/l3")
    assert [s.envelope.subject for s in ev.summaries] == ["Message 60"]
    append_many(device, 1, "Lists/l4", start=61)  # and on the next poll
    await wait_event(events, MessagesAdded, timeout=5, folder="Lists/l4")
    assert account.client is client and asked == []


async def test_without_notify_the_open_folder_is_watched_by_idle(
    engine: EngineFactory, dovecot_factory: Callable[..., Dovecot]
) -> None:
    server = dovecot_factory(extra_conf=BARE_CAPS)
    user = server.add_user("erin")
    device = imap_device(server, user)
    device.create("Work")
    device.subscribe("Work")
    append_many(device, 2, "Work")
    # Polling is off: only IDLE on INBOX and on the open folder can report changes.
    account, events = await engine(user, server, tuning=Tuning(poll_every=3600))
    account.start()
    await account.wait_synced(10)
    await account.watch_folder("Work", timeout=5)
    events.pending()
    device.select("Work")
    device.store("1", "+FLAGS", "(\\Flagged)")
    ev = await wait_event(events, FlagsChanged, folder="Work")
    assert ev.flags == {1: frozenset({FLAGGED})}


async def test_with_idle_and_notify_switched_off_the_inbox_is_polled_with_noop(
    engine: EngineFactory, dovecot_factory: Callable[..., Dovecot]
) -> None:
    """``disable = ["IDLE", "NOTIFY"]`` (a server whose IDLE is broken): the account stays
    online (no reconnect loop) and changes still arrive, by NOOP."""
    server = dovecot_factory()
    user = server.add_user("fay")
    device = imap_device(server, user)
    append_many(device, 2)
    account, events = await engine(
        user, server, tuning=Tuning(poll_every=0.2), disable=["IDLE", "notify"]
    )
    everything = account.bus.subscribe()
    account.start()
    await account.wait_synced(10)
    await account.watch_folder("INBOX", timeout=5)
    assert not account.client.has("IDLE") and not account.client.has("NOTIFY")
    events.pending()
    device.select("INBOX")
    device.store("1", "+FLAGS", "(\\Flagged)")
    ev = await wait_event(events, FlagsChanged, timeout=3, folder="INBOX")
    assert ev.flags == {1: frozenset({FLAGGED})}
    offline = [
        e
        for e in everything.pending()
        if isinstance(e, ConnectionChanged) and e.state is ConnState.OFFLINE
    ]
    assert offline == [] and account.state is ConnState.ONLINE


async def test_connection_killed_mid_fetch_resumes_without_refetching(
    engine: EngineFactory, dovecot: Dovecot, user: User, proxy_factory: Callable[..., object]
) -> None:
    device = imap_device(dovecot, user)
    append_many(device, 1500)
    proxy = proxy_factory(dovecot.host, dovecot.ports.imaps)
    account, events = await engine(
        user,
        port=proxy.port,
        host=proxy.host,  # type: ignore[attr-defined]
        tuning=Tuning(backoff_min=0.05, backoff_max=0.2, first_window=100, batch=200),
    )
    account.start()
    first = await events.wait_for(MessagesAdded, 10, folder="INBOX")
    assert len(first.summaries) == 100
    proxy.kill_connections()  # type: ignore[attr-defined]
    await events.wait_for(ConnectionChanged, 5, state=ConnState.OFFLINE)
    await account.wait_synced(20)
    assert account.cache.uids("INBOX") == list(range(1, 1501))
    fetched = [u for e in events.pending() if isinstance(e, MessagesAdded) for u in e.uids]
    assert len(fetched) == len(set(fetched)), "a summary was fetched twice"
    assert set(first.uids).isdisjoint(fetched)


async def test_a_silently_dead_link_is_detected_and_replaced(
    engine: EngineFactory, dovecot: Dovecot, user: User, proxy_factory: Callable[..., object]
) -> None:
    device = imap_device(dovecot, user)
    append_many(device, 3)
    proxy = proxy_factory(dovecot.host, dovecot.ports.imaps)
    account, events = await engine(
        user,
        port=proxy.port,
        host=proxy.host,  # type: ignore[attr-defined]
        tuning=Tuning(backoff_min=0.05, backoff_max=0.2, idle_renew=0.3, dead_after=0.5),
    )
    account.start()
    await account.wait_synced(10)
    proxy.pause()  # type: ignore[attr-defined]  # packets vanish; no RST, no FIN
    ev = await events.wait_for(ConnectionChanged, 5, state=ConnState.OFFLINE)
    assert ev.reason
    proxy.kill_connections()  # type: ignore[attr-defined]
    proxy.resume()  # type: ignore[attr-defined]
    await events.wait_for(ConnectionChanged, 10, state=ConnState.ONLINE)
    await account.wait_synced(10)
    device.select("INBOX")
    device.store("1", "+FLAGS", "(\\Seen)")
    ev = await wait_event(events, FlagsChanged, folder="INBOX")
    assert ev.flags == {1: frozenset({SEEN})}


async def test_unreachable_server_keeps_the_cache_readable_and_retries(
    engine: EngineFactory, dovecot_factory: Callable[..., Dovecot]
) -> None:
    server = dovecot_factory()
    user = server.add_user("fred")
    append_many(imap_device(server, user), 7)
    first, _ = await engine(user, server)
    await first.connect_once()
    await first.sync_all()
    await first.stop()
    first.cache.close()
    server.stop()

    account, events = await engine(user, server)
    account.start()
    offline = await events.wait_for(ConnectionChanged, 5, state=ConnState.OFFLINE)
    assert str(server.ports.imaps) in offline.reason and offline.retry_in is not None
    page, _ = account.cache.page("INBOX", 50)
    assert len(page) == 7  # everything cached stays readable
    again = await events.wait_for(ConnectionChanged, 5, state=ConnState.OFFLINE)
    assert again.retry_in is not None  # and it keeps trying
    server.start()
    await events.wait_for(ConnectionChanged, 10, state=ConnState.ONLINE)
    await account.wait_synced(10)


async def test_starttls_required_but_not_offered_sends_no_credentials(
    engine: EngineFactory,
    dovecot_factory: Callable[..., Dovecot],
    proxy_factory: Callable[..., object],
) -> None:
    server = dovecot_factory(tls=False)
    user = server.add_user("gina")
    proxy = proxy_factory(server.host, server.ports.imap)
    account, events = await engine(
        user,
        server,
        host=proxy.host,
        port=proxy.port,
        security="starttls",  # type: ignore[attr-defined]
    )
    account.start()
    ev = await events.wait_for(ConnectionChanged, 5, state=ConnState.OFFLINE)
    assert "STARTTLS" in ev.reason
    sent = proxy.client_bytes()  # type: ignore[attr-defined]
    assert b"LOGIN" not in sent.upper() and b"AUTHENTICATE" not in sent.upper()
    for form in user.secret_forms():
        assert form not in sent


async def test_a_ca_file_broken_after_start_is_one_sentence_and_not_retried(
    tmp_path: Path, dovecot: Dovecot, user: User
) -> None:
    """A ca_file that stops being a certificate while the app runs (moved, overwritten) is a
    config mistake: the account says which key and file, once, and stops retrying (it used
    to retry forever with "[Errno 2] No such file or directory" and no file name)."""
    ca = tmp_path / "ca.pem"
    ca.write_bytes(Path(dovecot.ca_file).read_bytes())
    config = config_from_dict(
        {
            "accounts": {
                "acct": {
                    "email": user.email,
                    "imap": {
                        "host": dovecot.host,
                        "port": dovecot.ports.imaps,
                        "user": user.login,
                        "password": user.password,
                        "ca_file": str(ca),
                        "timeout": 5,
                    },
                }
            }
        }
    )
    ca.write_text("root:x:0:0:root:/root:/bin/bash\n")
    bus = EventBus()
    events = bus.subscribe()
    account = ImapAccount(
        config.accounts["acct"], Cache(tmp_path / "acct.sqlite3"), bus, Tuning(backoff_min=0.01)
    )
    account.start()
    try:
        offline = await events.wait_for(ConnectionChanged, 5, state=ConnState.OFFLINE)
        assert offline.reason == f"accounts.acct.imap.ca_file: {ca} is not a PEM certificate file"
        assert offline.retry_in is None
        assert account._task is not None
        await asyncio.wait_for(asyncio.shield(account._task), 5)  # the supervisor gave up
        assert not [e for e in events.pending() if isinstance(e, ConnectionChanged)]
    finally:
        await account.stop()
        account.cache.close()


async def test_a_cache_damaged_while_running_takes_the_account_offline_in_one_sentence(
    engine: EngineFactory, dovecot: Dovecot, user: User
) -> None:
    """The sync task died of the DatabaseError silently (the app stayed "online" forever)."""
    import sqlite3

    device = imap_device(dovecot, user)
    append_many(device, 300)
    account, events = await engine(user)
    account.start()
    await account.wait_synced(15)
    cache = account.cache
    cache.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # every page in the file itself
    pages = cache.path.stat().st_size // 4096
    with open(cache.path, "r+b") as f:
        for page in range(16, pages):  # the journal's pages come first and stay sound
            f.seek(page * 4096)
            f.write(bytes(range(256)) * 16)
    other = sqlite3.connect(cache.path)  # another program commits: what was read is reread
    other.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    other.close()
    device.append("INBOX", "", None, message(999))  # the resync then reads the damaged file
    offline = await events.wait_for(ConnectionChanged, 10, state=ConnState.OFFLINE)
    assert offline.reason == (
        f"{cache.path}: the cache is damaged (database disk image is malformed); start"
        " Kittiwake again to set it aside and rebuild it from the server (unsent actions are"
        " kept)"
    )
    assert offline.retry_in is None


async def test_a_resync_of_the_selected_folder_fetches_mail_it_was_not_yet_told_of(
    engine: EngineFactory, dovecot: Dovecot, user: User
) -> None:
    """Dovecot answers ``UID FETCH 1:* (FLAGS) (CHANGEDSINCE m)`` only for messages the
    session already knows: mail appended (and flagged) elsewhere since must still be fetched,
    or the stored modseq moves past it and it is never seen."""
    device = imap_device(dovecot, user)
    append_many(device, 3)
    account, _ = await engine(user)
    await account.connect_once()
    await account.sync_all()
    assert account.client.selected == "INBOX"  # the quick resync path: no new SELECT
    device.select("INBOX")
    device.append("INBOX", None, None, message(4, subject="appended elsewhere"))
    device.append("INBOX", None, None, message(5, subject="appended and flagged"))
    device.uid("STORE", "5", "+FLAGS", "(\\Flagged)")
    device.uid("STORE", "1", "+FLAGS", "(\\Seen)")
    await account.sync_folder("INBOX")
    assert sorted(account.cache.uids("INBOX")) == [1, 2, 3, 4, 5]
    assert FLAGGED in account.cache.flags("INBOX", [5])[5]
    assert SEEN in account.cache.flags("INBOX", [1])[1]
    await account.sync_folder("INBOX")  # and nothing is lost or fetched twice after
    assert sorted(account.cache.uids("INBOX")) == [1, 2, 3, 4, 5]


async def _until(events: Subscription, holds: Callable[[], bool], timeout: float) -> None:
    """Wait, event by event, until ``holds()`` (checked after each event the account sends)."""

    async def watch() -> None:
        async for _ in events:
            if holds():
                return

    if not holds():
        await asyncio.wait_for(watch(), timeout)


async def test_a_cold_start_shows_its_newest_page_before_the_watch_is_live_and_misses_nothing(
    engine: EngineFactory,
    dovecot_factory: Callable[..., Dovecot],
    proxy_factory: Callable[[str, int], TcpProxy],
) -> None:
    """A cold start's first page comes on the command connection while the watch connection
    is still being set up (here held at its NOTIFY SET until released): it used to wait for
    it. Another device's changes made before the watch is live (new mail, a flag on a message
    of the page, an older message expunged) are in the cache all the same once it is."""
    plain = dovecot_factory(tls=False)
    user = plain.add_user("cole")
    device = imaplib.IMAP4(plain.host, plain.ports.imap)
    device.login(user.login, user.password)
    append_many(device, 300)
    proxy = proxy_factory(plain.host, plain.ports.imap)
    held = proxy.stall_after(b"NOTIFY SET", "client")
    account, events = await engine(
        user,
        plain,
        port=proxy.port,
        host=proxy.host,
        security="none",
        tuning=Tuning(backoff_min=0.05, backoff_max=0.2, first_window=100, batch=80),
    )
    everything = account.bus.subscribe()
    account.start()
    first = await events.wait_for(MessagesAdded, 10, folder="INBOX")
    assert sorted(first.uids) == list(range(201, 301))
    assert await asyncio.to_thread(held.wait, 10), "the watch connection never sent NOTIFY SET"
    assert not account._watching.is_set() and not account.is_synced

    device.select("INBOX")
    append_many(device, 1, start=301)
    device.uid("STORE", "250", "+FLAGS", "(\\Flagged)")
    device.uid("STORE", "5", "+FLAGS", "(\\Deleted)")
    device.expunge()
    proxy.release()

    await account.wait_synced(20)
    expected = [u for u in range(1, 302) if u != 5]
    await _until(
        events,
        lambda: (
            account.cache.uids("INBOX") == expected
            and FLAGGED in account.cache.flags("INBOX", [250]).get(250, frozenset())
        ),
        10,
    )
    added = [u for e in everything.pending() if isinstance(e, MessagesAdded) for u in e.uids]
    assert len(added) == len(set(added)), "a summary was fetched twice"
    device.logout()


async def test_a_cold_open_folder_gets_its_first_page_and_goes_on_from_it_without_a_new_select(
    engine: EngineFactory,
    dovecot_factory: Callable[..., Dovecot],
    proxy_factory: Callable[[str, int], TcpProxy],
) -> None:
    """The first page is the open folder's (here not INBOX); the full sync takes that folder
    first, while it is still selected, below the page: one SELECT of it, no FLAGS of the
    cached rows (the path of an interrupted fill), nothing fetched twice."""
    plain = dovecot_factory(tls=False)
    user = plain.add_user("opal")
    device = imaplib.IMAP4(plain.host, plain.ports.imap)
    device.login(user.login, user.password)
    device.create("Work")
    device.subscribe("Work")
    append_many(device, 30, mailbox="Work")
    append_many(device, 5)
    device.logout()
    proxy = proxy_factory(plain.host, plain.ports.imap)
    account, events = await engine(
        user,
        plain,
        port=proxy.port,
        host=proxy.host,
        security="none",
        tuning=Tuning(backoff_min=0.05, backoff_max=0.2, first_window=10, batch=8),
    )
    everything = account.bus.subscribe()
    account.set_open_folder("Work")
    account.start()
    first = await events.wait_for(MessagesAdded, 10)
    assert first.folder == "Work" and sorted(first.uids) == list(range(21, 31))
    await account.wait_synced(20)
    assert account.cache.uids("Work") == list(range(1, 31))
    assert account.cache.uids("INBOX") == list(range(1, 6))
    added = [
        (e.folder, u) for e in everything.pending() if isinstance(e, MessagesAdded) for u in e.uids
    ]
    assert len(added) == len(set(added)) == 35, "a summary was fetched twice"
    sent = proxy.client_bytes()
    # The page's SELECT; the other one ends the sync with the open folder selected (QRESYNC).
    assert sent.count(b'SELECT "Work"') - sent.count(b'SELECT "Work" (QRESYNC') == 1
    assert b"UID FETCH 1:* (UID FLAGS)\r\n" not in sent  # (CHANGEDSINCE: the resync)
