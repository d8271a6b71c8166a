"""IMAP sequence sets (RFC 3501 ``sequence-set``), stored as ranges, never expanded.

``UidSet`` is immutable: sorted, disjoint, non-adjacent ``(low, high)`` ranges, so
``1:4294967295`` costs one tuple whatever its length. Iteration is lazy.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable, Iterator

from kittiwake.core.imap.parseerror import ParseError

__all__ = ["MAX_NUMBER", "UidSet", "parse_ranges"]

#: The largest number a set may hold (mod-sequence values are 63-bit; UIDs are 32-bit).
MAX_NUMBER = 2**63 - 1

_ELEMENT = re.compile(r"(\d{1,20}|\*)(?::(\d{1,20}|\*))?")


def _number(text: str, max_value: int | None) -> int:
    if text == "*":
        if max_value is None:
            raise ParseError("'*' in a sequence set needs a known maximum")
        return max_value
    n = int(text)
    if n < 1 or n > MAX_NUMBER:
        raise ParseError(f"sequence number out of range: {text}")
    return n


def parse_ranges(text: str | bytes, max_value: int | None = None) -> list[tuple[int, int]]:
    """The ranges of a sequence set in the order written, each as (low, high).

    ``*`` stands for ``max_value`` (ParseError if it is None). Order matters for COPYUID,
    whose source and destination sets correspond element by element.
    """
    if isinstance(text, bytes | bytearray):
        text = bytes(text).decode("latin-1")
    if not text:
        raise ParseError("empty sequence set")
    out: list[tuple[int, int]] = []
    fullmatch = _ELEMENT.fullmatch
    for part in text.split(","):
        m = fullmatch(part)
        if m is None:
            raise ParseError(f"malformed sequence set element: {part[:40]!r}")
        a = _number(m.group(1), max_value)
        b_text = m.group(2)
        b = a if b_text is None else _number(b_text, max_value)
        out.append((a, b) if a <= b else (b, a))
    return out


def _normalise(ranges: Iterable[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    merged: list[tuple[int, int]] = []
    for a, b in sorted(ranges):
        if merged and a <= merged[-1][1] + 1:
            if b > merged[-1][1]:
                merged[-1] = (merged[-1][0], b)
        else:
            merged.append((a, b))
    return tuple(merged)


class UidSet:
    """An immutable set of positive integers kept as ranges (see the module docstring)."""

    __slots__ = ("_ranges", "_starts")

    _ranges: tuple[tuple[int, int], ...]
    _starts: tuple[int, ...]

    def __init__(self, ranges: Iterable[tuple[int, int]] = ()) -> None:
        checked: list[tuple[int, int]] = []
        for a, b in ranges:
            if a > b:
                a, b = b, a
            if a < 1 or b > MAX_NUMBER:
                raise ValueError(f"range out of bounds: {a}:{b}")
            checked.append((a, b))
        self._ranges = _normalise(checked)
        self._starts = tuple(r[0] for r in self._ranges)

    # --- construction -------------------------------------------------------------------

    @classmethod
    def parse(cls, text: str | bytes, max_value: int | None = None) -> UidSet:
        """Parse ``1:5,7,9:*``; ``*`` needs ``max_value``. ParseError when malformed."""
        return cls(parse_ranges(text, max_value))

    @classmethod
    def from_iterable(cls, numbers: Iterable[int]) -> UidSet:
        """The compact set holding ``numbers`` (any order, duplicates allowed).

        Ascending input (a cache's UIDs, a server's answer to ``1:*``) is taken as it comes,
        with no set or sorted copy of it: a million UIDs would be ~70 MB of them at once."""
        ranges: list[tuple[int, int]] = []
        it = iter(numbers)
        for n in it:
            if not ranges or n > ranges[-1][1] + 1:
                ranges.append((n, n))
            elif n == ranges[-1][1] + 1:
                ranges[-1] = (ranges[-1][0], n)
            elif n < ranges[-1][0]:  # out of order: the rest sorted, then as above
                ranges += cls.from_iterable(sorted({n, *it})).ranges
                break
        return cls(ranges)

    # --- reading ------------------------------------------------------------------------

    @property
    def ranges(self) -> tuple[tuple[int, int], ...]:
        return self._ranges

    @property
    def min(self) -> int | None:
        return self._ranges[0][0] if self._ranges else None

    @property
    def max(self) -> int | None:
        return self._ranges[-1][1] if self._ranges else None

    def __iter__(self) -> Iterator[int]:
        for a, b in self._ranges:
            yield from range(a, b + 1)

    def __reversed__(self) -> Iterator[int]:
        for a, b in reversed(self._ranges):
            yield from range(b, a - 1, -1)

    def __contains__(self, item: object) -> bool:
        if not isinstance(item, int):
            return False
        i = bisect_right(self._starts, item) - 1
        return i >= 0 and item <= self._ranges[i][1]

    def __len__(self) -> int:
        return sum(b - a + 1 for a, b in self._ranges)

    def __bool__(self) -> bool:
        return bool(self._ranges)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, UidSet):
            return NotImplemented
        return self._ranges == other._ranges

    def __hash__(self) -> int:
        return hash(self._ranges)

    def format(self) -> str:
        """The canonical sequence-set text (``""`` for the empty set, which IMAP cannot say)."""
        return ",".join(str(a) if a == b else f"{a}:{b}" for a, b in self._ranges)

    def __str__(self) -> str:
        return self.format()

    def __repr__(self) -> str:
        text = self.format()
        if len(text) > 80:
            text = text[:77] + "..."
        return f"UidSet({text!r})"

    # --- algebra ------------------------------------------------------------------------

    def union(self, other: UidSet) -> UidSet:
        return UidSet(self._ranges + other._ranges)

    __or__ = union

    def intersection(self, other: UidSet) -> UidSet:
        out: list[tuple[int, int]] = []
        xs, ys = self._ranges, other._ranges
        i = j = 0
        while i < len(xs) and j < len(ys):
            lo = max(xs[i][0], ys[j][0])
            hi = min(xs[i][1], ys[j][1])
            if lo <= hi:
                out.append((lo, hi))
            if xs[i][1] < ys[j][1]:
                i += 1
            else:
                j += 1
        return UidSet(out)

    __and__ = intersection

    def difference(self, other: UidSet) -> UidSet:
        out: list[tuple[int, int]] = []
        ys = other._ranges
        j = 0
        for a, b in self._ranges:
            lo = a
            while j < len(ys) and ys[j][1] < lo:
                j += 1
            k = j
            while k < len(ys) and ys[k][0] <= b:
                if ys[k][0] > lo:
                    out.append((lo, ys[k][0] - 1))
                lo = max(lo, ys[k][1] + 1)
                if ys[k][1] >= b:
                    break
                k += 1
            if lo <= b:
                out.append((lo, b))
        return UidSet(out)

    __sub__ = difference

    def chunks(self, max_items: int) -> Iterator[UidSet]:
        """Consecutive subsets of at most ``max_items`` numbers each (for batched FETCH)."""
        if max_items < 1:
            raise ValueError("max_items must be positive")
        batch: list[tuple[int, int]] = []
        room = max_items
        for a, b in self._ranges:
            while a <= b:
                take = min(room, b - a + 1)
                batch.append((a, a + take - 1))
                a += take
                room -= take
                if room == 0:
                    yield UidSet(batch)
                    batch = []
                    room = max_items
        if batch:
            yield UidSet(batch)
