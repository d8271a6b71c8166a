"""Bytes of unknown or lying charset as text, never raising: mail's labels are often wrong
(ASCII that is UTF-8, GB2312 that is GB18030, codec names that are not text encodings)."""

from __future__ import annotations

import re

__all__ = ["decode_bytes", "from_8bit", "unescape"]

_CHARSET_NAME = re.compile(r"[A-Za-z0-9_.:+\-]{1,40}")
_CHARSET_ALIASES = {
    # Supersets that real mail needs (as browsers and other MUAs do).
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "euc-cn": "gb18030",
    "ks_c_5601-1987": "cp949",
    "ks_c_5601": "cp949",
    "euc-kr": "cp949",
    "iso-8859-8-i": "iso-8859-8",
    "iso-8859-6-i": "iso-8859-6",
    "windows-874": "cp874",
    "tis-620": "cp874",
    "shift_jis": "cp932",
    "sjis": "cp932",
    "x-sjis": "cp932",
    "big5": "big5hkscs",
    "utf8": "utf-8",
}
# Labels that promise nothing: guess (UTF-8, then Windows-1252, then Latin-1). Mail labelled
# ASCII or Latin-1 that is valid UTF-8 is UTF-8 in practice.
_GUESS = frozenset(
    {
        "",
        "utf-8",
        "us-ascii",
        "ascii",
        "iso-8859-1",
        "iso8859-1",
        "latin1",
        "latin-1",
        "l1",
        "windows-1252",
        "cp1252",
        "x-unknown",
        "unknown",
        "unknown-8bit",
        "x-user-defined",
        "default",
    }
)
# Python codecs that are not text encodings (they decode bytes to bytes or raise oddly).
_NOT_TEXT = re.compile(
    r"(?i)(?:base[_-]?64|base64_codec|bz2|hex|quopri|rot[_-]?13|uu|zlib|idna|punycode"
    r"|unicode[_-]?escape|raw[_-]?unicode[_-]?escape|undefined|mbcs|oem)(?:[_-]codec)?"
)


def _guess(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return raw.decode("cp1252")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def decode_bytes(raw: bytes, charset: str | None = None) -> str:
    """``raw`` as text. Never raises.

    A real charset label is tried first (with aliases for the usual supersets), then UTF-8,
    then the label with replacement characters. No label, or an ASCII/Latin-1/unknown label:
    UTF-8, else Windows-1252, else Latin-1.
    """
    cs = charset.strip().lower() if charset else ""
    cs = _CHARSET_ALIASES.get(cs, cs)
    if cs in _GUESS or _CHARSET_NAME.fullmatch(cs) is None or _NOT_TEXT.fullmatch(cs):
        return _guess(raw)
    try:
        return raw.decode(cs)
    except (LookupError, ValueError, TypeError):
        pass
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return raw.decode(cs, "replace")
    except (LookupError, ValueError, TypeError):
        return _guess(raw)


_SURROGATE = re.compile("[\udc80-\udcff]")


def from_8bit(text: str) -> str:
    """Undo the surrogate escapes ``email`` leaves for raw 8-bit header bytes (mailers that
    skip RFC 2047): UTF-8 when they are UTF-8, else Windows-1252, the usual culprit."""
    if not _SURROGATE.search(text):
        return text
    data = text.encode("utf-8", "surrogateescape")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", "replace")


def unescape(text: str) -> str:
    """Like ``from_8bit``, but bytes that are not UTF-8 become U+FFFD: for text going out,
    where a guessed character would be sent as if the user had written it."""
    if not _SURROGATE.search(text):
        return text
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
