"""The list's orders by name, and the order chosen per folder kept across runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from kittiwake.core.cache import Cache
from kittiwake.core.message.subjects import base_subject
from kittiwake.core.models import Address, Envelope, MessageSummary
from kittiwake.core.search.order import (
    ALL_ORDERS,
    SortMemory,
    SortOrder,
    SortTexts,
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


NAMES = ["Ann", "ann", "Émile", "zoë", "Zed", "", "山田", "\U0001f600 smiley", "ß", "SS"]
SUBJECTS = ["Re: Plans", "plans", "Fwd: Émile", "", "zz", "Über", "[list] x", "Z"]


def lettered(uid: int, minutes: int) -> MessageSummary:
    """A message whose sender and subject come from short lists (many ties, case, accents,
    astral characters, empty ones, a sender without a name)."""
    when = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=minutes)
    name = NAMES[uid % len(NAMES)]
    sender = () if uid % 17 == 0 else (Address(name, f"{chr(97 + uid % 26)}@example.org"),)
    env = Envelope(date=when, subject=SUBJECTS[uid % len(SUBJECTS)], from_=sender)
    return MessageSummary(uid, frozenset(), when, 1000, env, (), False, uid)


def python_order(cache: Cache, key: str, descending: bool) -> list[int]:
    """The order as the list sorted it in Python before (a stable sort of the newest-first
    index by the case-folded sender or base subject): what SQLite's sort must give."""
    uids = list(ordered_uids(cache, "INBOX", SortOrder()))
    summaries = cache.summaries("INBOX", uids)

    def text(uid: int) -> str:
        env = summaries[uid].envelope
        if key == "subject":
            return base_subject(env.subject).casefold()
        first = env.from_[0] if env.from_ else None
        return ((first.name or first.addr) if first else "").casefold()

    return sorted(uids, key=text, reverse=descending)


def test_sender_and_subject_orders_sort_as_python_does_and_follow_changes(tmp_path: Path) -> None:
    """SQLite sorts by the keys kept in its table exactly as Python sorted the strings
    (code point order, ties newest first either way), with the keys kept between sorts
    (``SortTexts``) or not; messages added and removed later are placed and dropped."""
    cache = Cache(tmp_path / "a.sqlite3")
    cache.put_summaries("INBOX", [lettered(u, minutes=(u * 7) % 23) for u in range(1, 301)])
    memo = SortTexts(cache)
    orders = [SortOrder(k, d) for k in ("sender", "subject") for d in (True, False)]
    for order in orders:
        want = python_order(cache, order.key, order.descending)
        assert list(ordered_uids(cache, "INBOX", order, memo)) == want, order
        assert list(ordered_uids(cache, "INBOX", order)) == want, order
    cache.put_summaries("INBOX", [lettered(u, minutes=u % 5) for u in range(301, 341)])
    cache.remove("INBOX", list(range(2, 300, 3)))
    for order in orders:
        got = list(ordered_uids(cache, "INBOX", order, memo))
        assert got == python_order(cache, order.key, order.descending), order
        assert 340 in got and 2 not in got
    texts = memo.texts("INBOX", [1, 3, 340, 1000])  # no message 1000
    assert set(texts) == {1, 3, 340}
    assert texts[1] == ("ann", "plans") and texts[340] == ("", "zz")
    memo.drop()
    assert list(ordered_uids(cache, "INBOX", orders[0], memo)) == python_order(
        cache, "sender", True
    )  # read again after a drop
    cache.close()
    memo.drop()  # the table went with the connection: nothing left to forget, no error
