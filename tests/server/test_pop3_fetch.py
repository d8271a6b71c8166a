"""Downloading a real Dovecot maildrop into a local Maildir (or an IMAP folder): exactly once,
whatever breaks when. No mocks; no fixed sleeps; the server is checked with stdlib poplib /
imaplib over separate connections.
"""

from __future__ import annotations

import asyncio
import json
import smtplib
import sqlite3
import tracemalloc
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from harness import (
    Dovecot,
    TcpProxy,
    User,
    imap_device,
    imap_fetch_all,
    make_message,
    pop3_device,
    pop3_fetch_all,
)

from kittiwake.core.cache import Cache
from kittiwake.core.config import Account, config_from_dict
from kittiwake.core.events import EventBus
from kittiwake.core.imap.account import ImapAccount
from kittiwake.core.maildir import INBOX, Maildir, Spool
from kittiwake.core.message.mime import parse_message
from kittiwake.core.pop3.client import Pop3ConnectionLost, Pop3StartTlsUnavailable
from kittiwake.core.pop3.fetch import FetchProgress, FetchStats, FetchTuning, fetch_once
from kittiwake.core.pop3.ledger import Ledger, LedgerBusy
from kittiwake.core.pop3.sinks import MaildirSink, StoreSink, _FileSpool

DAY = 86400.0


# ---------------------------------------------------------------------------- helpers


def deliver_many(dovecot: Dovecot, user: User, messages: Sequence[bytes]) -> None:
    """Deliver over ONE LMTP session (fast set-up); complete when this returns."""
    with smtplib.LMTP(dovecot.host, dovecot.ports.lmtp, timeout=120) as lmtp:
        for raw in messages:
            assert not lmtp.sendmail("sender@example.net", [user.email], raw)


def msg(i: int, body: str | bytes = "", tag: str = "m") -> bytes:
    return make_message(
        sender="a@example.net",
        to=["b@example.test"],
        subject=f"{tag} {i:05d}",
        body=body or f"body {i}\n.a line with a leading dot\n",
    )


def server_messages(dovecot: Dovecot, user: User) -> list[bytes]:
    device = pop3_device(dovecot, user)
    try:
        return pop3_fetch_all(device)
    finally:
        device.quit()


def account(
    dovecot: Dovecot,
    user: User,
    *,
    security: str = "tls",
    keep: bool | int = True,
    host: str | None = None,
    port: int | None = None,
    extra: dict[str, Any] | None = None,
) -> Account:
    if port is None:
        port = dovecot.ports.pop3s if security == "tls" else dovecot.ports.pop3
    data: dict[str, Any] = {
        "accounts": {
            "pop": {
                "email": user.email,
                "pop3": {
                    "host": host or dovecot.host,
                    "port": port,
                    "security": security,
                    "user": user.login,
                    "password": user.password,
                    "ca_file": str(dovecot.ca_file),
                    "keep_on_server": keep,
                    "timeout": 10,
                },
            },
            **(extra or {}),
        }
    }
    return config_from_dict(data).accounts["pop"]


class Local:
    """One account's local side: Maildir + ledger under tmp_path."""

    def __init__(self, root: Path) -> None:
        self.maildir = Maildir(root / "mail")
        self.ledger = root / "pop3.sqlite3"

    async def fetch(self, acct: Account, **kwargs: Any) -> FetchStats:
        kwargs.setdefault("sink", MaildirSink(self.maildir))
        return await fetch_once(acct, ledger=self.ledger, **kwargs)

    def contents(self) -> list[bytes]:
        out = []
        for folder in self.maildir.folders():
            for m in self.maildir.messages(folder):
                out.append(m.path.read_bytes())
        return out


@pytest.fixture
def local(tmp_path: Path) -> Local:
    return Local(tmp_path)


def by_content(messages: Sequence[bytes]) -> list[bytes]:
    return sorted(messages)


def assert_same_mail(local_copies: Sequence[bytes], server_copies: Sequence[bytes]) -> None:
    """Byte-identical, and no message twice."""
    assert len(local_copies) == len(server_copies)
    assert len(set(local_copies)) == len(local_copies), "a message was stored twice"
    assert by_content(local_copies) == by_content(server_copies)


# ---------------------------------------------------------------------------- the basics


@pytest.mark.parametrize("security", ["tls", "starttls"])
async def test_500_then_nothing_then_exactly_10(
    dovecot: Dovecot, user: User, local: Local, security: str
) -> None:
    deliver_many(dovecot, user, [msg(i) for i in range(500)])
    originals = server_messages(dovecot, user)
    acct = account(dovecot, user, security=security)
    progress: list[FetchProgress] = []

    stats = await local.fetch(acct, progress=progress.append)
    assert (stats.new, stats.on_server, stats.deleted) == (500, 500, 0)
    assert stats.bytes == sum(len(m) for m in originals)
    assert_same_mail(local.contents(), originals)
    assert all(m.is_new for m in local.maildir.messages(INBOX))
    downloading = [p for p in progress if p.phase == "downloading"]
    assert downloading[-1].done == downloading[-1].total == 500
    assert downloading[-1].bytes_done == downloading[-1].bytes_total == stats.bytes
    assert [p.done for p in downloading] == sorted(p.done for p in downloading)
    assert progress[-1].phase == "done"

    again = await local.fetch(acct)
    assert (again.new, again.on_server) == (0, 500)
    assert len(local.contents()) == 500

    deliver_many(dovecot, user, [msg(i, tag="later") for i in range(10)])
    third = await local.fetch(acct)
    assert third.new == 10
    assert_same_mail(local.contents(), server_messages(dovecot, user))
    assert len(server_messages(dovecot, user)) == 510  # keep_on_server = true


async def test_deleted_locally_is_not_downloaded_again(
    dovecot: Dovecot, user: User, local: Local
) -> None:
    deliver_many(dovecot, user, [msg(i) for i in range(3)])
    acct = account(dovecot, user)
    delivered: list[Any] = []
    await local.fetch(acct, on_delivered=delivered.extend)
    assert len(delivered) == 3
    for d in delivered:
        local.maildir.delete(INBOX, d.locator)
    stats = await local.fetch(acct)
    assert stats.new == 0 and local.contents() == []


# ---------------------------------------------------------------------------- keep_on_server


async def test_keep_false_empties_the_server_only_after_the_files_exist(
    dovecot: Dovecot, user: User, local: Local, proxy_factory: Callable[[str, int], TcpProxy]
) -> None:
    deliver_many(dovecot, user, [msg(i) for i in range(200)])
    originals = server_messages(dovecot, user)
    assert dovecot.ports.pop3s is not None
    proxy = proxy_factory(dovecot.host, dovecot.ports.pop3s)
    acct = account(dovecot, user, keep=False, host=proxy.host, port=proxy.port)
    checked: list[str] = []

    def at_phase(p: FetchProgress) -> None:
        if p.phase == "deleting":
            # Before the first DELE: every file is durably in the Maildir, and the ledger
            # (read through a second connection) has every message as stored.
            assert_same_mail(local.contents(), originals)
            ledger = Ledger(local.ledger, f"{user.login}@{dovecot.host}", lock=False)
            try:
                assert ledger.count("stored") == 200
            finally:
                ledger.close()
            imap = imap_device(dovecot, user)  # the server still has every message
            try:
                _typ, data = imap.select("INBOX", readonly=True)
                assert int(data[0] or 0) == 200
            finally:
                imap.logout()
            checked.append(p.phase)

    stats = await local.fetch(acct, progress=at_phase)
    assert checked == ["deleting"]
    assert (stats.new, stats.deleted) == (200, 200)
    assert server_messages(dovecot, user) == []
    assert_same_mail(local.contents(), originals)


async def test_killed_between_retr_and_quit_loses_and_duplicates_nothing(
    dovecot: Dovecot, user: User, local: Local, proxy_factory: Callable[[str, int], TcpProxy]
) -> None:
    deliver_many(dovecot, user, [msg(i) for i in range(100)])
    originals = server_messages(dovecot, user)
    assert dovecot.ports.pop3s is not None
    proxy = proxy_factory(dovecot.host, dovecot.ports.pop3s)
    acct = account(dovecot, user, keep=False, host=proxy.host, port=proxy.port)

    def kill_before_quit(p: FetchProgress) -> None:
        if p.phase == "quitting":
            proxy.kill_connections()  # every DELE was sent; QUIT never arrives

    with pytest.raises(Pop3ConnectionLost):
        await local.fetch(acct, progress=kill_before_quit)
    assert len(server_messages(dovecot, user)) == 100, "DELE without QUIT must not delete"
    assert_same_mail(local.contents(), originals)

    stats = await local.fetch(acct)
    assert (stats.new, stats.deleted) == (0, 100)
    assert server_messages(dovecot, user) == []
    assert_same_mail(local.contents(), originals)


async def test_cut_in_the_middle_of_a_retr(
    dovecot: Dovecot, user: User, local: Local, proxy_factory: Callable[[str, int], TcpProxy]
) -> None:
    """The connection drops inside message 60's data: 59 are kept, the partial one is not,
    and the next run fetches exactly the other 41."""
    deliver_many(dovecot, user, [msg(i, ("x" * 70 + "\n") * 40) for i in range(100)])
    originals = server_messages(dovecot, user)
    proxy = proxy_factory(dovecot.host, dovecot.ports.pop3)
    acct = account(dovecot, user, security="starttls", host=proxy.host, port=proxy.port)
    # STLS encrypts everything, so the cut is placed by counting: once the 59th message is
    # committed (with at most 4 RETRs in flight), the network stops and the link is reset.
    committed: list[Any] = []

    def on_delivered(batch: Sequence[Any]) -> None:
        committed.extend(batch)
        if len(committed) == 59:
            proxy.pause()
            proxy.kill_connections()

    with pytest.raises(Pop3ConnectionLost):
        await local.fetch(
            acct, on_delivered=on_delivered, tuning=FetchTuning(batch_messages=1, window=4)
        )
    assert len(committed) >= 59
    first = local.contents()
    assert 59 <= len(first) < 100
    assert len(set(first)) == len(first)
    assert set(first) <= set(originals)
    assert list((local.maildir.root / "tmp").iterdir()) == []  # the partial one is gone
    proxy.resume()

    stats = await local.fetch(acct)
    assert stats.new == 100 - len(first)
    assert_same_mail(local.contents(), originals)


async def test_keep_for_n_days_with_a_faked_clock(
    dovecot: Dovecot, user: User, local: Local
) -> None:
    now = [1_800_000_000.0]
    acct = account(dovecot, user, keep=3)
    deliver_many(dovecot, user, [msg(i, tag="old") for i in range(5)])
    first = await local.fetch(acct, clock=lambda: now[0])
    assert (first.new, first.deleted) == (5, 0)

    now[0] += 2 * DAY
    deliver_many(dovecot, user, [msg(i, tag="young") for i in range(4)])
    second = await local.fetch(acct, clock=lambda: now[0])
    assert (second.new, second.deleted) == (4, 0)

    now[0] += 1 * DAY + 1  # the first five are 3 days old now, the others 1 day
    third = await local.fetch(acct, clock=lambda: now[0])
    assert (third.new, third.deleted) == (0, 5)
    left = server_messages(dovecot, user)
    assert len(left) == 4 and all(b"young" in m for m in left)

    now[0] += 2 * DAY
    fourth = await local.fetch(acct, clock=lambda: now[0])
    assert (fourth.new, fourth.deleted) == (0, 4)
    assert server_messages(dovecot, user) == []
    assert len(local.contents()) == 9


# ---------------------------------------------------------------------------- big and broken


async def test_a_20_mb_message_streams_to_disk(dovecot: Dovecot, user: User, local: Local) -> None:
    line = b"0123456789abcdefghijklmnopqrstuvwxyz" * 2 + b"\n"
    body = line * (20 * 1024 * 1024 // len(line))
    big = msg(1, body)
    deliver_many(dovecot, user, [big, msg(2)])
    originals = server_messages(dovecot, user)
    assert len(originals[0]) > 20 * 1024 * 1024
    acct = account(dovecot, user)
    tracemalloc.start()
    try:
        stats = await local.fetch(acct)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert stats.new == 2
    assert_same_mail(local.contents(), originals)
    assert peak < 4 * 1024 * 1024, f"{peak} bytes at peak: the message was held in memory"


MALFORMED = (
    b"From: =?utf-8?B?broken?= <not an address\r\n"
    b"To: \r\n"
    b"Subject: =?x-unknown?Q?=FF=FE?= caf\xe9 \xff\r\n"
    b"Date: the day after tomorrow\r\n"
    b"Message-ID: <<<>>>@@\r\n"
    b"this header line has no colon\r\n"
    b'Content-Type: multipart/mixed; boundary="never-closed"\r\n'
    b"MIME-Version: 1.0\r\n"
    b"\r\n"
    b"--never-closed\r\n"
    b"Content-Type: text/plain; charset=no-such-charset\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"!!!not base64!!!\r\n"
    b".\r\n"
    b"..\r\n"
    b"--never-closed\r\n"
    b"Content-Type: message/rfc822\r\n"
    b"\r\n"
    b"garbage without headers \x00\x01\x02 and 8-bit \xc3\x28\r\n"
)


async def test_a_malformed_message_is_stored_as_it_came(
    dovecot: Dovecot, user: User, local: Local
) -> None:
    deliver_many(dovecot, user, [MALFORMED])
    [original] = server_messages(dovecot, user)
    assert original.endswith(MALFORMED)  # Dovecot only prepended its trace headers
    stats = await local.fetch(account(dovecot, user))
    assert stats.new == 1
    [stored] = local.contents()
    assert stored == original
    parsed = parse_message(stored)  # must not raise
    assert "caf" in parsed.subject
    assert parsed.raw == stored


# ---------------------------------------------------------------------------- security


async def test_stls_required_but_not_offered_sends_no_password(
    dovecot_factory: Callable[..., Dovecot],
    proxy_factory: Callable[[str, int], TcpProxy],
    local: Local,
) -> None:
    plain = dovecot_factory(tls=False)
    victim = plain.add_user("victim")
    deliver_many(plain, victim, [msg(1)])
    proxy = proxy_factory(plain.host, plain.ports.pop3)
    acct = account(plain, victim, security="starttls", host=proxy.host, port=proxy.port)
    with pytest.raises(Pop3StartTlsUnavailable) as err:
        await local.fetch(acct)
    assert f"{proxy.host}:{proxy.port}" in err.value.message
    sent = proxy.client_bytes()
    for form in victim.secret_forms():
        assert form not in sent
    assert b"USER" not in sent and b"PASS" not in sent and b"AUTH" not in sent
    assert local.contents() == []


# ---------------------------------------------------------------------------- crash windows


class CrashingSink(MaildirSink):
    """Delivers, then "crashes" before the downloader can record it (``after_commit``), or
    crashes after the tokens were recorded but before delivering (``before_commit``)."""

    def __init__(self, maildir: Maildir, when: str) -> None:
        super().__init__(maildir)
        self.when = when

    async def commit(self, spools: Sequence[Spool]) -> list[str]:
        if self.when == "before_commit":
            for spool in spools:
                spool.sync()
            raise SimulatedCrash
        await super().commit(spools)
        raise SimulatedCrash


class SimulatedCrash(Exception):
    pass


@pytest.mark.parametrize("when", ["after_commit", "before_commit"])
async def test_crash_between_delivery_and_ledger(
    dovecot: Dovecot, user: User, local: Local, when: str
) -> None:
    deliver_many(dovecot, user, [msg(i) for i in range(30)])
    originals = server_messages(dovecot, user)
    acct = account(dovecot, user)
    with pytest.raises(SimulatedCrash):
        await local.fetch(
            acct,
            sink=CrashingSink(local.maildir, when),
            tuning=FetchTuning(batch_messages=10, batch_seconds=3600),
        )
    with Ledger(local.ledger, f"{user.login}@{dovecot.host}") as ledger:
        assert ledger.count("committing") == 10
    reported: list[Any] = []
    stats = await local.fetch(acct, on_delivered=reported.extend)
    assert stats.recovered == 10  # found delivered (or finished from tmp/), not downloaded
    assert stats.new == 20
    assert len({d.locator for d in reported}) == 30  # the recovered ones are reported too
    assert_same_mail(local.contents(), originals)


async def test_two_downloads_at_once_are_refused(
    dovecot: Dovecot, user: User, local: Local
) -> None:
    deliver_many(dovecot, user, [msg(i) for i in range(50)])
    acct = account(dovecot, user)
    started = asyncio.Event()

    def on_progress(p: FetchProgress) -> None:
        if p.phase == "listing":
            started.set()

    first = asyncio.ensure_future(local.fetch(acct, progress=on_progress))
    await asyncio.wait_for(started.wait(), 10)
    with pytest.raises(LedgerBusy):
        await local.fetch(acct)
    assert (await first).new == 50
    assert len(local.contents()) == 50


# ---------------------------------------------------------------------------- deliver_to IMAP


def imap_account(dovecot: Dovecot, user: User) -> dict[str, Any]:
    return {
        "work": {
            "email": user.email,
            "imap": {
                "host": dovecot.host,
                "port": dovecot.ports.imaps,
                "security": "tls",
                "user": user.login,
                "password": user.password,
                "ca_file": str(dovecot.ca_file),
            },
        }
    }


class CrashAfterAppend(StoreSink):
    async def commit(self, spools: Sequence[_FileSpool]) -> list[str]:
        await super().commit(spools)
        raise SimulatedCrash


async def test_deliver_to_an_imap_folder_exactly_once(
    dovecot: Dovecot, user: User, user2: User, tmp_path: Path
) -> None:
    deliver_many(dovecot, user, [msg(i, tag="fetched") for i in range(25)])
    deliver_many(dovecot, user, [b"From: x\nSubject: bare LF\n\nline\nline\n"])
    originals = server_messages(dovecot, user)
    config = config_from_dict(
        {
            "accounts": {
                "pop": _pop_section(dovecot, user, "work/Home"),
                **imap_account(dovecot, user2),
            }
        }
    )
    acct = config.accounts["pop"]
    ledger = tmp_path / "ledger.sqlite3"
    spool = tmp_path / "spool"
    # The IMAP account is not running (as for ``kittiwake sync`` of the POP3 account alone):
    # its store delivers on one-off connections.
    work = ImapAccount(config.accounts["work"], Cache(tmp_path / "work.sqlite3"), EventBus())
    stores = {"work": work}
    crashing = CrashAfterAppend(work, "Home", spool)
    try:
        with pytest.raises(SimulatedCrash):
            await fetch_once(
                acct,
                stores=stores,
                sink=crashing,
                ledger=ledger,
                tuning=FetchTuning(batch_messages=8, batch_seconds=3600),
            )
        _as_old_tokens(ledger, 4)
        stats = await fetch_once(acct, stores=stores, ledger=ledger)
        assert stats.recovered == 8 and stats.new == 18
        assert (await fetch_once(acct, stores=stores, ledger=ledger)).new == 0
    finally:
        work.cache.close()
    imap = imap_device(dovecot, user2)
    try:
        stored = imap_fetch_all(imap, "Home")
        imap.select("Home", readonly=True)
        _typ, unseen = imap.search(None, "UNSEEN")
        assert len(unseen[0].split()) == 26  # appended unread
    finally:
        imap.logout()
    assert len(stored) == 26, "every message exactly once in the IMAP folder"
    assert sorted(stored) == sorted(originals)
    assert list(spool.iterdir()) == []


def _as_old_tokens(ledger: Path, count: int) -> None:
    """Rewrite ``count`` interrupted deliveries' tokens as they were written before the
    store API (``uidvalidity`` and ``uidnext`` instead of ``mark``): they stay readable."""
    db = sqlite3.connect(ledger)
    try:
        rows = db.execute("SELECT uidl, token FROM downloads WHERE state = 'committing'").fetchall()
        assert len(rows) >= count
        for uidl, token in rows[:count]:
            info = json.loads(token)
            validity, uidnext = info.pop("mark").split(":")
            info.update(uidvalidity=int(validity), uidnext=int(uidnext))
            db.execute("UPDATE downloads SET token = ? WHERE uidl = ?", (json.dumps(info), uidl))
        db.commit()
    finally:
        db.close()


def _pop_section(dovecot: Dovecot, user: User, deliver_to: str) -> dict[str, Any]:
    return {
        "email": user.email,
        "pop3": {
            "host": dovecot.host,
            "port": dovecot.ports.pop3s,
            "security": "tls",
            "user": user.login,
            "password": user.password,
            "ca_file": str(dovecot.ca_file),
            "deliver_to": deliver_to,
        },
    }
