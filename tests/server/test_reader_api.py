"""Reading through ``MailApi`` against the real Dovecot: two different messages that carry
one Message-ID (a careless mailer, or a forger) each show their own rendered HTML, never
the other's, and a message that cannot be loaded leaves its reason in the log."""

from __future__ import annotations

import logging
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

import pytest
from harness import Dovecot, User
from harness.clients import imap_device
from harness.proxy import TcpProxy

from kittiwake.core.api import MailApi
from kittiwake.core.config import config_from_dict
from kittiwake.core.engine import Engine
from kittiwake.core.errors import KittiwakeError
from kittiwake.core.imap.account import ImapAccount


def html_mail(text: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Ann <ann@example.org>"
    msg["Subject"] = "Newsletter"
    msg["Message-ID"] = "<same@example.org>"
    msg.set_content(f"<html><body><p>{text}</p></body></html>", subtype="html")
    return msg.as_bytes()


async def test_two_messages_with_one_message_id_show_their_own_html(
    tmp_path: Path, dovecot: Dovecot, user: User
) -> None:
    device = imap_device(dovecot, user)
    try:
        for text in ("The genuine newsletter.", "A forged copy."):
            assert device.append("INBOX", None, None, html_mail(text))[0] == "OK"
    finally:
        device.logout()
    imap = {
        "host": dovecot.host,
        "port": dovecot.ports.imaps,
        "user": user.login,
        "password": user.password,
        "ca_file": str(dovecot.ca_file),
        "timeout": 5,
    }
    engine = Engine(
        config_from_dict({"accounts": {"a": {"email": user.email, "imap": imap}}}),
        cache_dir=tmp_path / "cache",
    )
    account = engine.stores["a"]
    assert isinstance(account, ImapAccount)
    await account.connect_once()
    await account.sync_all()
    api = MailApi(engine)
    try:
        first = await api.message("a", "INBOX", 1)
        second = await api.message("a", "INBOX", 2)
        assert first is not None and second is not None
        assert first.message_id == second.message_id
        assert "genuine" in (await api.body_text(first))[0]
        assert "forged" in (await api.body_text(second))[0]
        assert "genuine" in (await api.body_text(first))[0]
    finally:
        await api.stop()


async def test_a_message_that_cannot_be_loaded_is_logged_with_its_reason(
    tmp_path: Path,
    dovecot: Dovecot,
    user: User,
    proxy_factory: Callable[[str, int], TcpProxy],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The reader shows one sentence when a message cannot be loaded; the log says why (it
    said nothing)."""
    device = imap_device(dovecot, user)
    try:
        assert device.append("INBOX", None, None, html_mail("Cut in the middle."))[0] == "OK"
    finally:
        device.logout()
    proxy = proxy_factory(dovecot.host, dovecot.ports.imaps)
    imap = {
        "host": proxy.host,
        "port": proxy.port,
        "user": user.login,
        "password": user.password,
        "ca_file": str(dovecot.ca_file),
        "timeout": 5,
    }
    engine = Engine(
        config_from_dict({"accounts": {"a": {"email": user.email, "imap": imap}}}),
        cache_dir=tmp_path / "cache",
    )
    account = engine.stores["a"]
    assert isinstance(account, ImapAccount)
    await account.connect_once()
    await account.sync_all()
    api = MailApi(engine)
    assert proxy.kill_connections() >= 1  # the network drops before the message is read
    try:
        with (
            caplog.at_level(logging.WARNING, logger="kittiwake.core.api"),
            pytest.raises(KittiwakeError),
        ):
            await api.message("a", "INBOX", 1)
        assert any("loading INBOX UID 1 failed" in r.getMessage() for r in caplog.records)
        assert any(r.exc_info for r in caplog.records)
    finally:
        await api.stop()
