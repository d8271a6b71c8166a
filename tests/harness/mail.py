"""Generated mail for server tests, and server variants."""

from __future__ import annotations

import imaplib
import time
from email.message import EmailMessage

#: A Dovecot that offers none of CONDSTORE, QRESYNC, NOTIFY, MOVE, ESEARCH, LIST-STATUS or
#: SPECIAL-USE: for the fallbacks.
BARE_CAPS = "imap_capability = IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ UIDPLUS"


def message(n: int, subject: str | None = None, sender: str = "Ann <ann@example.org>") -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "me@example.test"
    msg["Subject"] = subject if subject is not None else f"Message {n}"
    msg["Message-ID"] = f"<m{n}.{time.monotonic_ns()}@example.org>"
    msg["Date"] = "Thu, 26 Nov 2026 10:00:00 +0000"
    msg.set_content(f"Body of message {n}\n")
    return msg.as_bytes()


def append_many(imap: imaplib.IMAP4, count: int, mailbox: str = "INBOX", start: int = 1) -> None:
    """Append messages ``start``..: many at once by MULTIAPPEND (RFC 3502) with non-waiting
    literals (LITERAL+) where the server has both, one APPEND a message elsewhere (10,000 single
    APPENDs take minutes on a busy machine)."""
    typ, data = imap.capability()  # after login: MULTIAPPEND is not announced before it
    caps = {c.upper() for c in data[0].decode().split()} if typ == "OK" and data[0] else set()
    if count < 20 or "MULTIAPPEND" not in caps or "LITERAL+" not in caps:
        for n in range(start, start + count):
            typ, _ = imap.append(mailbox, "", None, message(n))
            assert typ == "OK"
        return
    name = '"' + mailbox.replace("\\", "\\\\").replace('"', '\\"') + '"'
    for first in range(start, start + count, 500):
        parts = [
            message(n).replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
            for n in range(first, min(first + 500, start + count))
        ]
        tag = imap._new_tag()  # type: ignore[attr-defined]
        command = tag + b" APPEND " + name.encode()
        for raw in parts:
            command += b" {%d+}\r\n" % len(raw) + raw
        imap.send(command + b"\r\n")
        typ, data = imap._command_complete("APPEND", tag)  # type: ignore[attr-defined]
        assert typ == "OK", data


INNERMOST = b"hello from the innermost part"


def nested_multipart(levels: int) -> bytes:
    """A message of ``levels`` multipart/mixed parts inside each other, text at the bottom."""
    inner = b"Content-Type: text/plain\r\n\r\n" + INNERMOST + b"\r\n"
    for n in range(levels):
        b = b"b%d" % n
        inner = b'Content-Type: multipart/mixed; boundary="%s"\r\n\r\n--%s\r\n%s\r\n--%s--\r\n' % (
            b,
            b,
            inner,
            b,
        )
    head = b"From: Deep <deep@example.org>\r\nSubject: Deep multipart\r\n"
    return head + b"Message-ID: <deep-multipart@example.org>\r\nMIME-Version: 1.0\r\n" + inner


def nested_messages(levels: int) -> bytes:
    """A message of ``levels`` message/rfc822 parts inside each other, text at the bottom."""
    inner = b"Subject: innermost\r\nContent-Type: text/plain\r\n\r\n" + INNERMOST + b"\r\n"
    for n in range(levels):
        inner = b"Subject: level %d\r\nContent-Type: message/rfc822\r\n\r\n" % n + inner
    head = b"From: Deep <deep@example.org>\r\nMessage-ID: <deep-rfc822@example.org>\r\n"
    return head + b"MIME-Version: 1.0\r\n" + inner
