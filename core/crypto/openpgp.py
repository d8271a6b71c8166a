"""OpenPGP reading: PGP/MIME (RFC 3156) and inline PGP, verified and decrypted by GnuPG.

``open_message`` takes a parsed message and, when it is signed or encrypted, returns it with
its ``security`` result and, once decrypted, the decrypted body in place of the ciphertext.
The caller decides where that plaintext may go: ``MailApi`` keeps it in memory and indexes it
only when ``index_decrypted`` is on; the cache keeps the message as it came, encrypted.

A detached signature covers the signed part's exact bytes, so that part is cut from the raw
message here (the ``email`` package does not give back a part's bytes as sent), with line
ends made CRLF as RFC 3156 asks.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import tempfile
from email.message import Message

from kittiwake.core.crypto.gpg import GnuPG, GpgMissing, GpgResult, run, unescape
from kittiwake.core.message.charset import decode_bytes
from kittiwake.core.message.mime import ParsedMessage, parse_message, parse_tree
from kittiwake.core.message.security import Security, Signature, SigState

_DEFAULT = GnuPG()
_BEGIN_SIGNED = "-----BEGIN PGP SIGNED MESSAGE-----"
_BEGIN_MESSAGE = "-----BEGIN PGP MESSAGE-----"
_INLINE_BEGIN = re.compile(r"^-----BEGIN PGP (SIGNED MESSAGE|MESSAGE)-----\r?$", re.M)
_INLINE_END = {
    "SIGNED MESSAGE": "-----END PGP SIGNATURE-----",
    "MESSAGE": "-----END PGP MESSAGE-----",
}
#: Each inline block is one gpg run: a message of thousands of tiny blocks must not hold the
#: reader for minutes. Blocks past these are left as they came (and the text is "partial").
MAX_INLINE_BLOCKS = 16
#: gpg-agent's "No pinentry" (GPG_ERR_NO_PIN_ENTRY): a passphrase is needed, none was cached.
_NO_PINENTRY = 85
_SIG_STATES = {
    "GOODSIG": SigState.GOOD,
    "BADSIG": SigState.BAD,
    "EXPSIG": SigState.EXPIRED_SIG,
    "EXPKEYSIG": SigState.EXPIRED_KEY,
    "REVKEYSIG": SigState.REVOKED_KEY,
}
_TRUST = {
    "TRUST_UNDEFINED": "undefined",
    "TRUST_NEVER": "never",
    "TRUST_MARGINAL": "marginal",
    "TRUST_FULLY": "full",
    "TRUST_ULTIMATE": "ultimate",
}


def kind(raw: bytes, text: str | None) -> str | None:
    """ "signed", "encrypted", "inline" or None: whether ``open_message`` has work to do."""
    top = _top(raw)
    if top is not None:
        ctype = top.get_content_type()
        protocol = str(top.get_param("protocol") or "").lower()
        if ctype == "multipart/signed" and protocol == "application/pgp-signature":
            return "signed"
        if ctype == "multipart/encrypted" and protocol == "application/pgp-encrypted":
            return "encrypted"
    if text is not None and (_BEGIN_SIGNED in text or _BEGIN_MESSAGE in text):
        return "inline"
    return None


async def open_message(
    parsed: ParsedMessage, gpg: GnuPG = _DEFAULT, *, interactive: bool = False
) -> ParsedMessage:
    """``parsed`` verified and decrypted (see the module docstring); never raises for a bad
    message or a missing gpg: the result says what could not be done."""
    what = kind(parsed.raw, parsed.text)
    if what is None:
        return parsed
    try:
        return await asyncio.to_thread(_open, parsed, what, gpg, interactive)
    except GpgMissing as exc:
        note = Security(error=str(exc), encrypted=what == "encrypted", signed=True)
        return dataclasses.replace(parsed, security=note)


def _open(parsed: ParsedMessage, what: str, gpg: GnuPG, interactive: bool) -> ParsedMessage:
    if what == "inline":
        return _inline(parsed, gpg, interactive)
    head, _ = _split_head(parsed.raw)
    if what == "signed":
        entity, security = _verify_entity(parsed.raw, gpg)
        if entity is None:
            return dataclasses.replace(parsed, security=security)
    else:
        entity, security = _decrypt_entity(parsed.raw, gpg, interactive)
        if entity is None:
            return dataclasses.replace(parsed, security=security)
        if kind(entity, None) == "signed":  # signed, then encrypted (RFC 3156 section 6.1)
            inner, checked = _verify_entity(entity, gpg)
            if inner is not None:
                entity = inner
                security = dataclasses.replace(
                    security, signed=True, signatures=security.signatures + checked.signatures
                )
    shown = parse_message(_outer_fields(head, entity) + entity)
    return dataclasses.replace(shown, headers=parsed.headers, raw=parsed.raw, security=security)


# -- PGP/MIME ------------------------------------------------------------------------------


def _top(raw: bytes) -> Message | None:
    head, _ = _split_head(raw)
    try:
        return parse_tree(head + b"\r\n")
    except Exception:
        return None


def _split_head(raw: bytes) -> tuple[bytes, bytes]:
    """The header block (with its last line end) and the body."""
    match = re.search(rb"\r?\n\r?\n", raw)
    if match is None:
        return raw, b""
    return raw[: match.start()] + b"\r\n", raw[match.end() :]


def _outer_fields(head: bytes, entity: bytes = b"") -> bytes:
    """The outer header fields minus Content-*: the inner entity brings its own. When the
    entity carries protected headers (``protected-headers="v1"``: its own Subject, From...,
    the outer Subject of an encrypted message being "..."), the outer fields it repeats are
    left out too, so the inner ones are what the message says."""
    inner_head, _ = _split_head(entity)
    inner = {name for name, _ in _fields(inner_head)} if _protected(entity) else set()
    kept = [
        f for name, f in _fields(head) if not name.startswith(b"content-") and name not in inner
    ]
    return b"".join(f + b"\r\n" for f in kept)


def _fields(head: bytes) -> list[tuple[bytes, bytes]]:
    """(lower-case name, whole field with its folded lines) of a header block."""
    fields: list[bytes] = []
    for line in head.replace(b"\r\n", b"\n").split(b"\n"):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += b"\r\n" + line
        elif line:
            fields.append(line)
    return [(f.partition(b":")[0].strip().lower(), f) for f in fields]


def _protected(entity: bytes) -> bool:
    top = _top(entity) if entity else None
    return top is not None and str(top.get_param("protected-headers") or "").lower() == "v1"


def _parts(raw: bytes) -> list[bytes]:
    """The body parts of a multipart entity, byte for byte (RFC 2046 delimiters: the line end
    before a delimiter belongs to it, not to the part)."""
    top = _top(raw)
    boundary = top.get_boundary() if top is not None else None
    if not boundary:
        return []
    _, body = _split_head(raw)
    delimiter = re.compile(
        rb"(?:\A|\r?\n)--"
        + re.escape(boundary.encode("utf-8", "surrogateescape"))
        + rb"(--)?[ \t]*(?:\r?\n|\Z)"
    )
    parts: list[bytes] = []
    start: int | None = None
    for match in delimiter.finditer(body):
        if start is not None:
            parts.append(body[start : match.start()])
        if match.group(1):
            return parts
        start = match.end()
    return parts


def _crlf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def _payload(entity: bytes) -> bytes:
    try:
        part = parse_tree(entity)
        data = part.get_payload(decode=True)
    except Exception:
        return b""
    return data if isinstance(data, bytes) else b""


def _verify_entity(raw: bytes, gpg: GnuPG) -> tuple[bytes | None, Security]:
    parts = _parts(raw)
    if len(parts) != 2:
        return None, Security(signed=True, error="malformed multipart/signed")
    signed, signature = parts
    sig = _payload(signature)
    with tempfile.TemporaryDirectory(prefix="kittiwake-sig-") as tmp:
        path = os.path.join(tmp, "signature.asc")  # a signature is no secret
        with open(path, "wb") as out:
            out.write(sig)
        result = run(gpg, ["--verify", path, "-"], _crlf(signed))
    return signed, Security(signed=True, signatures=_signatures(result))


def _decrypt_entity(raw: bytes, gpg: GnuPG, interactive: bool) -> tuple[bytes | None, Security]:
    parts = _parts(raw)
    if len(parts) != 2:
        return None, Security(encrypted=True, error="malformed multipart/encrypted")
    result = run(gpg, ["--decrypt"], _payload(parts[1]), interactive=interactive)
    security = _decryption(result)
    return (result.stdout if security.decrypted else None), security


# -- inline PGP ----------------------------------------------------------------------------


def _inline(parsed: ParsedMessage, gpg: GnuPG, interactive: bool) -> ParsedMessage:
    """Every armored block of the text, in order: each one verified or decrypted and, when
    that worked, replaced by its plaintext; the result sums them up (decrypted only if every
    encrypted block was; ``partial`` when text stands outside the blocks)."""
    text = parsed.text or ""
    spans = _inline_blocks(text)
    if not spans:
        return parsed
    # A clearsigned text is checked as the bytes that were signed: in the part's charset.
    signed_charset = _text_charset(parsed.raw)
    pieces: list[str] = []
    outside: list[str] = []
    sigs: list[Signature] = []
    recipients: list[str] = []
    errors: list[str] = []
    encrypted_any = False
    decrypted_all = True
    at = 0
    for start, end, encrypted in spans:
        pieces.append(text[at:start])
        outside.append(text[at:start])
        block = text[start:end]
        charset = "utf-8" if encrypted else signed_charset
        try:
            data = block.encode(charset)
        except (LookupError, UnicodeError):
            charset, data = "utf-8", block.encode("utf-8")
        result = run(gpg, ["--decrypt"], data, interactive=interactive)
        plain = decode_bytes(result.stdout, charset).replace("\r\n", "\n")
        if encrypted:
            encrypted_any = True
            done = _decryption(result)
            sigs += done.signatures
            recipients += done.recipients
            if done.error:
                errors.append(done.error)
            decrypted_all = decrypted_all and done.decrypted
            pieces.append(plain if done.decrypted else block)
        else:
            checked = _signatures(result)
            sigs += checked
            good = any(sig.state is SigState.GOOD for sig in checked)
            pieces.append(plain if good else block)  # unproven text is shown as it came
        at = end
    pieces.append(text[at:])
    outside.append(text[at:])
    security = Security(
        encrypted=encrypted_any,
        decrypted=encrypted_any and decrypted_all,
        error=errors[0] if errors else "",
        recipients=tuple(dict.fromkeys(recipients)),
        signatures=tuple(sigs),
        signed=bool(sigs) or any(not encrypted for _, _, encrypted in spans),
        inline=True,
        partial=any(piece.strip() for piece in outside),
    )
    return dataclasses.replace(parsed, text="".join(pieces), security=security)


def _text_charset(raw: bytes) -> str:
    """The charset of the first text/plain part (the one ``ParsedMessage.text`` begins with)."""
    try:
        for part in parse_tree(raw).walk():
            if part.get_content_type() == "text/plain" and not part.is_multipart():
                return part.get_content_charset() or "us-ascii"
    except Exception:  # a part email cannot read: UTF-8, as for the rest
        return "utf-8"
    return "utf-8"


def _inline_blocks(text: str) -> list[tuple[int, int, bool]]:
    """(start, end, encrypted) of each armored block: a BEGIN line, then its END line found
    once from there, then the next BEGIN after that END (a regular expression spanning both
    rescanned the text from every BEGIN line of a hostile message: quadratic). A BEGIN with
    no END ends the search: every later BEGIN of that kind would look for it again."""
    spans: list[tuple[int, int, bool]] = []
    pos = 0
    while len(spans) < MAX_INLINE_BLOCKS and (begin := _INLINE_BEGIN.search(text, pos)):
        end_line = _INLINE_END[begin.group(1)]
        at = text.find("\n" + end_line, begin.end())
        if at < 0:
            break
        end = at + 1 + len(end_line)
        spans.append((begin.start(), end, begin.group(1) == "MESSAGE"))
        pos = end
    return spans


# -- status lines --------------------------------------------------------------------------


def _signatures(result: GpgResult) -> tuple[Signature, ...]:
    sigs: list[Signature] = []
    current: Signature | None = None

    def flush() -> None:
        nonlocal current
        if current is not None:
            sigs.append(current)
        current = None

    for line in result.status:
        keyword, args = line[0], line[1:]
        if keyword == "NEWSIG":
            flush()
        elif keyword in _SIG_STATES and args:
            flush()
            current = Signature(
                _SIG_STATES[keyword], key_id=args[0], user_id=unescape(" ".join(args[1:]))
            )
        elif keyword == "ERRSIG" and args:
            flush()
            missing = len(args) > 5 and args[5] == "9"
            state = SigState.UNKNOWN_KEY if missing else SigState.ERROR
            fpr = args[6] if len(args) > 6 and args[6] != "-" else ""
            current = Signature(state, key_id=args[0], fingerprint=fpr if not missing else "")
        elif keyword == "VALIDSIG" and args and current is not None:
            primary = args[9] if len(args) > 9 else args[0]
            current = dataclasses.replace(current, fingerprint=primary)
        elif keyword in _TRUST and current is not None:
            current = dataclasses.replace(current, trust=_TRUST[keyword])
    flush()
    return tuple(sigs)


def _decryption(result: GpgResult) -> Security:
    keywords = {line[0] for line in result.status}
    recipients = tuple(line[1] for line in result.status if line[0] == "ENC_TO" and len(line) > 1)
    ok = "DECRYPTION_OKAY" in keywords and "DECRYPTION_FAILED" not in keywords
    error = ""
    if not ok:
        codes = [
            int(f)
            for line in result.status
            if line[0] in ("ERROR", "FAILURE")
            for f in line[2:3]
            if f.isdigit()
        ]
        if any(code & 0xFFFF == _NO_PINENTRY for code in codes):
            error = "a passphrase is needed; press D to decrypt"
        elif "NO_SECKEY" in keywords and "DECRYPTION_OKAY" not in keywords:
            error = "no secret key for it in your keyring"
        else:
            error = "it could not be decrypted"
    return Security(
        encrypted=True,
        decrypted=ok,
        error=error,
        recipients=recipients,
        signed=any(
            line[0] in ("NEWSIG", "ERRSIG") or line[0] in _SIG_STATES for line in result.status
        ),
        signatures=_signatures(result),
    )


# -- writing (RFC 3156) ----------------------------------------------------------------------


class CryptoError(Exception):
    """gpg refused to sign or encrypt; the message says why in one sentence."""


def _boundary() -> str:
    return "=_kw-pgp-" + os.urandom(12).hex()


def sign_entity(entity: bytes, signer: str, gpg: GnuPG = _DEFAULT) -> bytes:
    """A multipart/signed entity (headers and body) around ``entity``, a MIME entity that is
    already 7-bit (quoted-printable or base64), signed by the key ``signer`` names."""
    data = _crlf(entity)
    result = run(
        gpg,
        ["--armor", "--detach-sign", "--digest-algo", "SHA256", "--local-user", signer],
        data,
    )
    if result.returncode != 0 or not any(line[0] == "SIG_CREATED" for line in result.status):
        raise CryptoError(f"gpg could not sign with {signer}: {_why(result)}")
    b = _boundary()
    return (
        f'Content-Type: multipart/signed; micalg="pgp-sha256";\r\n'
        f' protocol="application/pgp-signature"; boundary="{b}"\r\n\r\n'
        f"This is an OpenPGP/MIME signed message (RFC 3156).\r\n"
        f"--{b}\r\n".encode()
        + data
        + (
            f"\r\n--{b}\r\n"
            'Content-Type: application/pgp-signature; name="signature.asc"\r\n'
            'Content-Disposition: attachment; filename="signature.asc"\r\n'
            "Content-Description: OpenPGP digital signature\r\n\r\n"
        ).encode()
        + _crlf(result.stdout)
        + f"\r\n--{b}--\r\n".encode()
    )


def encrypt_entity(
    entity: bytes,
    recipients: list[str],
    signer: str | None = None,
    gpg: GnuPG = _DEFAULT,
    hidden: list[str] | None = None,
) -> bytes:
    """A multipart/encrypted entity holding ``entity`` encrypted to every key in
    ``recipients`` (fingerprints the user chose: ``--trust-model always`` takes the choice as
    given), and to ``hidden`` ones without naming them (Bcc), signed inside the encryption by
    ``signer`` when set (RFC 3156 section 6.2)."""
    args = ["--armor", "--encrypt", "--trust-model", "always"]
    for key in recipients:
        args += ["--recipient", key]
    for key in hidden or []:  # Bcc: no key id in the message says who else got it
        args += ["--hidden-recipient", key]
    if signer is not None:
        args += ["--sign", "--local-user", signer, "--digest-algo", "SHA256"]
    result = run(gpg, args, _crlf(entity))
    if result.returncode != 0 or not any(line[0] == "END_ENCRYPTION" for line in result.status):
        raise CryptoError(f"gpg could not encrypt: {_why(result)}")
    b = _boundary()
    return (
        (
            f'Content-Type: multipart/encrypted; protocol="application/pgp-encrypted";\r\n'
            f' boundary="{b}"\r\n\r\n'
            "This is an OpenPGP/MIME encrypted message (RFC 3156).\r\n"
            f"--{b}\r\n"
            "Content-Type: application/pgp-encrypted\r\n"
            "Content-Description: PGP/MIME version identification\r\n\r\n"
            "Version: 1\r\n\r\n"
            f"--{b}\r\n"
            'Content-Type: application/octet-stream; name="encrypted.asc"\r\n'
            'Content-Disposition: inline; filename="encrypted.asc"\r\n'
            "Content-Description: OpenPGP encrypted message\r\n\r\n"
        ).encode()
        + _crlf(result.stdout)
        + f"\r\n--{b}--\r\n".encode()
    )


def _why(result: GpgResult) -> str:
    for line in result.status:
        if line[0] == "INV_RECP" and len(line) > 2:
            return f"no usable key for {unescape(line[2])}"
        if line[0] == "INV_SGNR" and len(line) > 2:
            return f"no usable secret key for {unescape(line[2])}"
    return f"gpg exit status {result.returncode}"


def keys_for(address: str, gpg: GnuPG = _DEFAULT, secret: bool = False) -> list[str]:
    """Fingerprints of the usable keys whose user ID holds ``address`` (``--with-colons``):
    not revoked, not expired, with an encryption (or, for ``secret``, signing) capability."""
    listing = "--list-secret-keys" if secret else "--list-keys"
    result = run(gpg, [listing, "--", f"<{address}>"])
    wanted = "s" if secret else "e"
    found: list[str] = []
    usable = first_fpr = False
    for line in result.stdout.decode("utf-8", "replace").splitlines():
        fields = line.split(":")
        if fields[0] in ("pub", "sec"):
            validity = fields[1] if len(fields) > 1 else ""
            caps = fields[11] if len(fields) > 11 else ""
            usable = validity not in ("r", "e", "d", "i") and wanted.upper() in caps
            first_fpr = True
        elif fields[0] == "fpr" and usable and first_fpr and len(fields) > 9:
            found.append(fields[9])
            first_fpr = False
        elif fields[0] in ("sub", "ssb"):
            first_fpr = False
    return found
