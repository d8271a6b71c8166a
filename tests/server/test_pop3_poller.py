"""Periodic POP3 checks while the app runs: events for the status bar, ctrl+r, failures."""

from __future__ import annotations

import smtplib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import Dovecot, TcpProxy, User, make_message

from kittiwake.core.config import Account, config_from_dict
from kittiwake.core.events import ConnectionChanged, ConnState, EventBus, SyncError, SyncProgress
from kittiwake.core.maildir import INBOX, Maildir
from kittiwake.core.pop3.fetch import FetchProgress, FetchStats, fetch_once
from kittiwake.core.pop3.poller import Pop3Poller
from kittiwake.core.pop3.sinks import MaildirSink

DEADLINE = 10.0


def deliver(dovecot: Dovecot, user: User, count: int) -> None:
    with smtplib.LMTP(dovecot.host, dovecot.ports.lmtp, timeout=60) as lmtp:
        for i in range(count):
            raw = make_message(sender="a@example.net", to=[user.email], subject=f"s{i}", body="b")
            assert not lmtp.sendmail("a@example.net", [user.email], raw)


def pop_account(dovecot: Dovecot, user: User, *, port: int | None = None, pw: str = "") -> Account:
    cfg = {
        "accounts": {
            "home": {
                "email": user.email,
                "pop3": {
                    "host": dovecot.host,
                    "port": port or dovecot.ports.pop3s,
                    "user": user.login,
                    "password": pw or user.password,
                    "ca_file": str(dovecot.ca_file),
                    "timeout": 5,
                },
            }
        }
    }
    return config_from_dict(cfg).accounts["home"]


def fetcher(acct: Account, root: Path) -> Callable[..., Any]:
    maildir = Maildir(root / "mail")

    async def fetch(progress: Callable[[FetchProgress], None]) -> FetchStats:
        return await fetch_once(
            acct, sink=MaildirSink(maildir), ledger=root / "ledger.sqlite3", progress=progress
        )

    return fetch


async def test_checks_publish_state_progress_and_next_check(
    dovecot: Dovecot, user: User, tmp_path: Path
) -> None:
    deliver(dovecot, user, 3)
    bus = EventBus()
    poller = Pop3Poller("home", fetcher(pop_account(dovecot, user), tmp_path), bus, every=3600)
    async with bus.subscribe() as events:
        poller.start()
        try:
            await events.wait_for(ConnectionChanged, DEADLINE, state=ConnState.CONNECTING)
            progress = await events.wait_for(SyncProgress, DEADLINE, folder=INBOX)
            assert progress.total == 3
            online = await events.wait_for(ConnectionChanged, DEADLINE, state=ConnState.ONLINE)
            assert online.retry_in == 3600
            assert poller.last_stats is not None and poller.last_stats.new == 3
            assert poller.next_check_in is not None and 3590 < poller.next_check_in <= 3600

            deliver(dovecot, user, 2)  # ctrl+r
            stats = await poller.check_now()
            assert stats is not None and stats.new == 2
            assert len(Maildir(tmp_path / "mail").messages(INBOX)) == 5
        finally:
            await poller.stop()


async def test_failures_are_reported_and_retried_sooner_when_transient(
    dovecot: Dovecot,
    user: User,
    tmp_path: Path,
    proxy_factory: Callable[[str, int], TcpProxy],
) -> None:
    assert dovecot.ports.pop3s is not None
    bus = EventBus()
    wrong = Pop3Poller(
        "home",
        fetcher(pop_account(dovecot, user, pw="wrong-password"), tmp_path / "a"),
        bus,
        every=600,
    )
    async with bus.subscribe() as events:
        assert await wrong.check_now() is None
        published = events.pending()  # everything is published before check_now returns
        [failed] = [e for e in published if isinstance(e, ConnectionChanged) and e.reason]
        assert failed.state == ConnState.AUTH_FAILED
        assert "rejected the login" in (failed.reason or "")
        assert failed.retry_in == 600  # a wrong password does not fix itself quickly
        [error] = [e for e in published if isinstance(e, SyncError)]
        assert error.message == failed.reason

    proxy = proxy_factory(dovecot.host, dovecot.ports.pop3s)
    proxy.refuse_new_connections()
    down = Pop3Poller(
        "home", fetcher(pop_account(dovecot, user, port=proxy.port), tmp_path / "b"), bus, 600
    )
    async with bus.subscribe() as events:
        assert await down.check_now() is None
        [offline] = [e for e in events.pending() if isinstance(e, ConnectionChanged) and e.reason]
        assert offline.state == ConnState.OFFLINE
        assert f":{proxy.port}" in (offline.reason or "")
        assert offline.retry_in is not None and offline.retry_in <= 6.0  # backoff, not 10 min
        proxy.accept_new_connections()
        assert await down.check_now() is not None
        await events.wait_for(ConnectionChanged, DEADLINE, state=ConnState.ONLINE)
