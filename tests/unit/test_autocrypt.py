"""Autocrypt Level 1: the header both ways, the peer state's update rules, the
recommendation, and the keys kept in a keyring of their own (real gpg, throwaway homes)."""

from __future__ import annotations

import base64
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from harness.gnupg import Keyring, new_keyring

from kittiwake.core.crypto import autocrypt, openpgp
from kittiwake.core.message.mime import parse_message

DAY = 86400.0


@pytest.fixture(scope="module")
def ring() -> Iterator[Keyring]:
    ring = new_keyring()
    ring.add_key("Alice", "alice@example.org")
    renewed = new_keyring()  # her next key, on a new machine
    renewed.add_key("Alice Again", "alice@example.org")
    ring.renewed = renewed  # type: ignore[attr-defined]
    yield ring
    renewed.close()
    ring.close()


@pytest.fixture
def store() -> Iterator[autocrypt.PeerStore]:
    # Under /tmp with a short name: gpg-agent's socket path is limited to about 100 bytes.
    root = Path(tempfile.mkdtemp(prefix="kwac-", dir="/tmp"))
    store = autocrypt.PeerStore(root)
    yield store
    subprocess.run(
        ["gpgconf", "--homedir", str(root / "gnupg"), "--kill", "all"],
        capture_output=True,
        check=False,
    )
    shutil.rmtree(root, ignore_errors=True)


def keydata(ring: Keyring) -> bytes:
    data = autocrypt.own_keydata("alice@example.org", ring.gnupg)
    assert data is not None
    return data


def test_own_keydata_is_the_minimal_key_and_the_header_parses_back(ring: Keyring) -> None:
    data = autocrypt.own_keydata("alice@example.org", ring.gnupg)
    assert data is not None and not data.startswith(b"-----")  # binary, not armored
    field = autocrypt.header_field("alice@example.org", data, mutual=True)
    assert field.startswith("Autocrypt: addr=alice@example.org; prefer-encrypt=mutual;\r\n")
    assert all(len(line) <= 78 for line in field.split("\r\n"))
    _, _, value = field.partition(":")
    header = autocrypt.parse_header(value.replace("\r\n", ""))
    assert header is not None and header.keydata == data and header.prefer_encrypt == "mutual"
    assert autocrypt.own_keydata("nobody@example.org", ring.gnupg) is None


@pytest.mark.parametrize(
    "value",
    [
        "addr=a@example.org",  # no keydata
        "keydata=AAAA",  # no addr
        "addr=a@example.org; type=2; keydata=AAAA",
        "addr=a@example.org; colour=blue; keydata=AAAA",  # unknown critical attribute
        "addr=a@example.org; keydata=not base64!",
    ],
)
def test_invalid_headers_are_ignored(value: str) -> None:
    assert autocrypt.parse_header(value) is None


def test_non_critical_attributes_are_allowed() -> None:
    header = autocrypt.parse_header("addr=A@Example.org; _note=hi; keydata=AAAA")
    assert header is not None and header.addr == "a@example.org"
    assert header.prefer_encrypt == "nopreference"


def _header(data: bytes, mutual: bool = True) -> autocrypt.Header:
    return autocrypt.Header("alice@example.org", data, "mutual" if mutual else "nopreference")


def test_update_rules_and_recommendation(ring: Keyring, store: autocrypt.PeerStore) -> None:
    now = time.time()
    addr = "alice@example.org"
    renewed: Keyring = ring.renewed  # type: ignore[attr-defined]
    assert store.recommend([addr], own_mutual=True) == "disable"
    store.update(addr, now - 50 * DAY, _header(keydata(ring)))
    peer = store.peer(addr)
    assert peer is not None and peer.prefer_encrypt == "mutual"
    assert peer.fingerprint == openpgp.keys_for(addr, ring.gnupg)[0]
    assert store.recommend([addr], own_mutual=True) == "encrypt"
    assert store.recommend([addr], own_mutual=False) == "available"
    assert store.recommend([addr, "bob@example.org"], own_mutual=True) == "disable"
    # The key is in the peers' keyring: encryption finds it there, not in the user's.
    assert openpgp.keys_for(addr, store.gnupg) == [peer.fingerprint]

    # A later message without the header: last_seen moves, the key stays, and 50 days
    # without a header is more than 35: encryption is discouraged.
    store.update(addr, now - DAY, None)
    peer = store.peer(addr)
    assert peer is not None and peer.last_seen == pytest.approx(now - DAY)
    assert store.recommend([addr], own_mutual=True) == "discourage"

    # An older message with another key changes nothing (its key is not imported).
    store.update(addr, now - 60 * DAY, _header(keydata(renewed)))
    assert store.peer(addr) == peer
    assert len(openpgp.keys_for(addr, store.gnupg)) == 1

    # A newer one with the new key replaces the old key, and encryption is fine again.
    store.update(addr, now + 3600, _header(keydata(renewed), mutual=False))
    peer = store.peer(addr)
    assert peer is not None and peer.last_seen <= time.time()  # the future counts as now
    assert openpgp.keys_for(addr, store.gnupg) == [peer.fingerprint]
    assert peer.fingerprint == renewed.fingerprints[addr]
    assert store.recommend([addr], own_mutual=True) == "available"


def test_learn_takes_the_header_only_from_its_sender(
    ring: Keyring, store: autocrypt.PeerStore
) -> None:
    data = base64.b64encode(keydata(ring)).decode()
    date = datetime.now(UTC)
    spoofed = parse_message(
        f"From: Mallory <mallory@example.org>\r\nDate: {date:%a, %d %b %Y %H:%M:%S +0000}\r\n"
        f"Autocrypt: addr=alice@example.org; keydata={data}\r\n\r\nhi\r\n".encode()
    )
    assert autocrypt.learn(store, spoofed.headers, spoofed.date) == "mallory@example.org"
    assert store.peer("alice@example.org") is None
    mine = parse_message(
        f"From: Alice <alice@example.org>\r\nDate: {date:%a, %d %b %Y %H:%M:%S +0000}\r\n"
        f"Autocrypt: addr=alice@example.org; keydata={data}\r\n\r\nhi\r\n".encode()
    )
    assert autocrypt.learn(store, mine.headers, mine.date, own=["ALICE@example.org"]) is None
    assert store.peer("alice@example.org") is None
    assert autocrypt.learn(store, mine.headers, mine.date) == "alice@example.org"
    assert store.peer("alice@example.org") is not None


def test_build_mime_adds_the_header_for_an_autocrypt_account(ring: Keyring) -> None:
    from kittiwake.core.compose.draft import Draft
    from kittiwake.core.compose.mime import build_mime, draft_bytes
    from kittiwake.core.config import config_from_dict
    from kittiwake.core.models import Address

    def account(**options: object):  # type: ignore[no-untyped-def]
        data = {"email": "alice@example.org", "imap": {"host": "h"}, "smtp": {"host": "h"}}
        return config_from_dict({"accounts": {"a": {**data, **options}}}).accounts["a"]

    draft = Draft(to=(Address("", "bob@example.org"),), body="Hi\n")
    plain = build_mime(draft, account(), gpg=ring.gnupg)
    assert b"Autocrypt:" not in plain.raw
    with_ac = build_mime(
        draft, account(autocrypt=True, autocrypt_prefer_encrypt="mutual"), gpg=ring.gnupg
    )
    parsed = parse_message(with_ac.raw)
    (value,) = [v for k, v in parsed.headers if k.lower() == "autocrypt"]
    header = autocrypt.parse_header(value)
    assert header is not None and header.addr == "alice@example.org"
    assert header.prefer_encrypt == "mutual"
    assert header.keydata == autocrypt.own_keydata("alice@example.org", ring.gnupg)
    assert b"Autocrypt:" not in draft_bytes(draft, account(autocrypt=True), gpg=ring.gnupg)
