"""Response codes in plain words (``core/imap/codes.py``), and the IMAP timing defaults."""

from __future__ import annotations

import pytest

from kittiwake.core.imap.codes import NOTICE_CODES, plain_words


@pytest.mark.parametrize(
    ("code", "text", "expected"),
    [
        ("ALERT", "Maintenance at 22:00.", "imap.example says: Maintenance at 22:00"),
        ("alert", "", "imap.example says: (no text)"),
        (
            "UNAVAILABLE",
            "Backend down",
            "imap.example is temporarily unavailable; Kittiwake will try again later "
            '("Backend down").',
        ),
        (
            "LIMIT",
            "",
            "imap.example refused because a limit was reached (too many "
            "connections or too much at once).",
        ),
        (
            "OVERQUOTA",
            "Quota  exceeded",
            'The mailbox on imap.example is full (over its quota) ("Quota exceeded").',
        ),
        (
            "AUTHENTICATIONFAILED",
            "Authentication failed.",
            'imap.example rejected the user name or password ("Authentication failed").',
        ),
    ],
)
def test_codes_in_plain_words(code: str, text: str, expected: str) -> None:
    assert plain_words(code, text, "imap.example") == expected


@pytest.mark.parametrize("code", [None, "TRYCREATE", "UIDNEXT", "SERVERBUG"])
def test_other_codes_have_no_sentence(code: str | None) -> None:
    assert plain_words(code, "whatever", "imap.example") is None


def test_the_five_codes_of_the_issue_are_covered() -> None:
    assert {"ALERT", "UNAVAILABLE", "LIMIT", "OVERQUOTA", "AUTHENTICATIONFAILED"} <= NOTICE_CODES


def test_idle_is_renewed_within_ten_minutes_and_a_dead_link_noticed_within_six() -> None:
    """Exchange cuts an IDLE after 30 minutes and NAT boxes drop quiet links sooner: the
    defaults people run with must stay well inside both."""
    from kittiwake.core.imap.account import IDLE_RENEW, Tuning

    tuning = Tuning()
    assert tuning.idle_renew == IDLE_RENEW <= 10 * 60
    assert tuning.idle_renew + tuning.dead_after <= 6 * 60
    assert tuning.backoff_max >= 60  # a refused login is not retried in a tight loop
