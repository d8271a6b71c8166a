"""The async POP3 client against the private Dovecot (and, for attacks a real server does not
make, small scripted servers): TLS and STLS policy, login methods, every command, streaming,
timeouts and lost connections. No mocks of a server; no fixed sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import re
import smtplib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import pytest
import trustme
from harness import Dovecot, TcpProxy, User, make_message, pop3_device, pop3_fetch_all

from kittiwake.core.pop3.client import (
    Pop3AuthFailed,
    Pop3Client,
    Pop3CommandFailed,
    Pop3ConnectFailed,
    Pop3ConnectionLost,
    Pop3ProtocolError,
    Pop3StartTlsUnavailable,
    Pop3Timeout,
    Pop3TlsError,
)

DEADLINE = 10.0


def deliver_many(dovecot: Dovecot, user: User, messages: Sequence[bytes]) -> None:
    """Deliver over ONE LMTP session (fast set-up); complete when this returns."""
    with smtplib.LMTP(dovecot.host, dovecot.ports.lmtp, timeout=60) as lmtp:
        for raw in messages:
            refused = lmtp.sendmail("sender@example.net", [user.email], raw)
            assert not refused


def msg(i: int, body: str | bytes = "") -> bytes:
    return make_message(
        sender="a@example.net",
        to=["b@example.test"],
        subject=f"message {i:04d}",
        body=body or f"body {i}\n",
    )


@contextlib.asynccontextmanager
async def connected(
    dovecot: Dovecot,
    *,
    security: str = "tls",
    port: int | None = None,
    host: str | None = None,
    context: ssl.SSLContext | None = None,
    timeout: float = DEADLINE,
) -> AsyncIterator[Pop3Client]:
    client = Pop3Client(timeout=timeout)
    if port is None:
        port = dovecot.ports.pop3s if security == "tls" else dovecot.ports.pop3
    assert port is not None
    await client.connect(
        host or dovecot.host,
        port,
        security,  # type: ignore[arg-type]
        context if context is not None else dovecot.ca.client_context(),
    )
    try:
        yield client
    finally:
        await client.close()


def assert_no_secret(proxy: TcpProxy, user: User) -> None:
    sent = proxy.client_bytes()
    for form in user.secret_forms():
        assert form not in sent, f"password form {form!r} went over the wire"


# ---------------------------------------------------------------------------- TLS and STLS


async def test_pop3s_login_and_capabilities(dovecot: Dovecot, user: User) -> None:
    async with connected(dovecot) as client:
        assert client.tls_active
        assert {"UIDL", "TOP", "PIPELINING", "USER"} <= set(client.capabilities)
        assert "PLAIN" in client.sasl_mechanisms
        assert await client.login(user.login, user.password) == "PLAIN"
        assert client.authenticated
        assert await client.stat() == (0, 0)
        await client.quit()
        assert not client.connected


async def test_stls_upgrades_before_any_credential(
    dovecot: Dovecot, user: User, proxy_factory: Callable[[str, int], TcpProxy]
) -> None:
    proxy = proxy_factory(dovecot.host, dovecot.ports.pop3)
    async with connected(dovecot, security="starttls", host=proxy.host, port=proxy.port) as c:
        assert c.tls_active
        assert "STLS" not in c.capabilities  # CAPA was asked again over TLS
        assert "USER" in c.capabilities  # only offered after TLS (disable_plaintext_auth)
        await c.login(user.login, user.password)
        await c.quit()
    record = proxy.connections()[0]
    # In the clear: CAPA and STLS only; then a TLS handshake (record type 0x16).
    assert record.client_to_server.startswith(b"CAPA\r\nSTLS\r\n\x16\x03")
    assert_no_secret(proxy, user)


async def test_stls_required_but_not_offered_sends_nothing_secret(
    dovecot_factory: Callable[..., Dovecot], proxy_factory: Callable[[str, int], TcpProxy]
) -> None:
    plain = dovecot_factory(tls=False)
    victim = plain.add_user("nostls")
    proxy = proxy_factory(plain.host, plain.ports.pop3)
    client = Pop3Client(timeout=DEADLINE)
    with pytest.raises(Pop3StartTlsUnavailable) as err:
        await client.connect(proxy.host, proxy.port, "starttls", ssl.create_default_context())
    assert f"{proxy.host}:{proxy.port}" in err.value.message
    assert "no password was sent" in err.value.message
    assert proxy.client_bytes() == b"CAPA\r\n"
    assert_no_secret(proxy, victim)
    assert not client.connected


async def test_untrusted_certificate_is_refused(
    dovecot: Dovecot, user: User, proxy_factory: Callable[[str, int], TcpProxy]
) -> None:
    assert dovecot.ports.pop3s is not None
    stranger = ssl.create_default_context()  # system store only: the test CA is unknown
    with pytest.raises(Pop3TlsError, match="certificate verification failed"):
        async with connected(dovecot, context=stranger):
            pass
    proxy = proxy_factory(dovecot.host, dovecot.ports.pop3)
    with pytest.raises(Pop3TlsError, match=r"STLS .* failed: certificate verification failed"):
        async with connected(
            dovecot, security="starttls", host=proxy.host, port=proxy.port, context=stranger
        ):
            pass
    assert_no_secret(proxy, user)


async def test_wrong_host_name_is_refused(dovecot: Dovecot) -> None:
    # The certificate names 127.0.0.2/localhost/127.0.0.1 but not this name.
    client = Pop3Client(timeout=DEADLINE)
    assert dovecot.ports.pop3s is not None
    with pytest.raises(Pop3TlsError):
        await client.connect(
            dovecot.host,
            dovecot.ports.pop3s,
            "tls",
            dovecot.ca.client_context(),
            server_hostname="pop.example.org",
        )


async def test_plain_text_only_when_configured(
    dovecot_factory: Callable[..., Dovecot], proxy_factory: Callable[[str, int], TcpProxy]
) -> None:
    plain = dovecot_factory(tls=False)
    u = plain.add_user("plain")
    deliver_many(plain, u, [msg(1)])
    client = Pop3Client(timeout=DEADLINE)
    await client.connect(plain.host, plain.ports.pop3, "none")
    try:
        assert not client.tls_active
        await client.login(u.login, u.password)
        assert (await client.stat())[0] == 1
        await client.quit()
    finally:
        await client.close()


async def test_apop_keeps_the_password_off_a_plain_wire(
    dovecot_factory: Callable[..., Dovecot], proxy_factory: Callable[[str, int], TcpProxy]
) -> None:
    apop = dovecot_factory(tls=False, extra_conf="auth_mechanisms = plain login apop\n")
    u = apop.add_user("apop")
    proxy = proxy_factory(apop.host, apop.ports.pop3)
    client = Pop3Client(timeout=DEADLINE)
    await client.connect(proxy.host, proxy.port, "none")
    try:
        assert client.apop_timestamp is not None
        assert await client.login(u.login, u.password) == "APOP"
        await client.stat()
        await client.quit()
    finally:
        await client.close()
    assert b"APOP " in proxy.client_bytes()
    assert_no_secret(proxy, u)


async def test_starttls_injection_is_discarded(tmp_path: Any) -> None:
    """A man in the middle appends a fake reply to the +OK of STLS: it must never be read."""
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf.configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    after_tls: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"+OK hi\r\n")
        assert await reader.readline() == b"CAPA\r\n"
        writer.write(b"+OK\r\nSTLS\r\nUSER\r\n.\r\n")
        assert await reader.readline() == b"STLS\r\n"
        writer.write(b"+OK begin TLS\r\n+OK\r\nINJECTED\r\n.\r\n")  # one segment
        await writer.drain()
        await writer.start_tls(server_ctx)
        line = await reader.readline()
        after_tls.append(line)
        writer.write(b"+OK\r\nUSER\r\nSASL PLAIN\r\n.\r\n")
        await writer.drain()
        await reader.read()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        client = Pop3Client(timeout=DEADLINE)
        await client.connect("127.0.0.1", port, "starttls", client_ctx)
        assert client.tls_active
        assert client.capabilities == {"USER": (), "SASL": ("PLAIN",)}
        assert after_tls == [b"CAPA\r\n"]
        assert client.discarded_bytes == len(b"+OK\r\nINJECTED\r\n.\r\n")
        await client.close()
    finally:
        server.close()
        await server.wait_closed()


# ---------------------------------------------------------------------------- login


async def test_user_pass_and_wrong_password(dovecot: Dovecot, user: User) -> None:
    async with connected(dovecot) as client:
        assert await client.login(user.login, user.password, mechanisms=["USER"]) == "USER"
        await client.quit()
    async with connected(dovecot) as client:
        with pytest.raises(Pop3AuthFailed) as err:
            await client.login(user.login, "not-the-password", mechanisms=["PLAIN"])
        assert f"{dovecot.host}:{dovecot.ports.pop3s}" in err.value.message
        assert "rejected the login" in err.value.message


async def test_passwords_never_reach_the_log(
    dovecot: Dovecot, user: User, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for mechanism in ("PLAIN", "USER"):
        async with connected(dovecot) as client:
            await client.login(user.login, user.password, mechanisms=[mechanism])
            await client.quit()
    assert "PASS ********" in caplog.text and "AUTH PLAIN ********" in caplog.text
    for form in user.secret_forms():
        assert form.decode() not in caplog.text


async def test_long_plain_response_goes_on_its_own_line(dovecot: Dovecot) -> None:
    long_user = dovecot.add_user("long", password="p" * 200)
    async with connected(dovecot) as client:
        assert await client.login(long_user.login, long_user.password) == "PLAIN"
        await client.quit()


# ---------------------------------------------------------------------------- commands


async def test_every_command_and_dot_unstuffing(dovecot: Dovecot, user: User) -> None:
    tricky = b".starts with a dot\n..two dots\n.\nnot the end\n. space\n"
    deliver_many(dovecot, user, [msg(1), msg(2, tricky), msg(3)])
    device = pop3_device(dovecot, user)
    try:
        expected = pop3_fetch_all(device)
    finally:
        device.quit()
    async with connected(dovecot) as client:
        await client.login(user.login, user.password)
        count, size = await client.stat()
        assert count == 3 and size == sum(len(m) for m in expected)
        sizes = await client.list_all()
        assert sizes == {i + 1: len(m) for i, m in enumerate(expected)}
        assert await client.list_one(2) == len(expected[1])
        listing = await client.uidl()
        assert [n for n, _ in listing] == [1, 2, 3]
        assert len({u for _, u in listing}) == 3
        assert await client.uidl_one(2) == listing[1][1]
        for number, raw in enumerate(expected, 1):
            sink = io.BytesIO()
            assert await client.retr(number, sink) == len(raw)
            assert sink.getvalue() == raw
        assert b"\r\n.starts with a dot\r\n..two dots\r\n.\r\nnot the end\r\n" in expected[1]
        head = io.BytesIO()
        await client.top(2, 0, head)
        assert head.getvalue() == expected[1].split(b"\r\n\r\n")[0] + b"\r\n\r\n"
        await client.noop()
        with pytest.raises(Pop3CommandFailed, match="refused RETR"):
            await client.retr(99, io.BytesIO())
        await client.dele(1)
        with pytest.raises(Pop3CommandFailed):
            await client.retr(1, io.BytesIO())
        await client.rset()  # undoes the DELE
        assert (await client.stat())[0] == 3
        assert await client.dele_many([1, 3]) == []
        await client.quit()
    device = pop3_device(dovecot, user)
    try:
        assert pop3_fetch_all(device) == [expected[1]]
    finally:
        device.quit()


async def test_pipelined_retr_many(dovecot: Dovecot, user: User) -> None:
    deliver_many(dovecot, user, [msg(i, "x" * (i * 997)) for i in range(40)])
    async with connected(dovecot) as client:
        await client.login(user.login, user.password)
        assert client.has("PIPELINING")
        sinks: dict[int, io.BytesIO] = {}

        def open_sink(n: int) -> io.BytesIO:
            sinks[n] = io.BytesIO()
            return sinks[n]

        numbers = [*range(1, 41), 77]  # one that does not exist: -ERR, in order
        seen = []
        async for number, octets, resp in client.retr_many(numbers, open_sink, window=8):
            seen.append(number)
            if number == 77:
                assert octets is None and not resp.ok
            else:
                assert octets == len(sinks[number].getvalue())
        assert seen == numbers
        sizes = await client.list_all()
        assert all(len(sinks[n].getvalue()) == sizes[n] for n in sizes)
        await client.quit()


# ---------------------------------------------------------------------------- faults


async def test_silent_server_times_out(
    dovecot: Dovecot, user: User, proxy_factory: Callable[[str, int], TcpProxy]
) -> None:
    assert dovecot.ports.pop3s is not None
    proxy = proxy_factory(dovecot.host, dovecot.ports.pop3s)
    async with connected(dovecot, host=proxy.host, port=proxy.port, timeout=0.5) as client:
        await client.login(user.login, user.password)
        proxy.pause()
        with pytest.raises(Pop3Timeout, match=r"did not answer within 0\.5 s"):
            await client.stat()
        assert not client.connected
        with pytest.raises(Pop3ConnectionLost):
            await client.noop()
    proxy.resume()


async def test_connection_cut_mid_retr(
    dovecot: Dovecot, user: User, proxy_factory: Callable[[str, int], TcpProxy]
) -> None:
    deliver_many(dovecot, user, [msg(1, ("line " * 15 + "\n") * 100_000)])  # 8 MB
    proxy = proxy_factory(dovecot.host, dovecot.ports.pop3)

    class CutOnFirstBytes(io.BytesIO):
        def write(self, data: Any, /) -> int:
            if not self.tell():
                proxy.pause()  # the rest of the 8 MB stays behind
                proxy.kill_connections()
            return super().write(data)

    async with connected(dovecot, security="starttls", host=proxy.host, port=proxy.port) as c:
        await c.login(user.login, user.password)
        sink = CutOnFirstBytes()
        with pytest.raises(Pop3ConnectionLost):
            await c.retr(1, sink)
        assert 0 < len(sink.getvalue()) < 8_000_000
        assert not c.connected
    proxy.resume()


async def scripted(
    greeting_and_replies: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(greeting_and_replies, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def test_garbage_and_overlong_lines(tmp_path: Any) -> None:
    async def endless_line(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"+OK " + b"x" * 100_000)
        await writer.drain()
        await reader.read()

    async def not_pop3(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 smtp.example ESMTP\r\n")
        await writer.drain()
        await reader.read()

    async def bye(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"-ERR [SYS/TEMP] too busy\r\n")
        await writer.drain()
        writer.close()

    async def endless_listing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"+OK hi\r\n")
        await reader.readline()
        writer.write(b"+OK\r\n" + b"A" * 9000 + b"\r\n")
        await writer.drain()
        await reader.read()

    cases: list[tuple[Any, type[Exception], str]] = [
        (endless_line, Pop3ProtocolError, "longer than"),
        (not_pop3, Pop3ProtocolError, "invalid greeting"),
        (bye, Pop3ConnectFailed, "refused the connection: too busy"),
        (endless_listing, Pop3ProtocolError, "longer than"),
    ]
    for handler, kind, words in cases:
        server, port = await scripted(handler)
        try:
            client = Pop3Client(timeout=DEADLINE)
            with pytest.raises(kind, match=re.escape(words)) as err:
                await client.connect("127.0.0.1", port, "none")
            assert f"127.0.0.1:{port}" in err.value.message
            assert not client.connected
        finally:
            server.close()
            await server.wait_closed()
