"""The quirks table (``parser.QUIRKS``): every example parses, and to what the table says."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kittiwake.core.imap.decode import bodystructure_from_value, summary_from_fetch
from kittiwake.core.imap.parser import (
    QUIRKS,
    Capability,
    Continuation,
    Fetch,
    Search,
    Status,
    parse_response,
)
from kittiwake.core.models import Address


def _fetch(resp: object) -> Fetch:
    assert isinstance(resp, Fetch)
    return resp


def _nil_envelope(r: object) -> None:
    s = summary_from_fetch(_fetch(r))
    assert s.envelope.subject == "" and s.envelope.from_ == ()
    assert s.envelope.to == (Address("", "bob"),)


def _nil_body(r: object) -> None:
    part = bodystructure_from_value(_fetch(r).bodystructure)
    assert (part.maintype, part.subtype, part.encoding, part.size) == ("text", "plain", None, 0)


def _unescaped(r: object) -> None:
    env = summary_from_fetch(_fetch(r)).envelope
    assert env.subject == 'The "best" offer' and env.message_id == "<a@b>"


def _spaces(r: object) -> None:
    f = _fetch(r)
    assert (f.seq, f.uid, f.flags, f.size, f.degraded) == (1, 1, frozenset({"\\Seen"}), 3, "")


def _continuation(r: object) -> None:
    assert r == Continuation(None, "")


def _numbers(r: object) -> None:
    s = summary_from_fetch(_fetch(r))
    assert (s.uid, s.size, s.modseq) == (1, 0, None)


def _capability(r: object) -> None:
    assert r == Capability(frozenset({"IMAP4REV1", "IDLE"}))


def _search(r: object) -> None:
    assert r == Search((2, 3))


def _status(r: object) -> None:
    assert isinstance(r, Status) and r.values == {"MESSAGES": 3, "UIDNEXT": 4}


def _unreadable(r: object) -> None:
    f = _fetch(r)
    assert f.degraded and (f.seq, f.uid, f.flags) == (7, 9, frozenset({"\\Seen"}))


CHECKS: dict[str, Callable[[object], None]] = {
    "nil-in-envelope": _nil_envelope,
    "nil-in-bodystructure": _nil_body,
    "unescaped-quote": _unescaped,
    "stray-spaces": _spaces,
    "empty-continuation": _continuation,
    "number-out-of-range": _numbers,
    "trailing-space-capability": _capability,
    "trailing-space-search": _search,
    "trailing-space-status": _status,
    "unreadable-fetch": _unreadable,
}


def test_every_quirk_has_a_check_and_names_are_unique() -> None:
    names = [q.name for q in QUIRKS]
    assert len(names) == len(set(names))
    assert set(names) == set(CHECKS)


@pytest.mark.parametrize("quirk", QUIRKS, ids=lambda q: q.name)
def test_quirk_is_tolerated(quirk: object) -> None:
    assert hasattr(quirk, "example")
    CHECKS[quirk.name](parse_response(quirk.example))  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("resp", "uid"),
    [
        (b"* 1 FETCH (UID 0 FLAGS ())", None),
        (b"* 1 FETCH (UID 4294967296 FLAGS ())", None),
        (b"* 1 FETCH (UID 4294967295 FLAGS ())", 4294967295),
        (b"* 1 FETCH (UID 123456789012345678901234 FLAGS ())", None),
    ],
)
def test_uid_out_of_range_is_absent(resp: bytes, uid: int | None) -> None:
    assert _fetch(parse_response(resp)).uid == uid


def test_salvage_never_reads_a_uid_out_of_a_subject() -> None:
    f = _fetch(parse_response(b'* 3 FETCH (ENVELOPE ("x" "see UID 77 (FLAGS (\\\\Deleted))" {9}'))
    assert f.degraded and f.uid is None and f.flags is None


def test_strings_with_escaped_quotes_are_read_as_before() -> None:
    f = _fetch(
        parse_response(b'* 1 FETCH (UID 2 ENVELOPE (NIL "a \\"b\\" c" ' + b"NIL " * 7 + b"NIL))")
    )
    assert summary_from_fetch(f).envelope.subject == 'a "b" c'


_WORD = st.text(alphabet="abcdefghij xyz.,!?", min_size=1, max_size=12).filter(
    lambda w: w.strip() == w and w
)


@settings(max_examples=200)
@given(st.lists(_WORD, min_size=1, max_size=5), st.integers(0, 4))
def test_subjects_with_unescaped_quotes_come_through(words: list[str], at: int) -> None:
    """A lower-case word quoted inside a subject, sent without escapes, is read back whole
    and leaves the fields after it where they were."""
    at = min(at, len(words) - 1)
    words = [*words[:at], f'"{words[at]}"', *words[at + 1 :]]
    subject = " ".join(words)
    resp = (
        b'* 1 FETCH (UID 5 FLAGS () ENVELOPE ("Mon, 1 Jan 2024 00:00:00 +0000" "'
        + subject.encode()
        + b'" (("A" NIL "a" "b.example")) NIL NIL NIL NIL NIL NIL "<id@x>") RFC822.SIZE 4)'
    )
    f = _fetch(parse_response(resp))
    s = summary_from_fetch(f)
    assert not f.degraded and s.size == 4
    assert s.envelope.message_id == "<id@x>"
    assert s.envelope.from_ == (Address("A", "a@b.example"),)
    if subject.startswith('"') or subject.endswith('"'):
        return  # a quote at an edge is ambiguous; the fields after it still hold
    assert s.envelope.subject == subject


@settings(max_examples=300)
@given(st.binary(max_size=150))
def test_any_fetch_is_a_fetch(rest: bytes) -> None:
    """Whatever follows ``* n FETCH``, the result is a Fetch (maybe degraded), never an
    exception that would drop the rest of the command's responses."""
    r = parse_response(b"* 4 FETCH (UID 8 " + rest)
    assert isinstance(r, Fetch) and r.seq == 4
