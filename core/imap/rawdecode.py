"""The usual raw row decoded without the generic parser: the decode pass's fast path.

A row the bulk path of a first sync stored (``lazy.extract``) holds the server's FETCH data
from ENVELOPE to its end. Decoding it the general way (``parser.parse_untagged`` then
``decode.decoded_parts``) cost ~75 µs a row, so decoding 100,000 of them after a first sync
kept a core busy for seconds. Nearly every row has the same shape (Dovecot, and the order we
ask for): ``ENVELOPE (...) BODYSTRUCTURE (...) BODY[HEADER.FIELDS (REFERENCES)] {n}`` CRLF
``<n bytes>)``, with quoted strings, NIL and the odd literal (long or 8-bit subjects). For
that shape :func:`fast_parts` gives what the general way gives, several times faster:

* the ENVELOPE's ten fields by one regular expression (literals first rewritten as the
  quoted strings that stand for the same bytes), each address list cut into its 4-tuples by
  another; the values are the parser's (bytes, or None for NIL), so the decoding that
  follows is ``decode``'s own; an address already seen (the same four values) is taken from
  a table instead of being decoded again: correspondents repeat;
* has_attachments from the BODYSTRUCTURE's bytes: without "attachment", "name" or "message"
  in them (ASCII), nothing there can make ``decode._value_has_attachments`` say yes, so no;
  else that function decides, on the parsed value;
* the References header from its literal, read by ``decode.references_from_header``.

Any other shape returns None and the general way decides. ``tests/unit/test_imap_rawdecode.py``
and the lazy path's tests (every row they store is decoded through here) check both agree.
"""

from __future__ import annotations

import contextlib
import re
from datetime import datetime, timezone
from typing import Any

from kittiwake.core.imap.decode import (
    _address,
    _addresses,
    _value_has_attachments,
    references_from_header,
)
from kittiwake.core.imap.parseerror import DecodeError, ParseError
from kittiwake.core.imap.parser import _UNESCAPE, Value, read_values
from kittiwake.core.message.dates import MONTHS, parse_date, tz_for_offset
from kittiwake.core.message.headers import decode_words, raw_text
from kittiwake.core.models import Address, Envelope

__all__ = ["fast_parts"]

# A quoted string as the canonical grammar of ``lazy`` reads it (no CR, LF or NUL), or NIL.
_NS = rb'(?:"[^"\\\r\n\x00]*+(?:\\[^\r\n\x00][^"\\\r\n\x00]*+)*+"|NIL)'
_LIST = rb"(NIL|\((?:\(" + _NS + (rb" " + _NS) * 3 + rb"\))++\))"
_ENVELOPE = re.compile(
    rb"ENVELOPE \((" + _NS + rb") (" + _NS + rb") " + rb" ".join([_LIST] * 6)
    + rb" (" + _NS + rb") (" + _NS + rb")\)"
)  # fmt: skip
_ADDRESS = re.compile(rb"\((" + _NS + rb") (" + _NS + rb") (" + _NS + rb") (" + _NS + rb")\)")
# The BODYSTRUCTURE: a list of quoted strings, atoms and lists, nested at most 12 deep (as the
# canonical grammar allows), then the References literal and the end of the response.
_Q = rb'"[^"\\\r\n\x00]*+(?:\\[^\r\n\x00][^"\\\r\n\x00]*+)*+"'
_A = rb'[^\x00-\x20\x7f()"{\[\]%*\\]++'
_VALUE = rb"(?:" + _Q + rb"|" + _A + rb")"
for _ in range(12):
    _VALUE = rb"(?:" + _Q + rb"|\((?:" + _VALUE + rb" ?)*+\)|" + _A + rb")"
_TAIL = re.compile(
    rb" BODYSTRUCTURE (\((?:" + _VALUE + rb" ?)*+\))"
    rb" BODY\[HEADER\.FIELDS \(REFERENCES\)\] \{([0-9]{1,9})\}\r\n"
)
_LITERAL = re.compile(rb"\{([0-9]{1,9})\}\r\n")
# The usual Date ("Tue, 28 Nov 2023 06:43:05 +0530") as the whole quoted string: where this
# matches, ``dates.parse_date`` takes its own fast path, to the same datetime.
_USUAL_DATE = re.compile(
    rb'"(?:[A-Za-z]{3}, )?([0-9]{1,2} [A-Za-z]{3} [0-9]{4}) ([0-9]{2}):([0-9]{2}):([0-9]{2})'
    rb' ([+-][0-9]{4})"'
)
#: Entries a table of remembered addresses holds before it starts again (~100 KB a thousand):
#: enough for the correspondents a folder keeps coming back to, little to keep in memory.
_MEMO_MAX = 4096
_ADDRESS_MEMO: dict[tuple[bytes, bytes, bytes, bytes], Address] = {}
_LIST_MEMO: dict[bytes, tuple[Address, ...]] = {}


def _value(token: bytes) -> bytes | None:
    """A quoted string or NIL, as the parser reads it."""
    if token == b"NIL":
        return None
    s = token[1:-1]
    return _UNESCAPE.sub(rb"\1", s) if b"\\" in s else s


def _quote_literals(raw: bytes) -> bytes:
    """``raw`` up to its first literal that no quoted string can stand for (one holding CR,
    LF or NUL: the References header), the literals before it written as quoted strings
    (``"`` and ``\\`` escaped: the parser reads back the same bytes)."""
    out: list[bytes] = []
    pos = 0
    while True:
        m = _LITERAL.search(raw, pos)
        if m is None:
            out.append(raw[pos:])
            break
        start = m.end()
        stop = start + int(m.group(1))
        body = raw[start:stop]
        if stop > len(raw) or b"\r" in body or b"\n" in body or b"\x00" in body:
            out.append(raw[pos:])
            break
        if b"\\" in body or b'"' in body:
            body = body.replace(b"\\", b"\\\\").replace(b'"', b'\\"')
        out += (raw[pos : m.start()], b'"', body, b'"')
        pos = stop
    return b"".join(out)


def _date(token: bytes) -> datetime | None:
    """``dates.parse_date`` of the Date field (a quoted string or NIL)."""
    m = _USUAL_DATE.fullmatch(token)
    if m is not None:
        day, hh, mm, ss, zone = m.groups()
        ymd = _DAYS.get(day, _MISSING)
        if ymd is _MISSING:
            ymd = _remember(_DAYS, day, _ymd(day))
        tz = _ZONES.get(zone, _MISSING)
        if tz is _MISSING:
            tz = _remember(_ZONES, zone, _zone(zone))
        if ymd is not None and tz is not None:
            year, month, d = ymd
            with contextlib.suppress(ValueError):  # parse_date then tries the stdlib
                return datetime(year, month, d, int(hh), int(mm), int(ss), tzinfo=tz)
    return parse_date(_text(token))


# The day and the zone of the usual Date, by how they were written ("28 Nov 2023", "+0530"):
# a mailbox spans some thousand days and a few zones, so a row's Date needs only its time
# read (was ~2.4 µs a row, a tenth of decoding it). None where ``parse_date`` decides.
_MISSING: Any = object()
_DAYS: dict[bytes, tuple[int, int, int] | None] = {}
_ZONES: dict[bytes, timezone | None] = {}


def _ymd(day: bytes) -> tuple[int, int, int] | None:
    """(year, month, day) of "28 Nov 2023"; the day is checked by ``datetime``."""
    d, mon, year = day.split(b" ")
    month = MONTHS.get(mon.decode("ascii").lower())
    return None if month is None else (int(year), month, int(d))


def _zone(zone: bytes) -> timezone | None:
    offset = int(zone[1:3]) * 60 + int(zone[3:5])
    if offset >= 24 * 60:
        return None
    return tz_for_offset(-offset if zone[:1] == b"-" else offset)


def _remember(memo: dict[bytes, Any], key: bytes, value: Any) -> Any:
    if len(memo) > _MEMO_MAX:
        memo.clear()
    memo[key] = value
    return value


def _text(token: bytes) -> str:
    """``headers.raw_text`` of a quoted string or NIL (ASCII without a round trip)."""
    if token == b"NIL":
        return ""
    s = token[1:-1]
    if b"\\" in s:
        s = _UNESCAPE.sub(rb"\1", s)
    return s.decode("ascii") if s.isascii() else raw_text(s)


def _address_list(span: bytes) -> tuple[Address, ...]:
    """``decode._addresses`` of a list cut by ``_LIST`` (remembered: the same list of
    recipients, or the same sender, comes back message after message)."""
    if span == b"NIL":
        return ()
    found = _LIST_MEMO.get(span)
    if found is None:
        found = _decode_list(span)
        if len(_LIST_MEMO) > _MEMO_MAX:
            _LIST_MEMO.clear()
        _LIST_MEMO[span] = found
    return found


def _decode_list(span: bytes) -> tuple[Address, ...]:
    memo = _ADDRESS_MEMO
    out: list[Address] = []
    for tokens in _ADDRESS.findall(span):
        found = memo.get(tokens)
        if found is None:
            values = [_value(t) for t in tokens]
            if values[3] is None:  # group syntax: decode's own reading, the whole list
                return _addresses([[_value(t) for t in ts] for ts in _ADDRESS.findall(span)])
            found = _address(values)  # type: ignore[arg-type]  # list[bytes | None]
            if len(memo) > _MEMO_MAX:
                memo.clear()
            memo[tokens] = found
        if found.addr or found.name:
            out.append(found)
    return tuple(out)


def _envelope(m: re.Match[bytes]) -> Envelope:
    """``decode.envelope_from_value`` of the fields ``_ENVELOPE`` matched."""
    g = m.groups()
    from_ = _address_list(g[2])
    subject = _text(g[1])
    return Envelope(
        date=_date(g[0]),
        subject=decode_words(subject) if "=?" in subject else subject,
        from_=from_,
        sender=from_ if g[3] == g[2] else _address_list(g[3]),
        reply_to=from_ if g[4] == g[2] else _address_list(g[4]),
        to=_address_list(g[5]),
        cc=_address_list(g[6]),
        bcc=_address_list(g[7]),
        in_reply_to=_text(g[8]).strip() or None,
        message_id=_text(g[9]).strip() or None,
    )


def _attachments(body: bytes) -> bool:
    """``decode._value_has_attachments`` of a BODYSTRUCTURE cut by ``_TAIL``."""
    if body.isascii():
        lowered = body.lower()
        if b"name" not in lowered and b"attachment" not in lowered and b"message" not in lowered:
            return False
    try:
        value: Value = read_values(body)[0]
    except (ParseError, IndexError):
        return False
    with contextlib.suppress(DecodeError):
        return _value_has_attachments(value)
    return False


def fast_parts(raw: bytes) -> tuple[Envelope, tuple[str, ...], bool] | None:
    """(envelope, references, has_attachments) of a raw row of the usual shape, as
    ``decode.decoded_parts`` gives them after the full parse; None for any other shape."""
    text = raw
    m = _ENVELOPE.match(text)
    if m is None:
        if b"}\r\n" not in raw:
            return None
        text = _quote_literals(raw)
        m = _ENVELOPE.match(text)
        if m is None:
            return None
    tail = _TAIL.match(text, m.end())
    if tail is None:
        return None
    start = tail.end()
    stop = start + int(tail.group(2))
    if len(text) != stop + 1 or text[stop] != 0x29:  # ")": the end of the response
        return None
    refs = references_from_header(text[start:stop])
    return _envelope(m), refs, _attachments(tail.group(1))
