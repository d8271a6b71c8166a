"""Dates of mail as aware datetimes (so any two compare), and the one date a message list
sorts by, whichever protocol the message came by."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

from kittiwake.core.message.headers import raw_text
from kittiwake.core.models import MessageSummary

__all__ = ["MONTHS", "parse_date", "sort_date", "sort_key", "tz_for_offset"]

_TZ_CACHE: dict[int, timezone] = {}


def tz_for_offset(minutes: int) -> timezone:
    """A (cached) fixed-offset timezone."""
    tz = _TZ_CACHE.get(minutes)
    if tz is None:
        tz = UTC if minutes == 0 else timezone(timedelta(minutes=minutes))
        if len(_TZ_CACHE) < 512:
            _TZ_CACHE[minutes] = tz
    return tz


#: Month names as RFC 5322 Date and IMAP INTERNALDATE write them, lower-cased.
MONTHS = {
    m: i
    for i, m in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1
    )
}
_DATE_FAST = re.compile(
    r"\s*(?:[A-Za-z]{3},\s*)?(\d{1,2})\s+([A-Za-z]{3})\s+(\d{4})\s+"
    r"(\d{1,2}):(\d{2})(?::(\d{2}))?\s+([+-])(\d{2})(\d{2})(?:\s|\Z)"
)


def parse_date(v: object) -> datetime | None:
    """An RFC 5322 date as an aware datetime (UTC if the zone is unknown); None if invalid."""
    s = raw_text(v)
    if not s:
        return None
    m = _DATE_FAST.match(s)
    if m is not None:
        day, mon, year, hh, mm, ss, sign, tzh, tzm = m.groups()
        month = MONTHS.get(mon.lower())
        if month is not None:
            offset = int(tzh) * 60 + int(tzm)
            if offset < 24 * 60:
                try:
                    return datetime(
                        int(year),
                        month,
                        int(day),
                        int(hh),
                        int(mm),
                        int(ss or 0),
                        tzinfo=tz_for_offset(-offset if sign == "-" else offset),
                    )
                except ValueError:
                    pass
    if len(s) > 200:
        return None
    from email.utils import parsedate_to_datetime  # the rare shapes: loaded when first met

    try:
        d = parsedate_to_datetime(s)
    except Exception:  # the stdlib raises TypeError/ValueError/IndexError/... on junk
        return None
    if d.tzinfo is None:
        d = d.replace(tzinfo=UTC)
    return d


def sort_key(sent: float | None, arrived: float | None) -> float:
    """The list's sort date from the Date header and the arrival time (epoch seconds): the
    Date header (what the list shows), unless it is more than a day after arrival (spam
    floats itself to the top that way): then the arrival time."""
    if sent is not None and (arrived is None or sent <= arrived + 86400):
        return sent
    return arrived if arrived is not None else 0.0


def sort_date(s: MessageSummary) -> float:
    """``sort_key`` of a summary: what the cache stores and search hits sort by."""
    arrived = s.internal_date.timestamp() if s.internal_date is not None else None
    sent = s.envelope.date.timestamp() if s.envelope.date is not None else None
    return sort_key(sent, arrived)
