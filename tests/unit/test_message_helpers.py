"""The protocol-neutral helpers of core/message/ (charset, headers, dates, ids, subjects),
and that every reader of a message uses them alike."""

from __future__ import annotations

from datetime import UTC, datetime

from kittiwake.core.compose.reply import thread_references
from kittiwake.core.imap.decode import references_from_fetch
from kittiwake.core.imap.parser import Fetch
from kittiwake.core.local.summary import summary_from_bytes
from kittiwake.core.message.charset import from_8bit, unescape
from kittiwake.core.message.dates import parse_date, sort_key
from kittiwake.core.message.headers import addresses, decode_words, header_text, raw_text
from kittiwake.core.message.ids import (
    ascii_domain,
    first_msgid,
    make_message_id,
    msgids,
    normalize_msgid,
)
from kittiwake.core.message.mime import parse_message
from kittiwake.core.models import Address


def escaped(raw: bytes) -> str:
    """Header text as ``email`` leaves raw 8-bit bytes: surrogate escapes."""
    return raw.decode("utf-8", "surrogateescape")


def test_raw_8bit_header_text_reads_as_utf8_else_windows_1252() -> None:
    assert from_8bit(escaped("Café".encode())) == "Café"
    assert from_8bit(escaped(b"\x93quoted\x94")) == "\u201cquoted\u201d"
    assert from_8bit("plain") == "plain"


def test_outgoing_text_keeps_utf8_and_marks_other_bytes_as_unknown() -> None:
    assert unescape(escaped("Café".encode())) == "Café"
    assert unescape(escaped(b"caf\xe9")) == "caf\ufffd"
    assert unescape("plain") == "plain"


def test_a_header_reads_the_same_from_any_source() -> None:
    folded = "=?utf-8?q?Caf=C3=A9?=\r\n =?utf-8?q?_au_lait?="
    assert header_text(folded) == "Café au lait"  # a header block's raw value
    assert decode_words(raw_text(folded.encode())) == "Café au lait"  # an ENVELOPE string
    assert raw_text(b"caf\xe9\r\n\tcr\xe8me") == "caf\xe9\tcr\xe8me"
    assert raw_text(None) == "" and raw_text(7) == "7"


def test_addresses_are_decoded_and_unfolded() -> None:
    raw = '"=?utf-8?q?D=C3=BCrst?=" <d@example.org>,\r\n b@example.org'
    assert addresses(raw) == (Address("Dürst", "d@example.org"), Address("", "b@example.org"))
    assert addresses(None) == ()


def test_the_list_sorts_by_the_date_header_unless_it_is_over_a_day_after_arrival() -> None:
    arrived = 1_700_000_000.0
    assert sort_key(arrived - 60, arrived) == arrived - 60
    assert sort_key(arrived + 86400, arrived) == arrived + 86400
    assert sort_key(arrived + 86401, arrived) == arrived  # spam dated in the future
    assert sort_key(None, arrived) == arrived and sort_key(5.0, None) == 5.0
    assert sort_key(None, None) == 0.0


def test_the_reader_reads_a_date_as_the_list_does() -> None:
    raw = b"Date: Tue, 28 Nov 2023 06:43:05 -0000\r\nSubject: x\r\n\r\nbody\r\n"
    when = datetime(2023, 11, 28, 6, 43, 5, tzinfo=UTC)  # no zone: UTC (a naive one != this)
    assert parse_message(raw).date == parse_date(b"Tue, 28 Nov 2023 06:43:05 -0000") == when
    assert parse_date(b"not a date") is None


def test_one_message_id_rule() -> None:
    assert normalize_msgid("<a@b>") == "<a@b>"
    assert normalize_msgid(" <a @b> (comment)") == "<a@b>"  # a folded id: blanks dropped
    assert normalize_msgid("x@y") == "<x@y>"  # bare, from a broken mailer
    assert normalize_msgid("x <y") is None
    assert normalize_msgid("<>") is None and normalize_msgid("") is None
    assert normalize_msgid(None) is None
    assert normalize_msgid("<" + "a" * 898 + ">") == "<" + "a" * 898 + ">"
    assert normalize_msgid("<" + "a" * 899 + ">") is None  # too long for a header line


def test_references_in_order_without_duplicates() -> None:
    assert msgids("<a@x> <b\r\n @x>\r\n\t<a@x> junk <> <c@x>") == ("<a@x>", "<b@x>", "<c@x>")
    assert msgids("") == ()


def test_a_message_id_field_without_an_id_is_kept_as_written() -> None:
    assert first_msgid("<m1@x> <m2@x>") == "<m1@x>"
    assert first_msgid("<<<>>>@@") == "<<<>>>@@"
    assert first_msgid(" \r\n ") is None and first_msgid(None) is None


def test_new_message_ids_are_unique_and_ascii() -> None:
    one, two = make_message_id("exämple.org"), make_message_id("")
    assert one.endswith("@xn--exmple-cua.org>") and two.endswith("@kittiwake.invalid>")
    assert one != make_message_id("exämple.org") and normalize_msgid(one) == one
    assert ascii_domain("x.org") == "x.org" and ascii_domain("a..ü") is None


def test_imap_a_local_file_the_reader_and_a_reply_read_ids_alike() -> None:
    refs = b"References: <r1@x>\r\n <r 2@x> <r1@x>\r\n"
    raw = b"From: a@x\r\nMessage-ID: <own@x>\r\n" + refs + b"\r\nbody\r\n"
    want = ("<r1@x>", "<r2@x>")
    assert references_from_fetch(Fetch(1, {"BODY[HEADER.FIELDS (REFERENCES)]": refs})) == want
    assert summary_from_bytes(1, raw, frozenset(), None).references == want
    parsed = parse_message(raw)
    assert parsed.message_id == "<own@x>"
    assert thread_references(parsed) == (*want, "<own@x>")
