"""Message-IDs by one rule: threading, replies, the local index and IMAP's References all
read ids the same way, so an id written by one is found by the others."""

from __future__ import annotations

import re
import secrets
import time

from kittiwake.core.message.headers import FOLD

__all__ = [
    "MAX_MSGID",
    "ascii_domain",
    "first_msgid",
    "make_message_id",
    "msgids",
    "normalize_msgid",
]

#: A longer id is not kept: it could not be written in a header line (998 octets at most).
MAX_MSGID = 900

_MSGID = re.compile(r"<([^<>]*)>")
_WS = re.compile(r"\s+")


def msgids(text: str) -> tuple[str, ...]:
    """Every ``<id>`` of a References-like value, in order, without duplicates; blanks inside
    an id are dropped (mailers fold long ids)."""
    out: dict[str, None] = {}
    for m in _MSGID.finditer(text):
        ident = "".join(m.group(1).split())
        if ident:
            out.setdefault(f"<{ident}>")
    return tuple(out)


def normalize_msgid(value: str | None) -> str | None:
    """The ``<id>`` of a Message-ID or In-Reply-To value: the first one, blanks inside
    dropped; a bare id (broken mailers) is bracketed; None when there is none to keep."""
    if not value:
        return None
    if value[0] == "<" and value[-1] == ">" and value.count("<") == 1 and " " not in value:
        ident = value[1:-1]  # the usual case, kept fast for threading
    else:
        m = _MSGID.search(value)
        ident = _WS.sub("", m.group(1) if m is not None else value)
        if m is None and (">" in ident or "<" in ident):
            return None
    if not ident or len(ident) + 2 > MAX_MSGID:
        return None
    return f"<{ident}>"


def first_msgid(raw: str | None) -> str | None:
    """A Message-ID field as a summary keeps it: its first ``<id>``, else its text as written
    (what a reader shows; ``normalize_msgid`` decides what it matches)."""
    if raw is None:
        return None
    found = msgids(raw)
    if found:
        return found[0]
    return FOLD.sub("", raw).strip() or None


def make_message_id(domain: str) -> str:
    """A new ``<id@domain>``, unique by time and randomness."""
    stamp = format(int(time.time() * 1000), "x")
    return f"<{stamp}.{secrets.token_hex(10)}@{ascii_domain(domain) or 'kittiwake.invalid'}>"


def ascii_domain(domain: str) -> str | None:
    """``domain`` as IDNA A-labels (what a header or SMTP takes); None if it has none."""
    if domain.isascii():
        return domain
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:
        return None
