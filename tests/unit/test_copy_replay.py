"""Matching the copies an earlier COPY made (its reply lost) with their originals."""

from __future__ import annotations

from datetime import UTC, datetime

from kittiwake.core.imap.triage import copyuid_of, match_copies
from kittiwake.core.models import Envelope, MessageSummary

WHEN = datetime(2026, 12, 1, tzinfo=UTC)


def _summary(
    uid: int, message_id: str | None, size: int = 100, when: datetime | None = WHEN
) -> MessageSummary:
    return MessageSummary(
        uid=uid,
        flags=frozenset(),
        internal_date=when,
        size=size,
        envelope=Envelope(message_id=message_id),
    )


def test_each_copy_answers_for_one_original() -> None:
    originals = [_summary(1, "<a@x>"), _summary(2, "<a@x>"), _summary(3, "<b@x>")]
    landed = [
        _summary(10, "<a@x>"),
        _summary(11, "<b@x>", size=99),  # another message with that Message-ID
        _summary(12, "<b@x>", when=None),  # or another date
        _summary(13, None),
    ]
    assert match_copies(originals, landed) == [(1, 10)]


def test_identical_originals_pair_in_uid_order() -> None:
    originals = [_summary(5, "<a@x>"), _summary(4, "<a@x>")]
    landed = [_summary(21, "<a@x>"), _summary(20, "<a@x>")]
    assert match_copies(originals, landed) == [(4, 20), (5, 21)]


def test_copyuid_of_keeps_the_pairs_in_order() -> None:
    mapping = copyuid_of(7, [(3, 20), (1, 21)])
    assert mapping.uidvalidity == 7
    assert list(mapping.pairs()) == [(3, 20), (1, 21)]
