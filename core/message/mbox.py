"""Messages as one mbox stream (mboxrd), and back.

A pipe of several messages (``git am``) and an export of a folder write mboxrd: each message
after a ``From `` separator line, its own lines that start with ``>*From `` quoted with one more
``>`` (reversible, unlike mboxo), line ends made LF as mbox files have them everywhere. One
message alone is never wrapped: it goes out as the server's exact bytes.

An export also says each message's flags the way mutt, neomutt and Dovecot's mbox keep them,
in ``Status:`` (``R`` read, ``O`` old: no longer new) and ``X-Status:`` (``A`` answered, ``F``
flagged, ``T`` draft, ``D`` deleted) header lines, and dates the separator with the message's
INTERNALDATE; an import reads both back and takes the two lines out again, since they are the
mbox file's bookkeeping rather than part of the message (the folder keeps flags as flags).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Iterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from kittiwake.core.models import ANSWERED, DELETED, DRAFT, FLAGGED, SEEN

_QUOTE = re.compile(rb"^(>*From )", re.MULTILINE)
_UNQUOTE = re.compile(rb"^>(>*From )", re.MULTILINE)
_SEPARATOR = re.compile(rb"^From [^\n]*\n", re.MULTILINE)
_DATE = re.compile(rb"^Date:[ \t]*([^\r\n]*)", re.MULTILINE | re.IGNORECASE)
#: A Status or X-Status header line with its folded continuation lines.
_STATUS_LINE = re.compile(
    rb"^(X-)?Status:[ \t]*([^\r\n]*)\r?\n(?:[ \t][^\r\n]*\r?\n)*", re.IGNORECASE | re.MULTILINE
)
_ASCTIME = "%a %b %d %H:%M:%S %Y"

#: X-Status letters, in the order Dovecot writes them.
_X_STATUS = ((b"A", ANSWERED), (b"F", FLAGGED), (b"T", DRAFT), (b"D", DELETED))


def _asctime(when: datetime) -> bytes:
    return when.astimezone(UTC).strftime(_ASCTIME).encode()


def _separator(raw: bytes, when: datetime | None = None) -> bytes:
    """``From MAILER-DAEMON <asctime>``: ``when`` (the INTERNALDATE) where known, else the
    Date header; the envelope sender is not known to a client, and readers take any
    address there."""
    if when is None:
        when = datetime(1970, 1, 1, tzinfo=UTC)
        head = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
        if match := _DATE.search(head):
            try:
                parsed = parsedate_to_datetime(match.group(1).decode("ascii", "replace"))
                when = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
            except (TypeError, ValueError, IndexError):
                pass
    elif when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return b"From MAILER-DAEMON " + _asctime(when)


def _split_head(text: bytes) -> tuple[bytes, bytes]:
    """(header lines, each ending in its line end; the rest from the blank line on)."""
    for blank in (b"\r\n\r\n", b"\n\n"):
        at = text.find(blank)
        if at >= 0:
            cut = at + len(blank) // 2
            return text[:cut], text[cut:]
    return (text if text.endswith(b"\n") else text + b"\n"), b""


def with_status(raw: bytes, flags: Collection[str]) -> bytes:
    """``raw`` with ``Status:`` and ``X-Status:`` lines saying ``flags`` at the end of its
    header, in place of any it had (never two of either)."""
    head, rest = _split_head(raw)
    eol = b"\r\n" if head.endswith(b"\r\n") else b"\n"
    head = _STATUS_LINE.sub(b"", head)
    head += b"Status: " + (b"RO" if SEEN in flags else b"O") + eol
    letters = b"".join(letter for letter, flag in _X_STATUS if flag in flags)
    if letters:
        head += b"X-Status: " + letters + eol
    return head + rest


def read_status(raw: bytes) -> tuple[bytes, frozenset[str]]:
    """(``raw`` without its Status and X-Status lines, the flags they said)."""
    head, rest = _split_head(raw)
    flags: set[str] = set()
    for match in _STATUS_LINE.finditer(head):
        letters = match.group(2)
        if match.group(1):  # X-Status
            flags.update(flag for letter, flag in _X_STATUS if letter in letters)
        elif b"R" in letters:
            flags.add(SEEN)
    if not flags and not _STATUS_LINE.search(head):
        return raw, frozenset()
    return _STATUS_LINE.sub(b"", head) + rest, frozenset(flags)


def mbox_entry(
    raw: bytes, flags: Collection[str] | None = None, when: datetime | None = None
) -> bytes:
    """One message as it stands in an mbox file: separator, quoted body, one blank line;
    with ``flags``, its Status lines (an export; a pipe passes the message as it is)."""
    text = raw.replace(b"\r\n", b"\n")
    if not text.endswith(b"\n"):
        text += b"\n"
    if flags is not None:
        text = with_status(text, flags)
    return _separator(raw, when) + b"\n" + _QUOTE.sub(rb">\1", text) + b"\n"


def mbox_stream(messages: Iterable[bytes]) -> bytes:
    return b"".join(mbox_entry(raw) for raw in messages)


def _separator_date(line: bytes) -> datetime | None:
    """The asctime at the end of a ``From `` line (``From sender Thu Nov 26 10:00:00 2026``),
    as UTC; None when it is not one."""
    words = line.decode("ascii", "replace").split()
    for n in (5, 6):  # a zone or a "remote from" tail is sometimes added after the year
        if len(words) >= 2 + n:
            text = " ".join(words[2 : 2 + n] if n == 5 else words[2:6] + words[7:8])
            try:
                return datetime.strptime(text, _ASCTIME).replace(tzinfo=UTC)
            except ValueError:
                continue
    return None


def split_mbox_dated(data: bytes) -> Iterator[tuple[bytes, datetime | None]]:
    """The messages of an mbox file (mboxrd unquoted; mboxo's ``>From`` lines read the same
    way, the usual reading), each with CRLF line ends as IMAP APPEND wants, and the date of
    its separator line."""
    text = data.replace(b"\r\n", b"\n")
    starts = [m.start() for m in _SEPARATOR.finditer(text)]
    for i, start in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else len(text)
        eol = text.index(b"\n", start)
        body = text[eol + 1 : end]
        if body.endswith(b"\n\n"):  # the blank line that ends an entry
            body = body[:-1]
        yield _UNQUOTE.sub(rb"\1", body).replace(b"\n", b"\r\n"), _separator_date(text[start:eol])


def split_mbox(data: bytes) -> Iterator[bytes]:
    """The messages of an mbox file, as ``split_mbox_dated`` without the dates."""
    for raw, _ in split_mbox_dated(data):
        yield raw
