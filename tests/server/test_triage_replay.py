"""Replaying the journal after a fault: nothing is copied twice, nothing the user did is lost.

The faults are real: a proxy between Kittiwake and Dovecot cuts the connection after the
server ran a COPY and before its reply reached us; the server is stopped while the user acts
and the app is quit. The server's state is checked over a separate connection (another device).
"""

from __future__ import annotations

import imaplib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from harness import Dovecot, User
from harness.mail import BARE_CAPS, append_many
from harness.proxy import TcpProxy

from kittiwake.core.api import MailApi
from kittiwake.core.config import config_from_dict
from kittiwake.core.engine import Engine
from kittiwake.core.errors import KittiwakeError
from kittiwake.core.events import ConnectionChanged, ConnState
from kittiwake.core.imap.account import Tuning
from kittiwake.core.journal import Action


def plain_device(server: Dovecot, user: User) -> imaplib.IMAP4:
    """Another device, on the plain port (this Dovecot has no TLS, so the proxy sees text)."""
    assert server.ports.imap is not None
    device = imaplib.IMAP4(server.host, server.ports.imap, timeout=30)
    device.login(user.login, user.password)
    return device


def subjects(device: imaplib.IMAP4, folder: str) -> list[str]:
    device.select(f'"{folder}"', readonly=True)
    _, data = device.uid("FETCH", "1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    return sorted(
        item[1].decode().strip().removeprefix("Subject: ")
        for item in data
        if isinstance(item, tuple)
    )


@pytest.fixture
async def api_via(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Callable[..., MailApi]]:
    """A MailApi on one cache directory, reaching a Dovecot without TLS through a proxy
    (plain text, so the proxy can see where to cut)."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))  # local drafts, outbox
    made: list[MailApi] = []

    def make(user: User, proxy: TcpProxy, backoff: float = 0.05) -> MailApi:
        config = config_from_dict(
            {
                "accounts": {
                    "me": {
                        "email": user.email,
                        "imap": {
                            "host": proxy.host,
                            "port": proxy.port,
                            "security": "none",
                            "user": user.login,
                            "password": user.password,
                            "timeout": 5,
                        },
                        # Only so that drafts can be written; nothing is sent.
                        "smtp": {"host": proxy.host, "port": 1, "security": "none"},
                    }
                }
            }
        )
        tuning = Tuning(backoff_min=backoff, backoff_max=backoff * 4)
        api = MailApi(Engine(config, tmp_path / "cache", tuning))
        made.append(api)
        return api

    yield make
    for api in made:
        await api.stop()


async def started(api: MailApi) -> None:
    events = api.subscribe()
    api.start()
    try:
        await api.engine.imap["me"].wait_synced(15)
    except TimeoutError:
        raise AssertionError(events.pending()[-3:]) from None


async def settled(api: MailApi) -> None:
    await api.engine.imap["me"].flush_actions()
    assert api.pending_actions("me") == 0


@pytest.mark.parametrize(
    ("kind", "caps"),
    [
        pytest.param("copy", "", id="copy"),
        # A move on a server without MOVE is COPY + \Deleted + UID EXPUNGE.
        pytest.param("move", BARE_CAPS, id="move-without-MOVE"),
    ],
)
@pytest.mark.parametrize("after", ["reconnect", "restart"])
async def test_a_copy_whose_reply_was_lost_is_not_copied_again(
    api_via: Callable[..., MailApi],
    dovecot_factory: Callable[..., Dovecot],
    proxy_factory: Callable[[str, int], TcpProxy],
    kind: str,
    caps: str,
    after: str,
) -> None:
    server = dovecot_factory(tls=False, extra_conf=caps)
    user = server.add_user("lou")
    device = plain_device(server, user)
    append_many(device, 3)
    assert server.ports.imap is not None
    proxy = proxy_factory(server.host, server.ports.imap)
    # "restart": the app is quit before it can reconnect (a long backoff), then started again.
    api = api_via(user, proxy, backoff=0.05 if after == "reconnect" else 60.0)
    await started(api)
    assert api.engine.imap["me"].client.has("MOVE") == (kind == "copy")
    events = api.subscribe()
    proxy.cut_after(b"[COPYUID", "server")  # the server copied; its OK never arrives
    api.act("me", Action(kind=kind, folder="INBOX", uidvalidity=None, uids=(1, 2), dest="Archive"))  # type: ignore[arg-type]
    await events.wait_for(ConnectionChanged, 10, state=ConnState.OFFLINE)
    assert subjects(device, "Archive") == ["Message 1", "Message 2"]  # the first COPY ran
    if after == "restart":
        await api.stop()
        api = api_via(user, proxy)
        assert api.pending_actions("me") == 1  # still in the journal, marked as sent
        await started(api)
    else:
        await api.engine.imap["me"].wait_synced(15)
    await settled(api)
    assert subjects(device, "Archive") == ["Message 1", "Message 2"]
    expected_inbox = ["Message 3"] if kind == "move" else ["Message 1", "Message 2", "Message 3"]
    assert subjects(device, "INBOX") == expected_inbox
    if after == "reconnect":  # undo still finds the copies made by the lost COPY
        assert api.undo("me").startswith("Undone")
        await settled(api)
        assert subjects(device, "INBOX") == ["Message 1", "Message 2", "Message 3"]
        assert subjects(device, "Archive") == []


async def test_a_copy_sent_again_after_its_reply_was_lost_copies_the_missing_ones(
    api_via: Callable[..., MailApi],
    dovecot_factory: Callable[..., Dovecot],
    proxy_factory: Callable[[str, int], TcpProxy],
) -> None:
    """The replay copies what the lost COPY did not: here another device removed one copy in
    between, so exactly that one is copied again."""
    server = dovecot_factory(tls=False)
    user = server.add_user("max")
    device = plain_device(server, user)
    append_many(device, 3)
    assert server.ports.imap is not None
    proxy = proxy_factory(server.host, server.ports.imap)
    api = api_via(user, proxy, backoff=60.0)
    await started(api)
    events = api.subscribe()
    proxy.cut_after(b"[COPYUID", "server")
    api.act(
        "me", Action(kind="copy", folder="INBOX", uidvalidity=None, uids=(1, 2), dest="Archive")
    )
    await events.wait_for(ConnectionChanged, 10, state=ConnState.OFFLINE)
    await api.stop()
    device.select("Archive")
    device.uid("STORE", "1", "+FLAGS", "(\\Deleted)")  # the copy of Message 1
    device.expunge()
    api = api_via(user, proxy)
    await started(api)
    await settled(api)
    assert subjects(device, "Archive") == ["Message 1", "Message 2"]


async def test_a_draft_whose_append_reply_was_lost_is_replaced_not_duplicated(
    api_via: Callable[..., MailApi],
    dovecot_factory: Callable[..., Dovecot],
    proxy_factory: Callable[[str, int], TcpProxy],
) -> None:
    """The APPEND of a draft ran but its reply was cut: the next save replaces that copy too."""
    server = dovecot_factory(tls=False)
    user = server.add_user("ora")
    device = plain_device(server, user)
    assert server.ports.imap is not None
    proxy = proxy_factory(server.host, server.ports.imap)
    api = api_via(user, proxy)
    await started(api)
    events = api.subscribe()
    local = api.compose.new("me", "someone@example.test", "plans")
    proxy.cut_after(b"[APPENDUID", "server")
    with pytest.raises(KittiwakeError):
        await api.save_draft(local)
    await events.wait_for(ConnectionChanged, 10, state=ConnState.OFFLINE)
    assert subjects(device, "Drafts") == ["plans"]  # the APPEND ran
    await api.engine.imap["me"].wait_synced(15)
    await api.save_draft(local)
    await settled(api)
    assert subjects(device, "Drafts") == ["plans"]
