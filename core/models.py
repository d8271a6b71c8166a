"""Plain values shared by every layer: the vocabulary of the engine, free of any protocol."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

_FLAG_SETS: dict[frozenset[str], frozenset[str]] = {}


def shared_flags(flags: frozenset[str]) -> frozenset[str]:
    """The one frozenset for these flags: a folder of 100,000 messages has a handful of
    distinct flag sets, and a frozenset costs 216 bytes (22 MB when each message had its
    own, as the answer to a UID FETCH 1:* FLAGS had). The first 4,096 distinct sets are
    kept (keywords could make more)."""
    known = _FLAG_SETS.get(flags)
    if known is not None:
        return known
    if len(_FLAG_SETS) < 4096:
        _FLAG_SETS[flags] = flags
    return flags


SEEN = "\\Seen"
ANSWERED = "\\Answered"
FLAGGED = "\\Flagged"
DELETED = "\\Deleted"
DRAFT = "\\Draft"
FORWARDED = "$Forwarded"
JUNK = "$Junk"


@dataclass(frozen=True, slots=True)
class Address:
    """One mailbox: display name (decoded, may be empty) and addr-spec."""

    name: str
    addr: str

    def __str__(self) -> str:
        return f"{self.name} <{self.addr}>" if self.name else self.addr


@dataclass(frozen=True, slots=True)
class Envelope:
    """The RFC 3501 ENVELOPE, decoded: strings are text, never encoded words."""

    date: datetime | None = None
    subject: str = ""
    from_: tuple[Address, ...] = ()
    sender: tuple[Address, ...] = ()
    reply_to: tuple[Address, ...] = ()
    to: tuple[Address, ...] = ()
    cc: tuple[Address, ...] = ()
    bcc: tuple[Address, ...] = ()
    in_reply_to: str | None = None
    message_id: str | None = None


@dataclass(frozen=True, slots=True)
class BodyPart:
    """A node of a message's MIME tree (from BODYSTRUCTURE or from a parsed message).

    ``section`` is the IMAP part specifier ("1", "1.2"; "" for a single-part message's
    body as a whole is "1" per RFC 3501). Multipart nodes have ``children``.
    """

    section: str
    maintype: str
    subtype: str
    params: dict[str, str] = field(default_factory=dict)
    content_id: str | None = None
    description: str | None = None
    encoding: str | None = None
    size: int = 0
    disposition: str | None = None
    filename: str | None = None
    children: tuple[BodyPart, ...] = ()

    @property
    def content_type(self) -> str:
        return f"{self.maintype}/{self.subtype}".lower()

    @property
    def is_attachment(self) -> bool:
        if self.children:
            return False
        if (self.disposition or "").lower() == "attachment":
            return True
        return self.filename is not None and self.maintype.lower() != "multipart"

    def walk(self) -> list[BodyPart]:
        """This part and every part below it, depth first."""
        out = [self]
        for child in self.children:
            out.extend(child.walk())
        return out

    @property
    def has_attachments(self) -> bool:
        return any(p.is_attachment for p in self.walk())


@dataclass(frozen=True, slots=True)
class MessageSummary:
    """What the message list needs of one message, fetched once and cached."""

    uid: int
    flags: frozenset[str]
    internal_date: datetime | None
    size: int
    envelope: Envelope
    references: tuple[str, ...] = ()
    has_attachments: bool = False
    modseq: int | None = None
    #: The server's description of it (ENVELOPE, BODYSTRUCTURE) could not be read: it is
    #: shown from its raw header block instead, and the list and the reader say so.
    degraded: bool = False
    #: Header fields fetched with the summary for a subscriber of ``MessagesAdded``
    #: ((name, value) as sent; Autocrypt's, from new mail), never cached; None: not asked.
    extra_headers: tuple[tuple[str, str], ...] | None = None


class FolderRole(StrEnum):
    """SPECIAL-USE roles (RFC 6154) plus the inbox."""

    INBOX = "inbox"
    SENT = "sent"
    DRAFTS = "drafts"
    TRASH = "trash"
    JUNK = "junk"
    ARCHIVE = "archive"
    ALL = "all"
    FLAGGED = "flagged"


@dataclass(frozen=True, slots=True)
class FolderInfo:
    """One folder as the UI lists it. ``name`` is the server's (decoded) full name."""

    name: str
    delimiter: str | None
    role: FolderRole | None = None
    attributes: frozenset[str] = frozenset()
    subscribed: bool = True
    total: int = 0
    unread: int = 0

    @property
    def selectable(self) -> bool:
        return "\\noselect" not in {a.lower() for a in self.attributes} and (
            "\\nonexistent" not in {a.lower() for a in self.attributes}
        )
