"""Header values as text, never raising: RFC 2047 encoded words, folding, raw 8-bit bytes.
IMAP's ENVELOPE strings, a local file's headers and the reader's all come through here, so a
header reads the same whichever way the message came."""

from __future__ import annotations

import binascii
import re

from kittiwake.core.message.charset import decode_bytes, from_8bit, unescape
from kittiwake.core.models import Address

__all__ = ["FOLD", "addresses", "decode_words", "header_text", "one_line", "raw_text"]

#: A line break and the blanks after it (a folded line): ``FOLD.sub(" ", value)`` unfolds.
FOLD = re.compile(r"\r?\n[ \t]*")
_ENCODED_WORD = re.compile(r"=\?([^?\s*]{1,40})(?:\*[^?\s]{0,20})?\?([bBqQ])\?([^?\s]*+)\?=")
_BLANK = re.compile(r"[ \t\r\n]*")
_B64_CHARS = re.compile(r"[A-Za-z0-9+/]*")


def _word_bytes(enc: str, payload: str) -> bytes | None:
    if enc in "bB":
        data = payload.rstrip("=")
        if _B64_CHARS.fullmatch(data) is None or len(data) % 4 == 1:
            return None
        try:
            return binascii.a2b_base64(data + "=" * (-len(data) % 4))
        except binascii.Error:
            return None
    return binascii.a2b_qp(payload.encode("utf-8"), header=True)


def decode_words(text: str) -> str:
    """Decode RFC 2047 encoded words in ``text``; undecodable words are left as they are.

    Blanks between adjacent encoded words are dropped (RFC 2047 §6.2); adjacent words in the
    same charset are joined as bytes before decoding (encoders split multi-byte characters).
    """
    if "=?" not in text:
        return text
    out: list[str] = []
    pending = bytearray()
    pending_cs: str | None = None
    pos = 0
    after_word = False

    def flush() -> None:
        nonlocal pending_cs
        if pending_cs is not None:
            out.append(decode_bytes(bytes(pending), pending_cs))
            pending.clear()
            pending_cs = None

    for m in _ENCODED_WORD.finditer(text):
        gap = text[pos : m.start()]
        raw = _word_bytes(m.group(2), m.group(3))
        if after_word and raw is not None and _BLANK.fullmatch(gap):
            gap = ""
        if raw is None:  # broken: keep the word as written
            flush()
            out.append(gap + m.group())
            after_word = False
            pos = m.end()
            continue
        charset = m.group(1).lower()
        if gap or charset != pending_cs:
            flush()
            out.append(gap)
        pending_cs = charset
        pending += raw
        after_word = True
        pos = m.end()
    flush()
    out.append(text[pos:])
    return "".join(out)


# RFC 5322 unfolding: the line break goes, the blank after it stays.
_UNFOLD = re.compile(r"\r?\n(?=[ \t])")


def raw_text(v: object) -> str:
    """A string value as text (raw bytes guessed: UTF-8, Windows-1252, Latin-1), unfolded
    (CRLF before a blank removed, other CR/LF made blanks); no encoded-word decoding."""
    if isinstance(v, bytes):
        s = decode_bytes(v)
    elif isinstance(v, str):
        s = v
    elif isinstance(v, int):
        return str(v)
    else:
        return ""
    if "\r" in s or "\n" in s:
        s = _UNFOLD.sub("", s).replace("\r", " ").replace("\n", " ")
    return s


def header_text(raw: str) -> str:
    """A raw header value as text: unfolded, encoded words decoded, never raising."""
    text = from_8bit(FOLD.sub(" ", raw).strip())
    try:
        return decode_words(text)
    except Exception:
        return text


def addresses(raw: str | None) -> tuple[Address, ...]:
    if not raw:
        return ()
    from email.utils import getaddresses  # raw headers: not what the first screen reads

    raw = from_8bit(raw)
    try:
        pairs = getaddresses([FOLD.sub(" ", raw)])
    except Exception:
        return (Address(header_text(raw), ""),)
    return tuple(Address(header_text(name), addr) for name, addr in pairs if name or addr)


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def one_line(text: str) -> str:
    """Header text on one line: unfolded, other line breaks and tabs become spaces, other
    controls go, raw 8-bit bytes (surrogate-escaped by ``email``) read as UTF-8."""
    text = _UNFOLD.sub("", unescape(text))
    return _CONTROL.sub("", re.sub(r"[\r\n\t]+", " ", text))
