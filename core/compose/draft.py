"""Composing: new messages, replies and forwards as ``Draft`` values, and a draft made into MIME.

Everything here is pure (no network, no engine); the only I/O is reading attachment files in
``build_mime``. A ``Draft`` is what the user edits: in ``$EDITOR`` it is a headers block, a blank
line and the body (``Draft.to_text`` / ``Draft.from_text``, like mutt's ``edit_headers``).

``build_mime`` writes the top-level header block itself instead of through ``email``'s header
registry: on Python 3.11 the registry folds a long Message-ID in References or In-Reply-To into
encoded words (``=?utf-8?q?=3C...?=``), which breaks threading for every reader. The MIME body
(parts, transfer encodings, RFC 2231 filenames) is made by ``email``.
"""

from __future__ import annotations

import base64
import builtins
import email.parser
import email.policy
import logging
import mimetypes
import re
import secrets
import time
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from email.message import MIMEPart
from email.utils import format_datetime, getaddresses
from pathlib import Path

from kittiwake.core.config import Account
from kittiwake.core.errors import KittiwakeError
from kittiwake.core.message.mime import ParsedMessage, addresses, safe_filename
from kittiwake.core.models import Address

log = logging.getLogger(__name__)

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
            f"Subject: {_one_line(self.subject)}",
            f"Reply-To: {format_addresses(self.reply_to)}",
        ]
        lines += [f"Attach: {path}" for path in self.attachments]
        return "\n".join(lines) + "\n\n" + self.body

    @classmethod
    def from_text(cls, text: str, base: Draft | None = None) -> Draft:
        """Read the editor form back. Fields the text does not carry (threading ids, in-memory
        attachments) come from ``base``. Unknown header names are errors: a typo in "To" must
        not silently drop recipients."""
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
                draft = replace(draft, subject=_one_line(value))
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


# -- new, reply, forward ----------------------------------------------------------------------


def own_addresses(account: Account) -> frozenset[str]:
    return frozenset(a.lower() for a in (account.email, *account.addresses))


def account_address(account: Account, addr: str | None = None) -> Address:
    return Address(account.name, addr or account.email)


def new_message(
    account: Account,
    *,
    to: Sequence[Address] = (),
    cc: Sequence[Address] = (),
    bcc: Sequence[Address] = (),
    subject: str = "",
    body: str = "",
    attachments: Sequence[Path] = (),
) -> Draft:
    return Draft(
        from_=account_address(account),
        to=tuple(to),
        cc=tuple(cc),
        bcc=tuple(bcc),
        subject=_one_line(subject),
        body=body,
        attachments=tuple(attachments),
    )


_REPLY_PREFIX = re.compile(
    r"^(?:\s*(?:\[[^\]]*\]\s*)?(?:re|aw|sv|antw|vs|ref|rif|odp|r)(?:\s*[\[(]\d+[\])])?\s*[:：])+\s*",
    re.IGNORECASE,
)
_FORWARD_PREFIX = re.compile(r"^\s*(?:fwd?|wg|tr|rv|i)\s*[:：]", re.IGNORECASE)


def reply_subject(subject: str) -> str:
    """``Re:`` once: ``Re: Re: x``, ``RE: x``, ``Aw: x``, ``[list] Re: x`` all become ``Re: x``."""
    subject = _one_line(subject).strip()
    stripped = _REPLY_PREFIX.sub("", subject, count=1)
    return f"Re: {stripped}" if stripped else "Re:"


def forward_subject(subject: str) -> str:
    subject = _one_line(subject).strip()
    if _FORWARD_PREFIX.match(subject):
        return subject
    return f"Fwd: {subject}" if subject else "Fwd:"


def reply(parsed: ParsedMessage, account: Account, all: bool = False) -> Draft:
    """A reply (``all``: to everyone) to ``parsed`` from ``account``.

    Simple reply: Mail-Reply-To, else Reply-To, else From. Reply to all: Mail-Followup-To when
    the author set one, else that same target plus every To and Cc. A reply to your own message
    goes to its recipients. Your addresses (email and ``addresses``) are removed and duplicates
    merged (case-insensitively, keeping a display name).
    """
    mine = own_addresses(account)
    author = parsed.from_
    mail_reply_to = _raw_addresses(parsed, "Mail-Reply-To")
    followup_to = _raw_addresses(parsed, "Mail-Followup-To")
    target = mail_reply_to or parsed.reply_to or author
    if author and builtins.all(a.addr.lower() in mine for a in author):
        to, cc = list(parsed.to), list(parsed.cc) if all else []
    elif all and followup_to:
        to, cc = list(followup_to), []
    elif all:
        to, cc = list(target), [*parsed.to, *parsed.cc]
    else:
        to, cc = list(target), []
    to_final = _merge(a for a in to if a.addr.lower() not in mine)
    taken = {a.addr.lower() for a in to_final}
    cc_final = _merge(a for a in cc if a.addr.lower() not in mine and a.addr.lower() not in taken)
    if not to_final:
        to_final, cc_final = cc_final, ()
    if not to_final:  # a note to yourself: answer it to yourself
        to_final = _merge(to or target)
    in_reply_to = normalize_msgid(parsed.message_id)
    return Draft(
        from_=account_address(account, _alternate_for(parsed, account)),
        to=to_final,
        cc=cc_final,
        subject=reply_subject(parsed.subject),
        body=_attribution(parsed) + "\n" + quote(message_text(parsed)) + "\n",
        in_reply_to=in_reply_to,
        references=thread_references(parsed),
    )


def forward_inline(parsed: ParsedMessage, account: Account | None = None) -> Draft:
    """A forward with the original's headers block and text in the body; its attachments go
    along as attachments."""
    lines = ["", "", "---------- Forwarded message ----------"]
    for label, value in (
        ("From", format_addresses(parsed.from_)),
        ("Date", format_datetime(parsed.date) if parsed.date else ""),
        ("Subject", _one_line(parsed.subject)),
        ("To", format_addresses(parsed.to)),
        ("Cc", format_addresses(parsed.cc)),
    ):
        if value:
            lines.append(f"{label}: {value}")
    body = "\n".join(lines) + "\n\n" + message_text(parsed).rstrip("\n") + "\n"
    attached = []
    for att in parsed.attachments:
        try:
            data = att.payload()
        except Exception as exc:
            log.info("forward: attachment %s left out: %s", att.filename, exc)
            continue
        attached.append(DataAttachment(att.filename, att.content_type, data))
    return Draft(
        from_=account_address(account) if account else NO_ADDRESS,
        subject=forward_subject(parsed.subject),
        body=body,
        attached=tuple(attached),
    )


def forward_attached(parsed: ParsedMessage, account: Account | None = None) -> Draft:
    """A forward with the original attached whole, as message/rfc822."""
    name = safe_filename((_one_line(parsed.subject).strip() or "message")[:80] + ".eml")
    return Draft(
        from_=account_address(account) if account else NO_ADDRESS,
        subject=forward_subject(parsed.subject),
        attached=(DataAttachment(name, "message/rfc822", parsed.raw),),
    )


def draft_from_message(parsed: ParsedMessage) -> Draft:
    """A saved draft (or a refused message kept in the outbox) back into an editable Draft."""
    attached = tuple(
        DataAttachment(a.filename, a.content_type, a.payload()) for a in parsed.attachments
    )
    refs = _msgids(parsed.header("References") or "")
    return Draft(
        from_=parsed.from_[0] if parsed.from_ else NO_ADDRESS,
        to=parsed.to,
        cc=parsed.cc,
        bcc=_raw_addresses(parsed, "Bcc"),
        reply_to=parsed.reply_to,
        subject=parsed.subject,
        body=message_text(parsed),
        in_reply_to=normalize_msgid(parsed.header("In-Reply-To")),
        references=tuple(refs),
        message_id=normalize_msgid(parsed.message_id),
        attached=attached,
    )


def forwarded_message_id(draft: Draft) -> str | None:
    """The Message-ID of the message a forward carries as an attachment, if any."""
    for att in draft.attached:
        if att.content_type.lower() == "message/rfc822":
            head = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(att.data)
            return normalize_msgid(str(head.get("Message-ID", "") or ""))
    return None


def message_text(parsed: ParsedMessage) -> str:
    """The text to quote or forward: text/plain, else the HTML converted to text with its
    numbered links listed under it (the text says "link[1]"; without the list, a reply
    would point at nothing)."""
    if parsed.text is not None:
        text = parsed.text
    elif parsed.html:
        from kittiwake.core.message.html import html_to_text

        text, links = html_to_text(parsed.html)
        if links:
            listed = "\n".join(f"[{n}] {url}" for n, url in enumerate(links, 1))
            text = f"{text.rstrip()}\n\n{listed}\n"
    else:
        text = ""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def quote(text: str) -> str:
    """Every line prefixed ``> `` (``>`` before an already quoted or empty line)."""
    lines = text.rstrip("\n").split("\n") if text.strip() else []
    out = []
    for line in lines:
        if not line:
            out.append(">")
        elif line.startswith(">"):
            out.append(">" + line)
        else:
            out.append("> " + line)
    return "\n".join(out)


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _attribution(parsed: ParsedMessage) -> str:
    who = parsed.from_[0] if parsed.from_ else None
    name = (who.name or who.addr) if who else "someone"
    name = _one_line(name)
    if parsed.date is None:
        return f"{name} wrote:"
    d = parsed.date
    when = f"{_DAYS[d.weekday()]}, {d.day} {_MONTHS[d.month - 1]} {d.year} at {d:%H:%M}"
    return f"On {when}, {name} wrote:"


_MSGID = re.compile(r"<[^<>\s]+>")


def _msgids(text: str) -> list[str]:
    return [m for m in _MSGID.findall(text) if "@" in m or len(m) > 2]


def normalize_msgid(value: str | None) -> str | None:
    """``<id@host>`` from a header value, or None when there is none worth keeping."""
    if not value:
        return None
    found = _MSGID.findall(value)
    if found:
        return found[0] if len(found[0]) <= 900 else None
    bare = value.strip()
    if bare and not re.search(r"[\s<>]", bare) and len(bare) <= 900:
        return f"<{bare}>"
    return None


def thread_references(parsed: ParsedMessage) -> tuple[str, ...]:
    """The parent's References (or, lacking them, its In-Reply-To) plus its Message-ID,
    without duplicates, trimmed to the root and the newest ancestors (RFC 5322 3.6.4)."""
    refs = _msgids(parsed.header("References") or "")
    if not refs:
        refs = _msgids(parsed.header("In-Reply-To") or "")[:1]
    own = normalize_msgid(parsed.message_id)
    if own:
        refs.append(own)
    seen: set[str] = set()
    unique = []
    for ref in refs:
        if ref not in seen and len(ref) <= 900:
            seen.add(ref)
            unique.append(ref)
    if len(unique) > MAX_REFERENCES:
        unique = unique[:1] + unique[-(MAX_REFERENCES - 1) :]
    return tuple(unique)


def _raw_addresses(parsed: ParsedMessage, name: str) -> tuple[Address, ...]:
    """An address header read from the raw bytes (decoded values may hold commas in names)."""
    try:
        header = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(parsed.raw)
        value = header.get(name)
    except Exception:
        value = None
    if value is None:
        return ()
    return addresses(str(value))


def _alternate_for(parsed: ParsedMessage, account: Account) -> str | None:
    """The other address of yours this message was sent to, so a reply comes from it."""
    alternates = {a.lower(): a for a in account.addresses}
    if not alternates:
        return None
    candidates = [a.addr for a in (*parsed.to, *parsed.cc)]
    for name in ("Delivered-To", "X-Original-To"):
        value = parsed.header(name)
        if value:
            candidates.append(value.strip().strip("<>"))
    for addr in candidates:
        if addr.lower() == account.email.lower():
            return None
        if addr.lower() in alternates:
            return alternates[addr.lower()]
    return None


def _merge(items: Iterable[Address]) -> tuple[Address, ...]:
    """Duplicates (same address, any case) merged, in first-seen order, keeping a name."""
    out: dict[str, Address] = {}
    for a in items:
        if not a.addr:
            continue
        a = Address(_one_line(a.name).strip(), _unescape(a.addr))
        key = a.addr.lower()
        if key not in out:
            out[key] = a
        elif not out[key].name and a.name:
            out[key] = Address(a.name, out[key].addr)
    return tuple(out.values())


def _one_line(text: str) -> str:
    """Header text on one line: unfolded, other line breaks and tabs become spaces, other
    controls go, raw 8-bit bytes (surrogate-escaped by ``email``) read as UTF-8."""
    text = re.sub(r"\r?\n(?=[ \t])", "", _unescape(text))
    return _CONTROL.sub("", re.sub(r"[\r\n\t]+", " ", text))


_SURROGATE = re.compile("[\udc80-\udcff]")


def _unescape(text: str) -> str:
    if not _SURROGATE.search(text):
        return text
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


# -- building MIME ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Built:
    """A message ready to submit."""

    raw: bytes = field(repr=False)
    """What is sent: CRLF lines, no Bcc header."""
    envelope_from: str
    envelope_rcpts: tuple[str, ...]
    """To, Cc and Bcc, each once."""
    message_id: str
    sent_copy: bytes = field(repr=False)
    """The copy for the Sent folder: ``raw`` plus the Bcc header, so you can see who got it."""
    smtputf8: bool = False
    """An address is non-ASCII before the @: the message must go with SMTPUTF8."""
    eightbit: bool = False
    """The bytes hold 8-bit data: submit with BODY=8BITMIME."""


def make_message_id(domain: str) -> str:
    stamp = format(int(time.time() * 1000), "x")
    return f"<{stamp}.{secrets.token_hex(10)}@{_ascii_domain(domain) or 'kittiwake.invalid'}>"


def build_mime(
    draft: Draft,
    account: Account,
    smtputf8_ok: bool = False,
    eightbit_ok: bool = False,
    *,
    now: datetime | None = None,
    for_draft: bool = False,
) -> Built:
    """Make ``draft`` into bytes to submit.

    ``smtputf8_ok`` / ``eightbit_ok`` say whether the submission server offers SMTPUTF8 and
    8BITMIME. Bodies are 7bit when ASCII with short lines, 8bit when allowed and no line is
    over 998 octets, quoted-printable otherwise. Non-ASCII names and subjects become encoded
    words; an address with a non-ASCII local part needs SMTPUTF8 (ComposeError if not
    offered; non-ASCII domains are sent as IDNA A-labels and need nothing).

    ``for_draft``: the message is only stored (Drafts folder), never submitted: it may have
    no recipient yet, and non-ASCII addresses are written as they are.
    """
    from_ = draft.from_ if draft.from_.addr else account_address(account)
    recipients = _merge(draft.recipients)
    if not recipients and not for_draft:
        raise ComposeError("the message has no recipient: add one in To, Cc or Bcc")
    every = (from_, *recipients, *draft.reply_to)
    for a in every:
        if not is_address(a.addr):
            raise ComposeError(f"{a.addr!r} is not an email address")
    needs_utf8 = any(not a.addr.rpartition("@")[0].isascii() for a in every)
    if needs_utf8 and not smtputf8_ok and not for_draft:
        bad = next(a.addr for a in every if not a.addr.rpartition("@")[0].isascii())
        raise ComposeError(
            f"{bad} has non-ASCII characters before the @, which needs SMTPUTF8, and the "
            f"server for account {account.key} does not offer it"
        )
    utf8 = needs_utf8
    message_id = normalize_msgid(draft.message_id) or make_message_id(
        account.email.rpartition("@")[2]
    )
    date = now or datetime.now().astimezone()

    headers = _HeaderWriter(utf8)
    headers.unstructured("Date", format_datetime(date))
    headers.addresses("From", (from_,))
    if draft.to:
        headers.addresses("To", _merge(draft.to))
    if draft.cc:
        headers.addresses("Cc", _merge(draft.cc))
    if draft.reply_to:
        headers.addresses("Reply-To", _merge(draft.reply_to))
    headers.unstructured("Subject", _one_line(draft.subject).strip())
    headers.ids("Message-ID", [message_id])
    in_reply_to = normalize_msgid(draft.in_reply_to)
    if in_reply_to:
        headers.ids("In-Reply-To", [in_reply_to])
    refs = [r for r in (normalize_msgid(x) for x in draft.references) if r]
    if refs:
        headers.ids("References", refs)
    headers.unstructured("MIME-Version", "1.0")

    body = _mime_body(draft, eightbit_ok)
    raw = headers.bytes() + body
    bcc = _merge(draft.bcc)
    if bcc:
        extra = _HeaderWriter(utf8)
        extra.addresses("Bcc", bcc)
        head_end = len(headers.bytes())
        sent_copy = raw[:head_end] + extra.bytes() + raw[head_end:]
    else:
        sent_copy = raw
    return Built(
        raw=raw,
        envelope_from=envelope_address(from_.addr, utf8),
        envelope_rcpts=tuple(envelope_address(a.addr, utf8) for a in recipients),
        message_id=message_id,
        sent_copy=sent_copy,
        smtputf8=utf8,
        eightbit=any(b > 127 for b in raw),
    )


def draft_bytes(draft: Draft, account: Account, *, now: datetime | None = None) -> bytes:
    """``draft`` as a message for the Drafts folder: Bcc kept, recipients optional, 8-bit
    allowed (IMAP APPEND takes it); ``draft_from_message`` reads it back."""
    return build_mime(draft, account, True, True, now=now, for_draft=True).sent_copy


def address_header(name: str, items: Sequence[Address], utf8: bool = False) -> bytes:
    """One folded address header field, CRLF-terminated (encoded words unless ``utf8``)."""
    writer = _HeaderWriter(utf8)
    writer.addresses(name, items)
    return writer.bytes()


def envelope_address(addr: str, utf8: bool = False) -> str:
    """The address as given in MAIL FROM / RCPT TO: the domain as IDNA A-label unless the
    message goes with SMTPUTF8."""
    local, _, domain = addr.rpartition("@")
    if utf8:
        return addr
    return f"{local}@{_ascii_domain(domain)}"


def _ascii_domain(domain: str) -> str:
    if domain.isascii():
        return domain
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:
        raise ComposeError(f"{domain!r} is not a valid domain name") from None


class _HeaderWriter:
    """Writes folded header fields (CRLF) the way RFC 5322 and 2047 want them."""

    def __init__(self, utf8: bool) -> None:
        self.utf8 = utf8
        self._lines: list[str] = []

    def bytes(self) -> bytes:
        return "".join(self._lines).encode("utf-8")

    def _emit(self, name: str, tokens: list[tuple[str, str]]) -> None:
        """``tokens`` are (separator, text); the fold goes before a separator."""
        line = f"{name}:"
        out: list[str] = []
        for sep, text in tokens:
            sep = sep or " "
            if len(line) + len(sep) + len(text) > FOLD_AT and line.strip() != f"{name}:":
                out.append(line)
                line = ""
            line += sep + text
        out.append(line)
        self._lines.append("\r\n".join(out) + "\r\n")

    def unstructured(self, name: str, value: str) -> None:
        self._emit(name, self._words(value) if value else [(" ", "")])

    def ids(self, name: str, ids: list[str]) -> None:
        self._emit(name, [(" ", i) for i in ids])

    def addresses(self, name: str, items: Sequence[Address]) -> None:
        tokens: list[tuple[str, str]] = []
        for n, a in enumerate(items):
            part = self._address(a)
            if n < len(items) - 1:
                part[-1] = (part[-1][0], part[-1][1] + ",")
            tokens += part
        self._emit(name, tokens)

    def _address(self, a: Address) -> list[tuple[str, str]]:
        addr = envelope_address(a.addr, self.utf8)
        name = _CONTROL.sub(" ", a.name).strip()
        if not name:
            return [(" ", addr)]
        if name.isascii() or self.utf8:
            phrase = name if _phrase_ok_unquoted(name) else _quote(name)
            if name.isascii() and len(phrase) > 900:
                return [*[(" ", w) for w in _encoded_words(name)], (" ", f"<{addr}>")]
            return [(" ", phrase), (" ", f"<{addr}>")]
        return [*[(" ", w) for w in _encoded_words(name)], (" ", f"<{addr}>")]

    def _words(self, value: str) -> list[tuple[str, str]]:
        """Unstructured text as tokens: ASCII words as they are, runs of other words as
        encoded words (whitespace inside a run is encoded with it, so it survives)."""
        value = _CONTROL.sub(" ", value)
        parts = re.findall(r"([ \t]*)([^ \t]+)", value)
        if self.utf8:
            return [(sep or " ", word) for sep, word in parts]
        tokens: list[tuple[str, str]] = []
        run: list[tuple[str, str]] = []

        def flush() -> None:
            if run:
                text = "".join(s + w for s, w in run)[len(run[0][0]) :]
                words = _encoded_words(text)
                tokens.append((run[0][0] or " ", words[0]))
                tokens.extend((" ", w) for w in words[1:])
                run.clear()

        for sep, word in parts:
            if word.isascii() and "=?" not in word and len(word) <= 900:
                flush()
                tokens.append((sep or " ", word))
            else:
                run.append((sep, word))
        flush()
        return tokens


def _encoded_words(text: str) -> list[str]:
    """RFC 2047 B-encoded words of at most 75 characters, split between characters."""
    words: list[str] = []
    chunk = b""
    for ch in text:
        data = ch.encode("utf-8")
        if len(chunk) + len(data) > 45:
            words.append(_b_word(chunk))
            chunk = b""
        chunk += data
    if chunk or not words:
        words.append(_b_word(chunk))
    return words


def _b_word(data: bytes) -> str:
    return "=?utf-8?b?" + base64.b64encode(data).decode("ascii") + "?="


_POLICY = email.policy.SMTP


def _mime_body(draft: Draft, eightbit_ok: bool) -> bytes:
    text = draft.body.replace("\r\n", "\n").replace("\r", "\n")
    if not text.endswith("\n"):
        text += "\n"
    data = text.encode("utf-8")
    longest = max(len(line) for line in data.split(b"\n"))
    if data.isascii() and longest <= MAX_LINE:
        cte = "7bit"
    elif eightbit_ok and longest <= MAX_LINE:
        cte = "8bit"
    else:
        cte = "quoted-printable"
    top = MIMEPart(policy=_POLICY)
    top.set_content(text, subtype="plain", charset="utf-8", cte=cte)
    parts = [_file_attachment(path) for path in draft.attachments]
    parts += list(draft.attached)
    if not parts:
        return top.as_bytes(policy=_POLICY)
    top.make_mixed()
    splices: dict[bytes, bytes] = {}
    for att in parts:
        top.attach(_attachment_part(att, eightbit_ok, splices))
    for _ in range(5):
        top.set_boundary("=_kw_" + secrets.token_hex(12))
        out = top.as_bytes(policy=_POLICY)
        boundary = (top.get_boundary() or "").encode()
        if not any(boundary in data for data in splices.values()):
            break
    for token, data in splices.items():
        out = out.replace(token, data, 1)
    return out


def _file_attachment(path: Path) -> DataAttachment:
    path = Path(path).expanduser()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ComposeError(f"attachment {path}: no such file") from None
    except IsADirectoryError:
        raise ComposeError(f"attachment {path}: is a directory") from None
    except OSError as exc:
        raise ComposeError(f"attachment {path}: cannot be read ({exc.strerror})") from None
    ctype = mimetypes.guess_type(path.name, strict=False)[0] or "application/octet-stream"
    return DataAttachment(path.name, ctype, data)


def _attachment_part(
    att: DataAttachment, eightbit_ok: bool, splices: dict[bytes, bytes]
) -> MIMEPart:
    maintype, _, subtype = att.content_type.lower().partition("/")
    if not subtype or not re.fullmatch(r"[a-z0-9!#$&^_.+-]+", maintype + subtype):
        maintype, subtype = "application", "octet-stream"
    filename = unicodedata.normalize("NFC", att.filename) or "attachment"
    part = MIMEPart(policy=_POLICY)
    if (maintype, subtype) == ("message", "rfc822"):
        inner = re.sub(rb"\r?\n", b"\r\n", att.data)
        if not inner.endswith(b"\r\n"):
            inner += b"\r\n"
        eight = not inner.isascii()
        if not eight or eightbit_ok:
            # email cannot write raw 8-bit message/rfc822 content: a placeholder is replaced by
            # the original bytes after generation, so a forwarded message stays byte-identical.
            token = f"KITTIWAKE-SPLICE-{secrets.token_hex(16)}"
            splices[token.encode() + b"\r\n"] = inner
            part["Content-Type"] = "message/rfc822"
            part.add_header("Content-Disposition", "attachment", filename=filename)
            part["Content-Transfer-Encoding"] = "8bit" if eight else "7bit"
            part.set_payload(token + "\r\n")
            return part
        maintype, subtype = "application", "octet-stream"  # 8-bit message, no 8BITMIME
        att = DataAttachment(att.filename, "application/octet-stream", inner)
    params: dict[str, str] = {}
    if maintype == "text":
        try:
            att.data.decode("utf-8")
            params["charset"] = "utf-8"
        except UnicodeDecodeError:
            pass
    part.set_content(
        att.data, maintype, subtype, disposition="attachment", filename=filename, params=params
    )
    return part
