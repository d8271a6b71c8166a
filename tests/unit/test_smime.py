"""S/MIME reading and writing against a real gpgsm and a throwaway test CA (openssl)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator

import pytest
from harness.gpgsm import SmimeHome, new_ca, new_smime_home

from kittiwake.core.crypto import smime
from kittiwake.core.crypto.openpgp import CryptoError
from kittiwake.core.message.mime import ParsedMessage, parse_message
from kittiwake.core.message.security import SigState

HEAD = (
    b"From: Alice <alice@example.org>\r\nTo: Bob <bob@example.org>\r\n"
    b"Subject: secret plans\r\nMessage-ID: <smime-1@example.org>\r\nMIME-Version: 1.0\r\n"
)
ENTITY = (
    b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n"
    b"\r\nMeet at the lighthouse at dawn.\r\n"
)


@pytest.fixture(scope="module")
def home() -> Iterator[SmimeHome]:
    """Alice, Bob and Carol (expired in 2021) from one CA; Mallory from a CA nobody trusts."""
    ca = new_ca()
    home = new_smime_home(ca)
    home.add_user("Alice", "alice@example.org")
    home.add_user("Bob", "bob@example.org")
    home.add_user("Carol", "carol@example.org", expired=True)
    stranger = new_smime_home()
    stranger.add_user("Mallory", "mallory@example.org")
    home.stranger = stranger  # type: ignore[attr-defined]
    yield home
    stranger.close()
    home.close()
    ca.close()


def _open(raw: bytes, home: SmimeHome) -> ParsedMessage:
    return asyncio.run(smime.open_message(parse_message(raw), home.gnupg))


def test_detached_signature_verifies_with_the_certificate_subject(home: SmimeHome) -> None:
    raw = HEAD + smime.sign_entity(ENTITY, home.fingerprints["alice@example.org"], home.gnupg)
    assert b'protocol="application/pkcs7-signature"' in raw and b'micalg="sha-256"' in raw
    shown = _open(raw, home)
    assert shown.security is not None and shown.security.protocol == "S/MIME"
    (sig,) = shown.security.signatures
    assert sig.state is SigState.GOOD
    assert sig.user_id == "Alice <alice@example.org>"
    assert sig.fingerprint == home.fingerprints["alice@example.org"]
    assert sig.trust.startswith("full")
    assert shown.text is not None and "lighthouse" in shown.text
    assert not shown.attachments  # smime.p7s is the proof, not an attachment
    assert shown.raw == raw and shown.subject == "secret plans"
    level, line = shown.security.lines()[0]
    assert level == "good" and "Good signature (S/MIME) from Alice <alice@example.org>" in line


def test_tampered_detached_signature_is_bad(home: SmimeHome) -> None:
    raw = HEAD + smime.sign_entity(ENTITY, home.fingerprints["alice@example.org"], home.gnupg)
    shown = _open(raw.replace(b"at dawn", b"at dusk"), home)
    assert shown.security is not None
    assert [s.state for s in shown.security.signatures] == [SigState.BAD]
    assert shown.security.lines()[0][0] == "bad"


def test_lf_line_ends_still_verify(home: SmimeHome) -> None:
    raw = HEAD + smime.sign_entity(ENTITY, home.fingerprints["alice@example.org"], home.gnupg)
    shown = _open(raw.replace(b"\r\n", b"\n"), home)
    assert shown.security is not None
    assert [s.state for s in shown.security.signatures] == [SigState.GOOD]


def test_a_certificate_from_an_untrusted_ca_is_not_trusted(home: SmimeHome) -> None:
    stranger: SmimeHome = home.stranger  # type: ignore[attr-defined]
    raw = HEAD + smime.sign_entity(
        ENTITY, stranger.fingerprints["mallory@example.org"], stranger.gnupg
    )
    shown = _open(raw, home)
    assert shown.security is not None
    (sig,) = shown.security.signatures
    assert sig.state is SigState.GOOD and not sig.trust.startswith("full")
    level, line = shown.security.lines()[0]
    assert level == "note" and "NOT TRUSTED" in line and "Good signature" not in line


def test_expired_certificate_is_reported(home: SmimeHome) -> None:
    import subprocess

    signed = subprocess.run(
        [
            "gpgsm", "--homedir", str(home.home), "--batch", "--faked-system-time",
            "20200601T000000", "--local-user", home.fingerprints["carol@example.org"],
            "--detach-sign", "--include-certs", "-2",
        ],
        input=ENTITY, capture_output=True, check=True,
    ).stdout  # fmt: skip
    b = "b0undary"
    raw = (
        HEAD
        + (
            f'Content-Type: multipart/signed; protocol="application/pkcs7-signature";'
            f' micalg=sha-256; boundary="{b}"\r\n\r\n--{b}\r\n'
        ).encode()
        + ENTITY
        + (
            f"\r\n--{b}\r\nContent-Type: application/pkcs7-signature\r\n"
            f"Content-Transfer-Encoding: base64\r\n\r\n"
        ).encode()
        + base64.encodebytes(signed)
        + f"\r\n--{b}--\r\n".encode()
    )
    shown = _open(raw, home)
    assert shown.security is not None
    assert [s.state for s in shown.security.signatures] == [SigState.EXPIRED_KEY]
    assert "EXPIRED" in shown.security.lines()[0][1]


def test_opaque_signed_data_is_verified_and_unwrapped(home: SmimeHome) -> None:
    import subprocess

    der = subprocess.run(
        [
            "gpgsm", "--homedir", str(home.home), "--batch", "--local-user",
            home.fingerprints["bob@example.org"], "--sign",
        ],
        input=ENTITY, capture_output=True, check=True,
    ).stdout  # fmt: skip
    raw = (
        HEAD
        + (
            b'Content-Type: application/pkcs7-mime; smime-type=signed-data; name="smime.p7m"\r\n'
            b"Content-Transfer-Encoding: base64\r\n\r\n"
        )
        + base64.encodebytes(der)
    )
    shown = _open(raw, home)
    assert shown.security is not None and not shown.security.encrypted
    assert [(s.state, s.user_id) for s in shown.security.signatures] == [
        (SigState.GOOD, "Bob <bob@example.org>")
    ]
    assert shown.text is not None and "lighthouse" in shown.text
    assert not shown.attachments


def test_encrypted_and_signed_round_trip(home: SmimeHome) -> None:
    body = smime.encrypt_entity(
        ENTITY,
        [home.fingerprints["bob@example.org"]],
        signer=home.fingerprints["alice@example.org"],
        gpgsm=home.gnupg,
    )
    raw = HEAD + body
    assert b"lighthouse" not in raw and b"smime-type=enveloped-data" in raw
    plain = parse_message(raw)
    assert plain.text is None or "lighthouse" not in plain.text
    shown = _open(raw, home)
    assert shown.security is not None
    assert shown.security.encrypted and shown.security.decrypted
    assert [s.state for s in shown.security.signatures] == [SigState.GOOD]
    assert shown.text is not None and "lighthouse" in shown.text
    assert not shown.attachments
    assert shown.security.lines()[0] == ("good", "Encrypted (S/MIME); decrypted.")


def test_encrypted_only_has_no_signature(home: SmimeHome) -> None:
    raw = HEAD + smime.encrypt_entity(
        ENTITY, [home.fingerprints["bob@example.org"]], gpgsm=home.gnupg
    )
    shown = _open(raw, home)
    assert shown.security is not None and shown.security.decrypted
    assert shown.security.signatures == () and not shown.security.signed


def test_encrypted_to_someone_else_says_no_secret_key(home: SmimeHome) -> None:
    stranger: SmimeHome = home.stranger  # type: ignore[attr-defined]
    raw = HEAD + smime.encrypt_entity(
        ENTITY, [stranger.fingerprints["mallory@example.org"]], gpgsm=stranger.gnupg
    )
    shown = _open(raw, home)
    assert shown.security is not None
    assert shown.security.encrypted and not shown.security.decrypted
    assert "no secret key" in shown.security.error
    assert shown.text is None or "lighthouse" not in shown.text


def test_certs_for_skips_expired_and_unknown(home: SmimeHome) -> None:
    assert smime.certs_for("bob@example.org", home.gnupg) == [home.fingerprints["bob@example.org"]]
    assert smime.certs_for("bob@example.org", home.gnupg, secret=True) == [
        home.fingerprints["bob@example.org"]
    ]
    assert smime.certs_for("carol@example.org", home.gnupg) == []
    assert smime.certs_for("nobody@example.org", home.gnupg) == []


def test_encrypting_to_an_expired_certificate_is_refused(home: SmimeHome) -> None:
    with pytest.raises(CryptoError, match="gpgsm could not encrypt"):
        smime.encrypt_entity(ENTITY, [home.fingerprints["carol@example.org"]], gpgsm=home.gnupg)


def test_plain_and_pgp_mail_is_left_alone(home: SmimeHome) -> None:
    parsed = parse_message(HEAD + ENTITY)
    assert asyncio.run(smime.open_message(parsed, home.gnupg)) is parsed


def test_a_subject_with_escape_sequences_is_cleaned_in_the_reader_line() -> None:
    from kittiwake.core.message.security import Security, Signature
    from kittiwake.core.sanitize import clean_line

    sig = Signature(SigState.GOOD, user_id="Eve\x1b[2J <eve@example.org>", trust="full")
    (line,) = Security(protocol="S/MIME", signed=True, signatures=(sig,)).lines()
    assert "\x1b" not in clean_line(line[1])


def _account(email: str, **options: object):  # type: ignore[no-untyped-def]
    from kittiwake.core.config import config_from_dict

    data = {
        "accounts": {"a": {"email": email, "imap": {"host": "h"}, "smtp": {"host": "h"}, **options}}
    }
    return config_from_dict(data).accounts["a"]


def test_account_crypto_options_choose_the_protocol() -> None:
    from kittiwake.core.errors import ConfigError

    assert _account("a@example.org").crypto == "openpgp"
    signing = _account("a@example.org", smime_sign=True)
    assert signing.crypto == "smime" and signing.pgp_sign and not signing.pgp_encrypt
    assert _account("a@example.org", crypto="smime").crypto == "smime"
    with pytest.raises(ConfigError, match='crypto = "smime" does not go with pgp_sign'):
        _account("a@example.org", crypto="smime", pgp_sign=True)
    with pytest.raises(ConfigError, match="does not go with pgp_sign"):
        _account("a@example.org", pgp_encrypt=True, smime_sign=True)
    with pytest.raises(ConfigError, match="does not go with smime_sign"):
        _account("a@example.org", crypto="openpgp", smime_encrypt=True)


def test_build_mime_signs_and_encrypts_with_smime_for_an_smime_account(home: SmimeHome) -> None:
    from kittiwake.core.compose.draft import ComposeError, Draft
    from kittiwake.core.compose.mime import build_mime, draft_bytes
    from kittiwake.core.models import Address

    account = _account("alice@example.org", crypto="smime")
    to_bob = (Address("Bob", "bob@example.org"),)
    draft = Draft(to=to_bob, subject="Plans", body="Meet at the lighthouse.\n", sign=True)
    signed = build_mime(draft, account, gpg=home.gnupg)
    assert b"application/pkcs7-signature" in signed.raw
    shown = _open(signed.raw, home)
    assert shown.security is not None
    assert [s.user_id for s in shown.security.signatures] == ["Alice <alice@example.org>"]

    both = build_mime(
        Draft(to=to_bob, body="Meet at the lighthouse.\n", sign=True, encrypt=True),
        account,
        gpg=home.gnupg,
    )
    assert b"lighthouse" not in both.raw and b"enveloped-data" in both.raw
    shown = _open(both.raw, home)
    assert shown.security is not None and shown.security.decrypted
    assert [s.state for s in shown.security.signatures] == [SigState.GOOD]
    # Encrypted to Alice too, so the Sent copy reads back: a home with both certificates but
    # neither secret key (gpgsm then tries, and names, every recipient) sees two.
    observer = new_smime_home(home.ca)
    try:
        for address in ("alice@example.org", "bob@example.org"):
            observer.import_cert(home.export(address))
        locked = _open(both.raw, observer)
    finally:
        observer.close()
    assert locked.security is not None and not locked.security.decrypted
    assert set(locked.security.recipients) == {
        home.fingerprints[a][-16:] for a in ("alice@example.org", "bob@example.org")
    }

    with pytest.raises(ComposeError, match=r"no S/MIME certificate for carol@example\.org"):
        build_mime(
            Draft(to=(Address("", "carol@example.org"),), body="x\n", encrypt=True),
            account,
            gpg=home.gnupg,
        )
    with pytest.raises(ComposeError, match="Bcc"):
        build_mime(
            Draft(to=to_bob, bcc=(Address("", "alice@example.org"),), body="x\n", encrypt=True),
            account,
            gpg=home.gnupg,
        )
    stored = draft_bytes(
        Draft(to=(Address("", "carol@example.org"),), body="draft text\n", encrypt=True),
        account,
        gpg=home.gnupg,
    )
    assert b"draft text" not in stored
    saved = _open(stored, home)
    assert saved.security is not None and saved.security.decrypted
    assert saved.security.recipients == (home.fingerprints["alice@example.org"][-16:],)


def test_smime_protected_headers_replace_the_outer_subject(home: SmimeHome) -> None:
    inner = (
        b'Content-Type: text/plain; charset=utf-8; protected-headers="v1"\r\n'
        b"Subject: The real plans\r\n\r\nMeet at the lighthouse at dawn.\r\n"
    )
    head = HEAD.replace(b"Subject: secret plans", b"Subject: ...")
    raw = head + smime.encrypt_entity(
        inner,
        [home.fingerprints["bob@example.org"]],
        signer=home.fingerprints["alice@example.org"],
        gpgsm=home.gnupg,
    )
    shown = _open(raw, home)
    assert shown.subject == "The real plans"
    assert shown.security is not None
    assert [s.state for s in shown.security.signatures] == [SigState.GOOD]
