"""Response codes in plain words (``core/imap/codes.py``), and the IMAP timing defaults."""

from __future__ import annotations

import pytest

from kittiwake.core.imap.codes import (
    NOTICE_CODES,
    OWN_CONNECTIONS,
    limit_sentence,
    passing,
    plain_words,
    server_limit,
    temporary,
)


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


@pytest.mark.parametrize(
    ("code", "text", "limit"),
    [
        ("ALERT", "Too many simultaneous connections. (Failure)", "connections"),
        (None, "Maximum number of connections from user+IP exceeded", "connections"),
        ("ALERT", "Account exceeded command or bandwidth limits. (Failure)", "bandwidth"),
    ],
)
def test_gmails_limits_are_told_in_plain_words_and_are_passing(
    code: str | None, text: str, limit: str
) -> None:
    """Gmail names its limits with ``[ALERT]``, which says nothing of them: the words tell."""
    assert server_limit(text) == limit
    assert temporary(code, text)  # not "wrong password"
    if code is not None:
        sentence = plain_words(code, text, "imap.gmail.com")
        assert sentence == limit_sentence(limit, "imap.gmail.com")  # type: ignore[arg-type]
        assert sentence is not None and "says:" not in sentence
        assert server_limit(sentence) == limit  # the supervisor reads its own sentence back
    assert passing(code, text) == (limit == "bandwidth")


def test_the_connection_sentence_names_the_cause_and_kittiwakes_own_number() -> None:
    sentence = limit_sentence("connections", "imap.gmail.com")
    assert sentence.startswith("imap.gmail.com has too many connections open to this account")
    assert sentence.count(". ") == 0 and sentence.endswith(".")  # one sentence
    assert "other devices or programs" in sentence and f"at most {OWN_CONNECTIONS}" in sentence
    assert OWN_CONNECTIONS <= 3


def test_other_refusals_are_no_limits_and_not_passing() -> None:
    assert server_limit("Invalid credentials (Failure)") is None
    assert not temporary("AUTHENTICATIONFAILED", "Invalid credentials (Failure)")
    assert not passing("OVERQUOTA", "Quota exceeded") and passing("UNAVAILABLE", "Backend down")
