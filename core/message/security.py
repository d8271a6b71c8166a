"""What a message's signature or encryption proved, as data the reader shows in plain words.

The types live here, beside ``ParsedMessage``, so a parsed message can carry them; the work
(running GnuPG) is ``core/crypto``. ``lines()`` is the only wording: the reader prints it in
the header block, outside the message text, so nothing in a body can imitate it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class SigState(enum.Enum):
    GOOD = "good"
    BAD = "bad"
    UNKNOWN_KEY = "unknown key"
    EXPIRED_KEY = "expired key"
    EXPIRED_SIG = "expired signature"
    REVOKED_KEY = "revoked key"
    ERROR = "error"


@dataclass(frozen=True)
class Signature:
    state: SigState
    key_id: str = ""
    """The long key id gpg reported (16 hex digits)."""
    fingerprint: str = ""
    """The signing key's primary fingerprint, when the key is known."""
    user_id: str = ""
    """The key's user ID as the keyring says (NAME <ADDRESS>): never the message's From."""
    trust: str = ""
    """gpg's validity for the key: ultimate, full, marginal, never, or undefined; for S/MIME,
    whether the certificate chains to a trusted root ("full (certificate chain valid)")."""


@dataclass(frozen=True)
class Security:
    """The OpenPGP (or S/MIME) result of one message."""

    protocol: str = "OpenPGP"
    encrypted: bool = False
    decrypted: bool = False
    error: str = ""
    """Why decryption or checking failed, in words (no secret key, passphrase needed, a
    malformed message, gpg missing)."""
    recipients: tuple[str, ...] = ()
    """The key ids the message was encrypted to."""
    signatures: tuple[Signature, ...] = ()
    signed: bool = False
    inline: bool = False
    partial: bool = False
    """Inline PGP with text outside the signed or encrypted block: that text is unproven."""

    def lines(self) -> list[tuple[str, str]]:
        """(level, sentence) pairs; level is "good", "bad" or "note"."""
        out: list[tuple[str, str]] = []
        how = f"{self.protocol}{', inline' if self.inline else ''}"
        if self.encrypted:
            if self.decrypted:
                out.append(("good", f"Encrypted ({how}); decrypted."))
            else:
                keys = ", ".join(self.recipients)
                reason = self.error or "it could not be decrypted"
                out.append(
                    ("bad", f"Encrypted ({how}): {reason}" + (f" (to {keys})" if keys else ""))
                )
        if self.signed and not self.signatures and not self.encrypted:
            why = f": {self.error}" if self.error else "."
            out.append(("bad", f"Signed ({how}), but the signature could not be checked{why}"))
        for sig in self.signatures:
            out.append(_signature_line(sig, how))
        if self.partial:
            out.append(("note", "Only part of this text is signed or encrypted."))
        return out


def _key(sig: Signature) -> str:
    if sig.fingerprint:
        fpr = sig.fingerprint
        return " ".join(fpr[i : i + 4] for i in range(0, len(fpr), 4))
    return sig.key_id


def _signature_line(sig: Signature, how: str) -> tuple[str, str]:
    who = sig.user_id or "an unnamed key"
    smime = how.startswith("S/MIME")
    if sig.state is SigState.GOOD and smime and not sig.trust.startswith("full"):
        # An intact signature proves a name only through an issuer the user trusts.
        return (
            "note",
            f"Signature ({how}) from {who} is intact, but its certificate is NOT TRUSTED "
            f"(certificate {_key(sig)}; trust: {sig.trust or 'none'}).",
        )
    if sig.state is SigState.GOOD:
        trust = sig.trust or "undefined"
        what = "certificate" if smime else "key"
        return ("good", f"Good signature ({how}) from {who}; {what} {_key(sig)}; trust: {trust}.")
    if sig.state is SigState.BAD:
        return (
            "bad",
            f"BAD signature ({how}) claimed by key {_key(sig)}: "
            "the message was changed after signing, or the signature is forged.",
        )
    if sig.state is SigState.UNKNOWN_KEY and smime:
        return (
            "note",
            f"Signed ({how}) with a certificate that is neither in the message nor in your "
            "keybox: not checked.",
        )
    if sig.state is SigState.UNKNOWN_KEY:
        return (
            "note",
            f"Signed ({how}) by unknown key {sig.key_id}: not checked. "
            f"Fetch it with: gpg --recv-keys {sig.key_id}",
        )
    if sig.state is SigState.EXPIRED_KEY:
        return ("bad", f"Signature ({how}) from {who} made with an EXPIRED key {_key(sig)}.")
    if sig.state is SigState.EXPIRED_SIG:
        return ("bad", f"EXPIRED signature ({how}) from {who}; key {_key(sig)}.")
    if sig.state is SigState.REVOKED_KEY:
        return ("bad", f"Signature ({how}) from {who} made with a REVOKED key {_key(sig)}.")
    return ("bad", f"The signature ({how}) could not be checked (key {sig.key_id or '?'}).")
