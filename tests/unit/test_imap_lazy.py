"""The lazy bulk path of a first sync (``core/imap/lazy.py``) against the full decoder.

Whatever ``extract`` (framed responses) or ``read_stream`` (received bytes) accept, the full
path (``parse_untagged`` + ``summary_from_fetch``, \\Recent dropped as the client does) must
accept too, with the same UID, flags, INTERNALDATE, size, modseq and sort date; and the
stored ``raw`` must decode to the same envelope, references and paperclip. Checked on
Dovecot-shaped responses, on generated ones (any item order, case, duplicates, literals
anywhere, odd dates and flags) and on hostile mutations of both.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kittiwake.core.cache import Cache, LazySummaries, RawRow
from kittiwake.core.events import MessagesAdded
from kittiwake.core.imap.decode import summary_from_fetch
from kittiwake.core.imap.lazy import (
    _arrival,
    _sent,
    decode_pass,
    decode_raw,
    extract,
    read_stream,
)
from kittiwake.core.imap.parser import Fetch, ParseError, parse_internaldate, parse_untagged
from kittiwake.core.imap.protocol import SELECTED, ImapProtocol, PendingCommand
from kittiwake.core.message.dates import parse_date, sort_date
from kittiwake.core.models import MessageSummary

RECENT = "\\Recent"


def lit(data: bytes) -> bytes:
    return b"{%d}\r\n%s" % (len(data), data)


def reference(resp: bytes) -> MessageSummary | None:
    """What the full path makes of ``resp`` (None: not a summary, or skipped)."""
    try:
        item = parse_untagged(resp)
    except ParseError:
        return None
    if not isinstance(item, Fetch) or item.get("ENVELOPE") is None:
        return None
    try:
        s = summary_from_fetch(item)
    except ValueError:
        return None
    return dataclasses.replace(s, flags=s.flags - {RECENT})


def timestamp(d: datetime | None) -> float | None:
    return d.timestamp() if d is not None else None


def check_row(row: RawRow, resp: bytes) -> None:
    """``row`` (from the fast path) says what the full path says about ``resp``."""
    full = reference(resp)
    assert full is not None, resp
    uid, sort, flags, seen, arrived, size, modseq, raw = row
    assert uid == full.uid
    assert flags == " ".join(sorted(full.flags))
    assert seen == int("\\Seen" in full.flags)
    assert arrived == timestamp(full.internal_date)
    assert size == full.size
    assert modseq == full.modseq
    assert sort == sort_date(full)
    assert decode_raw(raw) == (full.envelope, full.references, full.has_attachments)


def agrees(resp: bytes) -> RawRow | None:
    """The fast path either refuses ``resp`` or agrees with the full path."""
    row = extract(resp)
    if row is not None:
        check_row(row, resp)
    return row


# --- what Dovecot sends ----------------------------------------------------------------------

DOVECOT = [
    b'* 1 FETCH (UID 1 FLAGS (\\Answered \\Seen \\Recent) INTERNALDATE "28-Nov-2023 01:13:05 +0000"'
    b' RFC822.SIZE 1056 MODSEQ (2) ENVELOPE ("Tue, 28 Nov 2023 06:43:05 +0530" "Meeting on Thursday"'
    b' (("Peggy Sue Miller" NIL "peggy.sue.miller" "notifications.example.io"))'
    b' (("Peggy Sue Miller" NIL "peggy.sue.miller" "notifications.example.io"))'
    b' (("Peggy Sue Miller" NIL "peggy.sue.miller" "notifications.example.io"))'
    b' (("Me Myself" NIL "me" "example.test")) NIL NIL NIL "<1.8fa46940e747@example.io>")'
    b' BODYSTRUCTURE ("text" "plain" ("charset" "utf-8" "format" "flowed") NIL NIL "7bit" 444 7'
    b" NIL NIL NIL NIL) BODY[HEADER.FIELDS (REFERENCES)] " + lit(b"\r\n") + b")",
    b'* 6 FETCH (UID 6 FLAGS (\\Seen) INTERNALDATE " 8-Nov-2023 14:23:04 -0700" RFC822.SIZE 14477'
    b' MODSEQ (2) ENVELOPE ("Tue, 28 Nov 2023 15:23:04 +0100" "Re: Bug in IMAP IDLE handling"'
    b' (("=?UTF-8?B?w4dhxJ9yxLEgWcSxbG1heg==?=" NIL "user291" "corp.example")) NIL NIL'
    b' (("Me Myself" NIL "me" "example.test")) (("Olivia Brown" NIL "olivia.brown" "mail.example.net")'
    b'("=?ISO-8859-1?Q?Jos=E9_Mart=EDnez?=" NIL "user118" "university.example.edu")) NIL'
    b' "<3.11fbe738d4ec@example.com>" "<6.9cd179948951@corp.example>") BODYSTRUCTURE ("text"'
    b' "plain" ("charset" "utf-8") NIL NIL "7bit" 13269 215 NIL NIL NIL NIL)'
    b" BODY[HEADER.FIELDS (REFERENCES)] "
    + lit(b"References: <3.11fbe738d4ec@example.com>\r\n <2.x@y>\r\n\r\n")
    + b")",
    # multipart/mixed with an attachment, a subject with 8-bit bytes (a literal), a quote
    b'* 9 FETCH (UID 19 FLAGS () INTERNALDATE "29-Feb-2024 23:59:59 +1400" RFC822.SIZE 99'
    b' MODSEQ (12345678901) ENVELOPE ("Thu, 29 Feb 2024 23:59:59 +1400" '
    + lit('Grüße "aus" Köln'.encode())
    + b' (("Smith, \\"John\\"" NIL "john" "x.org")) NIL NIL NIL NIL NIL NIL "<m@x>")'
    b' BODYSTRUCTURE (("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 320 10 NIL NIL NIL'
    b' NIL)("application" "pdf" ("name" "report.pdf") NIL NIL "base64" 84210 NIL ("attachment"'
    b' ("filename" "report.pdf")) NIL NIL) "mixed" ("boundary" "b1") NIL NIL NIL)'
    b" BODY[HEADER.FIELDS (REFERENCES)] " + lit(b"\r\n") + b")",
    # no literal at all, items in another order, MODSEQ last (as requested)
    b'* 3 FETCH (UID 3 RFC822.SIZE 5 FLAGS ($Forwarded \\Flagged) INTERNALDATE "1-Jan-2020'
    b' 00:00:00 +0000" ENVELOPE (NIL "" NIL NIL NIL NIL NIL NIL NIL NIL) BODYSTRUCTURE ("text"'
    b' "plain" NIL NIL NIL "7bit" 5 1) MODSEQ (7))',
    # a Date that lies in the future relative to arrival: sorted by arrival
    b'* 4 FETCH (UID 4 FLAGS (\\Seen) INTERNALDATE "01-Jan-2020 00:00:00 +0000" RFC822.SIZE 5'
    b' ENVELOPE ("Mon, 1 Jan 2035 00:00:00 +0000" "spam" NIL NIL NIL NIL NIL NIL NIL NIL))',
    # the Date as a literal, an obsolete zone, no seconds
    b'* 5 FETCH (UID 5 FLAGS (\\Seen) INTERNALDATE "01-Jan-2020 00:00:00 +0000" RFC822.SIZE 5'
    b" ENVELOPE (" + lit(b"1 Jan 2020 10:11 EST") + b' "x" NIL NIL NIL NIL NIL NIL NIL NIL))',
]


@pytest.mark.parametrize("resp", DOVECOT)
def test_real_responses_take_the_fast_path_and_agree(resp: bytes) -> None:
    assert agrees(resp) is not None


def test_row_details() -> None:
    row = extract(DOVECOT[0])
    assert row is not None
    uid, sort, flags, seen, arrived, size, modseq, raw = row
    assert (uid, flags, seen, size, modseq) == (1, "\\Answered \\Seen", 1, 1056, 2)
    assert arrived == datetime(2023, 11, 28, 1, 13, 5, tzinfo=UTC).timestamp()
    assert sort == datetime(2023, 11, 28, 1, 13, 5, tzinfo=UTC).timestamp()  # 06:43 +0530
    assert raw.startswith(b'ENVELOPE ("Tue') and raw.endswith(b"\r\n\r\n)")
    future = extract(DOVECOT[4])
    assert future is not None and future[1] == future[4]  # the arrival time


@pytest.mark.parametrize(
    "resp",
    [
        b"* 1 EXISTS",
        b"* 1 FETCH (UID 5 FLAGS (\\Seen))",  # another device's flag change
        b"* 1 FETCH (FLAGS () ENVELOPE (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL))",  # no UID
        b"* 1 FETCH (UID 5 ENVELOPE NIL)",
        b"* 1 FETCH (UID 007 ENVELOPE (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL))",
        b"* 1 FETCH (UID 5 ENVELOPE (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) ENVELOPE NIL)",
        b"* 1 FETCH (UID 5 ENVELOPE (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)",  # unbalanced
        b"* 1 FETCH (UID 5 ENVELOPE (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)) x",
        b"* 1 FETCH (UID 5 ENVELOPE (NIL \x00 NIL NIL NIL NIL NIL NIL NIL NIL))",
        b"* 1 FETCH (UID 99999999999 ENVELOPE (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL))",
        b"* 1 FETCH (UID 5 ENVELOPE (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) X ~{1}\r\nx)",
        b"* 1 FETCH (UID 5 ENVELOPE (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) X {2}\r\nx)",
        b"* 1 FETCH (UID 5 ENVELOPE (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) X {1}\r\nx) )",
    ],
)
def test_what_the_fast_path_leaves_to_the_parser(resp: bytes) -> None:
    assert extract(resp) is None


def test_a_later_item_wins_as_in_the_parser() -> None:
    env = b"ENVELOPE (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"
    row = agrees(b"* 1 FETCH (UID 5 FLAGS (\\Seen) " + env + b" UID 6 FLAGS () MODSEQ (3))")
    assert row is not None and row[0] == 6 and row[2] == "" and row[6] == 3


def test_pathological_input_is_refused_in_linear_time() -> None:
    started = time.perf_counter()
    for resp in (
        b"* 1 FETCH (UID 1 ENVELOPE (" + b"(" * 200_000,
        b"* 1 FETCH (UID 1 ENVELOPE (" + b"(NIL " * 100_000,
        b'* 1 FETCH (UID 1 ENVELOPE ("' + b"\\\\" * 200_000,
        b"* 1 FETCH (UID 1 ENVELOPE (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)" + b" X Y" * 100_000,
    ):
        assert extract(resp) is None
        assert read_stream(resp + b"\r\n", 0, 1 << 30, []) == 0
    assert time.perf_counter() - started < 2.0


# --- generated responses -----------------------------------------------------------------------

_DATES = [
    b"Tue, 28 Nov 2023 06:43:05 +0530",
    b"1 Jan 2020 10:11 -0800",
    b"Mon, 31 Feb 2022 10:00:00 +0000",  # no such day: the stdlib decides
    b"Sun, 1 Jan 2023 24:00:00 +0000",
    b"Sun, 01 Jan 2023 23:59:60 +0000",
    b"Wed, 1 Jan 2020 10:00:00 +9999",
    b"Wed,  1   Jan 2020 10:00:00 +0100 (CET)",
    b"1 jan 2020 10:00:00 +0000",
    b"Fri, 13 Sep 2024 10:00:00 GMT",
    b"\xd9\xa1 Jan 2020 10:00:00 +0000",  # an Arabic-Indic digit
    b"garbage",
    b"",
]
_IDATES = [
    b"28-Nov-2023 01:13:05 +0000",
    b" 8-Nov-2023 14:23:04 -0700",
    b"29-Feb-2023 00:00:00 +0000",
    b"31-Apr-2023 00:00:00 +0000",
    b"01-Jan-2023 24:00:00 +0000",
    b"01-jan-2023 12:00:00 +2400",
    b"01-Jan-2023 12:00:00",
    b"1-Jan-2023 12:00:00 +0130",
    b"",
]
_FLAGS = [
    b"\\Seen",
    b"\\seen",
    b"\\Recent",
    b"\\Answered",
    b"$Forwarded",
    b"NIL",
    b"nil",
    b"123",
    b"0123",
    b"\\*",
    b'"quoted"',
    b"x[y]",
    b"caf\xc3\xa9",
    b"()",
]
_STRINGS = [
    b'"Hello"',
    b'"=?UTF-8?B?w4lsb2RpZQ==?="',
    b'"with \\"quotes\\" and \\\\"',
    b"NIL",
    b"nil",
    lit("Grüße".encode()),
    lit(b"line\r\nbreak"),
    b'""',
    b"atom",
    b"42",
]
_ADDRESS_LISTS = [
    b"NIL",
    b'(("Ann" NIL "ann" "x.org"))',
    b'((NIL NIL "grp" NIL)("B" NIL "b" "y.org")(NIL NIL NIL NIL))',
    b'(("Ann" NIL "ann" "x.org")("Bob" "route" "bob" "y.org"))',
    b"()",
]
_BODIES = [
    b'("text" "plain" ("charset" "utf-8") NIL NIL "7bit" 10 1 NIL NIL NIL NIL)',
    b'(("text" "plain" NIL NIL NIL "7bit" 1 1)("application" "pdf" NIL NIL NIL "base64" 9 NIL'
    b' ("attachment" ("filename" "a.pdf")) NIL NIL) "mixed")',
    b'("message" "rfc822" NIL NIL NIL "7bit" 5 (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)'
    b' ("text" "plain" NIL NIL NIL "7bit" 1 1) 1)',
    b"NIL",
    b"((((((((((((((((x))))))))))))))))",
]


@st.composite
def envelope(draw: st.DrawFn) -> bytes:
    date = draw(
        st.one_of(
            st.sampled_from(_DATES).map(lambda d: b'"' + d.replace(b'"', b"") + b'"'),
            st.sampled_from(_DATES).map(lit),
            st.just(b"NIL"),
            st.just(b"(x)"),
        )
    )
    fields = [
        date,
        draw(st.sampled_from(_STRINGS)),
        *(draw(st.sampled_from(_ADDRESS_LISTS)) for _ in range(6)),
        draw(st.sampled_from(_STRINGS)),
        draw(st.sampled_from(_STRINGS)),
    ]
    fields = (
        fields[: draw(st.integers(1, 10))]
        if draw(st.booleans()) and draw(st.booleans())
        else fields
    )
    return b"(" + b" ".join(fields) + b")"


@st.composite
def fetch_response(draw: st.DrawFn) -> bytes:
    name = st.sampled_from
    items: list[bytes] = []
    pool = [
        lambda: (
            draw(name([b"UID", b"uid"]))
            + b" "
            + draw(name([b"1", b"42", b"0", b"4294967295", b"4294967296", b"007", b'"5"']))
        ),
        lambda: b"FLAGS (" + b" ".join(draw(st.lists(name(_FLAGS), max_size=4))) + b")",
        lambda: (
            b"INTERNALDATE "
            + draw(st.one_of(name(_IDATES).map(lambda d: b'"' + d + b'"'), st.just(b"NIL")))
        ),
        lambda: b"RFC822.SIZE " + draw(name([b"0", b"1234", b"99999999999999999999", b"12a"])),
        lambda: b"MODSEQ " + draw(name([b"(5)", b"(5 6)", b"()", b"7", b"(9223372036854775808)"])),
        lambda: draw(name([b"ENVELOPE", b"envelope"])) + b" " + draw(envelope()),
        lambda: b"BODYSTRUCTURE " + draw(name(_BODIES)),
        lambda: (
            b"BODY[HEADER.FIELDS (REFERENCES)] "
            + draw(
                st.one_of(
                    st.just(lit(b"\r\n")),
                    st.just(lit(b"References: <a@b>\r\n <c@d>\r\n\r\n")),
                    st.just(b'"References: <q@r>"'),
                    st.just(b"NIL"),
                )
            )
        ),
        lambda: b"X-GM-MSGID 123",
    ]
    order = draw(st.lists(st.integers(0, len(pool) - 1), min_size=1, max_size=10))
    if draw(st.booleans()):  # mostly the usual layout, so that most cases get past the regex
        order = [0, 1, 2, 3, 4, 5, 6, 7]
    for i in order:
        items.append(pool[i]())
    sep = b"  " if draw(st.integers(0, 20)) == 0 else b" "
    return b"* " + str(draw(st.integers(1, 99))).encode() + b" FETCH (" + sep.join(items) + b")"


_SPECIALS = [b"(", b")", b'"', b"\\", b"{", b"}", b"\r\n", b"\r", b"\n", b"\x00", b" ", b"{1}\r\n"]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    resp = draw(st.one_of(fetch_response(), st.sampled_from(DOVECOT)))
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(resp)))
        kind = draw(st.integers(0, 2))
        if kind == 0:
            resp = resp[:at] + resp[at + draw(st.integers(1, 5)) :]
        elif kind == 1:
            resp = resp[:at] + draw(st.sampled_from(_SPECIALS)) + resp[at:]
        else:
            resp = resp[:at]
    return resp


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fetch_response())
def test_generated_responses_agree_with_the_full_decoder(resp: bytes) -> None:
    agrees(resp)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_hostile_responses_are_refused_or_agree(resp: bytes) -> None:
    agrees(resp)


def test_most_generated_usual_responses_take_the_fast_path() -> None:
    """The property tests above would pass with an extract() that refuses everything."""
    rng = random.Random(7)
    taken = 0
    for _ in range(300):
        resp = (
            b'* 1 FETCH (UID %d FLAGS (\\Seen) INTERNALDATE "%s" RFC822.SIZE 5 MODSEQ (3) '
            b'ENVELOPE ("%s" %s %s NIL NIL NIL NIL NIL NIL "<m@x>") BODYSTRUCTURE %s '
            b"BODY[HEADER.FIELDS (REFERENCES)] %s)"
            % (
                rng.randrange(1, 10**6),
                rng.choice(_IDATES[:3]),
                rng.choice(_DATES[:3]),
                rng.choice(_STRINGS[:6]),
                rng.choice(_ADDRESS_LISTS[:4]),
                rng.choice(_BODIES[:3]),
                lit(b"References: <a@b>\r\n\r\n"),
            )
        )
        taken += agrees(resp) is not None
    assert taken == 300


# --- dates -------------------------------------------------------------------------------------


def _same_time(fast: float | None, slow: datetime | None) -> None:
    try:
        expected = timestamp(slow)
    except (OverflowError, ValueError):
        return  # the stdlib cannot say (year 1 with a positive offset); the fast path may
    assert fast == expected


@settings(max_examples=3000, deadline=None)
@given(
    st.tuples(
        st.sampled_from([b"", b" "]),
        st.integers(0, 32).map(lambda d: str(d).encode()),
        st.sampled_from([b"Jan", b"feb", b"FEB", b"Foo", b"Dec"]),
        st.integers(0, 9999).map(lambda y: b"%04d" % y),
        st.integers(0, 25),
        st.integers(0, 61),
        st.integers(0, 61),
        st.sampled_from([b"", b" +0000", b" -0730", b" +2359", b" +2400", b" -9999", b" +05"]),
    )
)
def test_internaldate_fast_path(parts: tuple[Any, ...]) -> None:
    lead, day, mon, year, hh, mm, ss, zone = parts
    raw = lead + day + b"-" + mon + b"-" + year + b" %02d:%02d:%02d" % (hh, mm, ss) + zone
    _same_time(_arrival(raw), parse_internaldate(raw))


@settings(max_examples=3000, deadline=None)
@given(
    st.tuples(
        st.sampled_from([b"", b"Mon, ", b"mon,", b" Tue,  "]),
        st.integers(0, 32).map(lambda d: str(d).encode()),
        st.sampled_from([b"Jan", b"feb", b"Foo", b"Dec"]),
        st.integers(0, 9999).map(lambda y: str(y).encode()),
        st.integers(0, 25),
        st.integers(0, 61),
        st.sampled_from([b"", b":00", b":59", b":60", b":7"]),
        st.sampled_from(
            [b" +0000", b" -0730", b" +2359", b" +2400", b" GMT", b" +0100 (CET)", b"+0100"]
        ),
        st.sampled_from([b"", b" ", b"\r\n", b"\xc3\xa9", b"\t"]),
    )
)
def test_date_header_fast_path(parts: tuple[Any, ...]) -> None:
    lead, day, mon, year, hh, mm, ss, zone, tail = parts
    raw = lead + day + b" " + mon + b" " + year + b" %d:%02d" % (hh, mm) + ss + zone + tail
    _same_time(_sent(raw), parse_date(raw))


# --- the stream reader -----------------------------------------------------------------------


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.sampled_from(DOVECOT), fetch_response(), mutated()), max_size=8))
def test_read_stream_stops_only_at_response_boundaries(resps: list[bytes]) -> None:
    data = b"".join(r + b"\r\n" for r in resps)
    rows: list[RawRow] = []
    pos = read_stream(data, 0, 1 << 20, rows)
    # What it consumed is a run of whole responses, each one extract() agrees on.
    consumed = 0
    expected: list[RawRow] = []
    for resp in resps:
        if consumed == pos:
            break
        row = extract(resp)
        assert row is not None
        expected.append(row)
        consumed += len(resp) + 2
    assert consumed == pos
    assert rows == expected


async def test_protocol_streaming_frames_like_the_framer() -> None:
    """Received in any chunking, a bulk FETCH gives the same rows (in order) and leaves the
    same other responses to the command as the framer alone would."""
    rng = random.Random(3)
    others = [b"* 7 EXISTS", b"* 2 FETCH (UID 9 FLAGS (\\Seen))", b"* 1 FETCH (UID 1 ENVELOPE NIL)"]
    for _ in range(40):
        resps = [rng.choice(DOVECOT + others) for _ in range(rng.randrange(1, 30))]
        stream = b"".join(r + b"\r\n" for r in resps)
        cuts = sorted(rng.sample(range(1, len(stream)), min(len(stream) - 1, rng.randrange(0, 12))))
        chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
        rows: list[RawRow] = []

        def sink(resp: bytes, rows: list[RawRow] = rows) -> bool:
            row = extract(resp)
            if row is None:
                return False
            rows.append(row)
            return True

        def reader(data: bytes, pos: int, size: int, rows: list[RawRow] = rows) -> int:
            return read_stream(data, pos, size, rows)

        proto = ImapProtocol(asyncio.get_running_loop())
        proto.connection_made(_Transport())
        proto.data_received(b"* OK ready\r\n")
        proto.state = SELECTED
        cmd = PendingCommand("FETCH", proto.new_tag(), ["1:*", "(X)"], sink=sink, reader=reader)
        task = asyncio.create_task(proto.run(cmd))
        await asyncio.sleep(0)
        for chunk in chunks:
            proto.data_received(chunk)
        proto.data_received(cmd.tag.encode() + b" OK done\r\n")
        await asyncio.wait_for(task, 2)
        assert rows == [extract(r) for r in resps if extract(r) is not None]
        assert cmd.untagged == [r for r in resps if extract(r) is None]


class _Transport(asyncio.Transport):
    def write(self, data: Any) -> None:
        pass

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0


# --- lazy rows in the cache --------------------------------------------------------------------


def lazy_batch(resps: list[bytes]) -> LazySummaries:
    items: list[RawRow | MessageSummary] = []
    for resp in resps:
        row = extract(resp)
        if row is not None:
            items.append(row)
        else:
            full = reference(resp)
            assert full is not None
            items.append(full)
    return LazySummaries(items)


def expected(resp: bytes) -> MessageSummary:
    full = reference(resp)
    assert full is not None
    when = full.internal_date
    return dataclasses.replace(
        full, internal_date=datetime.fromtimestamp(when.timestamp(), UTC) if when else None
    )


SAMPLE = [
    b'* %d FETCH (UID %d FLAGS (\\Seen) INTERNALDATE "0%d-Mar-2024 10:00:00 +0100" RFC822.SIZE %d'
    b' MODSEQ (%d) ENVELOPE ("Sat, 2 Mar 2024 09:59:00 +0000" "Subject %d" (("Ann" NIL "ann"'
    b' "x.org")) NIL NIL NIL NIL NIL "<p%d@x>" "<m%d@x>") BODYSTRUCTURE ("text" "plain" NIL NIL'
    b' NIL "7bit" 1 1) BODY[HEADER.FIELDS (REFERENCES)] %s)'
    % (n, n, n % 9 + 1, 100 + n, n, n, n - 1, n, lit(b"References: <r%d@x>\r\n\r\n" % n))
    for n in range(1, 41)
] + [DOVECOT[2].replace(b"UID 19", b"UID 119")]  # a subject literal: the inlined path


def test_lazy_batch_reads_back_decoded(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c.sqlite3")
    batch = lazy_batch(SAMPLE)
    assert len(batch) == len(SAMPLE) and list(batch.uids) == [expected(r).uid for r in SAMPLE]
    cache.put_summaries("INBOX", batch)
    want = {expected(r).uid: expected(r) for r in SAMPLE}
    assert cache.summaries("INBOX", list(want)) == want
    assert cache.summary("INBOX", 7) == want[7]
    page, _ = cache.page("INBOX", 100)
    assert {s.uid: s for s in page} == want
    assert [s.uid for s in page] == list(cache.ordered_uids("INBOX"))
    assert list(batch) == [want[u] for u in batch.uids]  # the event's view: decoded on access
    assert cache.counts("INBOX") == (len(want), 1)  # DOVECOT[2] is unread
    # Flags change on undecoded rows like on any other.
    cache.set_flags("INBOX", {7: frozenset({"\\Flagged"})})
    assert cache.summary("INBOX", 7) == dataclasses.replace(want[7], flags=frozenset({"\\Flagged"}))
    # Threading sees undecoded rows too (m6 <- p6 is the In-Reply-To of message 7).
    assert cache.conversation("INBOX", 7) == [7]
    assert set(cache.conversation("INBOX", 19)) == {19}


def test_messages_added_counts_lazy_summaries_without_decoding(monkeypatch: Any) -> None:
    batch = lazy_batch(SAMPLE[:5])
    import kittiwake.core.cache as cache_mod

    def boom(raw: bytes) -> Any:
        raise AssertionError("decoded")

    monkeypatch.setattr(cache_mod, "_raw_decoder", boom)
    event = MessagesAdded("a", "INBOX", batch)
    assert event.uids == (1, 2, 3, 4, 5) and len(event.summaries) == 5


async def test_decode_pass_fills_every_row(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c.sqlite3")
    cache.put_summaries("INBOX", lazy_batch(SAMPLE))
    assert len(cache.undecoded("INBOX", 1000)) == len(SAMPLE) - 0
    seen: list[int] = []
    done = await decode_pass(
        cache, "INBOX", batch=7, on_decoded=lambda f, ss: seen.extend(s.uid for s in ss)
    )
    assert done == len(SAMPLE) and sorted(seen) == sorted(expected(r).uid for r in SAMPLE)
    assert seen == sorted(seen, reverse=True)  # newest first
    assert cache.undecoded("INBOX", 1000) == []
    row = cache.db.execute("SELECT envelope, raw FROM messages WHERE uid=7").fetchone()
    assert row[1] is None and row[0] != b""
    want = {expected(r).uid: expected(r) for r in SAMPLE}
    assert cache.summaries("INBOX", list(want)) == want
    assert await decode_pass(cache, "INBOX") == 0


def test_set_decoded_leaves_rows_that_changed(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c.sqlite3")
    cache.put_summaries("INBOX", lazy_batch(SAMPLE[:3]))
    pending = cache.undecoded("INBOX", 10)
    # Meanwhile UIDVALIDITY changed and uid 3 is another message now.
    cache.reset_folder("INBOX")
    cache.put_summaries("INBOX", lazy_batch([SAMPLE[5].replace(b"UID 6", b"UID 3")]))
    written = cache.set_decoded("INBOX", [(u, raw, decode_raw(raw)) for u, raw in pending])
    assert written == []
    assert cache.summary("INBOX", 3) == dataclasses.replace(expected(SAMPLE[5]), uid=3)


def test_undecoded_walks_down_by_uid(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c.sqlite3")
    cache.put_summaries("INBOX", lazy_batch(SAMPLE[:10]))
    first = cache.undecoded("INBOX", 4)
    assert [u for u, _ in first] == [10, 9, 8, 7]
    assert [u for u, _ in cache.undecoded("INBOX", 4, below_uid=7)] == [6, 5, 4, 3]
    assert cache.undecoded("Other", 4) == []


def test_undecodable_raw_reads_as_empty(tmp_path: Path) -> None:
    assert decode_raw(b"ENVELOPE (((") == decode_raw(b"")
    envelope, refs, attachments = decode_raw(b"junk")
    assert envelope.subject == "" and refs == () and not attachments


def test_cache_reads_raw_rows_only_through_the_registered_decoder(monkeypatch: Any) -> None:
    """The cache imports no protocol wing: the IMAP wing registers its reader of raw rows."""
    import kittiwake.core.cache as cache_mod
    from kittiwake.core.errors import CacheError

    assert cache_mod._raw_decoder is decode_raw  # registered by importing imap/lazy.py
    monkeypatch.setattr(cache_mod, "_raw_decoder", None)
    with pytest.raises(CacheError, match="no decoder"):
        cache_mod.decode_raw(b"ENVELOPE NIL")


def test_importing_the_cache_loads_no_protocol_wing() -> None:
    wings = ("kittiwake.core.imap", "kittiwake.core.pop3", "kittiwake.core.smtp")
    code = f"import sys, kittiwake.core.cache; print(sorted(m for m in sys.modules if m.startswith({wings!r})))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
