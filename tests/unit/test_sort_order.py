"""The list's orders by name, and the order chosen per folder kept across runs."""

from __future__ import annotations

from pathlib import Path

from kittiwake.core.search.order import ALL_ORDERS, SortMemory, SortOrder


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
