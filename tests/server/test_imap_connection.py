"""The hardened IMAP transport against a real Dovecot (and, for STARTTLS injection, a scripted
TLS server): TLS verification, STARTTLS policy, big fetches, unsolicited updates, faults.

Synchronisation is by events/futures with deadlines, never fixed sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import imaplib
import re
import ssl
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import trustme
from harness import Dovecot, TcpProxy, User, imap_device, make_message

from kittiwake.core.errors import (
    AuthFailed,
    CommandTimeout,
    ConnectFailed,
    ConnectionLost,
    StartTlsUnavailable,
    TlsError,
)
from kittiwake.core.imap.client import ImapClient
from kittiwake.core.imap.connection import ImapConnection
from kittiwake.core.imap.parser import Exists

DEADLINE = 10.0


class Untagged:
    """Collects on_untagged responses; ``wait(pattern)`` resolves once one matches."""

    def __init__(self) -> None:
        self.seen: list[bytes] = []
        self._waiters: list[tuple[re.Pattern[bytes], asyncio.Future[bytes]]] = []

    def __call__(self, resp: bytes) -> None:
        self.seen.append(resp)
        for pattern, fut in self._waiters:
            if not fut.done() and pattern.search(resp):
                fut.set_result(resp)

    async def wait(self, pattern: bytes, timeout: float = DEADLINE) -> bytes:
        rx = re.compile(pattern)
        for resp in self.seen:
            if rx.search(resp):
                return resp
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._waiters.append((rx, fut))
        return await asyncio.wait_for(fut, timeout)


@pytest.fixture
def untagged() -> Untagged:
    return Untagged()


@contextlib.asynccontextmanager
async def opened(
    dovecot: Dovecot,
    user: User | None,
    *,
    security: str = "tls",
    port: int | None = None,
    host: str | None = None,
    context: ssl.SSLContext | None = None,
    **kwargs: Any,
) -> AsyncIterator[ImapConnection]:
    conn = ImapConnection(timeout=DEADLINE, **kwargs)
    if port is None:
        port = dovecot.ports.imaps if security == "tls" else dovecot.ports.imap
    assert port is not None
    await conn.connect(
        host or dovecot.host,
        port,
        security,  # type: ignore[arg-type]
        context or dovecot.ca.client_context(),
    )
    try:
        if user is not None:
            await conn.login(user.login, user.password)
        yield conn
    finally:
        await conn.logout(timeout=2)


def device(dovecot: Dovecot, user: User) -> Iterator[imaplib.IMAP4_SSL]:
    imap = imap_device(dovecot, user)
    try:
        yield imap
    finally:
        with contextlib.suppress(Exception):
            imap.logout()


@pytest.fixture
def other_device(dovecot: Dovecot, user: User) -> Iterator[imaplib.IMAP4_SSL]:
    """A second, independent (stdlib) client on the same account."""
    yield from device(dovecot, user)


def bulk_append(imap: imaplib.IMAP4, messages: list[bytes], mailbox: str = "INBOX") -> None:
    """Append many messages in ONE MULTIAPPEND command with LITERAL+ (fast test setup)."""
    wire = bytearray(b"KW1 APPEND " + mailbox.encode())
    for msg in messages:
        wire += b" {%d+}\r\n" % len(msg) + msg
    wire += b"\r\n"
    imap.send(bytes(wire))
    while True:
        line = imap.readline()
        if not line:
            raise ConnectionError("server closed during bulk append")
        if line.startswith(b"KW1 "):
            assert line.startswith(b"KW1 OK"), line
            return


def msg(i: int, subject: str = "hello") -> bytes:
    return make_message(
        sender="a@example.net", to=["b@example.test"], subject=f"{subject} {i}", body=f"body {i}"
    )


# ---------------------------------------------------------------------------- TLS


async def test_login_over_imaps_verified_by_test_ca(dovecot: Dovecot, user: User) -> None:
    async with opened(dovecot, user) as conn:
        assert conn.tls_active
        assert conn.state == "AUTH"
        assert {"IDLE", "UIDPLUS", "MOVE"} <= conn.capabilities
        result = await conn.select("INBOX")
        assert result.ok and conn.state == "SELECTED"


async def test_login_over_starttls_verified_and_no_secret_in_clear(
    dovecot: Dovecot, user: User, proxy_factory: Callable[[str, int], TcpProxy]
) -> None:
    proxy = proxy_factory(dovecot.host, dovecot.ports.imap)
    async with opened(dovecot, user, security="starttls", port=proxy.port, host=proxy.host) as conn:
        assert conn.tls_active and conn.state == "AUTH"
        assert "STARTTLS" not in conn.capabilities  # re-read over TLS
        assert "LOGINDISABLED" not in conn.capabilities
    sent = proxy.client_bytes()
    plaintext = sent[: sent.index(b"STARTTLS\r\n") + 10]
    assert b"LOGIN" not in plaintext and b"AUTHENTICATE" not in plaintext
    for secret in user.secret_forms():
        assert secret not in sent


@pytest.mark.parametrize("security", ["tls", "starttls"])
async def test_untrusted_ca_is_a_tls_error(
    dovecot: Dovecot, user: User, security: str, proxy_factory: Callable[[str, int], TcpProxy]
) -> None:
    port = dovecot.ports.imaps if security == "tls" else dovecot.ports.imap
    assert port is not None
    proxy = proxy_factory(dovecot.host, port)
    other_ca = trustme.CA()
    context = ssl.create_default_context()
    other_ca.configure_trust(context)
    conn = ImapConnection(timeout=DEADLINE)
    with pytest.raises(TlsError, match="certificate verification failed"):
        await conn.connect(proxy.host, proxy.port, security, context)  # type: ignore[arg-type]
    assert not conn.is_connected
    await asyncio.wait_for(conn.close(), 2)  # closing a failed connection never hangs
    sent = proxy.client_bytes()
    assert b"LOGIN" not in sent and b"AUTHENTICATE" not in sent


async def test_wrong_host_name_is_a_tls_error(dovecot: Dovecot) -> None:
    conn = ImapConnection(timeout=DEADLINE)
    assert dovecot.ports.imaps is not None
    with pytest.raises(TlsError):
        await conn.connect(
            dovecot.host,
            dovecot.ports.imaps,
            "tls",
            dovecot.ca.client_context(),
            server_hostname="mail.example.org",
        )


async def test_starttls_required_but_not_offered_sends_no_credentials(
    dovecot_factory: Callable[..., Dovecot], proxy_factory: Callable[[str, int], TcpProxy]
) -> None:
    plain = dovecot_factory(tls=False)
    victim = plain.add_user("carol")
    proxy = proxy_factory(plain.host, plain.ports.imap)
    conn = ImapConnection(timeout=DEADLINE)
    with pytest.raises(StartTlsUnavailable, match="does not offer STARTTLS"):
        await conn.connect(proxy.host, proxy.port, "starttls", ssl.create_default_context())
    # The caller cannot go on to log in by mistake either.
    with pytest.raises((TlsError, ConnectionLost)):
        await conn.login(victim.login, victim.password)
    sent = proxy.client_bytes()
    assert b"LOGIN" not in sent and b"AUTHENTICATE" not in sent
    for secret in victim.secret_forms():
        assert secret not in sent
    assert b"STARTTLS" not in sent  # not offered, so not even tried


async def test_plaintext_login_refused_unless_security_none(
    dovecot_factory: Callable[..., Dovecot],
) -> None:
    plain = dovecot_factory(tls=False)
    carol = plain.add_user("carol")
    conn = ImapConnection(timeout=DEADLINE)
    await conn.connect(plain.host, plain.ports.imap, "none")
    try:
        await conn.login(carol.login, carol.password)  # explicitly insecure account: allowed
        assert conn.state == "AUTH" and not conn.tls_active
    finally:
        await conn.logout()


async def test_refused_connection_is_connect_failed(
    proxy_factory: Callable[[str, int], TcpProxy],
) -> None:
    proxy = proxy_factory("127.0.0.1", 9)  # listening, but nothing behind it
    proxy.refuse_new_connections()
    conn = ImapConnection(timeout=DEADLINE)
    with pytest.raises(ConnectFailed):
        await conn.connect(proxy.host, proxy.port, "tls")
    await asyncio.wait_for(conn.close(), 2)


# ---------------------------------------------------------------------------- auth


async def test_wrong_password_is_auth_failed(dovecot: Dovecot, user: User) -> None:
    async with opened(dovecot, None) as conn:
        assert "AUTH=PLAIN" in conn.capabilities
        with pytest.raises(AuthFailed) as info:
            await conn.login(user.login, user.password + "x")
        assert info.value.status == "NO"
        assert "hunter" not in info.value.message and user.password not in info.value.message
        await conn.login(user.login, user.password)  # the connection stays usable
        assert conn.state == "AUTH"


async def test_password_needing_quoting_and_utf8(dovecot: Dovecot) -> None:
    dave = dovecot.add_user("dave", password='p"w\\d \u00e4 {3}')
    async with opened(dovecot, dave) as conn:
        assert conn.state == "AUTH"


async def test_no_usable_mechanism_fails_clearly_without_credentials(
    dovecot_factory: Callable[..., Dovecot], proxy_factory: Callable[[str, int], TcpProxy]
) -> None:
    # Without the PLAIN mechanism Dovecot advertises LOGINDISABLED and no AUTH=PLAIN.
    server = dovecot_factory(extra_conf="auth_mechanisms = login\n")
    erin = server.add_user("erin")
    assert server.ports.imaps is not None
    proxy = proxy_factory(server.host, server.ports.imap)
    conn = ImapConnection(timeout=DEADLINE)
    await conn.connect(proxy.host, proxy.port, "starttls", server.ca.client_context())
    try:
        with pytest.raises(AuthFailed, match="disables LOGIN"):
            await conn.login(erin.login, erin.password)
    finally:
        await conn.logout()


# ---------------------------------------------------------------------------- big fetch


async def test_uid_fetch_of_5000_messages(
    dovecot: Dovecot, user: User, other_device: imaplib.IMAP4_SSL, untagged: Untagged
) -> None:
    count = 5000
    bulk_append(other_device, [msg(i) for i in range(1, count + 1)])
    async with opened(dovecot, user, on_untagged=untagged) as conn:
        sel = await conn.select("INBOX")
        assert any(r == b"* %d EXISTS" % count for r in sel.untagged)
        result = await conn.uid_fetch("1:*", "(UID FLAGS RFC822.SIZE ENVELOPE BODY.PEEK[])")
    fetches = [r for r in result.untagged if b" FETCH " in r]
    assert len(fetches) == count
    uids = {int(m.group(1)) for r in fetches if (m := re.search(rb"UID (\d+)", r))}
    assert uids == set(range(1, count + 1))
    assert all(b"BODY[] {" in r for r in fetches)
    assert b"Subject: hello 4321\r\n" in b"".join(fetches)
    assert sum(1 for r in untagged.seen if b" FETCH " in r) >= count  # callback saw them all


async def test_uid_fetch_flags_of_a_folder_taken_in_as_they_arrive(
    dovecot: Dovecot, user: User, other_device: imaplib.IMAP4_SSL
) -> None:
    """``ImapClient.uid_fetch_flags`` reads each answer as it arrives (no list of them all):
    the same flags (\\Recent left out), modseqs, equal sets shared; news of another device
    that comes with the answers still reaches ``on_unsolicited``."""
    bulk_append(other_device, [msg(i) for i in range(1, 301)])
    other_device.select("INBOX")
    other_device.uid("STORE", "1:100", "+FLAGS", "(\\Seen)")
    other_device.uid("STORE", "7", "+FLAGS", "(\\Flagged $Work)")
    news: list[object] = []
    async with opened(dovecot, user) as conn:
        client = ImapClient(conn, on_unsolicited=lambda _folder, r: news.append(r))
        await client.select("INBOX")
        await asyncio.to_thread(other_device.append, "INBOX", "", None, msg(301))
        flags, modseqs = await client.uid_fetch_flags("1:300")
    assert set(flags) == set(range(1, 301))
    assert flags[1] == frozenset({"\\Seen"}) and flags[1] is flags[100]
    assert flags[7] == frozenset({"\\Seen", "\\Flagged", "$Work"})
    assert flags[101] == frozenset() and flags[101] is flags[300]  # \\Recent left out
    assert set(modseqs) == (set(flags) if client.condstore else set())
    assert any(isinstance(r, Exists) and r.count == 301 for r in news)


# ---------------------------------------------------------------------------- unsolicited


async def test_unsolicited_updates_reach_callback_during_idle(
    dovecot: Dovecot, user: User, other_device: imaplib.IMAP4_SSL, untagged: Untagged
) -> None:
    bulk_append(other_device, [msg(1), msg(2)])
    async with opened(dovecot, user, on_untagged=untagged) as conn:
        await conn.select("INBOX")
        await conn.idle_start()
        assert conn.idling
        other_device.select("INBOX")
        await asyncio.to_thread(other_device.uid, "STORE", "1", "+FLAGS", "(\\Flagged)")
        flag = await untagged.wait(rb"^\* 1 FETCH \(.*FLAGS \([^)]*\\Flagged")
        await asyncio.to_thread(other_device.append, "INBOX", "", None, msg(3))
        await untagged.wait(rb"^\* 3 EXISTS$")
        done = await conn.idle_done(timeout=5)
        assert done.ok and not conn.idling
        assert flag.startswith(b"* 1 FETCH")
        # After IDLE, ordinary commands work again.
        assert (await conn.noop()).ok


async def test_unsolicited_updates_during_other_commands(
    dovecot: Dovecot, user: User, other_device: imaplib.IMAP4_SSL, untagged: Untagged
) -> None:
    bulk_append(other_device, [msg(1), msg(2)])
    async with opened(dovecot, user, on_untagged=untagged) as conn:
        await conn.select("INBOX")
        other_device.select("INBOX")
        await asyncio.to_thread(other_device.uid, "STORE", "2", "+FLAGS", "(\\Seen)")
        await asyncio.to_thread(other_device.append, "INBOX", "", None, msg(3))
        # A UID FETCH of something else: the server piggybacks the other device's changes.
        result = await conn.uid_fetch("1", "(UID)")
        await untagged.wait(rb"^\* 3 EXISTS$", timeout=0.1)
        await untagged.wait(rb"^\* 2 FETCH \(.*\\Seen", timeout=0.1)
        # The running command is given the same responses too.
        assert b"* 3 EXISTS" in result.untagged
        # And a NOOP picks up later changes.
        await asyncio.to_thread(other_device.uid, "STORE", "1", "+FLAGS", "(\\Answered)")
        noop = await conn.noop()
        await untagged.wait(rb"^\* 1 FETCH \(.*\\Answered", timeout=0.1)
        assert any(b"\\Answered" in r for r in noop.untagged)


async def test_append_and_uid_commands(dovecot: Dovecot, user: User) -> None:
    async with opened(dovecot, user) as conn:
        appended = await conn.append("INBOX", msg(1), flags=["\\Seen"])
        assert appended.code is not None and appended.code.startswith("APPENDUID")
        await conn.create("Archive 2")
        await conn.select("INBOX", condstore=True)
        stored = await conn.uid_store("1", "+FLAGS", ["\\Flagged"])
        assert any(b"\\Flagged" in r for r in stored.untagged)
        found = await conn.uid_search("FLAGGED")
        assert b"* SEARCH 1" in found.untagged
        moved = await conn.uid_move("1", "Archive 2")
        assert moved.ok
        status = await conn.status("Archive 2", ["MESSAGES", "UIDNEXT"])
        assert any(b"MESSAGES 1" in r for r in status.untagged)
        listing = await conn.list("", "*")
        assert any(b'"Archive 2"' in r for r in listing.untagged)
        raw = await conn.execute('STATUS "Archive 2" (MESSAGES)')
        assert raw.ok


# ---------------------------------------------------------------------------- faults


async def test_killed_connection_fails_pending_command_promptly(
    dovecot: Dovecot, user: User, proxy_factory: Callable[[str, int], TcpProxy]
) -> None:
    assert dovecot.ports.imaps is not None
    proxy = proxy_factory(dovecot.host, dovecot.ports.imaps)
    lost: asyncio.Future[ConnectionLost] = asyncio.get_running_loop().create_future()
    conn = ImapConnection(timeout=60, on_lost=lambda e: lost.done() or lost.set_result(e))
    await conn.connect(proxy.host, proxy.port, "tls", dovecot.ca.client_context())
    await conn.login(user.login, user.password)
    await conn.select("INBOX")
    proxy.pause()  # the NOOP below stays pending: the server's answer is held back
    pending = asyncio.create_task(conn.noop())
    await asyncio.to_thread(proxy.kill_connections)
    loop = asyncio.get_running_loop()
    start = loop.time()
    with pytest.raises(ConnectionLost):
        await asyncio.wait_for(pending, 5)
    assert loop.time() - start < 2, "pending command not failed promptly"
    assert isinstance(await asyncio.wait_for(lost, 2), ConnectionLost)
    with pytest.raises(ConnectionLost):
        await conn.noop()
    await conn.close()


async def test_connection_cut_mid_literal_fails_fetch(
    dovecot_factory: Callable[..., Dovecot], proxy_factory: Callable[[str, int], TcpProxy]
) -> None:
    # Plaintext (security "none") so the proxy can cut at a byte pattern inside a literal.
    plain = dovecot_factory(tls=False)
    carol = plain.add_user("carol")
    lost: asyncio.Future[ConnectionLost] = asyncio.get_running_loop().create_future()
    proxy = proxy_factory(plain.host, plain.ports.imap)
    conn = ImapConnection(timeout=60, on_lost=lambda e: lost.done() or lost.set_result(e))
    await conn.connect(proxy.host, proxy.port, "none")
    await conn.login(carol.login, carol.password)
    for i in range(1, 4):
        await conn.append("INBOX", msg(i))
    await conn.select("INBOX")
    proxy.cut_after(b"Subject: hello 2")
    with pytest.raises(ConnectionLost):
        await asyncio.wait_for(conn.uid_fetch("1:*", "(BODY.PEEK[])"), 5)
    assert isinstance(await asyncio.wait_for(lost, 2), ConnectionLost)
    await conn.close()


async def test_dead_link_detected_by_noop_and_idle_done_timeouts(
    dovecot: Dovecot, user: User, proxy_factory: Callable[[str, int], TcpProxy]
) -> None:
    assert dovecot.ports.imaps is not None
    proxy = proxy_factory(dovecot.host, dovecot.ports.imaps)
    conn = ImapConnection(timeout=DEADLINE)
    await conn.connect(proxy.host, proxy.port, "tls", dovecot.ca.client_context())
    await conn.login(user.login, user.password)
    await conn.select("INBOX")
    await conn.idle_start()
    proxy.pause()  # a hung network: no FIN, no RST, nothing
    with pytest.raises(CommandTimeout):
        await conn.idle_done(timeout=0.5)
    assert not conn.is_connected
    await conn.close()

    conn = ImapConnection(timeout=DEADLINE)
    proxy.resume()
    await conn.connect(proxy.host, proxy.port, "tls", dovecot.ca.client_context())
    await conn.login(user.login, user.password)
    proxy.pause()
    with pytest.raises(CommandTimeout):
        await conn.noop(timeout=0.5)
    assert not conn.is_connected
    await conn.close()


# --------------------------------------------------- STARTTLS response injection (scripted)


@pytest.fixture(scope="module")
def injection_ca() -> tuple[trustme.CA, trustme.LeafCert]:
    ca = trustme.CA()
    return ca, ca.issue_cert("127.0.0.1")


async def test_starttls_discards_plaintext_injected_with_the_ok(
    injection_ca: tuple[trustme.CA, trustme.LeafCert], untagged: Untagged
) -> None:
    """A man in the middle appends responses to the STARTTLS OK; they must never be seen."""
    ca, leaf = injection_ca
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf.configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    got_after_tls: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] hi\r\n")
        line = await reader.readline()
        tag = line.split(b" ")[0]
        assert line.endswith(b" STARTTLS\r\n"), line
        # One segment: the OK, then injected plaintext responses AND a fake tagged reply.
        writer.write(
            tag + b" OK begin TLS\r\n* CAPABILITY IMAP4rev1 AUTH=PLAIN INJECTED\r\n* 666 EXISTS\r\n"
        )
        await writer.drain()
        await writer.start_tls(server_ctx)
        line = await reader.readline()
        got_after_tls.append(line)
        tag = line.split(b" ")[0]
        writer.write(b"* CAPABILITY IMAP4rev1 AUTH=PLAIN IDLE\r\n" + tag + b" OK done\r\n")
        await writer.drain()
        await reader.read()  # until the client goes away
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        conn = ImapConnection(timeout=DEADLINE, on_untagged=untagged)
        await conn.connect("127.0.0.1", port, "starttls", client_ctx)
        assert conn.tls_active
        assert conn.capabilities == frozenset({"IMAP4REV1", "AUTH=PLAIN", "IDLE"})
        assert got_after_tls and got_after_tls[0].endswith(b" CAPABILITY\r\n")
        assert not any(b"INJECTED" in r or b"666 EXISTS" in r for r in untagged.seen)
        assert conn._protocol is not None and conn._protocol.discarded_bytes > 0
        await conn.close()
    finally:
        server.close()
        await server.wait_closed()
