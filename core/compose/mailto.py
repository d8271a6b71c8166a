"""mailto: URLs (RFC 6068) as drafts: ``kittiwake 'mailto:...'`` opens the composer on one."""

from __future__ import annotations

import logging
from urllib.parse import unquote

from kittiwake.core.compose.draft import ComposeError, Draft, parse_addresses
from kittiwake.core.message.ids import normalize_msgid
from kittiwake.core.models import Address

log = logging.getLogger(__name__)

_MAILTO_KEEP = {"to", "cc", "bcc", "subject", "body", "in-reply-to"}


def parse_mailto(url: str) -> Draft:
    """A draft from a ``mailto:`` URL (RFC 6068): to, cc, bcc, subject, body and in-reply-to;
    everything else (From, attachments, arbitrary headers) is ignored, as the RFC advises.
    The draft has no From: the caller sets the account."""
    if not url[:7].lower() == "mailto:":
        raise ComposeError(f"{url[:40]!r} is not a mailto: URL")
    rest = url[7:].split("#", 1)[0]
    path, _, query = rest.partition("?")
    to: list[Address] = []
    cc: list[Address] = []
    bcc: list[Address] = []
    subject: str | None = None
    body: str | None = None
    in_reply_to: str | None = None
    if path:
        to += _mailto_addresses(path, "to")
    for pair in query.split("&") if query else ():
        if not pair:
            continue
        raw_name, _, raw_value = pair.partition("=")
        name = unquote(raw_name, errors="replace").strip().lower()
        value = unquote(raw_value, errors="replace")
        if name == "to":
            to += _mailto_addresses(raw_value, name)
        elif name == "cc":
            cc += _mailto_addresses(raw_value, name)
        elif name == "bcc":
            bcc += _mailto_addresses(raw_value, name)
        elif name == "subject" and subject is None:
            subject = " ".join(value.split())
        elif name == "body" and body is None:
            body = value.replace("\r\n", "\n").replace("\r", "\n")
            if body and not body.endswith("\n"):
                body += "\n"  # a text file ends with a newline: what the editor adds starts anew
        elif name == "in-reply-to" and in_reply_to is None:
            in_reply_to = normalize_msgid(value)
        elif name not in _MAILTO_KEEP:
            log.info("mailto: ignored the %r field", name[:40])
    return Draft(
        to=tuple(to),
        cc=tuple(cc),
        bcc=tuple(bcc),
        subject=subject or "",
        body=body or "",
        in_reply_to=in_reply_to,
        references=(in_reply_to,) if in_reply_to else (),
    )


def _mailto_addresses(raw: str, field: str) -> list[Address]:
    text = " ".join(unquote(raw, errors="replace").split())
    return list(parse_addresses(text, field.capitalize())) if text else []
