"""Messages as one mbox stream (mboxrd), and back.

A pipe of several messages (``git am``) and an export of a folder write mboxrd: each message
after a ``From `` separator line, its own lines that start with ``>*From `` quoted with one more
``>`` (reversible, unlike mboxo), line ends made LF as mbox files have them everywhere. One
message alone is never wrapped: it goes out as the server's exact bytes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

_QUOTE = re.compile(rb"^(>*From )", re.MULTILINE)
_UNQUOTE = re.compile(rb"^>(>*From )", re.MULTILINE)
_SEPARATOR = re.compile(rb"^From [^\n]*\n", re.MULTILINE)
_DATE = re.compile(rb"^Date:[ \t]*([^\r\n]*)", re.MULTILINE | re.IGNORECASE)


def _separator(raw: bytes) -> bytes:
    """``From MAILER-DAEMON <asctime of the Date header>``: the envelope sender is not
    known to a client, and readers take any address there."""
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    when = datetime(1970, 1, 1, tzinfo=UTC)
    if match := _DATE.search(head):
        try:
            parsed = parsedate_to_datetime(match.group(1).decode("ascii", "replace"))
            when = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        except (TypeError, ValueError, IndexError):
            pass
    return b"From MAILER-DAEMON " + when.astimezone(UTC).strftime("%a %b %d %H:%M:%S %Y").encode()


def mbox_entry(raw: bytes) -> bytes:
    """One message as it stands in an mbox file: separator, quoted body, one blank line."""
    text = raw.replace(b"\r\n", b"\n")
    if not text.endswith(b"\n"):
        text += b"\n"
    return _separator(raw) + b"\n" + _QUOTE.sub(rb">\1", text) + b"\n"


def mbox_stream(messages: Iterable[bytes]) -> bytes:
    return b"".join(mbox_entry(raw) for raw in messages)


def split_mbox(data: bytes) -> Iterator[bytes]:
    """The messages of an mbox file (mboxrd unquoted; mboxo's ``>From`` lines read the same
    way, the usual reading), each with CRLF line ends as IMAP APPEND wants."""
    starts = [m.start() for m in _SEPARATOR.finditer(data.replace(b"\r\n", b"\n"))]
    text = data.replace(b"\r\n", b"\n")
    for i, start in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else len(text)
        body = text[text.index(b"\n", start) + 1 : end]
        if body.endswith(b"\n\n"):  # the blank line that ends an entry
            body = body[:-1]
        yield _UNQUOTE.sub(rb"\1", body).replace(b"\n", b"\r\n")
