"""Independent stdlib clients: how tests inject mail and look at a mailbox "from another device".

These deliberately use imaplib/poplib/smtplib, not Kittiwake's own code, so a test's setup and its
checks cannot share a bug with the client under test. All TLS is verified against the test CA.

Synchronisation rule for the suite: never sleep for a fixed time; wait for a condition with a
deadline (``wait_for`` / ``wait_for_async``), checking it over a separate connection.
"""

from __future__ import annotations

import asyncio
import imaplib
import inspect
import poplib
import re
import smtplib
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from email.utils import format_datetime, getaddresses, make_msgid
from typing import TypeVar

from .dovecot import Dovecot, User
from .postfix import Postfix

_T = TypeVar("_T")


# -- waiting ----------------------------------------------------------------------------------


def wait_for(
    predicate: Callable[[], _T],
    timeout: float = 10.0,
    *,
    interval: float = 0.05,
    message: str = "condition",
) -> _T:
    """Poll ``predicate`` until it returns something truthy, and return that value.

    Raises TimeoutError naming ``message`` (and the last exception the predicate raised, if any)
    when ``timeout`` seconds pass first.
    """
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as error:  # the condition may not be checkable yet (server restarting)
            last_error = error
        if time.monotonic() > deadline:
            detail = f" (last error: {last_error!r})" if last_error else ""
            raise TimeoutError(f"{message} not met within {timeout:.1f} s{detail}")
        time.sleep(interval)


async def wait_for_async(
    predicate: Callable[[], _T | Awaitable[_T]],
    timeout: float = 10.0,
    *,
    interval: float = 0.05,
    message: str = "condition",
) -> _T:
    """``wait_for`` for async tests: never blocks the event loop between polls.

    ``predicate`` may be a coroutine function. A synchronous predicate that does network I/O
    (e.g. an imaplib check) should be wrapped: ``lambda: asyncio.to_thread(check)``.
    """
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = predicate()
            if inspect.isawaitable(value):
                value = await value
            if value:
                return value
        except Exception as error:
            last_error = error
        if time.monotonic() > deadline:
            detail = f" (last error: {last_error!r})" if last_error else ""
            raise TimeoutError(f"{message} not met within {timeout:.1f} s{detail}")
        await asyncio.sleep(interval)


# -- composing and injecting mail -------------------------------------------------------------


def make_message(
    *,
    sender: str,
    to: Sequence[str],
    subject: str,
    body: str | bytes,
    extra_headers: Sequence[tuple[str, str]] = (),
) -> bytes:
    """A minimal, valid RFC 5322 message with CRLF line ends, Date and a unique Message-ID.

    The servers are configured not to add missing headers, so a message made here arrives with
    exactly these headers below the ones the servers prepend (Return-Path, Delivered-To, Received).
    """
    headers = [
        ("From", sender),
        ("To", ", ".join(to)),
        ("Subject", subject),
        ("Date", format_datetime(datetime.now(UTC))),
        ("Message-ID", make_msgid(domain="kittiwake.test")),
        ("MIME-Version", "1.0"),
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Transfer-Encoding", "8bit"),
        *extra_headers,
    ]
    head = "".join(f"{name}: {value}\r\n" for name, value in headers).encode()
    raw_body = body.encode() if isinstance(body, str) else body
    raw_body = re.sub(rb"\r?\n", b"\r\n", raw_body)
    if not raw_body.endswith(b"\r\n"):
        raw_body += b"\r\n"
    return head + b"\r\n" + raw_body


def deliver_lmtp(
    dovecot: Dovecot, rcpt: str | User, raw: bytes, *, mail_from: str = "sender@example.net"
) -> None:
    """Put a message straight into a mailbox via Dovecot's LMTP (no Postfix involved).

    Delivery is complete when this returns: the message is in INBOX.
    """
    address = rcpt.email if isinstance(rcpt, User) else rcpt
    with smtplib.LMTP(dovecot.host, dovecot.ports.lmtp, timeout=30) as lmtp:
        refused = lmtp.sendmail(mail_from, [address], raw)
    if refused:
        raise smtplib.SMTPRecipientsRefused(refused)


def recipients_of(raw: bytes) -> list[str]:
    """The To/Cc/Bcc addresses in a message's header."""
    header = BytesHeaderParser().parsebytes(raw)
    fields = [value for name in ("To", "Cc", "Bcc") for value in header.get_all(name, [])]
    return [address for _, address in getaddresses(fields) if address]


def submit_smtp(
    postfix: Postfix,
    user: User,
    raw: bytes,
    *,
    to: Sequence[str] | None = None,
    mail_from: str | None = None,
    implicit_tls: bool = False,
) -> None:
    """Submit like a well-behaved client: STARTTLS (or implicit TLS), AUTH, send.

    Recipients default to the message's To/Cc/Bcc; the envelope sender to the user's address.
    Returning means Postfix queued the message; delivery to Dovecot happens right after (wait for
    it with ``wait_for_messages``).
    """
    context = postfix.ca.client_context()
    recipients = list(to) if to is not None else recipients_of(raw)
    if implicit_tls:
        smtp: smtplib.SMTP = smtplib.SMTP_SSL(
            postfix.host, postfix.ports.submissions, timeout=30, context=context
        )
    else:
        smtp = smtplib.SMTP(postfix.host, postfix.ports.submission, timeout=30)
    with smtp:
        if not implicit_tls:
            smtp.starttls(context=context)
        smtp.login(user.login, user.password)
        refused = smtp.sendmail(mail_from or user.email, recipients, raw)
    if refused:
        raise smtplib.SMTPRecipientsRefused(refused)


# -- looking from another device --------------------------------------------------------------


def imap_device(dovecot: Dovecot, user: User) -> imaplib.IMAP4_SSL:
    """A logged-in IMAPS connection (a second device on the same account). Caller logs out."""
    if dovecot.ports.imaps is None:
        raise ValueError("this Dovecot has TLS disabled; it has no IMAPS port")
    imap = imaplib.IMAP4_SSL(
        dovecot.host, dovecot.ports.imaps, ssl_context=dovecot.ca.client_context(), timeout=30
    )
    imap.login(user.login, user.password)
    return imap


def pop3_device(dovecot: Dovecot, user: User) -> poplib.POP3_SSL:
    """A logged-in POP3S connection. Caller sends ``quit()``."""
    if dovecot.ports.pop3s is None:
        raise ValueError("this Dovecot has TLS disabled; it has no POP3S port")
    pop = poplib.POP3_SSL(
        dovecot.host, dovecot.ports.pop3s, context=dovecot.ca.client_context(), timeout=30
    )
    pop.user(user.login)
    pop.pass_(user.password)
    return pop


def imap_fetch_all(imap: imaplib.IMAP4, mailbox: str = "INBOX") -> list[bytes]:
    """Raw bytes of every message in ``mailbox``, in UID order (selects it read-only)."""
    typ, _ = imap.select(_quote(mailbox), readonly=True)
    if typ != "OK":
        raise imaplib.IMAP4.error(f"cannot select {mailbox!r}")
    typ, data = imap.uid("FETCH", "1:*", "(BODY.PEEK[])")
    if typ != "OK":
        raise imaplib.IMAP4.error(f"UID FETCH failed in {mailbox!r}")
    return [item[1] for item in data if isinstance(item, tuple)]


def pop3_fetch_all(pop: poplib.POP3) -> list[bytes]:
    """Raw bytes of every message in the maildrop, reassembled with CRLF line ends."""
    count, _ = pop.stat()
    messages = []
    for number in range(1, count + 1):
        _, lines, _ = pop.retr(number)
        messages.append(b"".join(line + b"\r\n" for line in lines))
    return messages


def wait_for_messages(
    dovecot: Dovecot, user: User, count: int = 1, *, mailbox: str = "INBOX", timeout: float = 10.0
) -> list[bytes]:
    """Poll (over fresh IMAPS connections) until ``mailbox`` holds at least ``count`` messages."""

    def check() -> list[bytes]:
        imap = imap_device(dovecot, user)
        try:
            messages = imap_fetch_all(imap, mailbox)
        finally:
            imap.logout()
        return messages if len(messages) >= count else []

    return wait_for(check, timeout, interval=0.1, message=f"{count} message(s) in {mailbox}")


def _quote(mailbox: str) -> str:
    return '"' + mailbox.replace("\\", "\\\\").replace('"', '\\"') + '"'
