"""Counting deliveries by Message-ID without waiting on time: a sentinel message is submitted,
and once it is in the mailbox and Postfix's queue is empty, everything Postfix accepted before
it has been delivered (or bounced)."""

from __future__ import annotations

import imaplib

from harness import Dovecot, Postfix, User, imap_device, make_message, submit_smtp
from harness.clients import wait_for
from harness.common import run_with_tty


def deliveries(postfix: Postfix, dovecot: Dovecot, rcpt: User, message_id: str) -> int:
    """How many messages with ``message_id`` reached ``rcpt``, once everything Postfix took
    before now is delivered (a sentinel arrived and the queue is empty)."""
    sentinel = make_message(sender=rcpt.email, to=[rcpt.email], subject="sentinel", body="s")
    submit_smtp(postfix, rcpt, sentinel)
    sentinel_id = _header(sentinel, "Message-ID")
    wait_for(lambda: _count(dovecot, rcpt, sentinel_id) == 1, 15, message="the sentinel")
    wait_for(lambda: _queue_empty(postfix), 15, message="an empty Postfix queue")
    return _count(dovecot, rcpt, message_id)


def sent_copies(dovecot: Dovecot, user: User, message_id: str) -> int:
    """How many messages with ``message_id`` the user's Sent folder holds (0 without one)."""
    return _count(dovecot, user, message_id, "Sent")


def _header(raw: bytes, name: str) -> str:
    for line in raw.decode().splitlines():
        if line.lower().startswith(name.lower() + ":"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"no {name}")


def _count(dovecot: Dovecot, user: User, message_id: str, folder: str = "INBOX") -> int:
    if dovecot.ports.imaps is not None:
        imap: imaplib.IMAP4 = imap_device(dovecot, user)
    else:  # a Dovecot without TLS
        assert dovecot.ports.imap is not None
        imap = imaplib.IMAP4(dovecot.host, dovecot.ports.imap, timeout=30)
        imap.login(user.login, user.password)
    try:
        status, _ = imap.select(folder, readonly=True)
        if status != "OK":
            return 0
        _, data = imap.uid("SEARCH", "HEADER", "Message-ID", f'"{message_id}"')
        return len(data[0].split()) if data and data[0] else 0
    except imaplib.IMAP4.error:
        return 0
    finally:
        imap.logout()


def _queue_empty(postfix: Postfix) -> bool:
    _, output = run_with_tty(["postqueue", "-c", str(postfix.config_dir), "-p"])
    return "Mail queue is empty" in output
