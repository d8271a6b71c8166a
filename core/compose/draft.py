"""The draft model: ``Draft`` is what the user edits, and addresses as header text.

Everything here is pure (no network, no engine). In ``$EDITOR`` a draft is a headers block, a
blank line and the body (``Draft.to_text`` / ``Draft.from_text``, like mutt's
``edit_headers``). New messages, replies and forwards are made in ``reply.py``; a draft is
made into MIME in ``mime.py``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from email.utils import getaddresses
from pathlib import Path

from kittiwake.core.compose.addressbook import expand_aliases
from kittiwake.core.errors import KittiwakeError
from kittiwake.core.message.charset import unescape
from kittiwake.core.message.headers import one_line
from kittiwake.core.models import Address

MAX_LINE = 998
"""RFC 5322 2.1.1: a line is at most 998 octets, CRLF excluded."""
FOLD_AT = 78
MAX_REFERENCES = 20
"""References keeps the thread root and the newest ancestors, up to this many ids."""


NO_ADDRESS = Address("", "")


class ComposeError(KittiwakeError):
    """A draft cannot be made into a message as it stands (no recipient, bad address, ...)."""


class DraftParseError(ComposeError):
    """The text from the editor has a header block that cannot be read; ``line`` is 1-based."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.line = line


@dataclass(frozen=True)
class DataAttachment:
    """An attachment held in memory: a forwarded message, or a part of the original."""

    filename: str
    content_type: str
    data: bytes = field(repr=False)


@dataclass(frozen=True)
class Draft:
    """A message being composed. Addresses are decoded text; nothing here is encoded yet."""

    from_: Address = NO_ADDRESS
    """Empty: the account's own address (``build_mime`` fills it in)."""
    to: tuple[Address, ...] = ()
    cc: tuple[Address, ...] = ()
    bcc: tuple[Address, ...] = ()
    subject: str = ""
    body: str = ""
    attachments: tuple[Path, ...] = ()
    """Files to attach, read when the message is built."""
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    message_id: str | None = None
    """Kept when set (a draft that is resent keeps its identity); else made by build_mime."""
    reply_to: tuple[Address, ...] = ()
    attached: tuple[DataAttachment, ...] = ()
    """In-memory attachments (forwarded message, original attachments of a forward)."""
    sign: bool = False
    """Sign the message with the sender's key: PGP/MIME, or S/MIME for an S/MIME account."""
    encrypt: bool = False
    """Encrypt it to every recipient's key (certificate) and the sender's own."""

    @property
    def recipients(self) -> tuple[Address, ...]:
        return self.to + self.cc + self.bcc

    def to_text(self) -> str:
        """The editor form: headers, a blank line, the body."""
        lines = [
            f"From: {format_address(self.from_) if self.from_.addr else ''}",
            f"To: {format_addresses(self.to)}",
            f"Cc: {format_addresses(self.cc)}",
            f"Bcc: {format_addresses(self.bcc)}",
            f"Subject: {one_line(self.subject)}",
            f"Reply-To: {format_addresses(self.reply_to)}",
        ]
        lines += [f"Attach: {path}" for path in self.attachments]
        return "\n".join(lines) + "\n\n" + self.body

    @classmethod
    def from_text(
        cls,
        text: str,
        base: Draft | None = None,
        aliases: dict[str, tuple[str, ...]] | None = None,
    ) -> Draft:
        """Read the editor form back. Fields the text does not carry (threading ids, in-memory
        attachments) come from ``base``; ``aliases`` are expanded in To, Cc and Bcc. Unknown
        header names are errors: a typo in "To" must not silently drop recipients."""

        draft = base or cls()
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        head, sep, body = text.partition("\n\n")
        if not sep and not _HEADER_LINE.match(text):
            head, body = "", text  # no header block at all: everything is the body
        fields: list[tuple[str, str, int]] = []
        for number, line in enumerate(head.split("\n"), 1):
            if not line.strip() and not fields:
                continue
            if line[:1] in (" ", "\t") and fields:
                name, value, at = fields[-1]
                fields[-1] = (name, value + " " + line.strip(), at)
                continue
            match = _HEADER_LINE.match(line)
            if not match:
                raise DraftParseError(f"line {number}: {line[:40]!r} is not a header", number)
            fields.append((match.group(1), match.group(2).strip(), number))
        attachments: list[Path] = []
        for name, value, number in fields:
            key = name.lower()
            if key in ("to", "cc", "bcc") and aliases:
                value = expand_aliases(value, aliases)
            if key == "attach":
                if value:
                    attachments.append(Path(value).expanduser())
            elif key == "to":
                draft = replace(draft, to=parse_addresses(value, name, number))
            elif key == "cc":
                draft = replace(draft, cc=parse_addresses(value, name, number))
            elif key == "bcc":
                draft = replace(draft, bcc=parse_addresses(value, name, number))
            elif key == "reply-to":
                draft = replace(draft, reply_to=parse_addresses(value, name, number))
            elif key == "from":
                found = parse_addresses(value, name, number)
                if len(found) > 1:
                    raise DraftParseError(f"line {number}: From holds one address", number)
                draft = replace(draft, from_=found[0] if found else NO_ADDRESS)
            elif key == "subject":
                draft = replace(draft, subject=one_line(value))
            else:
                raise DraftParseError(
                    f"line {number}: unknown header {name!r} "
                    "(use From, To, Cc, Bcc, Subject, Reply-To or Attach)",
                    number,
                )
        return replace(draft, attachments=tuple(attachments), body=body)


_HEADER_LINE = re.compile(r"^([A-Za-z][A-Za-z0-9-]*):(.*)$")


# -- addresses as text ------------------------------------------------------------------------

_ATEXT_PHRASE = re.compile(
    r"^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+(?: [A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+)*$"
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _quote(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_address(address: Address) -> str:
    """``Name <addr>`` for the editor and for display; the name quoted where RFC 5322 needs it."""
    name = _CONTROL.sub(" ", address.name).strip()
    if not name:
        return address.addr
    phrase = name if _phrase_ok_unquoted(name) else _quote(name)
    return f"{phrase} <{address.addr}>"


def _phrase_ok_unquoted(name: str) -> bool:
    ascii_form = "".join("a" if not ch.isascii() and ch.isalnum() else ch for ch in name)
    return bool(_ATEXT_PHRASE.match(ascii_form)) and "=?" not in name


def format_addresses(items: Iterable[Address]) -> str:
    return ", ".join(format_address(a) for a in items)


def parse_addresses(text: str, header: str = "To", line: int = 0) -> tuple[Address, ...]:
    """Addresses typed by the user (``Name <a@b>, c@d``). Raises DraftParseError naming the
    header when one is not an address."""
    text = text.strip()
    if not text:
        return ()
    out: list[Address] = []
    for name, addr in getaddresses([text]):
        if not name and not addr:
            continue
        addr = addr.strip()
        if not is_address(addr):
            shown = addr or name
            where = f"line {line}: " if line else ""
            raise DraftParseError(f"{where}{header}: {shown!r} is not an email address", line)
        out.append(Address(name.strip(), addr))
    return tuple(out)


def is_address(addr: str) -> bool:
    local, at, domain = addr.rpartition("@")
    return bool(
        at
        and local
        and domain
        and "." not in (domain[0], domain[-1])
        and not re.search(r"[\s<>,;]", addr)
    )


def _merge(items: Iterable[Address]) -> tuple[Address, ...]:
    """Duplicates (same address, any case) merged, in first-seen order, keeping a name."""
    out: dict[str, Address] = {}
    for a in items:
        if not a.addr:
            continue
        a = Address(one_line(a.name).strip(), unescape(a.addr))
        key = a.addr.lower()
        if key not in out:
            out[key] = a
        elif not out[key].name and a.name:
            out[key] = Address(a.name, out[key].addr)
    return tuple(out.values())
