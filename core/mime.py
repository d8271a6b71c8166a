"""A whole message, parsed for reading: headers, the text to show, attachments.

Parsing uses ``email`` with ``policy.default`` for the MIME structure, but header *values*
are decoded here from the raw header text, never through the header registry: on Python
3.11 some malformed headers (``Message-ID: <<<>>>@@``) raise IndexError on access, and a
reader must show a broken message, not crash on it. Nothing here raises on bad input.
"""

from __future__ import annotations

import email
import email.policy
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime
from email.message import Message
from email.utils import getaddresses, parsedate_to_datetime

from kittiwake.core.imap.decode import decode_bytes, decode_words
from kittiwake.core.models import Address, BodyPart

log = logging.getLogger(__name__)

_FOLD = re.compile(r"\r?\n[ \t]*")
_PATHLIKE = re.compile(r"[/\\]|\.\.?[/\\]|[A-Za-z]:[/\\]")
_UNSAFE_FILENAME = re.compile(r"[\x00-\x1f\x7f/\\:*?\"<>|]+")
MAX_FILENAME = 120


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
    """The text/plain body, if there is one."""
    html: str | None
    """The text/html body, if there is one (converted for display elsewhere)."""
    attachments: tuple[Attachment, ...]
    tree: BodyPart
    raw: bytes = field(repr=False)

    def header(self, name: str) -> str | None:
        """The first header called ``name`` (any case), decoded."""
        wanted = name.lower()
        for key, value in self.headers:
            if key.lower() == wanted:
                return value
        return None


def from_8bit(text: str) -> str:
    """Undo the surrogate escapes ``email`` leaves for raw 8-bit header bytes (mailers that
    skip RFC 2047): UTF-8 when they are UTF-8, else Windows-1252, the usual culprit."""
    if not any("\udc80" <= c <= "\udcff" for c in text):
        return text
    data = text.encode("utf-8", "surrogateescape")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", "replace")


def header_text(raw: str) -> str:
    """A raw header value as text: unfolded, encoded words decoded, never raising."""
    text = from_8bit(_FOLD.sub(" ", raw).strip())
    try:
        return decode_words(text)
    except Exception:
        return text


def addresses(raw: str | None) -> tuple[Address, ...]:
    if not raw:
        return ()
    raw = from_8bit(raw)
    try:
        pairs = getaddresses([_FOLD.sub(" ", raw)])
    except Exception:
        return (Address(header_text(raw), ""),)
    return tuple(Address(header_text(name), addr) for name, addr in pairs if name or addr)


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


def parse_message(raw: bytes) -> ParsedMessage:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    headers = tuple((str(k), header_text(str(v))) for k, v in _raw_items(msg))
    first: dict[str, str] = {}
    for key, value in _raw_items(msg):
        first.setdefault(key.lower(), value)
    date = None
    if "date" in first:
        try:
            date = parsedate_to_datetime(_FOLD.sub(" ", first["date"]).strip())
        except (TypeError, ValueError, IndexError):
            date = None
    text, html, attachments, tree = _walk(msg)
    mid = first.get("message-id")
    return ParsedMessage(
        headers=headers,
        subject=header_text(first.get("subject", "")),
        from_=addresses(first.get("from")),
        to=addresses(first.get("to")),
        cc=addresses(first.get("cc")),
        reply_to=addresses(first.get("reply-to")),
        date=date,
        message_id=_FOLD.sub("", mid).strip() if mid else None,
        text=text,
        html=html,
        attachments=tuple(attachments),
        tree=tree,
        raw=raw,
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


def _walk(msg: Message) -> tuple[str | None, str | None, list[Attachment], BodyPart]:
    text: str | None = None
    html: str | None = None
    attachments: list[Attachment] = []

    def visit(part: Message, section: str, depth: int, attached: bool = False) -> BodyPart:
        nonlocal text, html
        ctype = _content_type(part)
        maintype, _, subtype = ctype.partition("/")
        if depth > 50:
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
            attachments.append(
                Attachment(
                    index=len(attachments) + 1,
                    filename=safe_filename(name, f"message-{sec}.eml"),
                    content_type=ctype,
                    size=len(part.as_bytes()) if hasattr(part, "as_bytes") else 0,
                    section=sec,
                    _part=part,
                )
            )
            kids = tuple(
                visit(child, sec, depth + 1, attached=True)
                for child in (inner if isinstance(inner, list) else [])
                if isinstance(child, Message)
            )
            return BodyPart(sec, maintype, subtype, children=kids)
        if part.is_multipart():
            payload = part.get_payload()
            children = (
                [c for c in payload if isinstance(c, Message)] if isinstance(payload, list) else []
            )
            kids = tuple(
                visit(child, f"{section}.{i}" if section else str(i), depth + 1, attached)
                for i, child in enumerate(children, 1)
            )
            return BodyPart(section or "", maintype, subtype, children=kids)
        disposition = _disposition(part)
        filename = _filename(part)
        is_attachment = disposition == "attachment" or (filename is not None and maintype != "text")
        sec = section or "1"
        if attached:
            pass  # the body of a forwarded message is read by opening that attachment
        elif not is_attachment and ctype == "text/plain" and text is None:
            text = _text_of(part)
        elif not is_attachment and ctype == "text/html" and html is None:
            html = _text_of(part)
        elif is_attachment or maintype not in ("text", "multipart"):
            size = len(part.get_payload(decode=True) or b"") if not part.is_multipart() else 0
            attachments.append(
                Attachment(
                    index=len(attachments) + 1,
                    filename=safe_filename(filename, f"part-{sec}"),
                    content_type=ctype,
                    size=size,
                    section=sec,
                    _part=part,
                )
            )
        return BodyPart(
            sec,
            maintype,
            subtype,
            disposition=disposition,
            filename=filename,
            size=len(str(part.get_payload())),
        )

    tree = visit(msg, "", 0)
    return text, html, attachments, tree
