"""Kittiwake logs in to Courier-IMAP over STARTTLS (harness/courier.py's IMAP port, where
Courier requires TLS before any login), through the recording proxy: nothing that names the
user or the password crosses before the TLS handshake, and mail syncs as on the TLS port."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from harness import TcpProxy, User
from harness.courier import Courier
from harness.mail import message

from kittiwake.core.cache import Cache
from kittiwake.core.config import config_from_dict
from kittiwake.core.errors import StartTlsUnavailable
from kittiwake.core.events import EventBus
from kittiwake.core.imap.account import ImapAccount, Tuning


def _account(tmp_path: Path, courier: Courier, user: User, proxy: TcpProxy) -> ImapAccount:
    imap = {
        "host": proxy.host,
        "port": proxy.port,
        "security": "starttls",
        "user": user.login,
        "password": user.password,
        "ca_file": str(courier.ca_file),
        "timeout": 5,
    }
    config = config_from_dict({"accounts": {"acct": {"email": user.email, "imap": imap}}})
    return ImapAccount(
        config.accounts["acct"],
        Cache(tmp_path / "acct.sqlite3"),
        EventBus(),
        Tuning(backoff_min=0.05, backoff_max=0.5),
    )


def _plain_part(sent: bytes) -> bytes:
    """What the client sent before the TLS handshake began."""
    start = sent.find(b"\x16\x03")
    assert start > 0, "no TLS handshake was sent"
    return sent[:start]


async def test_login_over_starttls_to_courier_never_sends_the_password_in_the_clear(
    tmp_path: Path, courier: Courier, proxy_factory: Callable[[str, int], TcpProxy]
) -> None:
    user = courier.add_user("stan")
    courier.deliver(user, message(1, "over STARTTLS"))
    proxy = proxy_factory(courier.host, courier.ports.imap)
    account = _account(tmp_path, courier, user, proxy)
    try:
        await account.connect_once()
        assert account.client.conn.tls_active
        await account.sync_all()
        [summary] = account.cache.summaries("INBOX", account.cache.uids("INBOX")).values()
        assert summary.envelope.subject == "over STARTTLS"
    finally:
        await account.stop()
        account.cache.close()
    # Courier said no login before TLS; Kittiwake asked for TLS before anything else.
    greeting = proxy.server_bytes().split(b"\r\n", 1)[0]
    assert b"STARTTLS" in greeting and b"LOGINDISABLED" in greeting
    plain = _plain_part(proxy.connections()[0].client_to_server)
    assert plain.endswith(b" STARTTLS\r\n")
    for word in (b"LOGIN", b"AUTHENTICATE", user.login.encode(), user.password.encode()):
        assert word not in plain, word
    assert user.password.encode() not in proxy.client_bytes()


async def test_starttls_stripped_from_courier_s_greeting_stops_before_the_login(
    tmp_path: Path, courier: Courier, proxy_factory: Callable[[str, int], TcpProxy]
) -> None:
    """A man in the middle hides STARTTLS: the account refuses, in one sentence, and sends
    neither the user name nor the password."""
    user = courier.add_user("sid")
    proxy = proxy_factory(courier.host, courier.ports.imap)
    proxy.rewrite(b" STARTTLS", b"")
    account = _account(tmp_path, courier, user, proxy)
    try:
        with pytest.raises(StartTlsUnavailable):
            await account.connect_once()
    finally:
        await account.stop()
        account.cache.close()
    assert proxy.armed() == 0
    sent = proxy.client_bytes()
    assert b"STARTTLS" not in sent and b"\x16\x03" not in sent
    assert user.login.encode() not in sent and user.password.encode() not in sent
