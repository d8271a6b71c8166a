"""Modified UTF-7 for IMAP mailbox names (RFC 3501 §5.1.3, RFC 9051 §5.1.3).

Printable US-ASCII other than ``&`` stands for itself; ``&`` is written ``&-``; every other
run of characters is ``&`` + base64 of its UTF-16BE form (``,`` instead of ``/``, no padding)
+ ``-``.

``decode`` never raises: a name that is not valid modified UTF-7 (a server that sends raw
UTF-8, a broken encoder) comes back as it was, so the folder still shows and can still be
selected by its raw name. ``decode_strict`` raises ``ValueError`` instead.
"""

from __future__ import annotations

import binascii
import re

__all__ = ["decode", "decode_strict", "encode"]

# Runs that must be shifted: anything outside printable ASCII, and "&" on its own.
_SHIFT_RUN = re.compile(r"[^\x20-\x7e]+|&")
# A shifted sequence as it may appear in a name; anything else with "&" is malformed.
_SHIFTED = re.compile(r"&([A-Za-z0-9+,]*)-")
_PLAIN_OK = re.compile(r"[\x20-\x25\x27-\x7e]*")  # printable ASCII without "&"


def _encode_run(match: re.Match[str]) -> str:
    run = match.group()
    if run == "&":
        return "&-"
    # UnicodeEncodeError (a ValueError) for lone surrogates: they have no UTF-16 form.
    raw = run.encode("utf-16-be")
    b64 = binascii.b2a_base64(raw, newline=False).rstrip(b"=")
    return "&" + b64.decode("ascii").replace("/", ",") + "-"


def encode(name: str) -> str:
    """``name`` in modified UTF-7. Raises ValueError for a string with lone surrogates."""
    return _SHIFT_RUN.sub(_encode_run, name)


def _decode_run(b64: str) -> str:
    if not b64:
        return "&"
    if len(b64) % 4 == 1:
        raise ValueError("truncated modified base64")
    data = (b64.replace(",", "/") + "=" * (-len(b64) % 4)).encode("ascii")
    try:
        raw = binascii.a2b_base64(data, strict_mode=True)
    except binascii.Error as exc:
        raise ValueError(f"bad modified base64: {exc}") from None
    if len(raw) % 2:
        raise ValueError("odd number of UTF-16 bytes")
    text = raw.decode("utf-16-be")  # strict: lone surrogates raise UnicodeDecodeError
    return text


def decode_strict(name: str) -> str:
    """Decode a modified UTF-7 name; ValueError if it is not well formed."""
    if "&" not in name:
        if _PLAIN_OK.fullmatch(name) is None:
            raise ValueError("characters outside printable ASCII in a modified UTF-7 name")
        return name
    out: list[str] = []
    pos = 0
    for m in _SHIFTED.finditer(name):
        plain = name[pos : m.start()]
        if _PLAIN_OK.fullmatch(plain) is None:
            raise ValueError("malformed modified UTF-7")
        out.append(plain)
        out.append(_decode_run(m.group(1)))
        pos = m.end()
    tail = name[pos:]
    if _PLAIN_OK.fullmatch(tail) is None:
        raise ValueError("malformed modified UTF-7")
    out.append(tail)
    return "".join(out)


def decode(name: str | bytes) -> str:
    """Decode a mailbox name; a name that is not valid modified UTF-7 is returned as is.

    Bytes that are not ASCII are taken as UTF-8 (servers with UTF8=ACCEPT, or broken ones),
    falling back to Latin-1, and are not UTF-7 decoded.
    """
    if isinstance(name, bytes | bytearray):
        raw = bytes(name)
        if not raw.isascii():
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError:
                return raw.decode("latin-1")
        name = raw.decode("ascii")
    try:
        return decode_strict(name)
    except ValueError:
        return name
