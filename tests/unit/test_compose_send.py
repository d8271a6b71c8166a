"""``kittiwake send``'s preparation of a message from a script, account choice, and mailto:."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kittiwake.core.compose.draft import ComposeError, DraftParseError
from kittiwake.core.compose.mailto import parse_mailto
from kittiwake.core.config import Config, config_from_dict
from kittiwake.core.errors import ConfigError
from kittiwake.core.message.mime import parse_message
from kittiwake.core.models import Address
from kittiwake.core.smtp.send import SendResult, choose_account, prepare_message


def make_config() -> Config:
    smtp = {"host": "smtp.example.org"}
    return config_from_dict(
        {
            "accounts": {
                "pop": {"email": "pop@home.example", "pop3": {"host": "pop.example"}},
                "work": {
                    "email": "me@work.example",
                    "name": "Mé",
                    "imap": {"host": "imap.example"},
                    "smtp": smtp,
                },
                "home": {
                    "email": "me@home.example",
                    "addresses": ["old@home.example"],
                    "imap": {"host": "imap.example"},
                    "smtp": smtp,
                },
            }
        }
    )


CONFIG = make_config()
NOW = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)


def test_account_is_chosen_by_from_else_the_first_that_can_send() -> None:
    assert choose_account(CONFIG, None, b"From: Me <OLD@home.example>\n\nx").key == "home"
    assert choose_account(CONFIG, None, b"From: someone@else.example\n\nx").key == "work"
    assert choose_account(CONFIG, None, b"Subject: no from\n\nx").key == "work"
    assert choose_account(CONFIG, "home", b"From: me@work.example\n\nx").key == "home"
    with pytest.raises(ConfigError, match="no account named 'nope'"):
        choose_account(CONFIG, "nope", b"")
    with pytest.raises(ConfigError, match="account pop cannot send"):
        choose_account(CONFIG, "pop", b"")


def test_date_message_id_and_from_are_added_bcc_removed() -> None:
    raw = (
        b"From 0123abcd Mon Sep 17 00:00:00 2001\n"
        b"To: Bob <bob@example.net>,\n  carol@example.net\n"
        b"Cc: BOB@example.net\n"
        b"Bcc: hidden@example.net\n"
        b"Subject: [PATCH] fix\n"
        b"\n"
        b"body\n.\n"
    )
    built = prepare_message(raw, CONFIG.accounts["work"], now=NOW)
    assert built.envelope_from == "me@work.example"
    assert built.envelope_rcpts == ("bob@example.net", "carol@example.net", "hidden@example.net")
    assert not built.raw.startswith(b"From 0123")
    assert b"\r\nTo: Bob <bob@example.net>,\r\n  carol@example.net\r\n" in b"\r\n" + built.raw
    assert b"Bcc" not in built.raw and b"Bcc: hidden@example.net\r\n" in built.sent_copy
    assert built.raw.endswith(b"\r\n\r\nbody\r\n.\r\n")
    parsed = parse_message(built.raw)
    assert parsed.date == NOW and parsed.message_id == built.message_id
    assert built.message_id.endswith("@work.example>")
    assert parsed.from_ == (Address("Mé", "me@work.example"),)


def test_existing_headers_are_kept_byte_for_byte() -> None:
    raw = (
        b"From: Other Person <me@home.example>\r\n"
        b"To: =?utf-8?q?B=C3=B6b?= <bob@example.net>\r\n"
        b"Date: Mon, 3 Mar 2025 10:00:00 +0000\r\n"
        b"Message-ID: <given@x.example>\r\n"
        b"Subject: hi\r\n\r\nb\xc3\xb6dy\r\n"
    )
    built = prepare_message(raw, CONFIG.accounts["home"])
    assert built.raw == raw and built.sent_copy == raw
    assert built.message_id == "<given@x.example>"
    assert built.envelope_from == "me@home.example" and built.eightbit


def test_a_from_that_is_not_mine_is_kept_but_the_envelope_is_mine() -> None:
    raw = b"From: Author <author@example.net>\nTo: list@example.net\n\npatch\n"
    built = prepare_message(raw, CONFIG.accounts["work"])
    assert built.envelope_from == "me@work.example"
    assert b"From: Author <author@example.net>" in built.raw


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b"Subject: nobody\n\nx\n", "no recipient"),
        (b"\nbody only\n", "no headers"),
        (b"To: a@b.example\nthis is not a header\n\nx", "not a header"),
        (b"To: bob\n\nx", "'bob' in To, Cc or Bcc is not an email address"),
    ],
)
def test_bad_input_is_one_clear_sentence(raw: bytes, error: str) -> None:
    with pytest.raises(ComposeError, match=error):
        prepare_message(raw, CONFIG.accounts["work"])


def test_non_ascii_local_part_needs_smtputf8() -> None:
    built = prepare_message(b"To: j\xc3\xb6rg@example.net\n\nx\n", CONFIG.accounts["work"])
    assert built.smtputf8 and built.envelope_rcpts == ("jörg@example.net",)
    idn = prepare_message(b"To: joerg@b\xc3\xbccher.example\n\nx\n", CONFIG.accounts["work"])
    assert not idn.smtputf8 and idn.envelope_rcpts == ("joerg@xn--bcher-kva.example",)


def test_send_result_exit_codes() -> None:
    assert SendResult("accepted", "a", "<m>", "").exit_code == 0
    assert SendResult("queued", "a", "<m>", "").exit_code == 0
    assert SendResult("refused", "a", "<m>", "").exit_code == 1


# -- mailto: -----------------------------------------------------------------------------------


def test_mailto_fields_and_percent_decoding() -> None:
    draft = parse_mailto(
        "mailto:alice@example.org,bob@example.org?cc=Carol%20%3Ccarol@example.org%3E"
        "&bcc=dave@example.org&subject=Gr%C3%BC%C3%9Fe%20a+b&body=line%201%0D%0Aline%202"
        "&to=eve@example.org&In-Reply-To=%3Cp@x.example%3E"
    )
    assert draft.to == (
        Address("", "alice@example.org"),
        Address("", "bob@example.org"),
        Address("", "eve@example.org"),
    )
    assert draft.cc == (Address("Carol", "carol@example.org"),)
    assert draft.bcc == (Address("", "dave@example.org"),)
    assert draft.subject == "Grüße a+b"  # '+' is a plus in mailto:, not a space
    assert draft.body == "line 1\nline 2\n"  # ends with a newline, as a text file does
    assert draft.in_reply_to == "<p@x.example>" and draft.references == ("<p@x.example>",)
    assert draft.from_.addr == ""


def test_mailto_ignores_dangerous_fields() -> None:
    draft = parse_mailto(
        "MAILTO:bob@example.org?from=ceo@example.org&attach=/etc/passwd&attachment=~/.ssh/id_rsa"
        "&X-Mailer=evil&subject=a%0D%0ABcc:%20spy@example.org&body=ok"
    )
    assert draft.to == (Address("", "bob@example.org"),)
    assert draft.bcc == () and draft.attachments == () and draft.attached == ()
    assert draft.subject == "a Bcc: spy@example.org"  # one line: no header injection
    assert draft.body == "ok\n"


def test_mailto_errors() -> None:
    with pytest.raises(ComposeError, match="not a mailto: URL"):
        parse_mailto("http://example.org")
    with pytest.raises(DraftParseError, match="'not-an-address' is not an email address"):
        parse_mailto("mailto:not-an-address")
    assert parse_mailto("mailto:").to == ()
    assert parse_mailto("mailto:?subject=x#frag").subject == "x"


@given(st.text(max_size=200))
def test_mailto_never_crashes_unexpectedly(text: str) -> None:
    try:
        draft = parse_mailto("mailto:" + text)
    except ComposeError:
        return
    assert "\n" not in draft.subject and "\r" not in draft.subject
