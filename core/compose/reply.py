"""New messages, replies and forwards as ``Draft`` values: subjects, quoting, attribution,
recipients and the References chain."""

from __future__ import annotations

import builtins
import email.parser
import email.policy
import logging
from collections.abc import Sequence
from email.utils import format_datetime
from pathlib import Path

from kittiwake.core.compose.draft import (
    MAX_REFERENCES,
    NO_ADDRESS,
    DataAttachment,
    Draft,
    _merge,
    format_addresses,
)
from kittiwake.core.compose.signature import identity_for, sender, sign, signature_text
from kittiwake.core.config import Account
from kittiwake.core.message.headers import addresses, one_line
from kittiwake.core.message.ids import msgids, normalize_msgid
from kittiwake.core.message.mime import ParsedMessage, safe_filename
from kittiwake.core.message.subjects import forward_subject, reply_subject
from kittiwake.core.models import Address

log = logging.getLogger(__name__)


def own_addresses(account: Account) -> frozenset[str]:
    identities = (i.address for i in account.identities)
    return frozenset(a.lower() for a in (account.email, *account.addresses, *identities))


def account_address(account: Account, addr: str | None = None) -> Address:
    """``addr`` (an identity's, with its name) or the account's own address."""
    if addr:
        ident = identity_for(account, addr)
        if ident.address.lower() == addr.lower():
            return sender(ident)
        return Address(account.name, addr)
    return sender(identity_for(account, None))


def _signed(account: Account | None, from_: Address, body: str, quoted: str | None) -> str:
    """``body`` signed with the signature of the identity it is sent from; ``quoted`` is the
    tail a signature above the quote goes before."""
    if account is None:
        return body
    text = signature_text(identity_for(account, from_.addr))
    above = quoted if account.signature_position == "above-quote" else None
    return sign(body, text, above=above)


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
    from_ = account_address(account)
    return Draft(
        from_=from_,
        to=tuple(to),
        cc=tuple(cc),
        bcc=tuple(bcc),
        subject=one_line(subject),
        body=_signed(account, from_, body, None),
        attachments=tuple(attachments),
    )


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
    from_ = account_address(account, _alternate_for(parsed, account))
    quoted = _attribution(parsed) + "\n" + quote(message_text(parsed)) + "\n"
    return Draft(
        from_=from_,
        to=to_final,
        cc=cc_final,
        subject=reply_subject(parsed.subject),
        body=_signed(account, from_, quoted, quoted),
        in_reply_to=in_reply_to,
        references=thread_references(parsed),
    )


def forward_inline(parsed: ParsedMessage, account: Account | None = None) -> Draft:
    """A forward with the original's headers block and text in the body; its attachments go
    along as attachments."""
    lines = ["---------- Forwarded message ----------"]
    for label, value in (
        ("From", format_addresses(parsed.from_)),
        ("Date", format_datetime(parsed.date) if parsed.date else ""),
        ("Subject", one_line(parsed.subject)),
        ("To", format_addresses(parsed.to)),
        ("Cc", format_addresses(parsed.cc)),
    ):
        if value:
            lines.append(f"{label}: {value}")
    forwarded = "\n".join(lines) + "\n\n" + message_text(parsed).rstrip("\n") + "\n"
    from_ = account_address(account) if account else NO_ADDRESS
    body = "\n\n" + forwarded
    attached = []
    for att in parsed.attachments:
        try:
            data = att.payload()
        except Exception as exc:
            log.info("forward: attachment %s left out: %s", att.filename, exc)
            continue
        attached.append(DataAttachment(att.filename, att.content_type, data))
    return Draft(
        from_=from_,
        subject=forward_subject(parsed.subject),
        body=_signed(account, from_, body, forwarded),
        attached=tuple(attached),
    )


def forward_attached(parsed: ParsedMessage, account: Account | None = None) -> Draft:
    """A forward with the original attached whole, as message/rfc822."""
    name = safe_filename((one_line(parsed.subject).strip() or "message")[:80] + ".eml")
    from_ = account_address(account) if account else NO_ADDRESS
    return Draft(
        from_=from_,
        subject=forward_subject(parsed.subject),
        body=_signed(account, from_, "", None),
        attached=(DataAttachment(name, "message/rfc822", parsed.raw),),
    )


def draft_from_message(parsed: ParsedMessage) -> Draft:
    """A saved draft (or a refused message kept in the outbox) back into an editable Draft."""
    attached = tuple(
        DataAttachment(a.filename, a.content_type, a.payload()) for a in parsed.attachments
    )
    refs = msgids(parsed.header("References") or "")
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
    name = one_line(name)
    if parsed.date is None:
        return f"{name} wrote:"
    d = parsed.date
    when = f"{_DAYS[d.weekday()]}, {d.day} {_MONTHS[d.month - 1]} {d.year} at {d:%H:%M}"
    return f"On {when}, {name} wrote:"


def thread_references(parsed: ParsedMessage) -> tuple[str, ...]:
    """The parent's References (or, lacking them, its In-Reply-To) plus its Message-ID,
    without duplicates, trimmed to the root and the newest ancestors (RFC 5322 3.6.4)."""
    refs = list(msgids(parsed.header("References") or ""))
    if not refs:
        refs = list(msgids(parsed.header("In-Reply-To") or ""))[:1]
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
    """The other address of yours (an identity, or one of ``addresses``) this message was
    sent to, so a reply comes from it: To and Cc first, then Delivered-To/X-Original-To."""
    alternates = {a.lower(): a for a in account.addresses}
    alternates |= {i.address.lower(): i.address for i in account.identities[1:]}
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
