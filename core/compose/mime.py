"""A ``Draft`` made into MIME (``build_mime``, ``draft_bytes``); the only I/O is reading
attachment files.

``build_mime`` writes the top-level header block itself instead of through ``email``'s header
registry: on Python 3.11 the registry folds a long Message-ID in References or In-Reply-To into
encoded words (``=?utf-8?q?=3C...?=``), which breaks threading for every reader. The MIME body
(parts, transfer encodings, RFC 2231 filenames) is made by ``email``.
"""

from __future__ import annotations

import base64
import email.parser
import email.policy
import mimetypes
import re
import secrets
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.message import MIMEPart
from email.utils import format_datetime
from pathlib import Path

from kittiwake.core.compose.draft import (
    _CONTROL,
    FOLD_AT,
    MAX_LINE,
    ComposeError,
    DataAttachment,
    Draft,
    _merge,
    _phrase_ok_unquoted,
    _quote,
    is_address,
)
from kittiwake.core.compose.reply import account_address
from kittiwake.core.config import Account
from kittiwake.core.crypto import autocrypt, openpgp, smime
from kittiwake.core.crypto.gpg import GnuPG, GpgMissing
from kittiwake.core.message.headers import one_line
from kittiwake.core.message.ids import ascii_domain, make_message_id, normalize_msgid
from kittiwake.core.models import Address


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


def build_mime(
    draft: Draft,
    account: Account,
    smtputf8_ok: bool = False,
    eightbit_ok: bool = False,
    *,
    now: datetime | None = None,
    for_draft: bool = False,
    gpg: GnuPG | None = None,
) -> Built:
    """Make ``draft`` into bytes to submit.

    ``smtputf8_ok`` / ``eightbit_ok`` say whether the submission server offers SMTPUTF8 and
    8BITMIME. Bodies are 7bit when ASCII with short lines, 8bit when allowed and no line is
    over 998 octets, quoted-printable otherwise. Non-ASCII names and subjects become encoded
    words; an address with a non-ASCII local part needs SMTPUTF8 (ComposeError if not
    offered; non-ASCII domains are sent as IDNA A-labels and need nothing).

    ``for_draft``: the message is only stored (Drafts folder), never submitted: it may have
    no recipient yet, and non-ASCII addresses are written as they are.

    ``draft.sign`` / ``draft.encrypt``: PGP/MIME (RFC 3156) through ``gpg``, or S/MIME
    (RFC 8551) when the account's ``crypto`` is "smime" (``gpg`` is then a gpgsm). An
    encrypted message is also encrypted to the sender's own key, so the Sent copy (these same
    bytes) stays readable to the sender; a draft to be encrypted is stored encrypted to that
    key alone.
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
    headers.unstructured("Subject", one_line(draft.subject).strip())
    headers.ids("Message-ID", [message_id])
    in_reply_to = normalize_msgid(draft.in_reply_to)
    if in_reply_to:
        headers.ids("In-Reply-To", [in_reply_to])
    refs = [r for r in (normalize_msgid(x) for x in draft.references) if r]
    if refs:
        headers.ids("References", refs)
    headers.unstructured("MIME-Version", "1.0")
    if account.autocrypt and account.crypto == "openpgp" and not for_draft:
        headers.verbatim(_autocrypt_field(from_.addr, account.autocrypt_mutual, gpg or GnuPG()))

    protected = draft.sign or draft.encrypt
    body = _mime_body(draft, eightbit_ok and not protected)  # signed data must be 7-bit
    if protected:
        if account.crypto == "smime":
            body = _protect_smime(body, draft, from_, recipients, for_draft, gpg or smime.DEFAULT)
        else:
            body = _protect(body, draft, from_, recipients, for_draft, gpg or GnuPG())
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


def _protect(
    body: bytes,
    draft: Draft,
    from_: Address,
    recipients: Sequence[Address],
    for_draft: bool,
    gpg: GnuPG,
) -> bytes:
    """``body`` signed and/or encrypted (see ``build_mime``); ComposeError says what is
    missing, such as a recipient without a key."""
    if for_draft and not draft.encrypt:
        return body  # a draft is not signed: it will change before it is sent
    own = openpgp.keys_for(from_.addr, gpg, secret=True)
    if not own:
        raise ComposeError(
            f"no OpenPGP secret key for {from_.addr} in your keyring: it is needed to "
            "sign, and to keep a readable copy of an encrypted message"
        )
    try:
        if not draft.encrypt:
            return openpgp.sign_entity(body, own[0], gpg)
        if for_draft:
            return openpgp.encrypt_entity(body, [own[0]], gpg=gpg)
        bcc = {a.addr.lower() for a in draft.bcc}
        keys, missing = recipient_keys([a for a in recipients if a.addr.lower() not in bcc], gpg)
        hidden, missing_bcc = recipient_keys([a for a in recipients if a.addr.lower() in bcc], gpg)
        missing += missing_bcc
        if missing:
            raise ComposeError(
                f"no OpenPGP key for {', '.join(missing)}: press p to send it unencrypted, "
                "or do not send it"
            )
        signer = own[0] if draft.sign else None
        return openpgp.encrypt_entity(body, [*keys, own[0]], signer=signer, gpg=gpg, hidden=hidden)
    except openpgp.CryptoError as exc:
        raise ComposeError(str(exc)) from None


def _protect_smime(
    body: bytes,
    draft: Draft,
    from_: Address,
    recipients: Sequence[Address],
    for_draft: bool,
    gpgsm: GnuPG,
) -> bytes:
    """``body`` signed and/or encrypted with S/MIME, as ``_protect`` does with OpenPGP. CMS
    names every recipient's certificate in the message, so a Bcc recipient cannot be hidden:
    such a message is refused rather than sent telling everyone who else got it."""
    if for_draft and not draft.encrypt:
        return body
    own = smime.certs_for(from_.addr, gpgsm, secret=True)
    if not own:
        raise ComposeError(
            f"no S/MIME certificate with a secret key for {from_.addr} in gpgsm: it is needed "
            "to sign, and to keep a readable copy of an encrypted message"
        )
    try:
        if not draft.encrypt:
            return smime.sign_entity(body, own[0], gpgsm)
        if for_draft:
            return smime.encrypt_entity(body, [own[0]], gpgsm=gpgsm)
        if draft.bcc:
            raise ComposeError(
                "S/MIME encryption names every recipient in the message, Bcc too: move them "
                "to To or Cc, or press p to send it unencrypted"
            )
        certs, missing = recipient_keys(recipients, gpgsm, "smime")
        if missing:
            raise ComposeError(
                f"no S/MIME certificate for {', '.join(missing)}: press p to send it "
                "unencrypted, or do not send it"
            )
        signer = own[0] if draft.sign else None
        return smime.encrypt_entity(body, [*certs, own[0]], signer=signer, gpgsm=gpgsm)
    except openpgp.CryptoError as exc:
        raise ComposeError(str(exc)) from None


def _autocrypt_field(addr: str, mutual: bool, gpg: GnuPG) -> str:
    """The Autocrypt header for ``addr``; nothing when there is no key (or no gpg) for it:
    a message is never held back for the want of one."""
    try:
        keydata = autocrypt.own_keydata(addr, gpg)
    except GpgMissing:
        return ""
    return autocrypt.header_field(addr, keydata, mutual) if keydata else ""


def recipient_keys(
    recipients: Sequence[Address],
    gpg: GnuPG | None = None,
    protocol: str = "openpgp",
) -> tuple[list[str], list[str]]:
    """(fingerprints, addresses without a usable key): one key per recipient, from the
    keyring (the first valid encryption key whose user ID holds the address), or for
    ``protocol`` "smime" the first valid certificate for the address (``gpg`` a gpgsm)."""
    keys: list[str] = []
    missing: list[str] = []
    for a in recipients:
        if protocol == "smime":
            found = smime.certs_for(a.addr, gpg or smime.DEFAULT)
        else:
            found = openpgp.keys_for(a.addr, gpg or GnuPG())
        if found:
            keys.append(found[0])
        else:
            missing.append(a.addr)
    return keys, missing


def draft_bytes(
    draft: Draft, account: Account, *, now: datetime | None = None, gpg: GnuPG | None = None
) -> bytes:
    """``draft`` as a message for the Drafts folder: Bcc kept, recipients optional, 8-bit
    allowed (IMAP APPEND takes it); ``draft_from_message`` reads it back."""
    return build_mime(draft, account, True, True, now=now, for_draft=True, gpg=gpg).sent_copy


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
    ascii = ascii_domain(domain)
    if ascii is None:
        raise ComposeError(f"{domain!r} is not a valid domain name")
    return ascii


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

    def verbatim(self, field: str) -> None:
        """A whole field (name, value and CRLF line ends) made and folded by its caller."""
        self._lines.append(field)

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
