"""UidSet: RFC 3501 sequence sets kept as ranges."""

from __future__ import annotations

import contextlib
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kittiwake.core.imap.parser import ParseError
from kittiwake.core.imap.uidset import UidSet, parse_ranges


def test_parse_and_format() -> None:
    s = UidSet.parse("1:5,7,9:12")
    assert s.ranges == ((1, 5), (7, 7), (9, 12))
    assert str(s) == "1:5,7,9:12"
    assert len(s) == 5 + 1 + 4
    assert list(s) == [1, 2, 3, 4, 5, 7, 9, 10, 11, 12]
    assert list(reversed(s)) == [12, 11, 10, 9, 7, 5, 4, 3, 2, 1]
    assert s.min == 1 and s.max == 12
    assert 4 in s and 7 in s and 6 not in s and 13 not in s and 0 not in s
    assert "4" not in s  # type: ignore[comparison-overlap]


def test_normalises_order_overlap_adjacency_and_reversed_ranges() -> None:
    assert UidSet.parse("9:7,3,1:2,5:6,4,6:8") == UidSet.parse("1:9")
    assert str(UidSet.parse("5:1")) == "1:5"
    assert str(UidSet.parse("3,3,3")) == "3"


def test_star_needs_a_maximum() -> None:
    assert str(UidSet.parse("5:*", max_value=9)) == "5:9"
    assert str(UidSet.parse("*", max_value=9)) == "9"
    assert str(UidSet.parse("*:4", max_value=2)) == "2:4"  # RFC 3501: order does not matter
    with pytest.raises(ParseError):
        UidSet.parse("1:*")
    with pytest.raises(ParseError):
        UidSet.parse(b"*")


@pytest.mark.parametrize(
    "bad", ["", "0", "1:0", ",", "1,", ",1", "1::2", "a", "1-3", " 1", "1 ", "1:2:3", "9" * 21]
)
def test_malformed_sets_raise_parse_error(bad: str) -> None:
    with pytest.raises(ParseError):
        UidSet.parse(bad)


def test_huge_ranges_are_never_expanded() -> None:
    s = UidSet.parse("1:4294967295")
    assert len(s) == 4294967295
    assert 4294967295 in s and 123456789 in s
    assert list(itertools.islice(s, 3)) == [1, 2, 3]
    assert str(s) == "1:4294967295"
    assert len(s - UidSet.parse("2:4294967294")) == 2


def test_from_iterable_compacts() -> None:
    s = UidSet.from_iterable([5, 3, 4, 10, 1, 11, 3])
    assert str(s) == "1,3:5,10:11"
    assert not UidSet.from_iterable([])
    assert str(UidSet()) == ""
    with pytest.raises(ValueError):
        UidSet.from_iterable([0])


def test_from_iterable_takes_ascending_input_as_it_comes_and_any_other_order_too() -> None:
    assert str(UidSet.from_iterable(iter([1, 2, 3, 3, 5, 6, 9]))) == "1:3,5:6,9"
    # out of order after an ascending start: the rest (a one-shot iterator) is not lost
    assert str(UidSet.from_iterable(iter([4, 5, 9, 2, 7, 5, 1, 10]))) == "1:2,4:5,7,9:10"
    assert str(UidSet.from_iterable(x for x in [3, 3, 2])) == "2:3"


@given(st.lists(st.integers(min_value=1, max_value=60)))
def test_from_iterable_holds_exactly_its_numbers(numbers: list[int]) -> None:
    got = UidSet.from_iterable(iter(numbers))
    assert set(got) == set(numbers)
    assert got == UidSet.from_iterable(sorted(numbers))
    assert all(b + 1 < c for (_, b), (c, _) in zip(got.ranges, got.ranges[1:], strict=False))


def test_set_algebra() -> None:
    a = UidSet.parse("1:10,20:30")
    b = UidSet.parse("5:25")
    assert str(a | b) == "1:30"
    assert str(a & b) == "5:10,20:25"
    assert str(a - b) == "1:4,26:30"
    assert str(b - a) == "11:19"


def test_chunks() -> None:
    s = UidSet.parse("1:5,10,20:22")
    assert [str(c) for c in s.chunks(3)] == ["1:3", "4:5,10", "20:22"]
    assert [str(c) for c in s.chunks(100)] == ["1:5,10,20:22"]
    assert list(UidSet.parse("1:4294967295").chunks(2**31))[1] == UidSet.parse(
        "2147483649:4294967295"
    )
    with pytest.raises(ValueError):
        list(s.chunks(0))


def test_parse_ranges_keeps_the_written_order() -> None:
    assert parse_ranges("304,319:320,5") == [(304, 304), (319, 320), (5, 5)]


def test_equality_and_hash() -> None:
    assert UidSet.parse("1:3") == UidSet.from_iterable([1, 2, 3])
    assert hash(UidSet.parse("1:3")) == hash(UidSet.from_iterable([3, 2, 1]))
    assert UidSet.parse("1") != "1"
    assert repr(UidSet.parse("1:3")) == "UidSet('1:3')"


small = st.integers(min_value=1, max_value=300)
ranges = st.lists(st.tuples(small, small), max_size=12)
big = st.integers(min_value=1, max_value=2**63 - 1)


@given(st.lists(st.tuples(big, big), min_size=1, max_size=12))
def test_format_parse_round_trip(pairs: list[tuple[int, int]]) -> None:
    s = UidSet(pairs)
    text = s.format()
    assert UidSet.parse(text) == s
    assert UidSet.parse(text).format() == text


@given(ranges, ranges)
def test_matches_python_sets(xs: list[tuple[int, int]], ys: list[tuple[int, int]]) -> None:
    a, b = UidSet(xs), UidSet(ys)
    pa = {n for lo, hi in xs for n in range(min(lo, hi), max(lo, hi) + 1)}
    pb = {n for lo, hi in ys for n in range(min(lo, hi), max(lo, hi) + 1)}
    assert list(a) == sorted(pa)
    assert len(a) == len(pa)
    assert set(a | b) == pa | pb
    assert set(a & b) == pa & pb
    assert set(a - b) == pa - pb
    assert UidSet.from_iterable(pa) == a
    for n in range(0, 302):
        assert (n in a) == (n in pa)
    chunks = list(a.chunks(7))
    assert [n for c in chunks for n in c] == sorted(pa)
    assert all(len(c) <= 7 for c in chunks)


@given(st.text(alphabet="0123456789:,*", max_size=40))
def test_parse_raises_only_parse_error(text: str) -> None:
    with contextlib.suppress(ParseError):
        UidSet.parse(text, max_value=1000)
