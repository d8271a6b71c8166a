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
    for n in range(start, start + count):
        typ, _ = imap.append(mailbox, "", None, message(n))
        assert typ == "OK"
