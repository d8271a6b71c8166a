"""mbox Status lines: an export writes mutt's letters in place of any the message had, never
two, and an import reads them back (and the separator's date) and takes them out again."""

from __future__ import annotations

from datetime import UTC, datetime

from kittiwake.core.message.mbox import mbox_entry, read_status, split_mbox_dated, with_status
from kittiwake.core.models import ANSWERED, DELETED, DRAFT, FLAGGED, SEEN

RAW = (
    b"From: Ann <ann@example.org>\r\nStatus: O\r\nSubject: hi\r\n"
    b"X-Status: F\r\n  folded\r\n\r\nStatus: body line, not a header\r\n"
)
PLAIN = b"From: Ann <ann@example.org>\r\nSubject: hi\r\n\r\nStatus: body line, not a header\r\n"


def test_status_lines_replace_the_old_ones_and_come_back_out() -> None:
    out = with_status(RAW, {SEEN, ANSWERED, DELETED})
    head, body = out.split(b"\r\n\r\n", 1)
    assert head.count(b"Status:") == 2 and b"folded" not in head
    assert head.endswith(b"Status: RO\r\nX-Status: AD")
    assert body == b"Status: body line, not a header\r\n"
    stripped, flags = read_status(out)
    assert stripped == PLAIN
    assert flags == {SEEN, ANSWERED, DELETED}
    assert with_status(PLAIN, set()).count(b"Status: O\r\n") == 1  # unread: "old", no X-Status
    assert read_status(with_status(PLAIN, {FLAGGED, DRAFT}))[1] == {FLAGGED, DRAFT}
    assert read_status(PLAIN) == (PLAIN, frozenset())


def test_an_export_entry_round_trips_flags_and_internaldate() -> None:
    arrived = datetime(2025, 4, 11, 8, 30, tzinfo=UTC)
    data = mbox_entry(PLAIN, {SEEN, FLAGGED}, arrived) + mbox_entry(PLAIN, set())
    assert data.startswith(b"From MAILER-DAEMON Fri Apr 11 08:30:00 2025\n")
    [(first, when), (second, _)] = split_mbox_dated(data)
    assert when == arrived
    assert read_status(first) == (PLAIN, frozenset({SEEN, FLAGGED}))
    assert read_status(second) == (PLAIN, frozenset())
    assert mbox_entry(PLAIN).count(b"Status") == 1  # a pipe: the message as it is
