"""A whole message, parsed for reading: headers, the text to show, attachments.

Parsing uses ``email`` with ``policy.default``, one MIME level at a time (``parse_tree``):
its parser recurses per level and raised RecursionError on a message nested 1,000 deep, so
levels below ``MAX_MIME_DEPTH`` stay one raw part, as Dovecot's BODYSTRUCTURE shows them.
Header *values* are decoded here from the raw header text, never through the header
registry: on Python 3.11 some malformed headers (``Message-ID: <<<>>>@@``) raise IndexError
on access, and a reader must show a broken message, not crash on it. Nothing here raises on
bad input: a message that still cannot be parsed shows its headers and raw source.
"""

from __future__ import annotations

import email.parser
import email.policy
import functools
import logging
import re
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from email.headerregistry import BaseHeader
from email.message import Message

from kittiwake.core.message.charset import decode_bytes
from kittiwake.core.message.dates import parse_date
from kittiwake.core.message.headers import addresses, header_text
from kittiwake.core.message.ids import first_msgid
from kittiwake.core.message.security import Security
from kittiwake.core.models import Address, BodyPart

log = logging.getLogger(__name__)

_PATHLIKE = re.compile(r"[/\\]|\.\.?[/\\]|[A-Za-z]:[/\\]")
# Controls, separators, characters Windows refuses, and the bidi controls that disguise a
# name on screen ("invoice\u202efdp.exe" shows as "invoiceexe.pdf").
_UNSAFE_FILENAME = re.compile(
    '[\x00-\x1f\x7f-\x9f/\\\\:*?"<>|\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c\u2028\u2029]+'
)
MAX_FILENAME = 120
#: MIME levels parsed; anything nested deeper is one raw part (saved as it is).
MAX_MIME_DEPTH = 32
#: Parts read when a message is opened, the first ones level by level. ``email`` spends some
#: 0.2 ms on each part's headers, so 10,000 attachments held the reader for 2-10 s; parts
#: beyond these are read when every attachment is asked for (``ParsedMessage.attachments``).
MAX_PARTS_READ = 200
#: Longest Content-Type / Content-Disposition value read whole. Reading a part fetches these
#: headers a dozen times, ``email`` parses each fetch afresh at some 3 µs a byte, and its
#: parameter splitter is quadratic: a hostile 1 MiB Content-Type held the reader for minutes.
#: A longer value is cut at its last ";" before the bound (a 255-character RFC 2231 name
#: fits twice over); the parameters beyond it are dropped.
MAX_PARAM_HEADER = 4096
_PARAM_HEADERS = frozenset({"content-type", "content-disposition"})
#: Between inline text parts of one message (a thin rule on a line of its own).
PART_SEPARATOR = "\n\n" + "\u2500" * 24 + "\n\n"


@dataclass(frozen=True)
class Attachment:
    """A part the user can save. ``filename`` is decoded and safe as a file name."""

    index: int
    filename: str
    content_type: str
    size: int
    section: str
    _part: Message = field(repr=False, compare=False)

    def payload(self) -> bytes:
        """The decoded content (base64/quoted-printable undone)."""
        if self.content_type == "message/rfc822":
            inner = self._part.get_payload()
            if isinstance(inner, list) and inner and isinstance(inner[0], Message):
                try:
                    return bytes(inner[0].as_bytes())
                except Exception:
                    return b""
        try:
            data = self._part.get_payload(decode=True)
        except Exception:
            data = None
        if isinstance(data, bytes):
            return data
        raw = self._part.get_payload()
        return raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else b""


@dataclass(frozen=True)
class ParsedMessage:
    headers: tuple[tuple[str, str], ...]
    """Every header, in order, decoded (RFC 2047) and unfolded."""
    subject: str
    from_: tuple[Address, ...]
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    reply_to: tuple[Address, ...]
    date: datetime | None
    message_id: str | None
    text: str | None
    """The text/plain body, if there is one: every inline text/plain part in order (one per
    multipart/alternative), with ``PART_SEPARATOR`` between them, as mutt shows them."""
    html: str | None
    """The text/html body, if there is one (converted for display elsewhere)."""
    listed: tuple[Attachment, ...]
    """The attachments among the parts read at once (``MAX_PARTS_READ``): what the reader
    lists; ``attachments`` has every one."""
    tree: BodyPart
    """The structure of the parts read at once."""
    raw: bytes = field(repr=False)
    security: Security | None = None
    """What a signature or encryption proved (``core/crypto``); None for plain mail."""
    unread_parts: int = 0
    """Parts left unread when the message was opened (beyond ``MAX_PARTS_READ``)."""
    _unread: tuple[_Unread, ...] = field(default=(), repr=False, compare=False)
    _every: list[tuple[Attachment, ...]] = field(default_factory=list, repr=False, compare=False)

    @property
    def attachments(self) -> tuple[Attachment, ...]:
        """Every attachment: ``listed``, then those of the unread parts, read the first time
        this is asked (any part there counts, text included: it was never shown). With
        thousands of parts that takes seconds: ask off the event loop when ``unread_parts``
        and not ``every_part_read``."""
        if not self._unread:
            return self.listed
        if not self._every:
            self._every.append(self.listed + _read_unread(self._unread, len(self.listed)))
        return self._every[0]

    @property
    def every_part_read(self) -> bool:
        return not self._unread or bool(self._every)

    def header(self, name: str) -> str | None:
        """The first header called ``name`` (any case), decoded."""
        wanted = name.lower()
        for key, value in self.headers:
            if key.lower() == wanted:
                return value
        return None


def safe_filename(name: str | None, fallback: str = "attachment") -> str:
    """A name that cannot escape a directory, hide itself, or carry control characters.

    A name that is a path (``../../etc/passwd``, ``C:\\Temp\\x.exe``) keeps only its last
    component; a separator inside a name (``Q3/Q4.pdf``, ``invoice[/b].pdf``) becomes "_",
    as mutt does, rather than cutting the name short.
    """
    raw = name or ""
    if _PATHLIKE.match(raw):
        parts = [p for p in re.split(r"[/\\]", raw) if p.strip(" .")]
        raw = parts[-1] if parts else ""
    text = _UNSAFE_FILENAME.sub("_", raw).strip(" .")
    if not text:
        text = fallback
    if len(text) > MAX_FILENAME:
        stem, dot, ext = text.rpartition(".")
        if dot and 0 < len(ext) <= 10:
            text = stem[: MAX_FILENAME - len(ext) - 1] + "." + ext
        else:
            text = text[:MAX_FILENAME]
    return text


def _delimiters(boundary: str) -> re.Pattern[str]:
    return re.compile(r"^--" + re.escape(boundary) + r"(--)?[ \t]*\r?$", re.MULTILINE)


def _split_multipart(body: str, boundary: str) -> tuple[str, list[str], str] | None:
    """(preamble, parts, epilogue) of a multipart body, as ``email``'s parser cuts it (the
    line break before a delimiter belongs to the delimiter); None without any delimiter."""
    parts: list[str] = []
    start: int | None = None
    preamble = ""
    for found in _delimiters(boundary).finditer(body):
        cut = found.start()
        if cut and body[cut - 1] == "\n":
            cut -= 2 if cut > 1 and body[cut - 2] == "\r" else 1
        if start is None:
            preamble = body[:cut]
        else:
            parts.append(body[start:cut])
        line_end = body.find("\n", found.end())
        start = len(body) if line_end < 0 else line_end + 1
        if found.group(1):
            return preamble, parts, body[start:]
    if start is None:
        return None
    parts.append(body[start:])  # no closing delimiter: the last part runs to the end
    return preamble, parts, ""


@functools.lru_cache(maxsize=32)
def _fetched(name: str, value: str) -> BaseHeader:
    return email.policy.default.header_fetch_parse(name, value)  # type: ignore[no-any-return]


class _ReadPolicy(email.policy.EmailPolicy):
    """``policy.default`` that cuts an overlong Content-Type or Content-Disposition as it is
    read (see ``MAX_PARAM_HEADER``) and parses a header value once, not on every fetch (the
    header objects are immutable strings, so sharing them is safe)."""

    def header_source_parse(self, sourcelines: list[str]) -> tuple[str, str]:
        name, value = super().header_source_parse(sourcelines)
        if len(value) > MAX_PARAM_HEADER and name.lower() in _PARAM_HEADERS:
            cut = value.rfind(";", 0, MAX_PARAM_HEADER)
            log.info("a %s header of %d characters was cut to %d", name, len(value), cut)
            value = value[: cut if cut > 0 else MAX_PARAM_HEADER]
        return name, value

    def header_fetch_parse(self, name: str, value: str) -> BaseHeader:
        return _fetched(name, value)


_READ_POLICY = _ReadPolicy()


def parse_tree(raw: bytes) -> Message:
    """The MIME tree of ``raw``, parsed level by level without recursion (``email`` itself
    recurses per level); parts nested deeper than ``MAX_MIME_DEPTH`` keep their raw body."""
    return _read_tree(raw, None)[0]


def _read_tree(raw: bytes, budget: int | None) -> tuple[Message, _Left]:
    """``parse_tree`` reading at most ``budget`` parts, and what it left unread."""
    root = _headed(raw)
    return root, _expand(root, 0, budget)


_PARSER = email.parser.BytesParser(policy=_READ_POLICY)


def _headed(data: bytes | str) -> Message:
    if isinstance(data, str):
        data = data.encode("ascii", "surrogateescape")
    return _PARSER.parsebytes(data, headersonly=True)


#: Multipart parts (by ``id``) -> the raw children left unread, over the budget.
_Left = dict[int, tuple[str, ...]]


def _expand(root: Message, depth: int, budget: int | None) -> _Left:
    """Parse ``root``'s parts below it, breadth first so the first parts of each level come
    first, reading at most ``budget`` parts (None: all); returns what was left unread."""
    left: _Left = {}
    queue: deque[tuple[Message, int]] = deque([(root, depth)])
    while queue:
        part, depth = queue.popleft()
        # The body as parsed (8-bit bytes as surrogates): get_payload() would decode them.
        body = getattr(part, "_payload", None)
        if depth >= MAX_MIME_DEPTH or not isinstance(body, str):
            continue
        ctype = _content_type(part)
        if ctype.startswith("multipart/"):
            boundary = _boundary(part)
            cut = _split_multipart(body, boundary) if boundary else None
            if cut is None or not cut[1]:  # as ``email`` does: no parts, the body stays
                continue
            preamble, pieces, part.epilogue = cut
            part.preamble = preamble or None
        elif ctype.startswith("message/") and ctype != "message/delivery-status":
            pieces = [body]
        else:
            continue
        if budget is not None:
            taken = max(budget, 1 if ctype.startswith("message/") else 0)
            if taken < len(pieces):
                left[id(part)] = tuple(pieces[taken:])
                pieces = pieces[:taken]
            budget = max(budget - len(pieces), 0)
        children = [_headed(piece) for piece in pieces]
        part.set_payload(list[Message | str](children))
        queue.extend((child, depth + 1) for child in children)
    return left


@dataclass(frozen=True)
class _Unread:
    """Children of one multipart left unread: they number from ``first`` under ``section``."""

    section: str
    first: int
    depth: int
    attached: bool
    pieces: tuple[str, ...]


def _read_unread(unread: tuple[_Unread, ...], listed: int) -> tuple[Attachment, ...]:
    """The attachments of the parts left unread, numbered on from the ``listed`` ones."""
    walk = _Walk(start=listed, listing=True)
    for group in unread:
        for n, piece in enumerate(group.pieces, group.first):
            child = _headed(piece)
            _expand(child, group.depth, None)
            section = f"{group.section}.{n}" if group.section else str(n)
            walk.visit(child, section, group.depth, group.attached)
    return tuple(walk.attachments)


def _boundary(part: Message) -> str | None:
    try:
        return part.get_boundary()
    except Exception:
        return None


def parse_message(raw: bytes) -> ParsedMessage:
    """``raw`` parsed for reading; never raises (see the module's docstring)."""
    try:
        return _parse(raw)
    except Exception:  # RecursionError included
        log.warning("a message (%d bytes) could not be parsed; its source is shown", len(raw))
        log.debug("parse failure", exc_info=True)
        return _unparsed(raw)


def _unparsed(raw: bytes) -> ParsedMessage:
    """A message ``email`` could not parse: its header block as text, and the raw source."""
    head, _, _ = raw.replace(b"\r\n", b"\n").partition(b"\n\n")
    headers: list[tuple[str, str]] = []
    for line in head.decode("utf-8", "replace").split("\n"):
        if line[:1] in (" ", "\t") and headers:
            headers[-1] = (headers[-1][0], headers[-1][1] + " " + line.strip())
        elif ":" in line:
            name, _, value = line.partition(":")
            headers.append((name.strip(), value.strip()))
    first = {k.lower(): v for k, v in reversed(headers)}
    note = "This message could not be parsed; V shows its source."
    return ParsedMessage(
        headers=tuple((k, header_text(v)) for k, v in headers),
        subject=header_text(first.get("subject", "")),
        from_=addresses(first.get("from")),
        to=addresses(first.get("to")),
        cc=addresses(first.get("cc")),
        reply_to=addresses(first.get("reply-to")),
        date=None,
        message_id=first.get("message-id"),
        text=note,
        html=None,
        listed=(),
        tree=BodyPart("1", "text", "plain"),
        raw=raw,
    )


def _parse(raw: bytes) -> ParsedMessage:
    msg, left = _read_tree(raw, MAX_PARTS_READ)
    headers = tuple((str(k), header_text(str(v))) for k, v in _raw_items(msg))
    first: dict[str, str] = {}
    for key, value in _raw_items(msg):
        first.setdefault(key.lower(), value)
    walk = _Walk(left=left)
    tree = walk.visit(msg, "", 0)
    texts = walk.texts
    if len(texts) > 1:
        text: str | None = PART_SEPARATOR.join(t.rstrip("\r\n") for t in texts) + "\n"
    else:
        text = texts[0] if texts else None
    return ParsedMessage(
        headers=headers,
        subject=header_text(first.get("subject", "")),
        from_=addresses(first.get("from")),
        to=addresses(first.get("to")),
        cc=addresses(first.get("cc")),
        reply_to=addresses(first.get("reply-to")),
        date=parse_date(first["date"]) if "date" in first else None,
        message_id=first_msgid(first.get("message-id")),
        text=text,
        html=walk.html,
        listed=tuple(walk.attachments),
        tree=tree,
        raw=raw,
        unread_parts=sum(len(u.pieces) for u in walk.unread),
        _unread=tuple(walk.unread),
    )


def _raw_items(msg: Message) -> list[tuple[str, str]]:
    try:
        return [(k, v if isinstance(v, str) else str(v)) for k, v in msg.raw_items()]
    except Exception:
        return []


def _content_type(part: Message) -> str:
    try:
        return part.get_content_type()
    except Exception:
        return "application/octet-stream"


def _text_of(part: Message) -> str:
    try:
        data = part.get_payload(decode=True)
    except Exception:
        data = None
    if not isinstance(data, bytes):
        payload = part.get_payload()
        return payload if isinstance(payload, str) else ""
    try:
        charset = part.get_content_charset()
    except Exception:
        charset = None
    return decode_bytes(data, charset)


def _filename(part: Message) -> str | None:
    try:
        name = part.get_filename()
    except Exception:
        name = None
    return header_text(name) if name else None


def _disposition(part: Message) -> str | None:
    try:
        return part.get_content_disposition()
    except Exception:
        return None


class _Walk:
    """One pass over a parsed tree: the texts shown, the HTML part, the attachments (numbered
    on from ``start``), and the multiparts whose children were ``left`` unread. ``listing``
    (the unread parts, read later) makes every part an attachment: none was shown."""

    def __init__(self, left: _Left | None = None, start: int = 0, listing: bool = False) -> None:
        self.texts: list[str] = []
        self.html: str | None = None
        self.attachments: list[Attachment] = []
        self.unread: list[_Unread] = []
        self._left = left or {}
        self._start = start
        self._listing = listing
        self._answered: set[str] = set()  # the multipart/alternative parts whose text was taken

    def _attach(self, part: Message, name: str, ctype: str, size: int, section: str) -> None:
        index = self._start + len(self.attachments) + 1
        self.attachments.append(Attachment(index, name, ctype, size, section, _part=part))

    def visit(
        self,
        part: Message,
        section: str,
        depth: int,
        attached: bool = False,
        alt: str | None = None,
    ) -> BodyPart:
        ctype = _content_type(part)
        maintype, _, subtype = ctype.partition("/")
        if depth > MAX_MIME_DEPTH + 1:  # parse_tree stops deeper; this is a safety net
            return BodyPart(section or "1", maintype, subtype)
        if ctype == "message/rfc822" and not attached:
            sec = section or "1"
            inner = part.get_payload()
            name = _filename(part)
            if isinstance(inner, list) and inner and isinstance(inner[0], Message):
                first_inner: dict[str, str] = {}
                for key, value in _raw_items(inner[0]):
                    first_inner.setdefault(key.lower(), value)
                name = name or header_text(first_inner.get("subject", "")) + ".eml"
            size = len(part.as_bytes()) if hasattr(part, "as_bytes") else 0
            self._attach(part, safe_filename(name, f"message-{sec}.eml"), ctype, size, sec)
            kids = tuple(
                self.visit(child, sec, depth + 1, attached=True)
                for child in (inner if isinstance(inner, list) else [])
                if isinstance(child, Message)
            )
            return BodyPart(sec, maintype, subtype, children=kids)
        if part.is_multipart():
            payload = part.get_payload()
            children = (
                [c for c in payload if isinstance(c, Message)] if isinstance(payload, list) else []
            )
            inner_alt = (section or "0") if subtype == "alternative" else alt
            kids = tuple(
                self.visit(
                    child, f"{section}.{i}" if section else str(i), depth + 1, attached, inner_alt
                )
                for i, child in enumerate(children, 1)
            )
            left = self._left.get(id(part))
            if left:
                first = len(children) + 1
                self.unread.append(_Unread(section, first, depth + 1, attached, left))
            return BodyPart(section or "", maintype, subtype, children=kids)
        disposition = _disposition(part)
        filename = _filename(part)
        is_attachment = (
            self._listing
            or disposition == "attachment"
            or (filename is not None and maintype != "text")
            or (maintype == "multipart" and depth >= MAX_MIME_DEPTH)  # left raw by parse_tree
        )
        sec = section or "1"
        if attached:
            pass  # the body of a forwarded message is read by opening that attachment
        elif (
            not is_attachment
            and ctype == "text/plain"
            and (alt is None or alt not in self._answered)
        ):
            self.texts.append(_text_of(part))
            if alt is not None:
                self._answered.add(alt)
        elif not is_attachment and ctype == "text/html" and self.html is None:
            self.html = _text_of(part)
        elif is_attachment or maintype not in ("text", "multipart"):
            size = len(part.get_payload(decode=True) or b"") if not part.is_multipart() else 0
            self._attach(part, safe_filename(filename, f"part-{sec}"), ctype, size, sec)
        return BodyPart(
            sec,
            maintype,
            subtype,
            disposition=disposition,
            filename=filename,
            size=len(str(part.get_payload())),
        )
