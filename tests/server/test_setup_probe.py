"""Probing servers without credentials (setup's confirmation, doctor's layers), against the
real Dovecot and Postfix, and against deliberately broken instances of them."""

from __future__ import annotations

import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from harness import Dovecot, Postfix, TestCA

from kittiwake.core.setup.autoconfig import ServerSetting
from kittiwake.core.setup.probe import probe


def setting(protocol: str, host: str, port: int, security: str) -> ServerSetting:
    return ServerSetting(protocol, host, port, security)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("protocol", "port_name", "security"),
    [
        ("imap", "imaps", "tls"),
        ("imap", "imap", "starttls"),
        ("pop3", "pop3s", "tls"),
        ("pop3", "pop3", "starttls"),
    ],
)
async def test_dovecot_answers_in_every_mode_with_its_capabilities(
    dovecot: Dovecot, protocol: str, port_name: str, security: str
) -> None:
    port = getattr(dovecot.ports, port_name)
    result = await probe(setting(protocol, dovecot.host, port, security), ca_file=dovecot.ca_file)
    assert result.ok, result.detail
    assert result.stage == "done" and "certificate verified" in result.detail
    if protocol == "imap":
        assert {"IMAP4REV1", "IDLE"} <= result.capabilities
        assert "PLAIN" in result.auth_mechanisms
    else:
        assert "UIDL" in result.capabilities


@pytest.mark.parametrize(
    ("port_name", "security"), [("submission", "starttls"), ("submissions", "tls")]
)
async def test_postfix_answers_ehlo_with_auth_after_tls(
    postfix: Postfix, port_name: str, security: str
) -> None:
    port = getattr(postfix.ports, port_name)
    result = await probe(setting("smtp", postfix.host, port, security), ca_file=postfix.ca_file)
    assert result.ok, result.detail
    assert "PLAIN" in result.auth_mechanisms


async def test_the_system_trust_store_alone_refuses_the_test_ca(dovecot: Dovecot) -> None:
    result = await probe(setting("imap", dovecot.host, dovecot.ports.imaps, "tls"))
    assert not result.ok and result.stage == "tls"
    assert "authority this machine does not trust" in result.detail
    assert "ca_file" in result.hint
    assert result.certificate is not None and dovecot.host in result.certificate.names


async def test_tls_on_a_starttls_port_is_named(dovecot: Dovecot) -> None:
    result = await probe(
        setting("imap", dovecot.host, dovecot.ports.imap, "tls"), ca_file=dovecot.ca_file
    )
    assert not result.ok and result.stage == "tls"
    assert "in the clear first" in result.hint and 'security = "starttls"' in result.hint


async def test_starttls_on_a_tls_port_is_named(dovecot: Dovecot) -> None:
    result = await probe(
        setting("imap", dovecot.host, dovecot.ports.imaps, "starttls"),
        ca_file=dovecot.ca_file,
        timeout=2,
    )
    assert not result.ok and result.stage == "greeting"
    assert "expects TLS at once" in result.hint


async def test_a_server_without_starttls(dovecot_factory: Callable[..., Dovecot]) -> None:
    plain = dovecot_factory(tls=False)
    result = await probe(setting("imap", plain.host, plain.ports.imap, "starttls"))
    assert not result.ok and result.stage == "starttls"
    assert "does not offer STARTTLS" in result.detail


async def test_a_certificate_for_another_host_name(
    dovecot_factory: Callable[..., Dovecot], tls_ca: TestCA, tmp_path: Path
) -> None:
    chain, key = tls_ca.issue(tmp_path, "mail.other.example")
    server = dovecot_factory(certificate=(chain, key))
    result = await probe(
        setting("imap", server.host, server.ports.imaps, "tls"), ca_file=server.ca_file
    )
    assert not result.ok and result.stage == "tls"
    assert "certificate is for another host name" in result.detail
    assert result.certificate is not None
    assert result.certificate.names == ("mail.other.example",)


async def test_an_expired_certificate(
    dovecot_factory: Callable[..., Dovecot], tls_ca: TestCA, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    chain, key = tls_ca.issue(
        tmp_path,
        "127.0.0.2",
        not_before=now - timedelta(days=60),
        not_after=now - timedelta(days=1),
    )
    server = dovecot_factory(certificate=(chain, key))
    result = await probe(
        setting("imap", server.host, server.ports.imaps, "tls"), ca_file=server.ca_file
    )
    assert not result.ok and "has expired" in result.detail and "clock" in result.hint
    assert result.certificate is not None and result.certificate.not_after is not None
    assert result.certificate.not_after < now


async def test_nothing_listening_and_no_such_host(dovecot: Dovecot) -> None:
    with socket.socket() as s:  # a port that was free a moment ago and is closed now
        s.bind((dovecot.host, 0))
        free = s.getsockname()[1]
    refused = await probe(setting("imap", dovecot.host, free, "tls"), ca_file=dovecot.ca_file)
    assert not refused.ok and refused.stage == "tcp" and "connection refused" in refused.detail
    unknown = await probe(setting("imap", "no-such-host.invalid", 993, "tls"), timeout=5)
    assert not unknown.ok and unknown.stage == "dns" and "no such host" in unknown.detail


async def test_a_port_of_another_service(dovecot: Dovecot, postfix: Postfix) -> None:
    result = await probe(setting("imap", postfix.host, postfix.ports.plain, "starttls"), timeout=3)
    assert not result.ok and result.stage == "greeting"
    assert "does not answer as IMAP (it said '220 " in result.detail
    assert "another service" in result.hint
