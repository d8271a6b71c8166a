"""``kittiwake send``'s engine (``run_send``): a complete message from a script, through the
outbox, to the real Postfix and on to Dovecot."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path

from harness import (
    Dovecot,
    Postfix,
    User,
    imap_device,
    imap_fetch_all,
    wait_for,
    wait_for_messages,
)

from kittiwake.core.config import Config, config_from_dict
from kittiwake.core.message.mime import parse_message
from kittiwake.core.smtp.outbox import Backoff, Outbox, OutboxRunner, SentInfo
from kittiwake.core.smtp.send import run_send

FAST = Backoff(first=0.2, factor=1.5, maximum=1.0, jitter=0.0)


def config_for(user: User, mta: Postfix, *, other: User | None = None) -> Config:
    def account(u: User, email: str) -> dict[str, object]:
        return {
            "email": email,
            "name": "Script Sender",
            "imap": {"host": mta.host, "ca_file": str(mta.ca_file)},
            "smtp": {
                "host": mta.host,
                "port": mta.ports.submission,
                "security": "starttls",
                "user": u.login,
                "password": u.password,
                "ca_file": str(mta.ca_file),
                "timeout": 10,
            },
        }

    accounts = {}
    if other is not None:
        accounts["first"] = account(other, other.email)
    accounts["me"] = account(user, user.email)
    return config_from_dict({"accounts": accounts})


class SentCopies:
    def __init__(self) -> None:
        self.copies: list[tuple[str, bytes, SentInfo]] = []

    async def __call__(self, account: str, raw: bytes, info: SentInfo) -> None:
        self.copies.append((account, raw, info))


def script_message(sender: str, to: str, bcc: str, subject: str = "from a script") -> bytes:
    """What git format-patch and friends produce: an mbox From line, 8-bit body, LF endings,
    no Date, no Message-ID."""
    return (
        "From 1234567890abcdef Mon Sep 17 00:00:00 2001\n"
        f"From: Script Sender <{sender}>\n"
        f"To: {to}\n"
        f"Bcc: Hidden <{bcc}>\n"
        f"Subject: {subject}\n"
        "MIME-Version: 1.0\n"
        "Content-Type: text/plain; charset=utf-8\n"
        "Content-Transfer-Encoding: 8bit\n"
        "\n"
        "Grüße from a script.\n"
        ".\n"
        "-- \n"
        "2.43.0\n"
    ).encode()


async def test_a_script_message_is_sent_with_date_and_message_id_and_bcc_hidden(
    tmp_path: Path, postfix: Postfix, dovecot: Dovecot, user: User, user2: User
) -> None:
    carol = dovecot.add_user("carol")
    copies = SentCopies()
    config = config_for(user, postfix, other=dovecot.add_user("first"))

    result = await run_send(
        config,
        None,
        script_message(user.email, user2.email, carol.email),
        on_sent=copies,
        outbox_root=tmp_path,
    )

    assert result.status == "accepted" and result.exit_code == 0, result.message
    assert result.account == "me"  # chosen by From, not the first account
    assert result.message.startswith("sent:")
    for who in (user2, carol):
        (raw,) = await asyncio.to_thread(wait_for_messages, dovecot, who, 1)
        parsed = parse_message(raw)
        assert parsed.message_id == result.message_id
        assert parsed.date is not None
        assert parsed.header("Bcc") is None
        assert parsed.text is not None and "Grüße from a script." in parsed.text
        assert b"From 1234567890abcdef" not in raw
    ((account, copy, info),) = copies.copies
    assert account == "me" and info.message_id == result.message_id
    assert parse_message(copy).header("Bcc") == f"Hidden <{carol.email}>"
    assert Outbox("me", tmp_path).items() == []


async def test_with_the_server_down_the_message_is_queued_then_sent_by_the_next_pass(
    tmp_path: Path,
    postfix_factory: Callable[..., Postfix],
    dovecot: Dovecot,
    user: User,
    user2: User,
) -> None:
    mta = postfix_factory()
    config = config_for(user, mta)
    mta.stop()

    result = await run_send(
        config, "me", script_message(user.email, user2.email, user2.email), outbox_root=tmp_path
    )

    assert result.status == "queued" and result.exit_code == 0
    assert "cannot reach" in result.message
    mta.start()
    # What the app (on its next start) or `kittiwake sync` does with the outbox.
    runner = OutboxRunner(config.accounts["me"], Outbox("me", tmp_path), backoff=FAST)
    (outcome,) = await runner.flush(force=True)
    assert outcome.status == "accepted"
    (raw,) = await asyncio.to_thread(wait_for_messages, dovecot, user2, 1)
    assert parse_message(raw).message_id == result.message_id


async def test_a_refusal_exits_non_zero_with_the_servers_words(
    tmp_path: Path, postfix_factory: Callable[..., Postfix], user: User
) -> None:
    mta = postfix_factory(
        extra_main_cf="smtpd_recipient_restrictions = check_recipient_access "
        "inline:{ { nobody@example.test = 550 5.7.1 Go away } }, permit"
    )
    config = config_for(user, mta)

    result = await run_send(
        config,
        None,
        script_message(user.email, "nobody@example.test", "nobody@example.test"),
        outbox_root=tmp_path,
    )

    assert result.status == "refused" and result.exit_code == 1
    assert "550 5.7.1" in result.message and "Go away" in result.message
    assert result.message.endswith("(kept in the outbox)")
    (kept,) = Outbox("me", tmp_path).items()
    assert kept.message_id == result.message_id


async def test_sending_the_same_message_twice_sends_it_once(
    tmp_path: Path, postfix: Postfix, dovecot: Dovecot, user: User, user2: User
) -> None:
    config = config_for(user, postfix)
    fixed = f"<fixed-{uuid.uuid4().hex}@example.test>"
    raw = script_message(user.email, user2.email, user2.email).replace(
        b"Subject:", f"Message-ID: {fixed}\nSubject:".encode()
    )
    first = await run_send(config, None, raw, outbox_root=tmp_path)
    again = await run_send(config, None, raw, outbox_root=tmp_path)

    assert first.status == again.status == "accepted"
    assert "not sent again" in again.message
    (got,) = await asyncio.to_thread(wait_for_messages, dovecot, user2, 1)
    assert parse_message(got).message_id == fixed

    def submissions() -> int:
        return postfix.maillog.read_text(errors="replace").count(f"message-id={fixed}")

    await asyncio.to_thread(wait_for, submissions, 10, message="maillog")
    assert submissions() == 1
    imap = imap_device(dovecot, user2)
    try:
        assert len(imap_fetch_all(imap)) == 1
    finally:
        imap.logout()
