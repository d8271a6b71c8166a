"""Faults from the real Dovecot itself: a restart (killed, like a crash) in the middle of a
sync with an action on its way, and a cap on connections per user and IP
(``mail_max_userip_connections``) lower than the account would like. The server is checked
over a separate connection; nothing may be lost or applied twice."""

from __future__ import annotations

import asyncio
import imaplib
import os
import pwd
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from harness import Dovecot, User
from harness.mail import append_many

from kittiwake.core.api import MailApi
from kittiwake.core.config import config_from_dict
from kittiwake.core.engine import Engine
from kittiwake.core.events import ConnectionChanged, ConnState, MessagesAdded, SyncProgress
from kittiwake.core.imap.account import Tuning
from kittiwake.core.journal import Action


def device(server: Dovecot, user: User) -> imaplib.IMAP4:
    assert server.ports.imap is not None
    imap = imaplib.IMAP4(server.host, server.ports.imap, timeout=30)
    imap.login(user.login, user.password)
    return imap


def count(imap: imaplib.IMAP4, folder: str, criteria: str = "ALL") -> int:
    imap.select(f'"{folder}"', readonly=True)
    _, data = imap.search(None, criteria)
    return len(data[0].split())


@pytest.fixture
async def api_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Callable[..., MailApi]]:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    made: list[MailApi] = []

    def make(
        server: Dovecot, user: User, timeout: float = 3, tuning: Tuning | None = None
    ) -> MailApi:
        imap = {
            "host": server.host,
            "port": server.ports.imap,
            "security": "none",
            "user": user.login,
            "password": user.password,
            "timeout": timeout,
        }
        smtp = {"host": server.host, "port": 1, "security": "none"}
        config = config_from_dict(
            {"accounts": {"me": {"email": user.email, "imap": imap, "smtp": smtp}}}
        )
        tuning = tuning or Tuning(backoff_min=0.05, backoff_max=0.3, dead_after=2.0, poll_every=0.5)
        api = MailApi(Engine(config, tmp_path / "cache", tuning))
        made.append(api)
        return api

    yield make
    for api in made:
        await api.stop()


#: Every lock file of the restarted Dovecot names its owner from the moment it exists (made
#: whole, then linked): with O_EXCL (the default) a kill between creating it and writing the
#: owner's pid leaves one Dovecot cannot tell is stale, so it waits two minutes for it to age
#: (see test_a_folder_left_locked_by_a_killed_dovecot_is_retried_backing_off). A kill
#: anywhere else leaves a lock whose owner is seen dead within seconds.
NAMED_LOCKS = "dotlock_use_excl = no\n"


async def test_a_dovecot_restart_mid_sync_loses_nothing_and_applies_the_copy_once(
    dovecot_factory: Callable[..., Dovecot], api_for: Callable[[Dovecot, User], MailApi]
) -> None:
    server = dovecot_factory(tls=False, extra_conf=NAMED_LOCKS)
    user = server.add_user("restart")
    other = device(server, user)
    append_many(other, 400)
    other.logout()
    api = api_for(server, user)
    events = api.subscribe()
    api.start()
    await events.wait_for(SyncProgress, 15)  # the first sync is under way
    api.act(
        "me", Action(kind="copy", folder="INBOX", uidvalidity=None, uids=(399, 400), dest="Archive")
    )
    await asyncio.to_thread(server.restart, graceful=False)  # killed, then started again
    account = api.engine.imap["me"]
    for _ in range(5):  # the restart may cut the flush; the account reconnects by itself
        await account.wait_synced(30)
        try:
            await account.flush_actions()
            break
        except Exception:  # a connection lost on the way: wait and go on
            await events.wait_for(ConnectionChanged, 15, state=ConnState.ONLINE)
    assert api.pending_actions("me") == 0
    await account.wait_synced(30)
    other = device(server, user)
    assert count(other, "Archive") == 2
    assert count(other, "INBOX") == 400
    assert len(api.message_index("me", "INBOX")) == 400


async def test_a_cap_on_connections_per_user_still_syncs_and_acts_once(
    dovecot_factory: Callable[..., Dovecot], api_for: Callable[[Dovecot, User], MailApi]
) -> None:
    """Two connections per user and IP, one taken by another client: the account works with
    what it gets, syncs, polls for what it cannot watch, and applies an action once. (Before:
    the refused watcher connection was taken for a wrong password, and the account
    reconnected for ever without finishing a sync.)"""
    server = dovecot_factory(tls=False, extra_conf="mail_max_userip_connections = 2\n")
    user = server.add_user("capped")
    other = device(server, user)
    append_many(other, 5)
    other.select("INBOX")  # stays connected: one of the two
    api = api_for(server, user)
    events = api.subscribe()
    api.start()
    account = api.engine.imap["me"]
    await account.wait_synced(30)
    api.act("me", Action(kind="copy", folder="INBOX", uidvalidity=None, uids=(3,), dest="Archive"))
    await account.flush_actions()
    assert api.pending_actions("me") == 0
    assert count(other, "Archive") == 1
    append_many(other, 1, start=6)  # another client's new message is noticed by polling
    seen: list[str] = []
    while "Message 6" not in seen:  # the first sync's batches come first
        added = await events.wait_for(MessagesAdded, 15, folder="INBOX")
        seen += [s.envelope.subject for s in added.summaries]
    assert len(api.message_index("me", "INBOX")) == 6
    lost = [e for e in events.pending() if isinstance(e, ConnectionChanged)]
    assert all(e.state is not ConnState.OFFLINE for e in lost), lost


async def test_every_connection_taken_is_retried_as_busy_not_a_wrong_password(
    dovecot_factory: Callable[..., Dovecot], api_for: Callable[[Dovecot, User], MailApi]
) -> None:
    """The cap is reached by another client before the account logs in: it says so, stays
    offline retrying (not "wrong password", which waits for a long while), and syncs as soon
    as the other client leaves."""
    server = dovecot_factory(tls=False, extra_conf="mail_max_userip_connections = 1\n")
    user = server.add_user("full")
    other = device(server, user)
    append_many(other, 3)
    api = api_for(server, user)
    events = api.subscribe()
    api.start()
    refused = await events.wait_for(ConnectionChanged, 15, state=ConnState.OFFLINE)
    assert "has too many connections open to this account" in (refused.reason or "")
    other.logout()
    account = api.engine.imap["me"]
    await account.wait_synced(15)
    assert len(api.message_index("me", "INBOX")) == 3
    states = [e.state for e in events.pending() if isinstance(e, ConnectionChanged)]
    assert ConnState.AUTH_FAILED not in states, states


def lock_left_by_a_kill(server: Dovecot, user: User, folder: str) -> Path:
    """The Maildir lock of ``folder`` as a Dovecot killed between creating it and writing its
    pid into it leaves it: empty, so whoever finds it waits for it to age (two minutes)."""
    mail = pwd.getpwnam("mail")
    lock = server.maildir(user) / f".{folder}" / "dovecot-uidlist.lock"
    lock.touch(mode=0o600)
    os.chown(lock, mail.pw_uid, mail.pw_gid)
    return lock


async def test_a_folder_left_locked_by_a_killed_dovecot_is_retried_backing_off(
    dovecot_factory: Callable[..., Dovecot], api_for: Callable[..., MailApi]
) -> None:
    """Every session that reads the locked folder (the watcher's NOTIFY covers it) stalls
    until the lock ages, and Dovecot keeps each session given up on: it never reads our side
    closing. Each login reset the backoff, so the account came back every timeout + 50 ms
    and filled the cap on connections per user within 30 s (CI: the restart test above timed
    out, its watcher refused for "too many connections"). The backoff now grows until a
    sync completes, and the account syncs as soon as the lock has gone."""
    server = dovecot_factory(tls=False)
    user = server.add_user("stalled")
    other = device(server, user)
    append_many(other, 3)
    other.select("Archive")  # made on disk
    other.logout()
    lock = lock_left_by_a_kill(server, user, "Archive")
    tuning = Tuning(backoff_min=0.2, backoff_max=30.0, dead_after=2.0, poll_every=0.5)
    api = api_for(server, user, timeout=1, tuning=tuning)
    events = api.subscribe()
    api.start()
    delays: list[float] = []
    while len(delays) < 4:  # each one a login, then a command unanswered for a second
        lost = await events.wait_for(ConnectionChanged, 15, state=ConnState.OFFLINE)
        assert lost.retry_in is not None
        delays.append(lost.retry_in)
    assert delays[3] >= 0.2 * 2**3 / 2, delays  # (before: every one under 0.2 s)
    lock.unlink()
    account = api.engine.imap["me"]
    await account.wait_synced(30)
    assert len(api.message_index("me", "INBOX")) == 3
