"""Address completion: matching (case, accents, word starts) and ranking (you wrote to them,
often, lately)."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from kittiwake.core.compose.addressbook import Seen, complete, fold, matches, rank
from kittiwake.core.models import Address

NOW = datetime(2025, 6, 1, tzinfo=UTC).timestamp()
DAY = 86400.0

JORG = Address("Jörg Müller", "j.mueller@example.de")
JOANNA = Address("Joanna Smith", "joanna@example.org")
JOE = Address("", "joe.bloggs@example.com")
ZOE = Address("Zoë Ärø-Lind", "zoe@ærø.example")


def seen(address: Address, days_ago: float, wrote: bool, times: int = 1) -> list[Seen]:
    return [(address, NOW - days_ago * DAY, wrote)] * times


def test_fold_is_case_and_accent_insensitive() -> None:
    assert fold("Jörg ÆRØ Łódź Straße") == "jorg aero lodz strasse"


def test_matching_looks_at_word_starts_of_name_and_address() -> None:
    assert matches(JORG, "jö") and matches(JORG, "jo") and matches(JORG, "JO")
    assert matches(JORG, "mul") and matches(JORG, "müll")
    assert matches(JORG, "mueller") and matches(JORG, "j.mu")  # the address, from its start
    assert matches(JORG, "exam") and matches(JORG, "de")
    assert not matches(JORG, "uller") and not matches(JORG, "org")
    assert matches(JORG, "jo mu") and not matches(JORG, "jo sm")
    assert matches(ZOE, "zoe") and matches(ZOE, "aro") and matches(ZOE, "lind")
    assert matches(ZOE, "zoe@aer") and matches(ZOE, "zoe@ærø.ex")


def test_people_you_write_to_come_first() -> None:
    history = (
        seen(JOANNA, 1, False, times=30)  # a newsletter-ish sender you never answer
        + seen(JOE, 3, True, times=4)
        + seen(JORG, 2, True, times=2)
    )
    assert complete(history, "jo", now=NOW) == [JOE, JORG, JOANNA]


def test_recency_beats_old_frequency() -> None:
    history = seen(JORG, 400, True, times=10) + seen(JOANNA, 2, True, times=2)
    assert complete(history, "jo", now=NOW) == [JOANNA, JORG]


def test_ties_go_to_the_most_recent_then_alphabetical() -> None:
    a = Address("", "a.jones@example.org")
    b = Address("", "b.jones@example.org")
    c = Address("", "c.jones@example.org")
    history = [(a, NOW - DAY, True), (b, NOW - DAY, True), (c, NOW - DAY + 60, True)]
    ranked = rank(history, now=NOW)
    assert ranked[0].address == c
    assert complete(history, "jones", now=NOW)[1:] == [a, b]


def test_addresses_merge_case_insensitively_with_the_latest_name() -> None:
    history = [
        (Address("J. Müller", "J.Mueller@Example.de"), NOW - 10 * DAY, True),
        (Address("", "j.mueller@example.de"), NOW - 5 * DAY, False),
        (JORG, NOW - 2 * DAY, False),
        (Address("", "not-an-address"), NOW, True),
    ]
    (only,) = rank(history, now=NOW)
    assert only.address.name == "Jörg Müller"
    assert (only.wrote, only.seen) == (1, 2)
    assert only.last == NOW - 10 * DAY  # when you last wrote to them


def test_exclude_limit_datetimes_and_empty_prefix() -> None:
    history = [
        (JORG, datetime(2025, 5, 30, tzinfo=UTC), True),
        (JOANNA, datetime(2025, 5, 1, tzinfo=UTC), True),
        (JOE, None, True),
    ]
    assert complete(history, "", now=NOW) == [JORG, JOANNA, JOE]
    assert complete(history, "", limit=1, now=NOW) == [JORG]
    assert complete(history, "jo", exclude=["J.MUELLER@example.de"], now=NOW) == [JOANNA, JOE]
    assert complete(history, "nobody", now=NOW) == []


@given(st.text(max_size=20))
def test_any_prefix_is_safe(prefix: str) -> None:
    history = seen(JORG, 1, True) + seen(ZOE, 2, False)
    result = complete(history, prefix, now=NOW)
    assert set(result) <= {JORG, ZOE}
