"""Fetching an unknown signer's key: real gpg and its dirmngr, over HKP to a real socket (the
harness keyserver on 127.0.0.2), in throwaway GnuPG homes whose agents are stopped after."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest
from harness.common import SERVER_HOST
from harness.gnupg import Keyring, new_keyring
from harness.hkp import HkpServer

from kittiwake.core.crypto import openpgp
from kittiwake.core.message.mime import parse_message
from kittiwake.core.message.security import SigState

HEAD = b"From: Ann <ann@example.org>\r\nSubject: hello\r\nMIME-Version: 1.0\r\n"
ENTITY = b"Content-Type: text/plain; charset=us-ascii\r\n\r\nSee you at the pier.\r\n"


@pytest.fixture
def rings() -> Iterator[tuple[Keyring, Keyring]]:
    """Ann's home (her secret key) and the reader's (empty)."""
    ann, reader = new_keyring(), new_keyring()
    ann.add_key("Ann Signer", "ann@example.org")
    yield ann, reader
    reader.close()  # gpgconf --kill all: its dirmngr too
    ann.close()


@pytest.fixture
def keyserver() -> Iterator[HkpServer]:
    server = HkpServer()
    yield server
    server.close()


def signed_by(ann: Keyring) -> bytes:
    return HEAD + openpgp.sign_entity(ENTITY, ann.fingerprints["ann@example.org"], ann.gnupg)


def test_a_fetched_key_turns_unknown_into_good(
    rings: tuple[Keyring, Keyring], keyserver: HkpServer
) -> None:
    ann, reader = rings
    fpr = ann.fingerprints["ann@example.org"]
    keyserver.add(fpr, ("ann@example.org",), ann.export("ann@example.org"))
    raw = signed_by(ann)
    before = asyncio.run(openpgp.open_message(parse_message(raw), reader.gnupg))
    assert before.security is not None
    (key_id,) = before.security.unknown_keys
    assert fpr.endswith(key_id)

    assert openpgp.fetch_key(key_id, reader.gnupg, keyserver.url) == fpr
    assert keyserver.requests == [("get", f"0x{key_id}")]  # HKP, by long key id

    after = asyncio.run(openpgp.open_message(parse_message(raw), reader.gnupg))
    assert after.security is not None
    assert [s.state for s in after.security.signatures] == [SigState.GOOD]
    assert after.security.unknown_keys == ()
    assert (
        "Good signature (OpenPGP) from Ann Signer <ann@example.org>"
        in (after.security.lines()[0][1])
    )


def test_a_key_the_keyserver_lacks_is_one_sentence(
    rings: tuple[Keyring, Keyring], keyserver: HkpServer
) -> None:
    _, reader = rings
    with pytest.raises(openpgp.CryptoError, match=r"^The keyserver has no key 0123456789ABCDEF\.$"):
        openpgp.fetch_key("0123456789ABCDEF", reader.gnupg, keyserver.url)
    assert keyserver.requests == [("get", "0x0123456789ABCDEF")]


def test_an_unreachable_keyserver_is_one_sentence(rings: tuple[Keyring, Keyring]) -> None:
    _, reader = rings
    with socket.socket() as probe:  # a port nothing listens on: bound, never listening
        probe.bind((SERVER_HOST, 0))
        port = probe.getsockname()[1]
        with pytest.raises(openpgp.CryptoError, match=r"^No keyserver could be reached"):
            openpgp.fetch_key("0123456789ABCDEF", reader.gnupg, f"hkp://{SERVER_HOST}:{port}")
