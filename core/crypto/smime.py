"""S/MIME (RFC 8551) reading and writing through ``gpgsm``, beside ``openpgp.py``.

gpgsm takes the same options as gpg for what matters here (``--status-fd``, ``--with-colons``,
``--batch``, ``--pinentry-mode``), so ``gpg.run`` runs it with ``GnuPG("gpgsm", home)``; its
status lines are gpg's (GOODSIG, BADSIG, EXPKEYSIG, VALIDSIG, TRUST_*, ENC_TO,
DECRYPTION_OKAY), and the result is the same ``Security`` the reader already shows.

Three shapes are read: ``multipart/signed`` with ``application/pkcs7-signature`` (a detached
signature over the first part's exact bytes, cut from the raw message as for PGP/MIME),
``application/pkcs7-mime`` with ``smime-type=signed-data`` (opaque: the signed entity is
inside the CMS object, gpgsm gives it back once verified) and ``enveloped-data`` (decrypted;
what comes out may itself be signed, either way). The plaintext stays in memory, as for
OpenPGP; the cache keeps the message as it came.

A certificate proves a name only through its issuer: a good signature whose chain does not
end at an authority the user trusts (gpgsm's ``trustlist.txt``) is shown as unproven, not as
good. CRL and OCSP checks are gpgsm's own settings (dirmngr); nothing here asks the network.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import os
import tempfile

from kittiwake.core.crypto.gpg import GnuPG, GpgMissing, GpgResult, run, unescape
from kittiwake.core.crypto.openpgp import (
    _SIG_STATES,
    CryptoError,
    _crlf,
    _decryption,
    _outer_fields,
    _parts,
    _payload,
    _split_head,
    _top,
)
from kittiwake.core.message.mime import ParsedMessage, parse_message
from kittiwake.core.message.security import Security, Signature, SigState

DEFAULT = GnuPG(program="gpgsm")
PROTOCOL = "S/MIME"
_SIGNATURE_TYPES = ("application/pkcs7-signature", "application/x-pkcs7-signature")
_MIME_TYPES = ("application/pkcs7-mime", "application/x-pkcs7-mime")
#: gpgsm's TRUST_* after a signature: whether the certificate chains to a trusted root.
_CHAIN = {
    "TRUST_FULLY": "full (certificate chain valid)",
    "TRUST_ULTIMATE": "full (certificate chain valid)",
    "TRUST_MARGINAL": "marginal",
    "TRUST_UNDEFINED": "none: the issuer is not trusted",
    "TRUST_NEVER": "none: the issuer is not trusted",
}
#: libgcrypt hash algorithm ids (SIG_CREATED's third field) as RFC 8551 micalg names.
_MICALG = {"2": "sha-1", "8": "sha-256", "9": "sha-384", "10": "sha-512", "11": "sha-224"}


def kind(raw: bytes) -> str | None:
    """ "signed" (detached), "opaque", "enveloped" or None: what ``open_message`` will do."""
    top = _top(raw)
    if top is None:
        return None
    ctype = top.get_content_type()
    if ctype == "multipart/signed":
        protocol = str(top.get_param("protocol") or "").lower()
        return "signed" if protocol in _SIGNATURE_TYPES else None
    if ctype in _MIME_TYPES or (
        ctype == "application/octet-stream"
        and str(top.get_filename() or "").lower().endswith(".p7m")
    ):
        smime_type = str(top.get_param("smime-type") or "").lower()
        return "opaque" if smime_type == "signed-data" else "enveloped"
    return None


async def open_message(
    parsed: ParsedMessage, gpgsm: GnuPG = DEFAULT, *, interactive: bool = False
) -> ParsedMessage:
    """``parsed`` verified and decrypted; never raises for a bad message or a missing gpgsm:
    the result says what could not be done. A message that is not S/MIME comes back as is."""
    what = kind(parsed.raw)
    if what is None:
        return parsed
    try:
        return await asyncio.to_thread(_open, parsed, what, gpgsm, interactive)
    except GpgMissing as exc:
        note = Security(
            protocol=PROTOCOL, error=str(exc), encrypted=what == "enveloped", signed=True
        )
        return dataclasses.replace(parsed, security=note)


def _open(parsed: ParsedMessage, what: str, gpgsm: GnuPG, interactive: bool) -> ParsedMessage:
    head, _ = _split_head(parsed.raw)
    entity, security = _unwrap(parsed.raw, what, gpgsm, interactive)
    if entity is None:
        return dataclasses.replace(parsed, security=security)
    inner = kind(entity) if what == "enveloped" else None
    if inner in ("signed", "opaque"):  # signed, then encrypted (RFC 8551 section 3.7)
        unwrapped, checked = _unwrap(entity, inner, gpgsm, interactive)
        if unwrapped is not None:
            entity = unwrapped
        security = dataclasses.replace(
            security, signed=True, signatures=security.signatures + checked.signatures
        )
    shown = parse_message(_outer_fields(head, entity) + entity)
    return dataclasses.replace(shown, headers=parsed.headers, raw=parsed.raw, security=security)


def _unwrap(
    raw: bytes, what: str | None, gpgsm: GnuPG, interactive: bool
) -> tuple[bytes | None, Security]:
    if what == "signed":
        return _verify_detached(raw, gpgsm)
    if what == "opaque":
        result = run(gpgsm, ["--verify", "--output", "-", "-"], _payload(raw))
        sigs = _signatures(result)
        entity = result.stdout if any(s.state is not SigState.ERROR for s in sigs) else None
        error = "" if sigs else "the signed data could not be read"
        return entity, Security(protocol=PROTOCOL, signed=True, signatures=sigs, error=error)
    result = run(gpgsm, ["--decrypt", "-"], _payload(raw), interactive=interactive)
    security = dataclasses.replace(_decryption(result), protocol=PROTOCOL, signed=False)
    return (result.stdout if security.decrypted else None), security


def _verify_detached(raw: bytes, gpgsm: GnuPG) -> tuple[bytes | None, Security]:
    parts = _parts(raw)
    if len(parts) != 2:
        return None, Security(protocol=PROTOCOL, signed=True, error="malformed multipart/signed")
    signed, signature = parts
    with tempfile.TemporaryDirectory(prefix="kittiwake-p7s-") as tmp:
        path = os.path.join(tmp, "smime.p7s")  # a signature is no secret
        with open(path, "wb") as out:
            out.write(_payload(signature))
        result = run(gpgsm, ["--verify", path, "-"], _crlf(signed))
    sigs = _signatures(result)
    return signed, Security(protocol=PROTOCOL, signed=True, signatures=sigs)


# -- status lines ----------------------------------------------------------------------------


def _signatures(result: GpgResult) -> tuple[Signature, ...]:
    """One Signature per NEWSIG. gpgsm says nothing more than NEWSIG (and an ERROR) for a
    signer whose certificate is neither in the keybox nor in the message: unknown."""
    sigs: list[Signature] = []
    current: Signature | None = None
    for line in result.status:
        keyword, args = line[0], line[1:]
        if keyword == "NEWSIG":
            if current is not None:
                sigs.append(current)
            current = Signature(SigState.UNKNOWN_KEY)
        elif keyword in _SIG_STATES and args:
            current = Signature(_SIG_STATES[keyword], fingerprint=args[0], key_id=args[0][-16:])
            current = dataclasses.replace(current, user_id=_subject(" ".join(args[1:])))
        elif keyword == "ERRSIG" and args and current is not None:
            current = dataclasses.replace(current, state=SigState.ERROR, key_id=args[0])
        elif keyword in _CHAIN and current is not None:
            current = dataclasses.replace(current, trust=_CHAIN[keyword])
    if current is not None:
        sigs.append(current)
    return tuple(sigs)


def _subject(field: str) -> str:
    """gpgsm's subject (``/CN=Alice/EMail=alice@example.org``) as ``Alice <alice@...>``
    when it has both; else the subject as given."""
    text = unescape(field)
    names = dict(
        (key.lower(), value)
        for key, _, value in (p.partition("=") for p in text.split("/") if "=" in p)
    )
    cn, mail = names.get("cn", ""), names.get("email", "")
    if cn and mail:
        return f"{cn} <{mail}>"
    return text.strip("/") or mail


# -- writing (RFC 8551) ----------------------------------------------------------------------


def _boundary() -> str:
    return "=_kw-smime-" + os.urandom(12).hex()


def _base64(data: bytes) -> bytes:
    encoded = base64.b64encode(data)
    return b"".join(encoded[i : i + 76] + b"\r\n" for i in range(0, len(encoded), 76))


def sign_entity(entity: bytes, signer: str, gpgsm: GnuPG = DEFAULT) -> bytes:
    """A multipart/signed entity (RFC 8551 section 3.5) around ``entity``, a 7-bit MIME
    entity, with a detached CMS signature by the certificate ``signer`` names (the chain
    minus the root goes with it, so a reader who trusts the root can check it)."""
    data = _crlf(entity)
    result = run(gpgsm, ["--detach-sign", "--include-certs", "-2", "--local-user", signer], data)
    created = [line for line in result.status if line[0] == "SIG_CREATED"]
    if result.returncode != 0 or not created:
        raise CryptoError(f"gpgsm could not sign with {signer}: {_why(result)}")
    micalg = _MICALG.get(created[0][3] if len(created[0]) > 3 else "", "sha-256")
    b = _boundary()
    return (
        f'Content-Type: multipart/signed; protocol="application/pkcs7-signature";\r\n'
        f' micalg="{micalg}"; boundary="{b}"\r\n\r\n'
        "This is an S/MIME signed message (RFC 8551).\r\n"
        f"--{b}\r\n".encode()
        + data
        + (
            f"\r\n--{b}\r\n"
            'Content-Type: application/pkcs7-signature; name="smime.p7s"\r\n'
            "Content-Transfer-Encoding: base64\r\n"
            'Content-Disposition: attachment; filename="smime.p7s"\r\n'
            "Content-Description: S/MIME cryptographic signature\r\n\r\n"
        ).encode()
        + _base64(result.stdout)
        + f"\r\n--{b}--\r\n".encode()
    )


def encrypt_entity(
    entity: bytes, recipients: list[str], signer: str | None = None, gpgsm: GnuPG = DEFAULT
) -> bytes:
    """An ``application/pkcs7-mime; smime-type=enveloped-data`` entity holding ``entity``
    (signed first by ``signer`` when set: sign, then encrypt) for every certificate in
    ``recipients`` (fingerprints). CMS names each recipient's certificate, so there is no
    hidden recipient: the caller refuses Bcc."""
    inner = sign_entity(entity, signer, gpgsm) if signer is not None else _crlf(entity)
    args = ["--encrypt"]
    for cert in recipients:
        args += ["--recipient", cert]
    result = run(gpgsm, args, inner)
    if result.returncode != 0 or not result.stdout:
        raise CryptoError(f"gpgsm could not encrypt: {_why(result)}")
    return (
        b'Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name="smime.p7m"\r\n'
        b"Content-Transfer-Encoding: base64\r\n"
        b'Content-Disposition: attachment; filename="smime.p7m"\r\n'
        b"Content-Description: S/MIME encrypted message\r\n\r\n" + _base64(result.stdout)
    )


def _why(result: GpgResult) -> str:
    for line in result.status:
        if line[0] == "INV_RECP" and len(line) > 2:
            return f"no usable certificate for {unescape(line[2])}"
        if line[0] == "INV_SGNR" and len(line) > 2:
            return f"no usable secret key and certificate for {unescape(line[2])}"
    return f"gpgsm exit status {result.returncode}"


def certs_for(address: str, gpgsm: GnuPG = DEFAULT, secret: bool = False) -> list[str]:
    """Fingerprints of the certificates for ``address`` (``--with-colons``) that are neither
    revoked nor expired nor invalid and may encrypt (or, for ``secret``, sign)."""
    listing = "--list-secret-keys" if secret else "--list-keys"
    result = run(gpgsm, [listing, "--", f"<{address}>"])
    wanted = "s" if secret else "e"
    found: list[str] = []
    usable = False
    for line in result.stdout.decode("utf-8", "replace").splitlines():
        fields = line.split(":")
        if fields[0] in ("crt", "crs"):
            validity = fields[1] if len(fields) > 1 else ""
            caps = fields[11] if len(fields) > 11 else ""
            usable = validity not in ("r", "e", "d", "i") and wanted in caps
        elif fields[0] == "fpr" and usable and len(fields) > 9:
            found.append(fields[9])
            usable = False
    return found
