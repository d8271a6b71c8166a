"""Signatures and identities: which address a message goes out from, and the "-- " block.

A body is signed once, when a message is started (new, reply, forward); a draft reopened from
Drafts is never signed again, and a body that already holds the block is left as it is (a
mailto: body, a draft made twice). Changing the sender swaps the old block for the new one.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from kittiwake.core.config import Account, Identity
from kittiwake.core.models import Address

log = logging.getLogger(__name__)

SEPARATOR = "-- "
"""RFC 3676 4.3: "-- " alone on a line; mail readers hide or dim what follows."""


def identity_for(account: Account, addr: str | None) -> Identity:
    """The identity whose address is ``addr`` (any case), else the account's own."""
    if addr:
        for ident in account.identities:
            if ident.address.lower() == addr.lower():
                return ident
    if account.identities:
        return account.identities[0]
    return Identity(account.email, account.name, account.signature, account.signature_file)


def sender(identity: Identity) -> Address:
    return Address(identity.name, identity.address)


def signature_text(identity: Identity) -> str:
    """The signature's text without the separator and trailing blank lines; "" for none.
    A file that cannot be read leaves the message unsigned (logged): composing goes on."""
    text = identity.signature
    if identity.signature_file:
        try:
            text = Path(identity.signature_file).read_text("utf-8", "replace")
        except OSError as exc:
            log.warning("signature file %s not read: %s", identity.signature_file, exc)
            text = None
    if not text:
        return ""
    text = text.replace("\r\n", "\n").replace("\r", "\n").rstrip()
    lines = text.split("\n")
    if lines and lines[0].rstrip() == "--":  # the file carries its own separator
        lines = lines[1:]
    return "\n".join(lines).strip("\n")


def block(text: str) -> str:
    return f"{SEPARATOR}\n{text}\n" if text else ""


def has_signature(body: str, text: str) -> bool:
    """The body holds the block already (an editor may have trimmed the separator's space)."""
    if not text:
        return True
    return _block_pattern(text).search(body) is not None


def _block_pattern(text: str) -> re.Pattern[str]:
    return re.compile(r"(?m)^-- ?\n" + re.escape(text) + r"[ \t]*(?:\n|\Z)")


def sign(body: str, text: str, *, above: str | None = None) -> str:
    """``body`` with the signature block: at the end, or just before ``above`` (the quoted or
    forwarded text, which must be the tail of ``body``). Never added twice."""
    if not text or has_signature(body, text):
        return body
    if above is not None and above and body.endswith(above):
        head = body[: len(body) - len(above)].rstrip("\n")
        return f"{head}\n\n{block(text)}\n{above}" if head else f"\n\n{block(text)}\n{above}"
    head = body.rstrip("\n")
    return f"{head}\n\n{block(text)}" if head else f"\n\n{block(text)}"


def swap(body: str, old: str, new: str) -> str:
    """The sender changed: the old signature block becomes the new one (or goes, or is
    added at the end when the body had none)."""
    if old and old != new:
        match = _block_pattern(old).search(body)
        if match is not None:
            replacement = block(new)
            return body[: match.start()] + replacement + body[match.end() :]
    return sign(body, new)


def unsigned(body: str) -> str:
    """The body without its signature block (what the user wrote): a new message left with
    only its signature is still an empty message."""
    match = re.search(r"(?m)^-- ?\n", body)
    return body if match is None else body[: match.start()]
