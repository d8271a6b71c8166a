"""A message file's ``MessageSummary``, from its headers (what IMAP's ENVELOPE gives).

Mail is untrusted and a local file may be anything: nothing here raises on bad input. A file
without headers gets an empty envelope; a broken Date none; a header in raw 8-bit text is
decoded as ``core/message/mime.py`` does. Only the header block is read, except for a multipart
message, whose body is parsed to tell whether it has attachments (the paperclip).
"""

from __future__ import annotations

import email
import email.policy
import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import Message
from pathlib import Path

from kittiwake.core.message.envelope import envelope_from_fields, first_fields
from kittiwake.core.message.headers import FOLD
from kittiwake.core.message.ids import msgids
from kittiwake.core.models import MessageSummary

log = logging.getLogger(__name__)

__all__ = ["read_head", "summary_from_bytes", "summary_from_file"]

HEAD_LIMIT = 1024 * 1024
"""A header block longer than this is cut (a hostile file must not fill memory)."""
FULL_PARSE_LIMIT = 25 * 1024 * 1024
"""Above this size a multipart/mixed message is assumed to carry attachments, unparsed."""

_END_OF_HEAD = re.compile(rb"\r?\n\r?\n")


def read_head(path: Path, limit: int = HEAD_LIMIT) -> bytes:
    """The header block of a message file (up to the first empty line)."""
    out = bytearray()
    with path.open("rb") as f:
        while len(out) < limit:
            chunk = f.read(64 * 1024)
            if not chunk:
                break
            start = max(0, len(out) - 3)
            out += chunk
            found = _END_OF_HEAD.search(out, start)
            if found is not None:
                return bytes(out[: found.end()])
    return bytes(out[:limit])


def _content_type(first: dict[str, str]) -> str:
    value = FOLD.sub(" ", first.get("content-type", "text/plain"))
    return value.split(";", 1)[0].strip().lower() or "text/plain"


def _part_is_attachment(part: Message) -> bool:
    if part.is_multipart():
        return False
    try:
        disposition = part.get_content_disposition()
        filename = part.get_filename()
        maintype = part.get_content_maintype()
    except Exception:
        return False
    return disposition == "attachment" or (filename is not None and maintype != "text")


def has_attachments(raw: bytes) -> bool:
    """Whether a whole message carries a part the reader offers to save."""
    try:
        msg = email.message_from_bytes(raw, policy=email.policy.compat32)
        return any(_part_is_attachment(p) for p in msg.walk())
    except Exception:
        log.debug("unparsable MIME structure", exc_info=True)
        return False


def summary_from_bytes(
    uid: int, raw: bytes, flags: frozenset[str], arrived: float | None
) -> MessageSummary:
    """The summary of a whole message held in memory (a message just appended)."""
    head = raw[:HEAD_LIMIT]
    found = _END_OF_HEAD.search(head)
    if found is not None:
        head = head[: found.end()]
    return _summary(uid, first_fields(head), flags, len(raw), arrived, lambda: raw)


def summary_from_file(path: Path, uid: int, flags: frozenset[str]) -> MessageSummary:
    """Read and summarize one message file (blocking: run it in a worker thread).

    OSError (the file vanished or is unreadable) propagates; bad content never does."""
    st = path.stat()
    first = first_fields(read_head(path))

    def body() -> bytes | None:
        return path.read_bytes() if st.st_size <= FULL_PARSE_LIMIT else None

    return _summary(uid, first, flags, st.st_size, st.st_mtime, body)


def _summary(
    uid: int,
    first: dict[str, str],
    flags: frozenset[str],
    size: int,
    arrived: float | None,
    body: Callable[[], bytes | None],
) -> MessageSummary:
    envelope = envelope_from_fields(first)
    ctype = _content_type(first)
    if ctype.startswith("multipart/") and ctype != "multipart/alternative":
        # Only a mixed-like multipart can carry attachments: parse its structure (a huge
        # one is assumed to, unparsed).
        whole = body()
        attachments = has_attachments(whole) if whole is not None else True
    else:
        attachments = ctype.partition("/")[0] not in ("text", "multipart", "message")
    return MessageSummary(
        uid=uid,
        flags=flags,
        internal_date=datetime.fromtimestamp(arrived, UTC) if arrived is not None else None,
        size=size,
        envelope=envelope,
        references=msgids(first.get("references", "")),
        has_attachments=attachments,
    )
