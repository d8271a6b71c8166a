"""The protocol-neutral helpers of core/message/ (charset, headers, dates, ids, subjects)."""

from __future__ import annotations

from kittiwake.core.message.charset import from_8bit, unescape


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
