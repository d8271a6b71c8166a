"""A test message to the account's own address, watched until it arrives: proof that sending
and receiving both work end to end, with the round-trip time.

IMAP watches INBOX over IDLE (the server tells us the moment it arrives) and finds the message
by a token in its Subject; POP3 has no push, so the maildrop's size is checked every second.
The message stays in the mailbox: the user asked for it and may look at it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from kittiwake.core.config import Account
from kittiwake.core.errors import KittiwakeError
from kittiwake.core.setup.login import imap_session, pop3_session
from kittiwake.core.smtp.client import SmtpSession


@dataclass(frozen=True, slots=True)
class RoundTrip:
    ok: bool
    detail: str
    seconds: float = 0.0


def self_test_message(account: Account, token: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"{account.name} <{account.email}>" if account.name else account.email
    msg["To"] = account.email
    msg["Subject"] = f"Kittiwake test message {token}"
    msg["Date"] = format_datetime(datetime.now(UTC))
    domain = account.email.rpartition("@")[2] or "kittiwake.invalid"
    msg["Message-ID"] = make_msgid("kittiwake-test", domain=domain)
    msg.set_content(
        "Kittiwake sent this message to your own address to check that sending and receiving\n"
        "both work. You may delete it.\n"
    )
    return msg.as_bytes()


async def send_to_self(account: Account, timeout: float = 120.0) -> RoundTrip:
    """Send a test message to ``account``'s own address and wait until it arrives."""
    if account.smtp is None:
        return RoundTrip(False, f"account {account.key} has no SMTP server to send with")
    token = uuid.uuid4().hex[:12]
    raw = self_test_message(account, token)
    try:
        if account.imap is not None:
            return await _via_imap(account, raw, token, timeout)
        return await _via_pop3(account, raw, timeout)
    except KittiwakeError as exc:
        return RoundTrip(False, exc.message)
    except (OSError, TimeoutError) as exc:
        return RoundTrip(False, f"the test message failed: {exc}")


async def _send(account: Account, raw: bytes) -> float:
    async with SmtpSession(account) as smtp:
        started = time.monotonic()
        await smtp.submit(account.email, [account.email], raw)
    return started


async def _via_imap(account: Account, raw: bytes, token: str, timeout: float) -> RoundTrip:
    news = asyncio.Event()

    def untagged(line: bytes) -> None:
        if line.upper().rstrip().endswith(b"EXISTS"):
            news.set()

    conn = await imap_session(account, on_untagged=untagged)
    try:
        await conn.select("INBOX", readonly=True)
        idle = "IDLE" in conn.capabilities
        started = await _send(account, raw)
        deadline = started + timeout
        while time.monotonic() < deadline:
            if idle:
                await conn.idle_start()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(news.wait(), min(25.0, deadline - time.monotonic()))
                await conn.idle_done()
            else:
                await asyncio.sleep(1.0)
                await conn.noop()
            news.clear()
            found = await conn.uid_search("HEADER", "Subject", token)
            if any(part.split()[2:] for part in found.untagged if part.startswith(b"* SEARCH")):
                elapsed = time.monotonic() - started
                how = "IDLE" if idle else "polling"
                return RoundTrip(
                    True,
                    f"the test message arrived in INBOX after {elapsed:.1f} s ({how})",
                    elapsed,
                )
        return RoundTrip(
            False, f"the test message was sent but did not arrive within {timeout:.0f} s"
        )
    finally:
        with contextlib.suppress(Exception):
            await conn.logout(timeout=5)
        with contextlib.suppress(Exception):
            await conn.close()


async def _via_pop3(account: Account, raw: bytes, timeout: float) -> RoundTrip:
    async def count() -> int:
        client = await pop3_session(account)
        try:
            messages, _size = await client.stat()
        finally:
            with contextlib.suppress(Exception):
                await client.quit()
            with contextlib.suppress(Exception):
                await client.close()
        return messages

    before = await count()
    started = await _send(account, raw)
    while time.monotonic() - started < timeout:
        await asyncio.sleep(1.0)
        if await count() > before:
            elapsed = time.monotonic() - started
            return RoundTrip(True, f"the test message arrived after {elapsed:.1f} s", elapsed)
    return RoundTrip(False, f"the test message was sent but did not arrive within {timeout:.0f} s")
