"""Gmail's limits (issue 18): 15 connections per account, and its command and bandwidth limits.

Against the Gmail test profile (``harness/gmail.py``) in the shapes Google documents: a login
over the cap answered ``NO [ALERT] Too many simultaneous connections. (Failure)``, and, while
the account is over its bandwidth limits, every connection cut with ``* BYE [ALERT] Account
exceeded command or bandwidth limits`` and every login refused with the same words. A command
refused that way mid-session is shown on Dovecot through the fault proxy. Retries are counted
through events in a window of time; no test sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import imaplib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from harness import Dovecot, TcpProxy, TestCA
from harness.clients import imap_device, wait_for_async
from harness.gmail import MAX_CONNECTIONS, GmailProfile
from harness.mail import append_many
from test_imap_sync import EngineFactory, engine
from test_smtp_outbox import FAST, RAW
from test_smtp_outbox import account as smtp_account

from kittiwake.core.events import ConnectionChanged, ConnState, SyncError
from kittiwake.core.imap.account import Tuning
from kittiwake.core.imap.codes import OWN_CONNECTIONS
from kittiwake.core.journal import Action
from kittiwake.core.models import FLAGGED
from kittiwake.core.sanitize import clean_line
from kittiwake.core.smtp.filing import SentFiler
from kittiwake.core.smtp.outbox import CopyState, ItemState, Outbox, OutboxRunner

pytestmark = pytest.mark.servers

__all__ = ["engine"]  # the engine fixture of test_imap_sync, used here

TOO_MANY = "too many connections open to this account"
OVER_LIMITS = "went over its command or bandwidth limits"


@pytest.fixture
def gmail(tls_ca: TestCA) -> Iterator[GmailProfile]:
    """Gmail as Google documents it: a login over 15 refused with ``NO [ALERT]``."""
    profile = GmailProfile(tls_ca, refuse="login")
    profile.start()
    yield profile
    profile.stop()


def _devices(gmail: GmailProfile, n: int) -> list[imaplib.IMAP4_SSL]:
    return [imap_device(gmail, gmail.user) for _ in range(n)]  # type: ignore[arg-type]


def _log_out(devices: list[imaplib.IMAP4_SSL]) -> None:
    for device in devices:
        with contextlib.suppress(imaplib.IMAP4.error, OSError):
            device.logout()


async def _states(events: object, window: float) -> list[ConnectionChanged]:
    """Every ConnectionChanged published within ``window`` seconds."""
    seen: list[ConnectionChanged] = []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(window):
            async for event in events:  # type: ignore[attr-defined]
                if isinstance(event, ConnectionChanged):
                    seen.append(event)
    return seen


def test_the_profile_refuses_a_login_over_the_cap_as_gmail_does(tls_ca: TestCA) -> None:
    profile = GmailProfile(tls_ca, max_connections=2, refuse="login")
    profile.start()
    opened = _devices(profile, 2)
    try:
        with pytest.raises(imaplib.IMAP4.error, match=r"\[ALERT\] Too many simultaneous"):
            _devices(profile, 1)
        assert profile.stats()["refused"] == 1
    finally:
        _log_out(opened)
        profile.stop()


async def test_a_login_over_gmails_cap_is_told_in_plain_words_and_retried_with_backoff(
    engine: EngineFactory, gmail: GmailProfile
) -> None:
    """The user's other devices hold all 15: the status says so (not "wrong password", not
    Gmail's bare words), and the retries back off; once a device lets go, Kittiwake is in."""
    others = _devices(gmail, MAX_CONNECTIONS)
    account, events = await engine(
        gmail.user, gmail, tuning=Tuning(backoff_min=0.2, backoff_max=0.8, poll_every=60)
    )
    try:
        account.start()
        states = await _states(events, 2.0)
        offline = [e for e in states if e.state is ConnState.OFFLINE]
        assert offline and ConnState.AUTH_FAILED not in {e.state for e in states}
        reason = offline[0].reason or ""
        assert TOO_MANY in reason and "other devices or programs" in reason
        assert f"Kittiwake uses at most {OWN_CONNECTIONS}" in reason
        assert "password" not in reason and reason == clean_line(reason)
        # Backoff, not a tight loop: 0.1-0.2 s, then 0.2-0.4, 0.4-0.8, 0.4-0.8, ... in 2 s.
        attempts = sum(e.state is ConnState.CONNECTING for e in states)
        assert 2 <= attempts <= 8, attempts
        waits = [e.retry_in or 0 for e in offline]
        assert max(waits) > 0.2 >= waits[0]  # the waits grow
        assert gmail.stats()["refused"] <= 8
        _log_out(others[:3])
        await account.wait_synced(15)
        assert gmail.stats()["logged_in"] <= MAX_CONNECTIONS
    finally:
        _log_out(others)


async def test_kittiwake_holds_at_most_three_connections_following_the_user_between_folders(
    engine: EngineFactory, gmail: GmailProfile
) -> None:
    """Without NOTIFY (Gmail has none) each folder the user opens is watched over IDLE on a
    connection of its own: the one of the folder left is closed, so a user going through
    their labels never uses up Gmail's 15; the folder open last is still watched live."""
    labels = [f"Label{i}" for i in range(6)]
    device = imap_device(gmail, gmail.user)  # type: ignore[arg-type]
    for label in labels:
        assert device.create(label)[0] == "OK"
        append_many(device, 1, mailbox=label)
    device.logout()
    account, events = await engine(
        gmail.user, gmail, tuning=Tuning(backoff_min=0.05, backoff_max=0.5, poll_every=60)
    )
    account.start()
    await account.wait_synced(15)
    for label in labels:
        await account.watch_folder(label, timeout=10)
        await wait_for_async(
            lambda: gmail.stats()["logged_in"] <= OWN_CONNECTIONS,
            timeout=5,
            message=f"at most {OWN_CONNECTIONS} connections after opening {label}",
        )
    # The device's, the command connection, INBOX's watcher, one per folder: none retried.
    assert gmail.stats()["logins"] <= 1 + 1 + 1 + len(labels)
    assert not [e for e in events.pending() if isinstance(e, SyncError)]
    # The last folder is watched over IDLE: another device's message shows without a poll.
    device = imap_device(gmail, gmail.user)  # type: ignore[arg-type]
    append_many(device, 1, mailbox=labels[-1], start=2)
    device.logout()
    await wait_for_async(lambda: len(account.cache.uids(labels[-1])) == 2, timeout=10)


async def test_over_the_bandwidth_limits_kittiwake_waits_says_so_and_keeps_pending_actions(
    engine: EngineFactory, gmail: GmailProfile
) -> None:
    """Gmail cuts every connection (``* BYE [ALERT] Account exceeded command or bandwidth
    limits``) and refuses logins for a while: the status says so in plain words, the retries
    wait the long backoff for limits (minutes by default; small here) instead of the one for
    a network failure, and a flag set meanwhile reaches the server once the limit lifts."""
    device = imap_device(gmail, gmail.user)  # type: ignore[arg-type]
    append_many(device, 2)
    device.logout()
    tuning = Tuning(
        backoff_min=0.01, backoff_max=0.02, limit_backoff_min=0.6, limit_backoff_max=1.2
    )
    account, events = await engine(gmail.user, gmail, tuning=tuning)
    account.start()
    await account.wait_synced(15)
    uid = max(account.cache.uids("INBOX"))

    gmail.exceed_bandwidth(60)
    limited = await events.wait_for(ConnectionChanged, 10, state=ConnState.OFFLINE)
    assert OVER_LIMITS in (limited.reason or "") and "keeps your changes" in limited.reason
    assert limited.retry_in >= tuning.limit_backoff_min / 2  # not backoff_min
    account.triage.submit(
        Action(kind="flags", folder="INBOX", uidvalidity=None, uids=(uid,), add=(FLAGGED,))
    )
    states = await _states(events, 1.5)
    # A network failure's backoff (0.01-0.02 s) would have tried ~100 times by now.
    assert sum(e.state is ConnState.CONNECTING for e in states) <= 3
    assert ConnState.AUTH_FAILED not in {e.state for e in states}
    assert all(OVER_LIMITS in (e.reason or "") for e in states if e.state is ConnState.OFFLINE)
    assert gmail.stats()["refused"] <= 3
    assert account.triage.has_pending()

    gmail.lift_bandwidth_limit()
    await account.wait_synced(10)
    await account.flush_actions()
    assert not account.triage.has_pending()
    device = imap_device(gmail, gmail.user)  # type: ignore[arg-type]
    try:
        device.select("INBOX", readonly=True)
        _, data = device.uid("FETCH", str(uid), "(FLAGS)")
        assert b"\\Flagged" in data[0]  # type: ignore[operator]
    finally:
        device.logout()


def _over_limits(line: bytes) -> bytes:
    """A tagged answer turned into Gmail's refusal of a command over its limits."""
    tag = line.split(b" ", 1)[0]
    return tag + b" NO [ALERT] Account exceeded command or bandwidth limits. (Failure)\r\n"


async def test_a_command_refused_over_the_limits_keeps_the_action_for_later(
    engine: EngineFactory,
    dovecot_factory: Callable[..., Dovecot],
    proxy_factory: Callable[[str, int], TcpProxy],
) -> None:
    """``NO [ALERT] Account exceeded ...`` to the STORE of a journaled action is no verdict on
    the action: it is kept (not rolled back and dropped, as a refusal is) and sent after the
    wait, and the status says why."""
    plain = dovecot_factory(tls=False)
    user = plain.add_user("lim")
    device = imaplib.IMAP4(plain.host, plain.ports.imap)
    device.login(user.login, user.password)
    append_many(device, 1)
    device.logout()
    proxy = proxy_factory(plain.host, plain.ports.imap)
    tuning = Tuning(
        backoff_min=0.01, backoff_max=0.02, limit_backoff_min=0.2, limit_backoff_max=0.4
    )
    account, events = await engine(
        user, plain, port=proxy.port, host=proxy.host, security="none", tuning=tuning
    )
    account.start()
    await account.wait_synced(10)
    uid = max(account.cache.uids("INBOX"))
    fired = proxy.rewrite_line(b"OK Store completed", _over_limits)
    account.triage.submit(
        Action(kind="flags", folder="INBOX", uidvalidity=None, uids=(uid,), add=(FLAGGED,))
    )
    limited = await events.wait_for(ConnectionChanged, 10, state=ConnState.OFFLINE)
    assert fired.is_set()
    assert OVER_LIMITS in (limited.reason or "")
    assert limited.retry_in >= tuning.limit_backoff_min / 2
    await account.wait_synced(10)
    await account.flush_actions()
    assert account.cache.flags("INBOX", [uid])[uid] >= {FLAGGED}  # never rolled back
    device = imaplib.IMAP4(plain.host, plain.ports.imap)
    device.login(user.login, user.password)
    device.select("INBOX", readonly=True)
    _, data = device.uid("FETCH", str(uid), "(FLAGS)")
    device.logout()
    assert b"\\Flagged" in data[0]  # type: ignore[operator]
    refused = [e for e in events.pending() if isinstance(e, SyncError) and "Could not" in e.message]
    assert not refused


def _full(line: bytes) -> bytes:
    """A tagged answer to APPEND turned into RFC 5530's "the mailbox is full"."""
    return line.split(b" ", 1)[0] + b" NO [OVERQUOTA] Quota exceeded (mailbox for user is full)\r\n"


async def test_a_sent_copy_refused_for_a_full_mailbox_is_kept_and_the_user_told(
    engine: EngineFactory,
    dovecot_factory: Callable[..., Dovecot],
    proxy_factory: Callable[[str, int], TcpProxy],
    tmp_path: Path,
) -> None:
    """``NO [OVERQUOTA]`` to the APPEND of the Sent copy: the copy stays in the outbox with
    the reason in plain words (the mailbox is full), and is filed once there is room."""
    plain = dovecot_factory(tls=False)
    user = plain.add_user("quota")
    proxy = proxy_factory(plain.host, plain.ports.imap)
    account, _ = await engine(user, plain, port=proxy.port, host=proxy.host, security="none")
    account.start()
    await account.wait_synced(10)
    box = Outbox("me", tmp_path / "outbox")
    box.enqueue(RAW, "me@example.test", ["you@example.test"], message_id="<q@x>", save_sent=True)
    box.record_accepted("<q@x>", ["you@example.test"])  # sent; the copy is still to file
    filer = SentFiler(lambda: {"me": account}, lambda event: None)
    runner = OutboxRunner(smtp_account(), box, on_sent=filer.file_copy, backoff=FAST)
    fired = proxy.rewrite_line(b"OK [APPENDUID", _full)
    (first,) = await runner.flush(force=True)
    assert fired.is_set() and first.copy_pending
    (kept,) = box.items()
    assert kept.state is ItemState.DELIVERED and kept.copy is not CopyState.DONE
    assert kept.copy_error is not None
    assert f"The mailbox on {proxy.host}:{proxy.port} is full (over its quota)" in kept.copy_error
    (second,) = await runner.flush(force=True)
    assert second.status == "filed" and box.items() == []
