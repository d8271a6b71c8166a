"""OpenPGP reading and writing against a real gpg and throwaway keyrings."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from harness.gnupg import Keyring, new_keyring

from kittiwake.core.crypto import openpgp
from kittiwake.core.message.mime import ParsedMessage, parse_message
from kittiwake.core.message.security import SigState

HEAD = (
    b"From: Alice <alice@example.org>\r\nTo: Bob <bob@example.org>\r\n"
    b"Subject: secret plans\r\nMessage-ID: <pgp-1@example.org>\r\nMIME-Version: 1.0\r\n"
)
ENTITY = (
    b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n"
    b"\r\nMeet at the lighthouse at dawn.\r\n"
)


@pytest.fixture(scope="module")
def ring() -> Iterator[Keyring]:
    """Alice and Bob (secret keys here), Carol's key expired, Mallory's key elsewhere."""
    ring = new_keyring()
    ring.add_key("Alice", "alice@example.org")
    ring.add_key("Bob", "bob@example.org")
    ring.add_key("Carol", "carol@example.org", faked_time="20200101T000000", expire="1y")
    stranger = new_keyring()
    stranger.add_key("Mallory", "mallory@example.org")
    ring.stranger = stranger  # type: ignore[attr-defined]
    yield ring
    stranger.close()
    ring.close()


def _open(raw: bytes, ring: Keyring) -> ParsedMessage:
    return asyncio.run(openpgp.open_message(parse_message(raw), ring.gnupg))


def test_signed_pgp_mime_verifies_with_the_keyring_user_id(ring: Keyring) -> None:
    raw = HEAD + openpgp.sign_entity(ENTITY, ring.fingerprints["alice@example.org"], ring.gnupg)
    shown = _open(raw, ring)
    assert shown.security is not None
    (sig,) = shown.security.signatures
    assert sig.state is SigState.GOOD
    assert sig.user_id == "Alice <alice@example.org>"
    assert sig.fingerprint == ring.fingerprints["alice@example.org"]
    assert sig.trust == "ultimate"
    assert shown.text is not None and "lighthouse" in shown.text
    assert not shown.attachments  # signature.asc is the proof, not an attachment
    assert shown.raw == raw and shown.subject == "secret plans"
    level, line = shown.security.lines()[0]
    assert level == "good" and "Good signature" in line and "Alice <alice@example.org>" in line


def test_signed_message_with_lf_line_ends_still_verifies(ring: Keyring) -> None:
    raw = HEAD + openpgp.sign_entity(ENTITY, ring.fingerprints["alice@example.org"], ring.gnupg)
    shown = _open(raw.replace(b"\r\n", b"\n"), ring)
    assert shown.security is not None
    assert [s.state for s in shown.security.signatures] == [SigState.GOOD]


def test_tampered_signed_message_is_bad(ring: Keyring) -> None:
    raw = HEAD + openpgp.sign_entity(ENTITY, ring.fingerprints["alice@example.org"], ring.gnupg)
    tampered = raw.replace(b"at dawn", b"at dusk")
    shown = _open(tampered, ring)
    assert shown.security is not None
    assert [s.state for s in shown.security.signatures] == [SigState.BAD]
    assert shown.security.lines()[0][0] == "bad"


def test_unknown_signer_names_the_key_id(ring: Keyring) -> None:
    stranger: Keyring = ring.stranger  # type: ignore[attr-defined]
    raw = HEAD + openpgp.sign_entity(
        ENTITY, stranger.fingerprints["mallory@example.org"], stranger.gnupg
    )
    shown = _open(raw, ring)
    assert shown.security is not None
    (sig,) = shown.security.signatures
    assert sig.state is SigState.UNKNOWN_KEY
    assert sig.key_id and stranger.fingerprints["mallory@example.org"].endswith(sig.key_id)
    assert f"gpg --recv-keys {sig.key_id}" in shown.security.lines()[0][1]


def test_expired_key_is_reported(ring: Keyring) -> None:
    signed = ring.sign_clear(b"Old news.\n", "carol@example.org", faked_time="20200201T000000")
    raw = HEAD + b"Content-Type: text/plain\r\n\r\n" + signed
    shown = _open(raw, ring)
    assert shown.security is not None and shown.security.inline
    assert [s.state for s in shown.security.signatures] == [SigState.EXPIRED_KEY]
    assert "EXPIRED" in shown.security.lines()[0][1]


def test_encrypted_and_signed_round_trip(ring: Keyring) -> None:
    body = openpgp.encrypt_entity(
        ENTITY,
        [ring.fingerprints["bob@example.org"]],
        signer=ring.fingerprints["alice@example.org"],
        gpg=ring.gnupg,
    )
    raw = HEAD + body
    assert b"lighthouse" not in raw
    plain = parse_message(raw)
    assert plain.text is None or "lighthouse" not in plain.text
    shown = _open(raw, ring)
    assert shown.security is not None
    assert shown.security.encrypted and shown.security.decrypted
    assert [s.state for s in shown.security.signatures] == [SigState.GOOD]
    assert shown.text is not None and "lighthouse" in shown.text
    assert not shown.attachments  # not "encrypted.asc" any more


def test_signed_then_encrypted_verifies_the_inner_signature(ring: Keyring) -> None:
    signed = openpgp.sign_entity(ENTITY, ring.fingerprints["alice@example.org"], ring.gnupg)
    raw = HEAD + openpgp.encrypt_entity(
        signed, [ring.fingerprints["bob@example.org"]], gpg=ring.gnupg
    )
    shown = _open(raw, ring)
    assert shown.security is not None and shown.security.decrypted
    assert [s.state for s in shown.security.signatures] == [SigState.GOOD]
    assert shown.text is not None and "lighthouse" in shown.text


def test_encrypted_without_the_secret_key_says_so(ring: Keyring) -> None:
    stranger: Keyring = ring.stranger  # type: ignore[attr-defined]
    raw = HEAD + openpgp.encrypt_entity(
        ENTITY, [stranger.fingerprints["mallory@example.org"]], gpg=stranger.gnupg
    )
    shown = _open(raw, ring)
    assert shown.security is not None
    assert shown.security.encrypted and not shown.security.decrypted
    assert "no secret key" in shown.security.error
    assert shown.text is None or "lighthouse" not in shown.text


def test_inline_encrypted_and_partial_text(ring: Keyring) -> None:
    armor = ring.encrypt_armor("Café at noon.\n".encode(), ring.fingerprints["bob@example.org"])
    raw = HEAD + b"Content-Type: text/plain; charset=utf-8\r\n\r\nHi,\r\n\r\n" + armor
    shown = _open(raw, ring)
    assert shown.security is not None and shown.security.decrypted and shown.security.inline
    assert shown.security.partial  # "Hi," is outside the encrypted block
    assert shown.text is not None and "Café at noon." in shown.text
    assert "BEGIN PGP MESSAGE" not in shown.text


def test_status_cannot_be_spoofed_by_a_user_id_with_status_text(ring: Keyring) -> None:
    """A user ID holding a newline and a fake status line stays one field of GOODSIG."""
    ring.add_key("Eve\n[GNUPG:] GOODSIG 0 x", "eve@example.org")
    raw = HEAD + openpgp.sign_entity(ENTITY, ring.fingerprints["eve@example.org"], ring.gnupg)
    shown = _open(raw, ring)
    assert shown.security is not None
    assert len(shown.security.signatures) == 1


def test_plain_mail_is_left_alone(ring: Keyring) -> None:
    parsed = parse_message(HEAD + ENTITY)
    assert asyncio.run(openpgp.open_message(parsed, ring.gnupg)) is parsed


def test_keys_for_finds_encryption_keys_but_not_expired_ones(ring: Keyring) -> None:
    assert openpgp.keys_for("bob@example.org", ring.gnupg) == [ring.fingerprints["bob@example.org"]]
    assert openpgp.keys_for("carol@example.org", ring.gnupg) == []
    assert openpgp.keys_for("nobody@example.org", ring.gnupg) == []


def test_crypto_config_defaults_and_unknown_keys() -> None:
    from kittiwake.core.config import config_from_dict
    from kittiwake.core.errors import ConfigError

    accounts = {"a": {"email": "a@example.org", "imap": {"host": "h"}, "pgp_sign": True}}
    config = config_from_dict({"accounts": accounts})
    assert config.crypto.index_decrypted is False and config.crypto.gpg == "gpg"
    assert config.accounts["a"].pgp_sign and not config.accounts["a"].pgp_encrypt
    config = config_from_dict({"accounts": accounts, "crypto": {"gnupg_home": "~/g"}})
    assert config.crypto.gnupg_home is not None and not config.crypto.gnupg_home.startswith("~")
    with pytest.raises(ConfigError, match="crypto"):
        config_from_dict({"accounts": accounts, "crypto": {"index_decryptd": True}})


def test_a_missing_gpg_is_reported_not_raised(ring: Keyring) -> None:
    from kittiwake.core.crypto.gpg import GnuPG

    raw = HEAD + openpgp.sign_entity(ENTITY, ring.fingerprints["alice@example.org"], ring.gnupg)
    shown = asyncio.run(openpgp.open_message(parse_message(raw), GnuPG("/nonexistent/gpg")))
    assert shown.security is not None and "could not be started" in shown.security.error
    assert shown.security.lines()[0][0] == "bad"


def test_a_passphrase_is_asked_for_only_when_allowed() -> None:
    """Not interactive, gpg-agent may not prompt: the result says a passphrase is needed;
    interactive (the reader's D, the app stepped aside), pinentry is asked and answers."""
    ring = new_keyring()
    try:
        fpr = ring.add_protected_key("Pat", "pat@example.org", "s3cret")
        raw = HEAD + openpgp.encrypt_entity(ENTITY, [fpr], gpg=ring.gnupg)
        parsed = parse_message(raw)
        quiet = asyncio.run(openpgp.open_message(parsed, ring.gnupg))
        assert quiet.security is not None and not quiet.security.decrypted
        assert "passphrase is needed" in quiet.security.error
        asked = asyncio.run(openpgp.open_message(parsed, ring.gnupg, interactive=True))
        assert asked.security is not None and asked.security.decrypted
        assert asked.text is not None and "lighthouse" in asked.text
    finally:
        ring.close()


def _account(email: str):  # type: ignore[no-untyped-def]
    from kittiwake.core.config import config_from_dict

    data = {"accounts": {"a": {"email": email, "imap": {"host": "h"}, "smtp": {"host": "h"}}}}
    return config_from_dict(data).accounts["a"]


def _subkeys(ring: Keyring, address: str) -> set[str]:
    import subprocess

    out = subprocess.run(
        ["gpg", "--homedir", str(ring.home), "--with-colons", "--list-keys", f"<{address}>"],
        capture_output=True,
        check=True,
    ).stdout.decode()
    return {line.split(":")[4] for line in out.splitlines() if line.startswith("sub:")}


def test_build_mime_encrypts_to_recipients_and_self_and_hides_bcc(ring: Keyring) -> None:
    from kittiwake.core.compose.draft import ComposeError, Draft
    from kittiwake.core.compose.mime import build_mime, draft_bytes
    from kittiwake.core.models import Address

    if "dave@example.org" not in ring.fingerprints:
        ring.add_key("Dave", "dave@example.org")
    account = _account("alice@example.org")
    draft = Draft(
        to=(Address("Bob", "bob@example.org"),),
        bcc=(Address("Dave", "dave@example.org"),),
        subject="Plans",
        body="Meet at the lighthouse.\n",
        sign=True,
        encrypt=True,
    )
    built = build_mime(draft, account, gpg=ring.gnupg)
    assert b"lighthouse" not in built.raw and b"lighthouse" not in built.sent_copy
    assert set(built.envelope_rcpts) == {"bob@example.org", "dave@example.org"}
    shown = _open(built.raw, ring)
    assert shown.security is not None and shown.security.decrypted
    assert [s.state for s in shown.security.signatures] == [SigState.GOOD]
    named = set(shown.security.recipients)
    assert named & _subkeys(ring, "bob@example.org")
    assert named & _subkeys(ring, "alice@example.org")  # the Sent copy is readable
    assert not named & _subkeys(ring, "dave@example.org")  # Bcc: not named
    assert "0000000000000000" in named

    to_carol = Draft(to=(Address("", "carol@example.org"),), body="x\n", encrypt=True)
    with pytest.raises(ComposeError, match=r"no OpenPGP key for carol@example\.org"):
        build_mime(to_carol, account, gpg=ring.gnupg)

    stored = draft_bytes(to_carol, account, gpg=ring.gnupg)  # a draft: to the sender alone
    saved = _open(stored, ring)
    assert saved.security is not None and saved.security.decrypted
    assert set(saved.security.recipients) <= _subkeys(ring, "alice@example.org")
    signed_only = build_mime(Draft(to=to_carol.to, body="x\n", sign=True), account, gpg=ring.gnupg)
    assert b"multipart/signed" in signed_only.raw


def test_many_armor_lines_without_an_end_are_read_in_linear_time(ring: Keyring) -> None:
    import time

    text = b"-----BEGIN PGP MESSAGE-----\r\n" * 200_000
    parsed = parse_message(HEAD + b"Content-Type: text/plain\r\n\r\n" + text)
    started = time.monotonic()
    shown = asyncio.run(openpgp.open_message(parsed, ring.gnupg))
    assert time.monotonic() - started < 2.0
    assert shown.security is None and shown.text == parsed.text


def test_inline_signed_latin1_text_verifies_as_the_bytes_signed(ring: Keyring) -> None:
    signed = ring.sign_clear("Café crème à midi.\n".encode("latin-1"), "alice@example.org")
    raw = HEAD + b"Content-Type: text/plain; charset=iso-8859-1\r\n\r\n" + signed
    shown = _open(raw, ring)
    assert shown.security is not None and shown.security.inline
    assert [s.state for s in shown.security.signatures] == [SigState.GOOD]
    assert shown.text is not None and "Café crème à midi." in shown.text
    assert "BEGIN PGP" not in shown.text and not shown.security.partial


def test_protected_headers_replace_the_outer_subject(ring: Keyring) -> None:
    """An encrypted message whose outer Subject is "..." and whose inner part says
    ``protected-headers="v1"`` with the real Subject: the reader shows the inner one."""
    inner = (
        b'Content-Type: text/plain; charset=utf-8; protected-headers="v1"\r\n'
        b"Subject: The real plans\r\nFrom: Alice <alice@example.org>\r\n"
        b"\r\nMeet at the lighthouse at dawn.\r\n"
    )
    head = HEAD.replace(b"Subject: secret plans", b"Subject: ...")
    raw = head + openpgp.encrypt_entity(
        inner, [ring.fingerprints["bob@example.org"]], gpg=ring.gnupg
    )
    shown = _open(raw, ring)
    assert shown.security is not None and shown.security.decrypted
    assert shown.subject == "The real plans"
    assert shown.text is not None and "lighthouse" in shown.text
    # Without the parameter, an inner Subject is no protected header: the outer one stays.
    plain_inner = inner.replace(b'; protected-headers="v1"', b"")
    raw = head + openpgp.encrypt_entity(
        plain_inner, [ring.fingerprints["bob@example.org"]], gpg=ring.gnupg
    )
    assert _open(raw, ring).subject == "..."


def test_every_inline_block_is_read_not_only_the_first(ring: Keyring) -> None:
    signed = ring.sign_clear(b"First, signed.\n", "alice@example.org")
    armor = ring.encrypt_armor(b"Second, secret.\n", ring.fingerprints["bob@example.org"])
    raw = (
        HEAD
        + b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
        + signed
        + b"\r\nbetween\r\n\r\n"
        + armor
    )
    shown = _open(raw, ring)
    assert shown.security is not None and shown.security.inline
    assert shown.security.encrypted and shown.security.decrypted
    assert [s.state for s in shown.security.signatures] == [SigState.GOOD]
    assert shown.security.partial  # "between" is outside both blocks
    assert shown.text is not None
    assert "First, signed." in shown.text and "Second, secret." in shown.text
    assert "BEGIN PGP" not in shown.text
    # A second block that does not verify stays as it came, and says so.
    tampered = raw.replace(b"First, signed.", b"First, forged.")
    shown = _open(tampered, ring)
    assert shown.security is not None
    assert [s.state for s in shown.security.signatures] == [SigState.BAD]
    assert shown.text is not None and "BEGIN PGP SIGNED MESSAGE" in shown.text
    assert "Second, secret." in shown.text


def test_inline_blocks_past_the_limit_are_left_as_they_came(ring: Keyring) -> None:
    block = ring.sign_clear(b"Signed.\n", "alice@example.org")
    count = openpgp.MAX_INLINE_BLOCKS + 2
    raw = HEAD + b"Content-Type: text/plain\r\n\r\n" + block * count
    shown = _open(raw, ring)
    assert shown.security is not None and shown.security.partial
    assert len(shown.security.signatures) == openpgp.MAX_INLINE_BLOCKS
    assert shown.text is not None and shown.text.count("BEGIN PGP SIGNED MESSAGE") == 2
