"""The list's orders by name, and the order chosen per folder kept across runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from kittiwake.core.cache import Cache
from kittiwake.core.models import Envelope, MessageSummary
from kittiwake.core.search.order import (
    ALL_ORDERS,
    SortMemory,
    SortOrder,
    head_uids,
    ordered_uids,
    uids_after,
)


def summary(uid: int, minutes: int) -> MessageSummary:
    when = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=minutes)
    return MessageSummary(
        uid, frozenset(), when, 1000 + uid % 5, Envelope(date=when), (), False, uid
    )


def test_codes_round_trip_and_bad_ones_are_refused() -> None:
    assert len(ALL_ORDERS) == 12
    for order in ALL_ORDERS:
        assert SortOrder.from_code(order.code) == order
    assert SortOrder.from_code("colour-asc") is None
    assert SortOrder.from_code("date-sideways") is None
    assert SortOrder("sender", False).describe() == "Sender, A to Z"


def test_memory_keeps_a_choice_per_folder(tmp_path: Path) -> None:
    path = tmp_path / "state" / "sort-orders.json"
    memory = SortMemory(path)
    assert memory.get("me", "INBOX") == SortOrder()
    memory.set("me", "INBOX", SortOrder("size", True))
    memory.set("me", "Work", SortOrder("subject", False))
    again = SortMemory(path)
    assert again.get("me", "INBOX") == SortOrder("size", True)
    assert again.get("me", "Work") == SortOrder("subject", False)
    assert again.get("other", "INBOX") == SortOrder()
    assert (path.stat().st_mode & 0o777) == 0o600
    again.set("me", "INBOX", SortOrder())  # the default leaves no entry
    assert "INBOX" not in path.read_text()
    path.write_text("not json")
    assert SortMemory(path).get("me", "Work") == SortOrder()  # a damaged file: defaults


def test_head_and_slices_read_the_index_in_every_indexed_order(tmp_path: Path) -> None:
    """The list's first screenful and the rest of its index, a slice at a time from where
    the last one ended: together, row for row, the index of each order an index gives (ties
    of date included); None for the orders that sort the whole folder."""
    cache = Cache(tmp_path / "a.sqlite3")
    # 97 messages on 13 dates: most dates shared by several UIDs, not in UID order.
    cache.put_summaries("INBOX", [summary(u, minutes=(u * 7) % 13) for u in range(1, 98)])
    indexed = 0
    for order in ALL_ORDERS:
        head = head_uids(cache, "INBOX", order, 10)
        if head is None:
            assert uids_after(cache, "INBOX", order, 5, 10) is None
            continue
        indexed += 1
        read = list(head)
        while (more := uids_after(cache, "INBOX", order, read[-1], 9)) is not None and more:
            read += more
        assert read == list(ordered_uids(cache, "INBOX", order)), order
    assert indexed == 4  # date and arrival, either way
    order = SortOrder()
    gone = list(ordered_uids(cache, "INBOX", order))[20]
    cache.remove("INBOX", [gone])
    after = uids_after(cache, "INBOX", order, gone, 9)
    assert after is not None and len(after) == 0  # nothing follows a UID no longer there
