"""A man in the middle of STARTTLS, against the real Dovecot (IMAP, POP3) and Postfix (SMTP).

The recording proxy (``harness.TcpProxy``) plays the attacker on the plaintext leg: it appends
forged replies to the server's "go ahead" (response injection, the CVE-2011-0411 class), turns
the greeting into PREAUTH, strips STARTTLS from the capabilities, answers STARTTLS with a
refusal, or cuts the connection right after it. In every case the client must either end up on
a verified TLS session that never saw the forged bytes, or stop with one clear sentence, and
the proxy's recording of what the client sent holds no form of the password (and, when the
session never reached TLS, no login command at all). The scripted-server variants of the
injection tests live in tests/server/test_imap_connection.py and test_pop3_client.py; these
use the real servers, so the TLS session after the attack is a real one.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from harness import Dovecot, Postfix, TcpProxy, User

from kittiwake.core.config import Account, config_from_dict
from kittiwake.core.errors import ConnectionLost, KittiwakeError, StartTlsUnavailable, TlsError
from kittiwake.core.imap.connection import ImapConnection
from kittiwake.core.pop3.client import (
    Pop3Client,
    Pop3ConnectionLost,
    Pop3StartTlsUnavailable,
    Pop3TlsError,
)
from kittiwake.core.smtp.client import SmtpAccountError, SmtpError, SmtpSession

DEADLINE = 10.0
ProxyFactory = Callable[[str, int], TcpProxy]

IMAP_GO = b" OK Begin TLS negotiation now.\r\n"
POP3_GO = b"+OK Begin TLS negotiation now.\r\n"
SMTP_GO = b"220 2.0.0 Ready to start TLS\r\n"


def assert_no_secret(proxy: TcpProxy, user: User) -> None:
    sent = proxy.client_bytes()
    for form in user.secret_forms():
        assert form not in sent, f"password form {form!r} went over the wire"


def plaintext_part(sent: bytes) -> bytes:
    """What the client sent before its first TLS record (0x16 0x03: a handshake record)."""
    at = sent.find(b"\x16\x03")
    return sent if at < 0 else sent[:at]


def next_imap_tag(sent: bytes) -> bytes:
    """The tag the client will use next: the STARTTLS command's tag, its number plus one."""
    (line,) = [ln for ln in sent.split(b"\r\n") if ln.endswith(b" STARTTLS")]
    match = re.fullmatch(rb"([A-Za-z]+)(\d+) STARTTLS", line)
    assert match is not None, line
    return match[1] + str(int(match[2]) + 1).encode()


def smtp_account(user: User, proxy: TcpProxy, ca_file: Path) -> Account:
    config = config_from_dict(
        {
            "accounts": {
                "me": {
                    "email": user.email,
                    "imap": {"host": proxy.host, "ca_file": str(ca_file)},
                    "smtp": {
                        "host": proxy.host,
                        "port": proxy.port,
                        "security": "starttls",
                        "user": user.login,
                        "password": user.password,
                        "ca_file": str(ca_file),
                        "timeout": DEADLINE,
                    },
                }
            }
        }
    )
    return config.accounts["me"]


# -------------------------------------------------------------------- response injection


async def test_imap_injected_replies_after_starttls_are_never_read(
    dovecot: Dovecot, user: User, proxy_factory: ProxyFactory
) -> None:
    """Forged CAPABILITY, EXISTS, a BYE and the very tagged OK the next command will wait for,
    all glued to Dovecot's real "Begin TLS": none of it may be taken as said over TLS."""
    proxy = proxy_factory(dovecot.host, dovecot.ports.imap)

    def forged(sent: bytes) -> bytes:
        tag = next_imap_tag(sent)
        return (
            b"* CAPABILITY IMAP4rev1 AUTH=PLAIN INJECTED\r\n* 666 EXISTS\r\n"
            + tag
            + b" OK [CAPABILITY IMAP4rev1 INJECTED] forged\r\n* BYE injected\r\n"
        )

    proxy.inject_after(IMAP_GO, forged)
    seen: list[bytes] = []
    conn = ImapConnection(timeout=DEADLINE, on_untagged=seen.append)
    await conn.connect(proxy.host, proxy.port, "starttls", dovecot.ca.client_context())
    try:
        assert proxy.armed() == 0, "the injection never fired"
        assert conn.tls_active
        assert "INJECTED" not in conn.capabilities and "IDLE" in conn.capabilities
        assert conn._protocol is not None and conn._protocol.discarded_bytes > 0
        await conn.login(user.login, user.password)
        result = await conn.select("INBOX")
        assert result.ok
        # "666 EXISTS", not "666": a UIDVALIDITY is a Unix time and holds 666 on some days.
        assert not any(b"INJECTED" in r or b"666 EXISTS" in r or b"BYE" in r for r in seen)
    finally:
        await conn.logout(timeout=2)
    assert b"LOGIN" not in plaintext_part(proxy.client_bytes())
    assert_no_secret(proxy, user)


async def test_pop3_injected_replies_after_stls_are_never_read(
    dovecot: Dovecot, user: User, proxy_factory: ProxyFactory
) -> None:
    """A forged CAPA listing and a forged +OK glued to Dovecot's "+OK Begin TLS": the CAPA
    asked over TLS must be the server's, and the login must run on the real replies."""
    proxy = proxy_factory(dovecot.host, dovecot.ports.pop3)
    proxy.inject_after(POP3_GO, b"+OK forged\r\nINJECTED\r\nSASL PLAIN\r\n.\r\n-ERR forged\r\n")
    client = Pop3Client(timeout=DEADLINE)
    await client.connect(proxy.host, proxy.port, "starttls", dovecot.ca.client_context())
    try:
        assert proxy.armed() == 0, "the injection never fired"
        assert client.tls_active
        assert client.discarded_bytes > 0
        assert "INJECTED" not in client.capabilities and "USER" in client.capabilities
        await client.login(user.login, user.password)
        assert await client.stat() == (0, 0)
        await client.quit()
    finally:
        await client.close()
    assert plaintext_part(proxy.client_bytes()) == b"CAPA\r\nSTLS\r\n"
    assert_no_secret(proxy, user)


async def test_smtp_injected_replies_after_starttls_are_never_read(
    postfix: Postfix, user: User, proxy_factory: ProxyFactory
) -> None:
    """A forged EHLO reply (no SMTPUTF8, SIZE 1) and a forged refusal glued to Postfix's
    "220 Ready to start TLS": aiosmtplib (>= 5.1.3 discards them) and our session must read
    only what came over TLS."""
    proxy = proxy_factory(postfix.host, postfix.ports.submission)
    proxy.inject_after(SMTP_GO, b"250-forged\r\n250 SIZE 1\r\n535 5.7.8 forged refusal\r\n")
    account = smtp_account(user, proxy, postfix.ca_file)
    async with SmtpSession(account) as session:
        assert proxy.armed() == 0, "the injection never fired"
        caps = session.capabilities
        assert caps.smtputf8 and caps.size != 1
    assert b"AUTH" not in plaintext_part(proxy.client_bytes())
    assert_no_secret(proxy, user)


# ------------------------------------------------- PREAUTH, STARTTLS stripped or refused


async def test_imap_preauth_greeting_on_a_starttls_account_is_refused(
    dovecot: Dovecot, user: User, proxy_factory: ProxyFactory
) -> None:
    """PREAUTH skips the not-authenticated state where STARTTLS is allowed (RFC 3501 6.2.1):
    a STARTTLS account must stop, not carry on in plain text."""
    proxy = proxy_factory(dovecot.host, dovecot.ports.imap)
    proxy.rewrite(b"* OK ", b"* PREAUTH ")
    conn = ImapConnection(timeout=DEADLINE)
    with pytest.raises(TlsError, match="pre-authenticated") as err:
        await conn.connect(proxy.host, proxy.port, "starttls", dovecot.ca.client_context())
    assert proxy.armed() == 0
    assert f"{proxy.host}:{proxy.port}" in err.value.message
    assert not conn.is_connected
    sent = proxy.client_bytes()
    assert b"STARTTLS" not in sent and b"LOGIN" not in sent and b"AUTHENTICATE" not in sent
    assert_no_secret(proxy, user)


@pytest.mark.parametrize(
    ("protocol", "pattern"),
    [("imap", b" STARTTLS"), ("pop3", b"\r\nSTLS\r\n"), ("smtp", b"250-STARTTLS\r\n")],
)
async def test_starttls_stripped_from_the_capabilities_sends_nothing_secret(
    protocol: str,
    pattern: bytes,
    dovecot: Dovecot,
    postfix: Postfix,
    user: User,
    proxy_factory: ProxyFactory,
) -> None:
    """The real servers offer STARTTLS; the attacker removes it from the first listing. The
    client must refuse (StartTlsUnavailable) rather than log in over plain text."""
    stripped = pattern.replace(b"STARTTLS", b"XTARTTLS").replace(b"STLS", b"XTLS")
    port = {
        "imap": dovecot.ports.imap,
        "pop3": dovecot.ports.pop3,
        "smtp": postfix.ports.submission,
    }[protocol]
    proxy = proxy_factory(dovecot.host if protocol != "smtp" else postfix.host, port)
    proxy.rewrite(pattern, stripped)
    ctx = dovecot.ca.client_context()
    message = ""
    if protocol == "imap":
        with pytest.raises(StartTlsUnavailable) as imap_err:
            await ImapConnection(timeout=DEADLINE).connect(proxy.host, proxy.port, "starttls", ctx)
        message = imap_err.value.message
    elif protocol == "pop3":
        with pytest.raises(Pop3StartTlsUnavailable) as pop3_err:
            await Pop3Client(timeout=DEADLINE).connect(proxy.host, proxy.port, "starttls", ctx)
        message = pop3_err.value.message
    else:
        with pytest.raises(SmtpAccountError) as smtp_err:
            await SmtpSession(smtp_account(user, proxy, postfix.ca_file)).connect()
        message = smtp_err.value.message
    assert proxy.armed() == 0, "the rewrite never fired"
    assert "offer" in message and ("STARTTLS" in message or "STLS" in message)
    sent = proxy.client_bytes()
    assert b"\x16\x03" not in sent  # no handshake was even tried
    for word in (b"LOGIN", b"AUTH", b"USER", b"PASS", b"MAIL FROM"):
        assert word not in sent.replace(b"CAPA", b""), word
    assert_no_secret(proxy, user)


@pytest.mark.parametrize(
    ("protocol", "go", "refusal"),
    [
        ("imap", IMAP_GO, b" NO [ALERT] TLS is down for maintenance, log in anyway\r\n"),
        ("pop3", POP3_GO, b"-ERR TLS is down, use USER/PASS\r\n"),
        ("smtp", SMTP_GO, b"454 4.7.0 TLS not available due to local problem\r\n"),
    ],
)
async def test_starttls_refused_by_the_attacker_stops_before_credentials(
    protocol: str,
    go: bytes,
    refusal: bytes,
    dovecot: Dovecot,
    postfix: Postfix,
    user: User,
    proxy_factory: ProxyFactory,
) -> None:
    port = {
        "imap": dovecot.ports.imap,
        "pop3": dovecot.ports.pop3,
        "smtp": postfix.ports.submission,
    }[protocol]
    proxy = proxy_factory(dovecot.host if protocol != "smtp" else postfix.host, port)
    proxy.rewrite(go, refusal)
    ctx = dovecot.ca.client_context()
    error: KittiwakeError
    if protocol == "imap":
        with pytest.raises(TlsError) as imap_err:
            await ImapConnection(timeout=DEADLINE).connect(proxy.host, proxy.port, "starttls", ctx)
        error = imap_err.value
    elif protocol == "pop3":
        with pytest.raises(Pop3TlsError) as pop3_err:
            await Pop3Client(timeout=DEADLINE).connect(proxy.host, proxy.port, "starttls", ctx)
        error = pop3_err.value
    else:
        with pytest.raises(SmtpError) as smtp_err:
            await SmtpSession(smtp_account(user, proxy, postfix.ca_file)).connect()
        error = smtp_err.value
    assert proxy.armed() == 0, "the rewrite never fired"
    assert error.message and "\n" not in error.message
    sent = proxy.client_bytes()
    assert b"\x16\x03" not in sent
    after = sent[sent.upper().rindex(b"STLS" if protocol == "pop3" else b"STARTTLS") :]
    assert after.count(b"\r\n") <= 1, f"the client carried on in plain text: {after!r}"
    assert_no_secret(proxy, user)


# ------------------------------------------------------- connection dropped after STARTTLS


@pytest.mark.parametrize("when", ["after the go-ahead", "before the reply"])
@pytest.mark.parametrize("protocol", ["imap", "pop3", "smtp"])
async def test_connection_dropped_at_starttls_is_a_clear_error_without_fallback(
    protocol: str,
    when: str,
    dovecot: Dovecot,
    postfix: Postfix,
    user: User,
    proxy_factory: ProxyFactory,
) -> None:
    """The link dies right after the server's go-ahead (or before it answers at all): one
    sentence, no second connection, nothing sent in plain text after the STARTTLS command."""
    port, go, command = {
        "imap": (dovecot.ports.imap, IMAP_GO, b" STARTTLS\r\n"),
        "pop3": (dovecot.ports.pop3, POP3_GO, b"STLS\r\n"),
        "smtp": (postfix.ports.submission, SMTP_GO, b"STARTTLS\r\n"),
    }[protocol]
    proxy = proxy_factory(dovecot.host if protocol != "smtp" else postfix.host, port)
    if when == "after the go-ahead":
        proxy.cut_after(go, "server")
    else:
        proxy.cut_after(command, "client")
    ctx = dovecot.ca.client_context()
    error: BaseException
    if protocol == "imap":
        with pytest.raises((TlsError, ConnectionLost)) as imap_err:
            await ImapConnection(timeout=DEADLINE).connect(proxy.host, proxy.port, "starttls", ctx)
        error = imap_err.value
    elif protocol == "pop3":
        with pytest.raises((Pop3TlsError, Pop3ConnectionLost)) as pop3_err:
            await Pop3Client(timeout=DEADLINE).connect(proxy.host, proxy.port, "starttls", ctx)
        error = pop3_err.value
    else:
        with pytest.raises(SmtpError) as smtp_err:
            await SmtpSession(smtp_account(user, proxy, postfix.ca_file)).connect()
        error = smtp_err.value
    assert isinstance(error, KittiwakeError)
    assert error.message and "\n" not in error.message
    assert f"{proxy.host}:{proxy.port}" in error.message or proxy.host in error.message
    assert proxy.connection_count == 1, "the client tried again (in plain text?)"
    sent = proxy.client_bytes()
    assert sent.endswith(command), f"something followed STARTTLS: {sent[-80:]!r}"
    assert_no_secret(proxy, user)
