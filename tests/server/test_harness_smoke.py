"""Smoke tests for the server harness itself: if these fail, every server test is meaningless.

They check the promises the other suites build on: mail submitted through Postfix arrives intact,
the servers advertise what a modern client needs, STARTTLS is offered exactly where it should be,
restarts keep mail, and the proxy sees and breaks what it should.
"""

from __future__ import annotations

import imaplib
import poplib
import smtplib
import socket
import ssl
from collections.abc import Callable
from email.parser import BytesHeaderParser

import pytest
from harness import (
    SPECIAL_USE_MAILBOXES,
    Dovecot,
    Postfix,
    TcpProxy,
    User,
    deliver_lmtp,
    imap_device,
    imap_fetch_all,
    make_message,
    pop3_device,
    pop3_fetch_all,
    submit_smtp,
    wait_for,
    wait_for_messages,
)

REQUIRED_IMAP_CAPABILITIES = (
    "IDLE",
    "CONDSTORE",
    "QRESYNC",
    "MOVE",
    "UIDPLUS",
    "SPECIAL-USE",
    "NOTIFY",
)

# A body that trips common mangling: SMTP dot-stuffing, mbox "From " escaping, 8-bit UTF-8, trailing
# whitespace, tabs, a long line, an empty last line.
TRICKY_BODY = "".join(
    line + "\r\n"
    for line in (
        "From the start: this line must not become '>From'.",
        ".",
        "..leading dots stay as they are",
        ". a dot and a space",
        "Ünïcödé 8-bit body — ☃ ✓",
        "trailing spaces and a tab   \t",
        "\tindented with a tab",
        "x" * 900,
        "",
    )
).encode()

# Headers the servers put on top of a message: Postfix adds Received, Dovecot's LMTP adds
# Return-Path, Delivered-To and its own Received. Nothing else may change.
TRACE_HEADERS = {"return-path", "delivered-to", "received"}


def assert_delivered_intact(delivered: bytes, original: bytes) -> None:
    """The delivered message is the original, byte for byte, below added trace headers only."""
    assert delivered.endswith(original), "the original message is not an exact suffix"
    added = delivered[: len(delivered) - len(original)]
    assert added.endswith(b"\r\n") and b"\r\n\r\n" not in added
    added_names = {name.lower() for name in BytesHeaderParser().parsebytes(added + b"\r\n")}
    assert added_names <= TRACE_HEADERS, f"unexpected headers added: {added_names - TRACE_HEADERS}"
    # Spelled out as well: same original header block, identical body bytes.
    header, _, body = delivered.partition(b"\r\n\r\n")
    original_header, _, original_body = original.partition(b"\r\n\r\n")
    assert body == original_body
    assert header.endswith(original_header)


def test_submitted_mail_arrives_byte_for_byte_over_imaps_and_pop3s(
    postfix: Postfix, dovecot: Dovecot, user: User, user2: User
) -> None:
    original = make_message(
        sender=user.email, to=[user2.email], subject="Smoke: intact delivery", body=TRICKY_BODY
    )

    submit_smtp(postfix, user, original)  # STARTTLS verified against the test CA, then AUTH

    (over_imap,) = wait_for_messages(dovecot, user2, 1)
    assert_delivered_intact(over_imap, original)
    pop = pop3_device(dovecot, user2)
    try:
        (over_pop,) = pop3_fetch_all(pop)
    finally:
        pop.quit()
    assert over_pop == over_imap


def test_submission_over_implicit_tls(postfix: Postfix, dovecot: Dovecot, user: User) -> None:
    original = make_message(sender=user.email, to=[user.email], subject="via 465", body=b"hi\r\n")
    submit_smtp(postfix, user, original, implicit_tls=True)
    (delivered,) = wait_for_messages(dovecot, user, 1)
    assert_delivered_intact(delivered, original)


def test_lmtp_delivery_and_fresh_users_are_isolated(
    dovecot: Dovecot, user: User, user2: User
) -> None:
    assert user.login != user2.login
    original = make_message(sender="x@example.net", to=[user.email], subject="lmtp", body=b"1\r\n")
    deliver_lmtp(dovecot, user, original)

    imap = imap_device(dovecot, user)
    try:
        (delivered,) = imap_fetch_all(imap)  # LMTP returns only after the message is stored
    finally:
        imap.logout()
    assert_delivered_intact(delivered, original)
    other = imap_device(dovecot, user2)
    try:
        assert imap_fetch_all(other) == []
    finally:
        other.logout()


def test_imaps_capabilities_after_login(dovecot: Dovecot, user: User) -> None:
    imap = imap_device(dovecot, user)
    try:
        typ, data = imap.capability()
        assert typ == "OK"
        capabilities = set(data[-1].decode().upper().split())
        missing = [cap for cap in REQUIRED_IMAP_CAPABILITIES if cap not in capabilities]
        assert missing == [], f"missing {missing} in {sorted(capabilities)}"

        typ, listing = imap.list()
        assert typ == "OK"
        lines = [line.decode() for line in listing if isinstance(line, bytes)]
        for name, attribute in SPECIAL_USE_MAILBOXES.items():
            assert any(line.endswith(f" {name}") and attribute in line for line in lines), lines
    finally:
        imap.logout()


def test_imap_port_offers_starttls_and_refuses_login_before_it(
    dovecot: Dovecot, user: User
) -> None:
    imap = imaplib.IMAP4(dovecot.host, dovecot.ports.imap, timeout=10)
    try:
        assert "STARTTLS" in imap.capabilities
        assert "LOGINDISABLED" in imap.capabilities  # loopback is not treated as secure
        with pytest.raises(imaplib.IMAP4.error, match=r"PRIVACYREQUIRED|disallowed"):
            imap.login(user.login, user.password)
        imap.starttls(ssl_context=dovecot.ca.client_context())
        typ, _ = imap.login(user.login, user.password)
        assert typ == "OK"
    finally:
        imap.logout()


def test_pop3_port_offers_stls(dovecot: Dovecot, user: User) -> None:
    pop = poplib.POP3(dovecot.host, dovecot.ports.pop3, timeout=10)
    try:
        assert "STLS" in pop.capa()
        pop.stls(context=dovecot.ca.client_context())
        pop.user(user.login)
        assert pop.pass_(user.password).startswith(b"+OK")
    finally:
        pop.quit()


def test_no_tls_variant_offers_no_starttls(dovecot_factory: Callable[..., Dovecot]) -> None:
    plain = dovecot_factory(tls=False)
    assert plain.ports.imaps is None and plain.ports.pop3s is None
    account = plain.add_user("plain")

    imap = imaplib.IMAP4(plain.host, plain.ports.imap, timeout=10)
    try:
        assert "STARTTLS" not in imap.capabilities
        assert "LOGINDISABLED" not in imap.capabilities
        typ, _ = imap.login(account.login, account.password)  # a bad client *could* do this
        assert typ == "OK"
    finally:
        imap.logout()
    pop = poplib.POP3(plain.host, plain.ports.pop3, timeout=10)
    try:
        assert "STLS" not in pop.capa()
    finally:
        pop.quit()


def test_extra_conf_can_hide_capabilities(dovecot_factory: Callable[..., Dovecot]) -> None:
    basic = dovecot_factory(extra_conf="imap_capability = IMAP4rev1 IDLE UIDPLUS\n")
    account = basic.add_user("basic")
    imap = imap_device(basic, account)
    try:
        capabilities = set(imap.capability()[1][-1].decode().upper().split())
    finally:
        imap.logout()
    assert {"IDLE", "UIDPLUS"} <= capabilities
    assert not {"MOVE", "CONDSTORE", "QRESYNC", "NOTIFY"} & capabilities


def test_postfix_ports_offer_what_they_should(postfix: Postfix) -> None:
    with smtplib.SMTP(postfix.host, postfix.ports.submission, timeout=10) as smtp:
        smtp.ehlo()
        assert smtp.has_extn("starttls")
        assert not smtp.has_extn("auth")  # smtpd_tls_auth_only: no AUTH before TLS
        smtp.starttls(context=postfix.ca.client_context())
        smtp.ehlo()
        assert smtp.has_extn("auth")

    with smtplib.SMTP(postfix.host, postfix.ports.plain, timeout=10) as smtp:
        smtp.ehlo()
        assert not smtp.has_extn("starttls")
        assert smtp.has_extn("auth")

    context = postfix.ca.client_context()
    with smtplib.SMTP_SSL(
        postfix.host, postfix.ports.submissions, timeout=10, context=context
    ) as smtp:
        smtp.ehlo()
        assert smtp.has_extn("auth")
        assert not smtp.has_extn("starttls")


def test_certificate_is_verified_for_real(dovecot: Dovecot) -> None:
    assert dovecot.ports.imaps is not None
    untrusting = ssl.create_default_context()  # system roots only: must reject the test CA
    with (
        socket.create_connection((dovecot.host, dovecot.ports.imaps), timeout=10) as raw,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        untrusting.wrap_socket(raw, server_hostname=dovecot.host)


def test_dovecot_stop_and_restart_keep_mail(dovecot_factory: Callable[..., Dovecot]) -> None:
    server = dovecot_factory()
    account = server.add_user("durable")
    original = make_message(
        sender="x@example.net", to=[account.email], subject="keep", body=b"k\r\n"
    )
    deliver_lmtp(server, account, original)
    ports = server.ports

    server.stop()
    assert not server.running
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((server.host, ports.imap), timeout=2).close()
    server.start()
    assert server.ports == ports
    (delivered,) = imap_fetch_all_for(server, account)
    assert_delivered_intact(delivered, original)

    server.restart(graceful=False)  # a crash: SIGKILL to the whole process group
    (delivered,) = imap_fetch_all_for(server, account)
    assert_delivered_intact(delivered, original)


def test_postfix_queues_while_dovecot_is_down_and_delivers_after(
    dovecot_factory: Callable[..., Dovecot], postfix_factory: Callable[..., Postfix]
) -> None:
    backend = dovecot_factory()
    relay = postfix_factory(dovecot=backend)
    account = backend.add_user("queued")
    original = make_message(sender=account.email, to=[account.email], subject="q", body=b"q\r\n")

    with smtplib.SMTP(relay.host, relay.ports.submission, timeout=10) as smtp:
        smtp.starttls(context=relay.ca.client_context())
        smtp.login(account.login, account.password)  # SASL needs Dovecot: log in first...
        backend.kill()  # ...then take it away, so LMTP delivery must be deferred
        smtp.sendmail(account.email, [account.email], original)
    wait_for(lambda: "status=deferred" in relay.log_tail(), 10, message="delivery deferred")

    relay.stop()  # the queue survives a Postfix restart
    backend.start()
    relay.start()  # (smtpd needs Dovecot's auth to start, so Dovecot comes first)
    (delivered,) = wait_for_messages(backend, account, 1, timeout=15)
    assert_delivered_intact(delivered, original)


def imap_fetch_all_for(server: Dovecot, account: User) -> list[bytes]:
    imap = imap_device(server, account)
    try:
        return imap_fetch_all(imap)
    finally:
        imap.logout()


def test_proxy_records_both_directions_and_sees_plaintext_credentials(
    dovecot_factory: Callable[..., Dovecot], proxy_factory: Callable[[str, int], TcpProxy]
) -> None:
    plain = dovecot_factory(tls=False)
    account = plain.add_user("leaky")
    proxy = proxy_factory(plain.host, plain.ports.imap)

    imap = imaplib.IMAP4(proxy.host, proxy.port, timeout=10)
    imap.login(account.login, account.password)
    imap.logout()

    sent = proxy.client_bytes()
    assert b"LOGIN" in sent
    assert any(form in sent for form in account.secret_forms())  # the detector works
    assert proxy.server_bytes().startswith(b"* OK")
    assert proxy.connection_count == 1


def test_proxy_sees_no_credentials_when_tls_is_used(
    dovecot: Dovecot, user: User, proxy_factory: Callable[[str, int], TcpProxy]
) -> None:
    proxy = proxy_factory(dovecot.host, dovecot.ports.imap)
    imap = imaplib.IMAP4(proxy.host, proxy.port, timeout=10)
    imap.starttls(ssl_context=dovecot.ca.client_context())  # cert names the proxy's address too
    imap.login(user.login, user.password)
    imap.logout()

    sent = proxy.client_bytes()
    assert b"STARTTLS" in sent
    assert not any(form in sent for form in user.secret_forms())


def test_proxy_cuts_mid_fetch_kills_and_refuses(
    dovecot_factory: Callable[..., Dovecot], proxy_factory: Callable[[str, int], TcpProxy]
) -> None:
    plain = dovecot_factory(tls=False)  # plaintext, so the proxy can see where the literal is
    account = plain.add_user("cut")
    big = make_message(
        sender="x@example.net", to=[account.email], subject="big", body=b"y" * 300_000
    )
    deliver_lmtp(plain, account, big)
    proxy = proxy_factory(plain.host, plain.ports.imap)

    imap = imaplib.IMAP4(proxy.host, proxy.port, timeout=10)
    imap.login(account.login, account.password)
    imap.select("INBOX", readonly=True)
    proxy.cut_after(b"yyyyyyyy")  # inside the BODY[] literal
    with pytest.raises((imaplib.IMAP4.abort, OSError)):
        imap.uid("FETCH", "1", "(BODY.PEEK[])")
    imap.shutdown()
    wait_for(lambda: proxy.open_connections == 0, 5, message="cut connection closed")
    received = proxy.connections()[0].server_to_client
    assert b"BODY[] {" in received

    second = imaplib.IMAP4(proxy.host, proxy.port, timeout=10)
    wait_for(lambda: proxy.open_connections == 1, 5, message="second connection open")
    assert proxy.kill_connections() == 1
    with pytest.raises((imaplib.IMAP4.abort, OSError)):
        second.capability()
    second.shutdown()

    proxy.refuse_new_connections()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((proxy.host, proxy.port), timeout=2).close()
    proxy.accept_new_connections()
    third = imaplib.IMAP4(proxy.host, proxy.port, timeout=10)
    third.logout()
