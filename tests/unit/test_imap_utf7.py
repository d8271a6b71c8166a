"""Modified UTF-7 mailbox names (RFC 3501 §5.1.3)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kittiwake.core.message import utf7

VECTORS = [
    ("INBOX", "INBOX"),
    ("", ""),
    ("&", "&-"),
    ("Tom & Jerry", "Tom &- Jerry"),
    ("Entwürfe", "Entw&APw-rfe"),
    ("Gelöschte Elemente", "Gel&APY-schte Elemente"),
    ("日本語", "&ZeVnLIqe-"),
    ("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),  # RFC 3501's example
    ("Отправленные", "&BB4EQgQ,BEAEMAQyBDsENQQ9BD0ESwQ1-"),
    ("Корзина", "&BBoEPgRABDcEOAQ9BDA-"),
    ("📧 Mail", "&2D3c5w- Mail"),  # outside the BMP: a surrogate pair in UTF-16
    ("a\tb", "a&AAk-b"),  # controls are shifted too
]


@pytest.mark.parametrize(("text", "wire"), VECTORS)
def test_known_vectors(text: str, wire: str) -> None:
    assert utf7.encode(text) == wire
    assert utf7.decode(wire) == text
    assert utf7.decode_strict(wire) == text
    assert utf7.decode(wire.encode("ascii")) == text


@pytest.mark.parametrize(
    "bad",
    [
        "&",  # no terminating "-"
        "&ZeVnLIqe",  # ditto
        "&Jjo!-",  # "!" is not modified base64
        "a&b/c-",  # "/" is plain base64, not the modified alphabet
        "&A-",  # one base64 character cannot hold a byte
        "&AA-",  # one byte: an odd number of UTF-16 bytes
        "&2D0-",  # a lone high surrogate
        "Entwürfe",  # raw non-ASCII is not modified UTF-7
        "tab\there",
    ],
)
def test_malformed_names_fall_back_to_the_raw_name(bad: str) -> None:
    assert utf7.decode(bad) == bad
    with pytest.raises(ValueError):
        utf7.decode_strict(bad)


def test_raw_utf8_and_latin1_bytes_are_decoded_not_utf7() -> None:
    assert utf7.decode("Entwürfe".encode()) == "Entwürfe"
    assert utf7.decode("Entwürfe".encode("latin-1")) == "Entwürfe"
    # Raw UTF-8 with an "&" in it is not UTF-7 decoded.
    assert utf7.decode("Ä&B".encode()) == "Ä&B"


def test_encoding_a_lone_surrogate_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        utf7.encode("bad\ud800name")


@given(st.text())
def test_round_trip(text: str) -> None:
    wire = utf7.encode(text)
    assert wire.isascii()
    assert all(0x20 <= ord(c) <= 0x7E for c in wire)
    assert utf7.decode(wire) == text
    assert utf7.decode_strict(wire) == text


@given(st.text(alphabet=st.characters(codec="ascii")))
def test_decode_never_raises_on_text(text: str) -> None:
    assert isinstance(utf7.decode(text), str)


@given(st.binary())
def test_decode_never_raises_on_bytes(raw: bytes) -> None:
    assert isinstance(utf7.decode(raw), str)
