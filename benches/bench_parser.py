"""Micro-benchmark of the IMAP response parser on realistic summary FETCH responses.

Run by hand: ``.venv/bin/python benches/bench_parser.py [N]``. Prints responses/second for
parsing alone (``parse_untagged``) and for parsing plus decoding to MessageSummary
(``summary_from_fetch``). The goal is >= 30,000 responses/s for the parse on one core (first
sync fetches ~100,000 summaries).
"""

from __future__ import annotations

import random
import sys
import time

from kittiwake.core.imap.decode import summary_from_fetch
from kittiwake.core.imap.parser import Fetch, parse_untagged
from kittiwake.core.models import MessageSummary

_NAMES = [b'"Alice Example"', b"NIL", b'"=?UTF-8?B?w4lsb2RpZSBEdXBvbnQ=?="', b'"Bob \\"B\\" Jones"']
_SUBJECTS = [
    b'"Re: Quarterly report (draft 3)"',
    b'"=?utf-8?q?Caf=C3=A9_meeting_tomorrow?="',
    b'{34}\r\nSubject with "quotes" and (parens)',
    b'"[list] Weekly digest, vol 42"',
]


def make_response(seq: int, rng: random.Random) -> bytes:
    name = rng.choice(_NAMES)
    subject = rng.choice(_SUBJECTS)
    envelope = (
        b'("Tue, 12 Mar 2024 14:%02d:07 +0100" ' % (seq % 60)
        + subject
        + b" (("
        + name
        + b' NIL "alice" "example.com")) (('
        + name
        + b' NIL "alice" "example.com")) (('
        + name
        + b' NIL "alice" "example.com")) ((NIL NIL "bob" "example.org")'
        b'("Carol" NIL "carol" "example.net")) NIL NIL "<parent%d@example.com>" '
        b'"<msg%d.%d@mail.example.com>")' % (seq - 1, seq, rng.randrange(10**9))
    )
    if seq % 3:
        body = (
            b'(("text" "plain" ("charset" "utf-8") NIL NIL "quoted-printable" 1234 40 NIL NIL '
            b'NIL NIL)("text" "html" ("charset" "utf-8") NIL NIL "quoted-printable" 5678 120 '
            b'NIL NIL NIL NIL) "alternative" ("boundary" "----=_Part_1_%d") NIL NIL NIL)' % seq
        )
    else:
        body = (
            b'(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 320 10 NIL NIL NIL NIL)'
            b'("application" "pdf" ("name" "report.pdf") NIL NIL "base64" 84210 NIL '
            b'("attachment" ("filename" "report.pdf")) NIL NIL) "mixed" '
            b'("boundary" "b1_%d") NIL NIL NIL)' % seq
        )
    refs = b""
    if seq % 2:
        refs = b"References: <root%d@example.com>\r\n <parent%d@example.com>\r\n\r\n" % (
            seq - 2,
            seq - 1,
        )
    header = b"BODY[HEADER.FIELDS (REFERENCES)] {%d}\r\n%s" % (len(refs), refs)
    flags = rng.choice([b"(\\Seen)", b"()", b"(\\Seen \\Answered $Forwarded)", b"(\\Flagged)"])
    return (
        b'* %d FETCH (UID %d FLAGS %s INTERNALDATE "12-Mar-2024 14:%02d:09 +0100" '
        b"RFC822.SIZE %d MODSEQ (%d) ENVELOPE %s BODYSTRUCTURE %s %s)"
        % (
            seq,
            1000 + seq,
            flags,
            seq % 60,
            rng.randrange(1000, 200000),
            5000 + seq,
            envelope,
            body,
            header,
        )
    )


def _rate(label: str, n: int, seconds: float, unit: str) -> None:
    print(f"{label:44s} {n / seconds:10,.0f} {unit}/s  ({seconds:.2f} s)")


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    rng = random.Random(7)
    responses = [make_response(i + 1, rng) for i in range(n)]
    total_bytes = sum(map(len, responses))
    print(f"{n} responses, {total_bytes / n:.0f} bytes each on average, best of 3 runs")

    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for r in responses:
            parse_untagged(r)
        best = min(best, time.perf_counter() - t0)
    _rate("parse_untagged (streamed)", n, best, "responses")

    best = float("inf")
    fetches: list[Fetch] = []
    for _ in range(3):
        fetches = []
        t0 = time.perf_counter()
        for r in responses:
            f = parse_untagged(r)
            assert isinstance(f, Fetch)
            fetches.append(f)
        best = min(best, time.perf_counter() - t0)
    _rate("parse_untagged (all trees kept alive)", n, best, "responses")

    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for f in fetches:
            summary_from_fetch(f)
        best = min(best, time.perf_counter() - t0)
    _rate("summary_from_fetch (streamed)", n, best, "summaries")
    del fetches

    best = float("inf")
    for _ in range(3):
        summaries: list[MessageSummary] = []
        t0 = time.perf_counter()
        for r in responses:
            f = parse_untagged(r)
            assert isinstance(f, Fetch)
            summaries.append(summary_from_fetch(f))
        best = min(best, time.perf_counter() - t0)
    _rate("parse + summary (summaries kept: first sync)", n, best, "messages")


if __name__ == "__main__":
    main()
