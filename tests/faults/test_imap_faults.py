"""IMAP under link faults that are not a clean cut: a stall in the middle of an APPEND literal,
a half-open link (nothing comes back), and a link that delivers one byte at a time. The server's
state is checked over a separate connection; nothing may be lost or stored twice."""

from __future__ import annotations

import imaplib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from harness import SPECIAL_USE_MAILBOXES, Dovecot, TcpProxy, User
from harness.mail import append_many

from kittiwake.core.api import MailApi
from kittiwake.core.config import config_from_dict
from kittiwake.core.engine import Engine
from kittiwake.core.errors import KittiwakeError
from kittiwake.core.events import ConnectionChanged, ConnState
from kittiwake.core.imap.account import Tuning
from kittiwake.core.journal import Action


def device(server: Dovecot, user: User) -> imaplib.IMAP4:
    assert server.ports.imap is not None
    imap = imaplib.IMAP4(server.host, server.ports.imap, timeout=30)
    imap.login(user.login, user.password)
    return imap


def subjects(imap: imaplib.IMAP4, folder: str) -> list[str]:
    _, count = imap.select(f'"{folder}"', readonly=True)
    if count[0] == b"0":
        return []
    _, data = imap.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    return sorted(
        item[1].decode().strip().removeprefix("Subject: ")
        for item in data
        if isinstance(item, tuple)
    )


def flagged(imap: imaplib.IMAP4) -> int:
    imap.select("INBOX", readonly=True)
    _, data = imap.search(None, "FLAGGED")
    return len(data[0].split())


@pytest.fixture
async def api_via(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Callable[[User, TcpProxy], MailApi]]:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    made: list[MailApi] = []

    def make(user: User, proxy: TcpProxy) -> MailApi:
        imap = {
            "host": proxy.host,
            "port": proxy.port,
            "security": "none",
            "user": user.login,
            "password": user.password,
            "timeout": 2,
        }
        smtp = {"host": proxy.host, "port": 1, "security": "none"}  # drafts only
        config = config_from_dict(
            {"accounts": {"me": {"email": user.email, "imap": imap, "smtp": smtp}}}
        )
        tuning = Tuning(backoff_min=0.05, backoff_max=0.2, dead_after=2.0)
        api = MailApi(Engine(config, tmp_path / "cache", tuning))
        made.append(api)
        return api

    yield make
    for api in made:
        await api.stop()


@pytest.fixture
def plain(dovecot_factory: Callable[..., Dovecot]) -> Dovecot:
    return dovecot_factory(tls=False)


async def test_a_stall_inside_an_append_literal_leaves_one_draft(
    plain: Dovecot,
    api_via: Callable[[User, TcpProxy], MailApi],
    proxy_factory: Callable[[str, int], TcpProxy],
) -> None:
    user = plain.add_user("stall")
    assert plain.ports.imap is not None
    proxy = proxy_factory(plain.host, plain.ports.imap)
    api = api_via(user, proxy)
    events = api.subscribe()
    api.start()
    await api.engine.imap["me"].wait_synced(15)
    local = api.compose.new("me", "someone@example.test", "stalled plans")
    stalled = proxy.stall_after(b"Subject: stalled", "client")
    with pytest.raises(KittiwakeError):
        await api.save_draft(local)  # the APPEND times out: the link hangs mid-literal
    assert stalled.is_set()
    await events.wait_for(ConnectionChanged, 10, state=ConnState.OFFLINE)
    proxy.kill_connections()  # the hung link finally drops; the server never got the end
    await api.engine.imap["me"].wait_synced(15)
    saved = await api.save_draft(local)
    await api.engine.imap["me"].flush_actions()
    assert saved.server_uid is not None
    assert subjects(device(plain, user), "Drafts") == ["stalled plans"]


async def test_a_half_open_link_is_noticed_and_the_action_lands_once(
    plain: Dovecot,
    api_via: Callable[[User, TcpProxy], MailApi],
    proxy_factory: Callable[[str, int], TcpProxy],
) -> None:
    """The server's answers stop coming (a blackhole) while a copy is on its way: the account
    notices within its timeout, reconnects, and the copy exists once."""
    user = plain.add_user("blackhole")
    other = device(plain, user)
    append_many(other, 3)
    assert plain.ports.imap is not None
    proxy = proxy_factory(plain.host, plain.ports.imap)
    api = api_via(user, proxy)
    events = api.subscribe()
    api.start()
    await api.engine.imap["me"].wait_synced(15)
    swallowed = proxy.blackhole("server")
    api.act(
        "me", Action(kind="copy", folder="INBOX", uidvalidity=None, uids=(1, 2), dest="Archive")
    )
    await events.wait_for(ConnectionChanged, 15, state=ConnState.OFFLINE)
    assert swallowed.is_set()
    proxy.heal()
    proxy.kill_connections()
    await api.engine.imap["me"].wait_synced(15)
    await api.engine.imap["me"].flush_actions()
    assert api.pending_actions("me") == 0
    assert subjects(other, "Archive") == ["Message 1", "Message 2"]


async def test_one_byte_at_a_time_changes_nothing(
    plain: Dovecot,
    api_via: Callable[[User, TcpProxy], MailApi],
    proxy_factory: Callable[[str, int], TcpProxy],
) -> None:
    """Every response split at every byte: the sync and an action work as on a whole link."""
    user = plain.add_user("sliced")
    other = device(plain, user)
    append_many(other, 5)
    assert plain.ports.imap is not None
    proxy = proxy_factory(plain.host, plain.ports.imap)
    proxy.chop(1)
    api = api_via(user, proxy)
    api.start()
    await api.engine.imap["me"].wait_synced(30)
    assert len(api.message_index("me", "INBOX")) == 5
    api.act(
        "me",
        Action(kind="flags", folder="INBOX", uidvalidity=None, uids=(2, 4), add=("\\Flagged",)),
    )
    await api.engine.imap["me"].flush_actions()
    assert flagged(other) == 2
    assert set(proxy.write_sizes["server"]) == {1}


async def test_a_folder_refused_as_deleted_under_the_session_is_read_on_a_new_one(
    plain: Dovecot,
    api_via: Callable[[User, TcpProxy], MailApi],
    proxy_factory: Callable[[str, int], TcpProxy],
) -> None:
    """Dovecot refuses, for the rest of a session, a folder that another session deleted and
    recreated while this one had it open or cached ("NO Mailbox was deleted under us" to each
    SELECT; a FETCH gets "BYE" with the same words), while a new session reads it. Here the
    fault proxy gives the real Dovecot's SELECT that answer: the account drops the
    connection as if it had said BYE, comes back on a new one, and the message loads."""
    user = plain.add_user("stale")
    other = device(plain, user)
    other.create("Proj")
    append_many(other, 2, "Proj")
    for name in SPECIAL_USE_MAILBOXES:  # created on disk now, not reported later by NOTIFY
        other.status(name, "(UIDVALIDITY)")
    assert plain.ports.imap is not None
    proxy = proxy_factory(plain.host, plain.ports.imap)
    api = api_via(user, proxy)
    events = api.subscribe()
    api.start()
    account = api.engine.imap["me"]
    await account.wait_synced(15)
    assert account.client.selected != "Proj"  # the body load SELECTs it
    refused = proxy.rewrite_line(
        b"Select completed",
        lambda line: line.split(b" ", 1)[0] + b" NO Mailbox was deleted under us (0.001 secs).\r\n",
    )
    # One load: the first connection is dropped on the refusal, the load waits for the next
    # one and reads the message there (before, the reader showed the loss and a second try
    # by the user was needed; before that, the stale connection was kept and refused it for good).
    loaded = await api.message("me", "Proj", 1)
    assert loaded is not None and loaded.subject == "Message 1"
    assert refused.is_set()
    offline = await events.wait_for(ConnectionChanged, 10, state=ConnState.OFFLINE)
    assert "refused Proj" in (offline.reason or "")
    await events.wait_for(ConnectionChanged, 10, state=ConnState.ONLINE)
