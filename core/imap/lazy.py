"""The bulk path of a first sync: cheap columns now, the envelope when someone reads it.

Parsing and decoding a summary FETCH response in full costs ~65 µs (the generic tokenizer
walks every token of ENVELOPE and BODYSTRUCTURE, then every address is decoded), which made
the cold sync of a 100,000-message folder CPU-bound at 4-6 times the time the server needs
to send it. Nothing needs most of that at sync time: the message list sorts and counts by
UID, flags, dates and size, and shows one screenful. So for bulk batches
(``ImapClient.fetch_summaries`` and ``uid_fetch_summaries`` of ``LAZY_MIN`` messages or
more) the responses are handled as they arrive from the socket, overlapping the server's
work: :func:`read_stream` takes runs of them straight from the received bytes (no framing,
see ``ImapProtocol._receive_streaming``), :func:`extract` takes the framed ones the stream
reader left to the framer. Both

* check the whole response with one regular expression of a canonical subset of the IMAP
  grammar (single blanks, quoted strings without CR, LF or NUL, lists nested at most
  ``_LIST_DEPTH`` deep, literals only where their length can be checked), so what they
  accept the full parser accepts too, with the same item values;
* take UID, FLAGS, INTERNALDATE, RFC822.SIZE and MODSEQ (before or after ENVELOPE, the
  last occurrence winning, as in ``parser.Fetch``) and the Date of the ENVELOPE (for the
  sort key): the usual forms of the dates are computed directly, to the same value
  ``parse_internaldate``/``parse_date`` + ``timestamp()`` give, anything else by those;
* keep the response from ``ENVELOPE`` to its end, as the server sent it, as ``raw``.

Anything they do not vouch for (unknown items before ENVELOPE, a Date that is not a string,
lists nested deeper, literal8, a broken response...) goes the full way
(``parse_untagged`` + ``summary_from_fetch``), so results never differ, only the time.
``tests/unit/test_imap_lazy.py`` checks this against the full decoder on real, generated
and hostile responses, and the stream reader against the framer.

Rows are stored undecoded (``Cache.put_summaries`` with a ``LazySummaries``); the cache
decodes ``raw`` with :func:`decode_raw` when a row is read (``Cache.page``/``summaries``/
``summary``: ~18 µs a row for the usual shape, ``rawdecode.fast_parts``; ~65 µs the general
way) and :func:`decode_pass` fills the decoded columns of a whole folder and indexes them for
search, in the background, after a first sync (``Tuning.decode_after_sync``) or once something
needs every message decoded (search, threading, the order by sender or subject:
``Cache.want_decoded``): ~30-40 µs a row in all, a few seconds of CPU at 100,000 messages.
After a first sync the pass leaves the search index to :func:`index_pass`, which the first
search starts (``Cache.want_decoded(index=True)``; ``core/search/index.py``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import time
from bisect import bisect_left
from collections.abc import Awaitable, Callable, Sequence
from datetime import date
from typing import Any

from kittiwake.core.cache import Cache, RawRow, register_raw_decoder
from kittiwake.core.imap.decode import decoded_parts
from kittiwake.core.imap.parser import (
    _SYSTEM_FLAGS,
    _UNESCAPE,
    Fetch,
    ParseError,
    parse_internaldate,
    parse_untagged,
)
from kittiwake.core.imap.rawdecode import fast_parts
from kittiwake.core.message.dates import _DATE_FAST as _DATE_FAST_TEXT
from kittiwake.core.message.dates import parse_date, sort_key
from kittiwake.core.models import SEEN, Envelope, MessageSummary

__all__ = ["LAZY_MIN", "decode_pass", "decode_raw", "extract", "index_pass", "read_stream"]

log = logging.getLogger(__name__)

#: Batches at least this large take the lazy path; smaller ones (live updates, the first
#: screenful) are decoded at once, as their summaries are shown right away.
LAZY_MIN = 500

RECENT = "\\Recent"

# --- the canonical grammar ------------------------------------------------------------------
#
# Stricter than the parser everywhere (so acceptance here implies acceptance there):
# quoted strings hold no CR, LF or NUL (a NUL stands for a literal, and the parser finds a
# literal by its "{n}" before a CRLF even inside what looks like a quoted string); atoms hold
# no "[", "]", "%", "*", "\" or control characters; list elements are separated by at most
# one blank and lists do not start with one. The alternatives of a value start with
# different characters and every repetition is possessive, so matching is linear whatever
# the input. Three variants:
#
# * ``"framed"`` reads a framed response as it is. A literal is allowed only as the value of
#   the last item (the References header: usually the only literal): the match ends with its
#   ``{n}`` CRLF, and the caller checks that n bytes and ")" end the response.
# * ``"stream"`` is the same on the received bytes (``read_stream``): a response ends with
#   ")" CRLF, or its literal is followed by ")" CRLF, as the framer splits them.
# * ``"inlined"`` reads a framed response with every literal replaced by a NUL
#   (``_inline_literals``; a NUL of the server's own sends the response the full way), for
#   literals anywhere else (an 8-bit subject, say).

_LIST_DEPTH = 12
_Q = rb'"[^"\\\r\n\x00]*+(?:\\[^\r\n\x00][^"\\\r\n\x00]*+)*+"'
_A = rb'[^\x00-\x20\x7f()"{\[\]%*\\]++'
_NUM = rb"(?:0|[1-9][0-9]{0,19})"
_FLAG = rb"(?:\\?[^\x00-\x20\x7f()\"{\[\]%*\\]++|\\\*)"
# Any other item: an atom name (not NIL, not a number, not one of ours) and one value.
_OTHER_KEY = (
    rb"(?!(?i:NIL|UID|FLAGS|INTERNALDATE|RFC822\.SIZE|MODSEQ|ENVELOPE) )"
    rb"[A-Za-z][A-Za-z0-9.\-]*+(?:\[[^\]\[\r\n\"\x00]*+\])?(?:<[0-9]++>)?"
)


def _cheap(n: str) -> bytes:
    """The items the columns come from, with group names suffixed by ``n``."""
    g = n.encode()
    return (
        rb"(?i:UID) (?P<uid" + g + rb">" + _NUM + rb")"
        rb"|(?i:FLAGS) \((?P<flags" + g + rb">(?:" + _FLAG + rb"(?: " + _FLAG + rb")*+)?)\)"
        rb"|(?i:INTERNALDATE) \"(?P<idate" + g + rb">[^\"\\\r\n\x00]*+)\""
        rb"|(?i:RFC822\.SIZE) (?P<size" + g + rb">" + _NUM + rb")"
        rb"|(?i:MODSEQ) \((?P<modseq" + g + rb">" + _NUM + rb")\)"
    )


def _grammar(kind: str) -> re.Pattern[bytes]:
    inlined = kind == "inlined"
    lit = rb"|\x00" if inlined else rb""
    value = rb"(?:" + _Q + rb"|" + _A + lit + rb")"
    for _ in range(_LIST_DEPTH):
        value = rb"(?:" + _Q + rb"|\((?:" + value + rb" ?)*+\)|" + _A + lit + rb")"
    # The usual ENVELOPE after its Date (subject, six address lists, In-Reply-To,
    # Message-ID), tried before the generic list: same language, fewer alternatives a token.
    nstring = rb"(?:" + _Q + rb"|NIL" + lit + rb")"
    addresses = rb" (?:NIL|\((?:\(" + nstring + (rb" " + nstring) * 3 + rb"\))++\))"
    envelope_rest = nstring + addresses * 6 + rb" " + nstring + rb" " + nstring + rb"\)"
    # The ENVELOPE's first field (its Date) is captured: quoted, NIL or (inlined) a literal.
    date = rb"(?P<date>" + _Q + rb")|(?P<nodate>(?i:NIL))"
    if inlined:
        date += rb"|(?P<litdate>\x00)"
        last = rb"\)\Z"
    else:
        end = rb"\)\Z" if kind == "framed" else rb"\)\r\n"
        last = rb"(?: " + _OTHER_KEY + rb" \{(?P<litn>[0-9]{1,20})\}\r\n|" + end + rb")"
    return re.compile(
        rb"\* " + _NUM + rb" (?i:FETCH) \("
        rb"(?:(?:" + _cheap("1") + rb") )*+"
        rb"(?P<env>(?i:ENVELOPE)) \((?:" + date + rb") "
        rb"(?>" + envelope_rest + rb"|(?:" + value + rb" ?)*+\))"
        rb"(?: (?:" + _cheap("2") + rb"|" + _OTHER_KEY + rb" " + value + rb"))*+" + last
    )


class _Groups:
    """Indexes into ``Match.groups()`` of one grammar (group numbers start at 1)."""

    def __init__(self, pattern: re.Pattern[bytes]) -> None:
        index = {name: number - 1 for name, number in pattern.groupindex.items()}
        self.uid1, self.uid2 = index["uid1"], index["uid2"]
        self.flags1, self.flags2 = index["flags1"], index["flags2"]
        self.idate1, self.idate2 = index["idate1"], index["idate2"]
        self.env = index["env"] + 1  # a group number, for Match.start
        self.size1, self.size2 = index["size1"], index["size2"]
        self.modseq1, self.modseq2 = index["modseq1"], index["modseq2"]
        self.date = index["date"]
        self.litdate = index.get("litdate", -1)


@functools.cache
def _compiled(kind: str) -> tuple[re.Pattern[bytes], _Groups]:
    """A grammar and its group indexes, compiled when first used: compiling the three takes
    ~45 ms, which a start (even a warm one, where only a bulk fetch of 500 or more
    summaries uses them) would otherwise pay before its first frame (issue 19)."""
    pattern = _grammar(kind)
    return pattern, _Groups(pattern)


_UINT32 = 2**32 - 1
_INT64 = 2**63 - 1
_FLAG_CACHE: dict[bytes, tuple[str, int]] = {}


def _inline_literals(resp: bytes) -> tuple[bytes, list[int], list[bytes]] | None:
    """``resp`` with each literal replaced by NUL, where the NULs are, and the literals, as
    ``parser._read`` frames them; None for what the canonical grammar leaves to the parser
    (literal8, LITERAL+ forms, a line break outside a literal). A literal is announced by
    ``{n}`` right before a CRLF (``parser._LITERAL_TAIL``, found within the 24 bytes before
    it, so only the last "{" there can start one)."""
    out: list[bytes] = []
    where: list[int] = []
    literals: list[bytes] = []
    pos = 0
    size = 0
    end = len(resp)
    crlf = resp.find(b"\r\n")
    while crlf >= 0:
        brace = resp.rfind(b"{", max(pos, crlf - 24), crlf)
        if brace < 0 or resp[crlf - 1] != 0x7D or resp[brace - 1] == 0x7E:  # "}", "~"
            return None
        digits = resp[brace + 1 : crlf - 1]
        if not digits.isdigit() or len(digits) > 20:  # also refuses "{n+}"
            return None
        piece = resp[pos:brace]
        out.append(piece)
        size += len(piece)
        where.append(size)
        out.append(b"\x00")
        size += 1
        start = crlf + 2
        pos = start + int(digits)
        if pos > end:
            return None
        literals.append(resp[start:pos])
        crlf = resp.find(b"\r\n", pos)
    out.append(resp[pos:])
    return b"".join(out), where, literals


def _flags(text: bytes) -> tuple[str, int]:
    """FLAGS content as the cache stores it (sorted, \\Recent dropped) and whether \\Seen,
    read as ``parser.Fetch.flags`` reads it."""
    hit = _FLAG_CACHE.get(text)
    if hit is not None:
        return hit
    out: set[str] = set()
    for token in text.split():
        s = token.decode("latin-1")
        if s.upper() == "NIL":
            continue  # the parser reads NIL, and a NIL flag is no flag
        if s.startswith("\\"):
            s = _SYSTEM_FLAGS.get(s.lower(), s)
        out.add(s)
    out.discard(RECENT)
    hit = (" ".join(sorted(out)), int(SEEN in out))
    if len(_FLAG_CACHE) < 4096:
        _FLAG_CACHE[text] = hit
    return hit


_IDATE = re.compile(
    rb"((?: [1-9]|[0-9]{1,2})-[A-Za-z]{3}-[0-9]{4}) ([0-9]{2}):([0-9]{2}):([0-9]{2})"
    rb" ([+-][0-9]{4})"
)
_MONTHS = {
    m: i for i, m in enumerate(b"jan feb mar apr may jun jul aug sep oct nov dec".split(), 1)
}
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_MISSING: Any = object()
# Dates repeat (a mailbox spans some thousand days): the epoch seconds of a day's midnight
# UTC by how the day was written ("28-Nov-2023", "28 Nov 2023"), the seconds east of UTC of
# a zone ("+0530"); None where ``datetime`` would refuse the value.
_DAYS: dict[bytes, int | None] = {}
_ZONES: dict[bytes, int | None] = {}


def _midnight(day: bytes, mon: bytes, year: bytes) -> int | None:
    month = _MONTHS.get(mon.lower())
    if month is None:
        return None
    try:
        return (date(int(year), month, int(day)).toordinal() - _EPOCH_ORDINAL) * 86400
    except ValueError:
        return None


def _offset(zone: bytes) -> int | None:
    minutes = int(zone[1:3]) * 60 + int(zone[3:5])
    if minutes >= 24 * 60:
        return None
    return -60 * minutes if zone[:1] == b"-" else 60 * minutes


def _remember(cache: dict[bytes, int | None], key: bytes, value: int | None) -> int | None:
    if len(cache) > 50_000:
        cache.clear()
    cache[key] = value
    return value


def _arrival(raw: bytes) -> float | None:
    """The INTERNALDATE as epoch seconds: ``parse_internaldate(raw).timestamp()``."""
    m = _IDATE.fullmatch(raw)
    if m is not None:
        dmy, hh, mm, ss, zone = m.groups()
        base = _DAYS.get(dmy, _MISSING)
        if base is _MISSING:
            base = _remember(_DAYS, dmy, _midnight(*dmy.split(b"-")))
        off = _ZONES.get(zone, _MISSING)
        if off is _MISSING:
            off = _remember(_ZONES, zone, _offset(zone))
        h, mi, sec = int(hh), int(mm), int(ss)
        if base is not None and off is not None and h < 24 and mi < 60 and sec < 60:
            return float(base + h * 3600 + mi * 60 + sec - off)
    d = parse_internaldate(raw)  # everything unusual: the parser decides
    return d.timestamp() if d is not None else None


# ``dates._DATE_FAST`` for bytes: on ASCII text without CR/LF (which ``headers.raw_text``
# leaves as it is) it matches exactly what that one matches on the decoded text.
_DATE_FAST = re.compile(_DATE_FAST_TEXT.pattern.encode("ascii"))


# The usual Date ("Tue, 28 Nov 2023 06:43:05 +0530"): where this matches, ``_DATE_FAST``
# matches too, with the same fields (single blanks and fixed widths leave it no choice).
_USUAL_DATE = re.compile(
    rb"(?:[A-Za-z]{3}, )?([0-9]{1,2} [A-Za-z]{3} [0-9]{4}) ([0-9]{2}):([0-9]{2}):([0-9]{2})"
    rb" ([+-][0-9]{4})(?:[ \t]|\Z)"
)


def _sent(raw: bytes) -> float | None:
    """The Date field as epoch seconds: ``dates.parse_date(raw).timestamp()``."""
    m = _USUAL_DATE.match(raw)
    if m is not None:
        dmy, hh, mm, ss, zone = m.groups()
        base = _DAYS.get(dmy, _MISSING)
        if base is _MISSING:
            base = _remember(_DAYS, dmy, _midnight(*dmy.split(b" ")))
        off = _ZONES.get(zone, _MISSING)
        if off is _MISSING:
            off = _remember(_ZONES, zone, _offset(zone))
        h, mi, sec = int(hh), int(mm), int(ss)
        if base is not None and off is not None and h < 24 and mi < 60 and sec < 60:
            return float(base + h * 3600 + mi * 60 + sec - off)
    elif raw.isascii() and b"\r" not in raw and b"\n" not in raw:
        m = _DATE_FAST.match(raw)
        if m is not None:
            day, mon, year, hh, mm, ss, sign, tzh, tzm = m.groups()
            key = raw[m.start(1) : m.end(3)]
            base = _DAYS.get(key, _MISSING)
            if base is _MISSING:
                base = _remember(_DAYS, key, _midnight(day, mon, year))
            zone = sign + tzh + tzm
            off = _ZONES.get(zone, _MISSING)
            if off is _MISSING:
                off = _remember(_ZONES, zone, _offset(zone))
            h, mi, sec = int(hh), int(mm), int(ss) if ss is not None else 0
            if base is not None and off is not None and h < 24 and mi < 60 and sec < 60:
                return float(base + h * 3600 + mi * 60 + sec - off)
    d = parse_date(raw)  # everything unusual: parse_date decides
    return d.timestamp() if d is not None else None


def extract(resp: bytes) -> RawRow | None:
    """The cache row of a summary FETCH response, envelope undecoded; None if the response
    is not one this fast path can vouch for (the full parser then decides)."""
    framed, ix = _compiled("framed")
    m = framed.match(resp)
    if m is not None:
        n = m.group("litn")
        if n is None or (len(resp) == m.end() + int(n) + 1 and resp[-1] == 0x29):  # ")"
            return _row(resp, m, ix, len(resp), (), ())
    if b"\r\n" not in resp:
        return None  # no literal at all, and "framed" refused it: so would "inlined"
    inlined = _inline_literals(resp)
    if inlined is None:
        return None
    text, where, literals = inlined
    if text.count(b"\x00") != len(where):
        return None  # a NUL of the server's own, not one standing for a literal
    inlined_grammar, ix = _compiled("inlined")
    m = inlined_grammar.match(text)
    if m is None:
        return None
    return _row(resp, m, ix, len(resp), where, literals)


def read_stream(data: bytes, pos: int, max_size: int, rows: list[RawRow]) -> int:
    """A ``protocol.StreamReader``: append the rows of the summary FETCH responses at
    ``data[pos:]`` that ``"stream"`` vouches for, one after the other, and return where the
    first other one (or a response cut by the end of ``data``) starts."""
    stream, ix = _compiled("stream")
    match = stream.match
    end = len(data)
    while pos < end:
        m = match(data, pos)
        if m is None:
            return pos
        n = m.group("litn")
        if n is None:
            stop = m.end() - 2  # the response ends before its CRLF
            after = m.end()
        else:
            stop = m.end() + int(n) + 1
            if data[stop - 1 : stop + 2] != b")\r\n":
                return pos  # cut by the end of ``data``, or not ours
            after = stop + 2
        if stop - pos > max_size:
            return pos  # the framer has the error to raise
        try:
            row = _row(data, m, ix, stop, (), ())
        except Exception:  # a bug here must not lose the response: the framer takes it
            log.exception("the summary fast path failed on a response")
            return pos
        if row is None:
            return pos
        rows.append(row)
        pos = after
    return pos


def _row(
    resp: bytes,
    m: re.Match[bytes],
    ix: _Groups,
    stop: int,
    where: Sequence[int],
    literals: Sequence[bytes],
) -> RawRow | None:
    g = m.groups()
    # A later occurrence of an item wins, as in parser.Fetch (a dict of the items).
    uid_b = g[ix.uid2] or g[ix.uid1]
    if uid_b is None:
        return None  # the full path skips a summary without UID; let it
    flags_b = g[ix.flags2] if g[ix.flags2] is not None else g[ix.flags1]
    size_b = g[ix.size2] or g[ix.size1]
    modseq_b = g[ix.modseq2] or g[ix.modseq1]
    uid = int(uid_b)
    size = int(size_b) if size_b is not None else 0
    modseq = int(modseq_b) if modseq_b is not None else None
    if not 0 < uid <= _UINT32 or size > _INT64 or (modseq is not None and modseq > _INT64):
        return None  # beyond what the cache's integers hold: the full path decides
    flags, seen = _flags(flags_b) if flags_b is not None else ("", 0)

    idate = g[ix.idate2] if g[ix.idate2] is not None else g[ix.idate1]
    arrived = _arrival(idate) if idate is not None else None
    quoted = g[ix.date]
    sent = None
    if quoted is not None:
        raw_date = quoted[1:-1]
        if b"\\" in raw_date:
            raw_date = _UNESCAPE.sub(rb"\1", raw_date)
        sent = _sent(raw_date)
    elif ix.litdate >= 0 and g[ix.litdate] is not None:
        sent = _sent(literals[bisect_left(where, m.start("litdate"))])
    sort = sort_key(sent, arrived)
    # No literal comes before ENVELOPE, so its offset in ``text`` is its offset in ``resp``.
    return (uid, sort, flags, seen, arrived, size, modseq, resp[m.start(ix.env) : stop])


def decode_raw(raw: bytes) -> tuple[Envelope, tuple[str, ...], bool]:
    """(envelope, references, has_attachments) of a row stored by :func:`extract`: exactly
    what ``summary_from_fetch`` gives for the response it came from (the usual shape by
    ``rawdecode.fast_parts``, the rest by the parser)."""
    parts = fast_parts(raw)
    if parts is not None:
        return parts
    try:
        item = parse_untagged(b"* 0 FETCH (" + raw)
    except ParseError:
        item = None
    if not isinstance(item, Fetch):
        log.warning("an undecodable cached summary (%d bytes) shows as empty", len(raw))
        return Envelope(), (), False
    return decoded_parts(item)


# --- the background decode pass ---------------------------------------------------------------


async def decode_pass(
    cache: Cache,
    folder: str,
    *,
    slice_seconds: float = 0.004,
    batch: int = 1000,
    write_rows: int = 1000,
    on_decoded: Callable[[str, Sequence[MessageSummary]], None] | None = None,
    between: Callable[[], Awaitable[None]] | None = None,
    index: bool | Callable[[], bool] = True,
) -> int:
    """Decode every row of ``folder`` stored undecoded, newest UID first; return how many.

    Decodes in slices of ``slice_seconds`` (~200 rows at ~18 µs), yielding to the event loop
    after each, and writes every ``write_rows`` rows decoded in one transaction (search index
    included unless ``index`` says no; ~10 ms for 1,000): SQLite's FTS5 costs about half as
    much a row in transactions of 1,000 rows as in ones of 60, and so does the WAL.
    ``on_decoded(folder, summaries)`` sees each written batch. Rows that change meanwhile
    (expunged, refetched, decoded on the way) are left to ``set_decoded``. ``between()`` is
    awaited after each slice and write (the place to let more urgent work go first). Cancel
    the task to stop; what was written stays decoded, and a later pass resumes.

    ``index`` (or what it returns at each write): index the rows for search as they are
    written, or leave that to :func:`index_pass` (``Cache.set_decoded``): ~10 µs a row, a
    quarter of the pass, which a first sync's pass defers until a search wants it.
    """
    done = 0
    below: int | None = None
    clock = time.perf_counter
    ready: list[tuple[int, bytes, tuple[Envelope, tuple[str, ...], bool]]] = []

    async def write() -> None:
        nonlocal done, ready
        chunk, ready = ready, []
        written = cache.set_decoded(folder, chunk, index=index() if callable(index) else index)
        done += len(written)
        if on_decoded is not None and written:
            found = cache.summaries(folder, written)
            on_decoded(folder, [found[u] for u in written if u in found])
        await (between() if between is not None else asyncio.sleep(0))

    while True:
        pending = cache.undecoded(folder, batch, below)
        if not pending:
            if ready:
                await write()
            return done
        i = 0
        while i < len(pending):
            started = clock()
            while i < len(pending) and clock() - started < slice_seconds:
                uid, raw = pending[i]
                ready.append((uid, raw, decode_raw(raw)))
                i += 1
            if len(ready) >= write_rows:
                await write()
            else:
                await (between() if between is not None else asyncio.sleep(0))
        below = pending[-1][0]


async def index_pass(
    cache: Cache,
    folder: str,
    *,
    batch: int = 1000,
    between: Callable[[], Awaitable[None]] | None = None,
) -> int:
    """Index for search the rows of ``folder`` that :func:`decode_pass` decoded without
    indexing (``Cache.index_deferred``), ``batch`` a transaction (~10 ms for 1,000: FTS5's
    own cost a row halves in batches of 1,000 against ones of 60); return how many keys were
    taken. ``between()`` is awaited after each batch, as in :func:`decode_pass`."""
    done = 0
    while True:
        taken = cache.index_deferred(folder, batch)
        if not taken:
            return done
        done += taken
        await (between() if between is not None else asyncio.sleep(0))


# The rows this module writes are read back by the cache with this module's own decoder.
register_raw_decoder(decode_raw)
