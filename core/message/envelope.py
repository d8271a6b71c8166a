"""An ``Envelope`` from a raw header block: what IMAP's ENVELOPE would have said.

Shared by local mail (a message file has no server to describe it) and by IMAP when the
server's own ENVELOPE cannot be parsed (the message is then shown from ``BODY.PEEK[HEADER]``).
Mail is untrusted: nothing here raises on bad input.
"""

from __future__ import annotations

import logging

from kittiwake.core.message.dates import parse_date
from kittiwake.core.message.headers import FOLD, addresses, header_text
from kittiwake.core.message.ids import first_msgid
from kittiwake.core.models import Envelope

__all__ = ["envelope_from_fields", "first_fields"]

log = logging.getLogger(__name__)


def first_fields(head: bytes) -> dict[str, str]:
    """The first value of each header, raw (names lower-cased); {} if unparsable."""
    try:
        import email  # ~5 ms to load: when first needed, not at start (local mail, degraded ones)
        import email.policy

        msg = email.message_from_bytes(head, policy=email.policy.default)
        items = [(k, v if isinstance(v, str) else str(v)) for k, v in msg.raw_items()]
    except Exception:
        log.debug("unparsable header block", exc_info=True)
        return {}
    first: dict[str, str] = {}
    for key, value in items:
        first.setdefault(key.lower(), value)
    return first


def envelope_from_fields(first: dict[str, str]) -> Envelope:
    """The envelope of the header fields ``first_fields`` read."""
    date_raw = first.get("date")
    return Envelope(
        date=parse_date(FOLD.sub(" ", date_raw)) if date_raw else None,
        subject=header_text(first.get("subject", "")),
        from_=addresses(first.get("from")),
        sender=addresses(first.get("sender")),
        reply_to=addresses(first.get("reply-to")),
        to=addresses(first.get("to")),
        cc=addresses(first.get("cc")),
        bcc=addresses(first.get("bcc")),
        in_reply_to=first_msgid(first.get("in-reply-to")),
        message_id=first_msgid(first.get("message-id")),
    )
