"""Per-message isolation against a server that misbehaves as Exchange and Yahoo do.

A plain-text private Dovecot behind the fault proxy (``tests/harness/proxy.py``), whose
responses are rewritten on the way: one message's FETCH response made unreadable, a FETCH
answered ``NO`` after the other messages came (Yahoo, Exchange). Every other message must
show, and the broken one too (from its raw headers).
"""

from __future__ import annotations

import asyncio
import dataclasses
import imaplib
from collections.abc import AsyncIterator, Callable

import pytest
from harness import Dovecot, TcpProxy, make_message
from test_imap_sync import EngineFactory, append_many, engine

from kittiwake.core.errors import AuthFailed, ProtocolError
from kittiwake.core.events import ConnectionChanged, ConnState, FlagsChanged, SyncError
from kittiwake.core.imap.account import Tuning
from kittiwake.core.imap.client import ImapClient
from kittiwake.core.imap.connection import ImapConnection
from kittiwake.core.imap.lazy import LAZY_MIN
from kittiwake.core.models import SEEN
from kittiwake.core.sanitize import clean_line
from kittiwake.core.setup.login import check_login

DEADLINE = 30.0

__all__ = ["engine"]  # the engine fixture of test_imap_sync, used here


def msg(i: int) -> bytes:
    return make_message(
        sender=f"sender{i}@example.net", to=["b@example.test"], subject=f"hello {i}", body="x"
    )


@pytest.fixture
async def setup(
    dovecot_factory: Callable[..., Dovecot], proxy_factory: Callable[[str, int], TcpProxy]
) -> AsyncIterator[tuple[ImapClient, TcpProxy, Callable[[int], object]]]:
    plain = dovecot_factory(tls=False)
    carol = plain.add_user("carol")
    proxy = proxy_factory(plain.host, plain.ports.imap)
    conn = ImapConnection(timeout=DEADLINE)
    await conn.connect(proxy.host, proxy.port, "none")
    await conn.login(carol.login, carol.password)
    client = ImapClient(conn)

    async def fill(n: int) -> None:
        for i in range(1, n + 1):
            await conn.append("INBOX", msg(i))
        await client.select("INBOX")

    try:
        yield client, proxy, fill
    finally:
        await conn.logout(timeout=2)


# The rest of a Dovecot summary response after the broken line: the References literal
# ({2} CRLF CRLF) and ")". The replacement opens two lists it never closes.
BROKEN = b'* 3 FETCH (UID 3 FLAGS (\\Seen) ENVELOPE ("broken" (NIL {2}\r\n'


async def test_an_unreadable_response_shows_every_other_message_and_the_broken_one(
    setup: tuple[ImapClient, TcpProxy, Callable[[int], object]],
) -> None:
    client, proxy, fill = setup
    await fill(5)  # type: ignore[misc]
    fired = proxy.rewrite_line(b"* 3 FETCH (UID 3 ", BROKEN)
    summaries = await client.fetch_summaries(1, 5)
    assert fired.is_set()
    by_uid = {s.uid: s for s in summaries}
    assert sorted(by_uid) == [1, 2, 3, 4, 5]
    assert by_uid[3].envelope.subject == "hello 3"  # from BODY.PEEK[HEADER]
    assert by_uid[3].envelope.from_[0].addr == "sender3@example.net"
    assert by_uid[3].size > 0 and by_uid[4].envelope.subject == "hello 4"
    assert [u for u, s in sorted(by_uid.items()) if s.degraded] == [3]


async def test_the_lazy_bulk_path_isolates_a_broken_message_too(
    setup: tuple[ImapClient, TcpProxy, Callable[[int], object]],
) -> None:
    client, proxy, fill = setup
    n = LAZY_MIN + 20
    await fill(n)  # type: ignore[misc]
    fired = proxy.rewrite_line(b"* 300 FETCH (UID 300 ", BROKEN.replace(b"3", b"300", 2))
    summaries = await client.fetch_summaries(1, n)
    assert fired.is_set()
    uids = sorted(s.uid for s in summaries)
    assert uids == list(range(1, n + 1))
    broken = next(s for s in summaries if s.uid == 300)
    assert broken.envelope.subject == "hello 300"


async def test_a_no_for_one_message_is_retried_for_that_message_alone(
    setup: tuple[ImapClient, TcpProxy, Callable[[int], object]],
) -> None:
    client, proxy, fill = setup
    await fill(5)  # type: ignore[misc]
    # Message 3 never comes, and the command ends in NO (as Exchange and Yahoo answer).
    proxy.rewrite_line(b"* 3 FETCH (UID 3 ", b"* OK [SERVERBUG] skipped {2}\r\n")
    proxy.rewrite(b" OK Fetch completed", b" NO Fetch completed")
    summaries = await client.fetch_summaries(1, 5)
    by_uid = {s.uid: s for s in summaries}
    assert sorted(by_uid) == [1, 2, 3, 4, 5]
    assert by_uid[3].envelope.subject == "hello 3"
    sent = proxy.client_bytes()
    assert b"UID FETCH 3 (" in sent
    assert b"UID FETCH 1 (" not in sent and b"UID FETCH 5 (" not in sent


async def test_a_disabled_capability_is_never_used(
    dovecot_factory: Callable[..., Dovecot], proxy_factory: Callable[[str, int], TcpProxy]
) -> None:
    """``[accounts.X.imap] disable = ["QRESYNC", "IDLE"]``: Dovecot offers both, and
    Kittiwake acts as if it did not (no ENABLE QRESYNC, no IDLE)."""
    plain = dovecot_factory(tls=False)
    carol = plain.add_user("carol")
    proxy = proxy_factory(plain.host, plain.ports.imap)
    conn = ImapConnection(timeout=DEADLINE, disabled=["qresync", "IDLE"])
    await conn.connect(proxy.host, proxy.port, "none")
    await conn.login(carol.login, carol.password)
    try:
        assert b"QRESYNC" in proxy.server_bytes() and b"IDLE" in proxy.server_bytes()
        assert "QRESYNC" not in conn.capabilities and "IDLE" not in conn.capabilities
        assert "CONDSTORE" in conn.capabilities
        client = ImapClient(conn)
        await client.enable_extensions()
        assert not client.qresync and client.condstore
        assert b"QRESYNC" not in proxy.client_bytes()
    finally:
        await conn.logout(timeout=2)


async def test_idle_cut_by_the_server_is_survived(
    engine: EngineFactory,
    dovecot_factory: Callable[..., Dovecot],
    proxy_factory: Callable[[str, int], TcpProxy],
) -> None:
    """Exchange ends an IDLE after 30 minutes with ``* BYE`` (NAT boxes drop it sooner):
    the account reconnects, catches up and watches again. The cut is made as soon as IDLE
    starts here (the configurable time is the moment the proxy is armed)."""
    plain = dovecot_factory(tls=False)
    user = plain.add_user("gail")
    device = imaplib.IMAP4(plain.host, plain.ports.imap)
    device.login(user.login, user.password)
    append_many(device, 2)
    proxy = proxy_factory(plain.host, plain.ports.imap)
    account, events = await engine(
        user,
        plain,
        port=proxy.port,
        host=proxy.host,
        security="none",
        tuning=Tuning(backoff_min=0.05, backoff_max=0.2),
    )
    account.start()
    await account.wait_synced(10)
    await account.watch_folder("INBOX", timeout=5)
    proxy.inject_after(b"+ idling\r\n", b"* BYE Exchange: IDLE session timed out\r\n")
    proxy.kill_connections()  # the watch connection's IDLE starts again after the reconnect
    await events.wait_for(ConnectionChanged, 5, state=ConnState.OFFLINE)
    await events.wait_for(ConnectionChanged, 10, state=ConnState.ONLINE)
    await account.wait_synced(10)
    await events.wait_for(ConnectionChanged, 10, state=ConnState.OFFLINE)  # the BYE
    await events.wait_for(ConnectionChanged, 10, state=ConnState.ONLINE)
    await account.wait_synced(10)
    await account.watch_folder("INBOX", timeout=5)
    assert proxy.armed() == 0
    device.select("INBOX")
    device.store("2", "+FLAGS", "(\\Seen)")
    ev = await events.wait_for(FlagsChanged, 3, folder="INBOX")
    assert ev.flags == {2: frozenset({SEEN})}  # type: ignore[attr-defined]


async def test_alerts_are_shown_and_a_refused_login_is_not_retried_in_a_loop(
    engine: EngineFactory,
    dovecot_factory: Callable[..., Dovecot],
    proxy_factory: Callable[[str, int], TcpProxy],
) -> None:
    plain = dovecot_factory(tls=False)
    user = plain.add_user("hal")
    proxy = proxy_factory(plain.host, plain.ports.imap)
    account, events = await engine(user, plain, port=proxy.port, host=proxy.host, security="none")
    # An untagged [ALERT] in the answer to a command, as Exchange sends before maintenance.
    proxy.inject_after(b"* ENABLED QRESYNC\r\n", b"* OK [ALERT] Maintenance tonight at 22:00\r\n")
    account.start()
    ev = await events.wait_for(SyncError, 10)
    assert ev.message == f"{proxy.host}:{proxy.port} says: Maintenance tonight at 22:00"  # type: ignore[attr-defined]
    await account.wait_synced(10)
    await account.stop()

    wrong = dataclasses.replace(user, password="wrong")
    refused, refusals = await engine(
        wrong,
        plain,
        port=proxy.port,
        host=proxy.host,
        security="none",
        cache_name="refused.sqlite3",
        tuning=Tuning(backoff_min=0.01, backoff_max=60),
    )
    before = proxy.connection_count
    refused.start()
    ev = await refusals.wait_for(ConnectionChanged, 10, state=ConnState.AUTH_FAILED)
    assert "rejected the user name or password" in (ev.reason or "")  # type: ignore[attr-defined]
    assert ev.retry_in == 60  # type: ignore[attr-defined]
    # Waiting out backoff_max, not a tight loop: still one attempt after a while.
    with pytest.raises(TimeoutError):
        await refusals.wait_for(ConnectionChanged, 0.5, state=ConnState.CONNECTING)
    assert proxy.connection_count - before == 1


async def test_icloud_a_body_sent_empty_is_fetched_again_and_never_taken_as_the_message(
    setup: tuple[ImapClient, TcpProxy, Callable[[int], object]],
) -> None:
    client, proxy, fill = setup
    await fill(1)  # type: ignore[misc]
    real = await client.uid_fetch_body(1)
    assert real is not None and b"Subject: hello 1" in real
    n = len(real)
    # iCloud under load: the message's size, and BODY[] empty (the bytes go elsewhere).
    empty = b'* 1 FETCH (UID 1 RFC822.SIZE %d BODY[] "" X-ICLOUD {%d}\r\n' % (n, n)
    proxy.rewrite_line(b"BODY[] {", empty)
    assert await client.uid_fetch_body(1) == real  # the second try
    assert proxy.client_bytes().count(b"UID FETCH 1 (UID RFC822.SIZE BODY.PEEK[])") == 3
    proxy.rewrite_line(b"BODY[] {", empty)
    proxy.rewrite_line(b"BODY[] {", empty)
    with pytest.raises(ProtocolError, match="without its body"):
        await client.uid_fetch_body(1)


async def test_a_broken_response_without_a_readable_uid_is_found_by_its_number(
    setup: tuple[ImapClient, TcpProxy, Callable[[int], object]],
) -> None:
    client, proxy, fill = setup
    await fill(4)  # type: ignore[misc]
    # ENVELOPE first, UID after the damage: nothing to salvage before the first string.
    proxy.rewrite_line(b"* 2 FETCH (UID 2 ", b'* 2 FETCH (ENVELOPE ("x" (NIL {2}\r\n')
    summaries = await client.fetch_summaries(1, 4)
    by_uid = {s.uid: s for s in summaries}
    assert sorted(by_uid) == [1, 2, 3, 4]
    assert by_uid[2].envelope.subject == "hello 2"
    assert b"FETCH 2:2 (UID)" in proxy.client_bytes()


def _unavailable(line: bytes) -> bytes:
    """The tagged answer to the login, turned into RFC 5530's "not now" (its tag kept)."""
    return line.split(b" ", 1)[0] + b" NO [UNAVAILABLE] Mailbox is being moved, try later\r\n"


async def test_unavailable_at_login_is_retried_like_the_network_never_as_a_wrong_password(
    engine: EngineFactory,
    dovecot_factory: Callable[..., Dovecot],
    proxy_factory: Callable[[str, int], TcpProxy],
) -> None:
    """``NO [UNAVAILABLE]`` to LOGIN/AUTHENTICATE is the server's passing state: offline with
    a retry soon (not the long wait and "login failed" of a refused password), then online;
    ``kittiwake sync`` and the setup's login check do not take it for the password either."""
    plain = dovecot_factory(tls=False)
    user = plain.add_user("ivy")
    proxy = proxy_factory(plain.host, plain.ports.imap)
    fired = proxy.rewrite_line(b"Logged in", _unavailable)
    account, events = await engine(
        user,
        plain,
        port=proxy.port,
        host=proxy.host,
        security="none",
        tuning=Tuning(backoff_min=0.05, backoff_max=60),
    )
    account.start()
    states: list[ConnectionChanged] = []
    async with asyncio.timeout(15):
        async for event in events:
            if isinstance(event, ConnectionChanged):
                states.append(event)
                if event.state is ConnState.ONLINE:
                    break
    assert fired.is_set()
    offline = [e for e in states if e.state is ConnState.OFFLINE]
    assert len(offline) == 1 and ConnState.AUTH_FAILED not in {e.state for e in states}
    reason = offline[0].reason or ""
    assert "temporarily unavailable" in reason and "Mailbox is being moved" in reason
    assert "password" not in reason
    assert offline[0].retry_in is not None and offline[0].retry_in < 1  # not backoff_max
    await account.wait_synced(10)

    proxy.rewrite_line(b"Logged in", _unavailable)
    once, _ = await engine(
        user, plain, port=proxy.port, host=proxy.host, security="none", cache_name="once.sqlite3"
    )
    with pytest.raises(AuthFailed) as refused:
        await once.connect_once()  # kittiwake sync: exits as offline, not "login failed"
    assert refused.value.temporary and once.state is ConnState.OFFLINE

    proxy.rewrite_line(b"Logged in", _unavailable)
    checked = await check_login(once.account, "imap")  # the setup screen's login test
    assert not checked.ok and not checked.auth_refused and checked.hint == ""
    assert "temporarily unavailable" in checked.detail


async def test_an_alert_in_the_greeting_or_the_login_is_told_once_and_never_before_starttls(
    engine: EngineFactory,
    dovecot: Dovecot,
    dovecot_factory: Callable[..., Dovecot],
    proxy_factory: Callable[[str, int], TcpProxy],
) -> None:
    """RFC 3501 7.1: ``[ALERT]`` text must reach the user. A greeting's (every connection of
    the account hears it: told once) and a login's, as a notice; a greeting that came before
    STARTTLS is anyone's words, so it is not shown as the server's."""
    plain = dovecot_factory(tls=False)
    user = plain.add_user("jo")
    proxy = proxy_factory(plain.host, plain.ports.imap)
    greeting = b"* OK [ALERT] Planned maintenance\x1b[31m at 22:00\r\n"
    # The command connection's and the watcher's (NOTIFY: one) greetings.
    heard = [proxy.rewrite_line(b"* OK [CAPABILITY", greeting) for _ in range(2)]
    expires = b" OK [ALERT] Your password expires in 3 days\r\n"
    proxy.rewrite_line(b"Logged in", lambda line: line.split(b" ", 1)[0] + expires)
    account, events = await engine(user, plain, port=proxy.port, host=proxy.host, security="none")
    account.start()
    await account.wait_synced(10)
    await account.watch_folder("INBOX", timeout=5)
    label = f"{proxy.host}:{proxy.port}"
    told = [e.message for e in events.pending() if isinstance(e, SyncError)]
    assert told == [
        f"{label} says: Planned maintenance\x1b[31m at 22:00",  # the app shows it clean_line'd
        f"{label} says: Your password expires in 3 days",
    ]
    assert clean_line(told[0]) == f"{label} says: Planned maintenance at 22:00"
    assert all(fired.is_set() for fired in heard)  # heard on both connections, told once
    await account.stop()

    other = dovecot.add_user("kim")
    tls_proxy = proxy_factory(dovecot.host, dovecot.ports.imap)
    forged = tls_proxy.rewrite_line(
        b"* OK [CAPABILITY", b"* OK [ALERT] Your password expired, see evil.example\r\n"
    )
    secure, secure_events = await engine(
        other, port=tls_proxy.port, host=tls_proxy.host, security="starttls", cache_name="s.sqlite3"
    )
    secure.start()
    await secure.wait_synced(10)
    assert forged.is_set() and secure.client.conn.tls_active
    assert not [e for e in secure_events.pending() if isinstance(e, SyncError)]


async def test_a_degraded_message_is_marked_so_in_the_cache_and_the_others_are_not(
    engine: EngineFactory,
    dovecot_factory: Callable[..., Dovecot],
    proxy_factory: Callable[[str, int], TcpProxy],
) -> None:
    """The message whose FETCH could not be read is stored marked ``degraded`` (the list
    shows ``?``, the reader says why); a later sync keeps the mark; the others have none."""
    plain = dovecot_factory(tls=False)
    user = plain.add_user("lou")
    device = imaplib.IMAP4(plain.host, plain.ports.imap)
    device.login(user.login, user.password)
    for i in range(1, 6):
        device.append("INBOX", "", None, msg(i))
    device.logout()
    proxy = proxy_factory(plain.host, plain.ports.imap)
    fired = proxy.rewrite_line(b"* 3 FETCH (UID 3 ", BROKEN)
    account, _ = await engine(user, plain, port=proxy.port, host=proxy.host, security="none")
    await account.connect_once()
    await account.sync_all()
    assert fired.is_set()
    cached = account.cache.summaries("INBOX", [1, 2, 3, 4, 5])
    assert sorted(cached) == [1, 2, 3, 4, 5]
    assert [u for u, s in sorted(cached.items()) if s.degraded] == [3]
    assert cached[3].envelope.subject == "hello 3"
    await account.sync_all()  # nothing changed on the server: the mark stays
    again = account.cache.summary("INBOX", 3)
    assert again is not None and again.degraded
