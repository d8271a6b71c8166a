"""Autocrypt between two Kittiwake users through the real Postfix and Dovecot: Alice writes
to Bob in the clear with her key in the Autocrypt header; Bob's Kittiwake learns it when he
opens the message (he never imports it by hand), proposes encryption for his reply (both
prefer mutual), and Alice reads the encrypted reply.

Waits are on server state or on the engine with deadlines, never sleeps.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from harness import Dovecot, Postfix, User, wait_for_async, wait_for_messages
from harness.gnupg import Keyring, new_keyring

from kittiwake.core.api import MailApi
from kittiwake.core.config import Config, config_from_dict
from kittiwake.core.crypto import autocrypt, openpgp
from kittiwake.core.engine import Engine
from kittiwake.core.events import MessageSent
from kittiwake.core.smtp.outbox import Backoff

FAST = Backoff(first=0.2, factor=1.5, maximum=1.0, jitter=0.0)
SECRET = "Autocryptlighthousexyzzy"


@pytest.fixture
def xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("CACHE", "STATE", "DATA", "CONFIG"):
        monkeypatch.setenv(f"XDG_{name}_HOME", str(tmp_path / name.lower()))
    return tmp_path


@pytest.fixture
def homes(user: User, user2: User) -> Iterator[tuple[Keyring, Keyring, Path, Path]]:
    """Alice's and Bob's GnuPG homes, each with only their own key, and an Autocrypt
    directory each (short paths under /tmp: gpg-agent's socket path is limited)."""
    alice, bob = new_keyring(), new_keyring()
    alice.add_key("Alice Test", user.email)
    bob.add_key("Bob Test", user2.email)
    dirs = [Path(tempfile.mkdtemp(prefix="kwac-", dir="/tmp")) for _ in range(2)]
    yield alice, bob, dirs[0], dirs[1]
    for d in dirs:
        subprocess.run(
            ["gpgconf", "--homedir", str(d / "gnupg"), "--kill", "all"],
            capture_output=True,
            check=False,
        )
        shutil.rmtree(d, ignore_errors=True)
    alice.close()
    bob.close()


def config_for(
    key: str, dovecot: Dovecot, postfix: Postfix, user: User, ring: Keyring, peers: Path
) -> Config:
    server = {
        "user": user.login,
        "password": user.password,
        "ca_file": str(dovecot.ca_file),
        "timeout": 10,
    }
    return config_from_dict(
        {
            "crypto": {"gnupg_home": str(ring.home), "autocrypt_dir": str(peers)},
            "accounts": {
                key: {
                    "email": user.email,
                    "autocrypt": True,
                    "autocrypt_prefer_encrypt": "mutual",
                    "imap": {"host": dovecot.host, "port": dovecot.ports.imaps, **server},
                    "smtp": {
                        "host": postfix.host,
                        "port": postfix.ports.submission,
                        "security": "starttls",
                        **server,
                    },
                }
            },
        }
    )


@pytest.fixture
async def running() -> AsyncIterator[Callable[[Config], Any]]:
    started: list[MailApi] = []

    async def start(config: Config) -> MailApi:
        api = MailApi(Engine(config))
        for runner in api.engine.outboxes.values():
            runner.backoff = FAST
        api.start()
        started.append(api)
        for imap in api.engine.imap.values():
            await imap.wait_synced(20)
        return api

    yield start
    for api in started:
        await api.stop()


async def newest(api: MailApi, account: str, count: int) -> int:
    await wait_for_async(
        lambda: len(api.message_index(account, "INBOX")) >= count, 30, message="mail arrived"
    )
    return api.message_index(account, "INBOX")[0]


async def test_an_autocrypt_header_leads_to_an_encrypted_reply(
    xdg: Path,
    postfix: Postfix,
    dovecot: Dovecot,
    user: User,
    user2: User,
    homes: tuple[Keyring, Keyring, Path, Path],
    running: Callable[[Config], Any],
) -> None:
    alice_ring, bob_ring, alice_peers, bob_peers = homes
    alice: MailApi = await running(
        config_for("alice", dovecot, postfix, user, alice_ring, alice_peers)
    )
    bob: MailApi = await running(config_for("bob", dovecot, postfix, user2, bob_ring, bob_peers))

    # Alice writes in the clear; her key rides along.
    events = alice.subscribe()
    first = alice.compose.new("alice", to=user2.email, subject="Hello", body="Hi Bob.\n")
    assert not (await alice.compose.crypto_defaults(first)).draft.encrypt  # nothing known
    await alice.send(first)
    assert (await events.wait_for(MessageSent, 30)).refused == ()
    (delivered,) = await asyncio.to_thread(wait_for_messages, dovecot, user2, 1, timeout=30)
    assert f"Autocrypt: addr={user.email}; prefer-encrypt=mutual;".encode() in delivered
    assert b"multipart/encrypted" not in delivered

    # Bob opens it: his Kittiwake learns Alice's key, into its own keyring only.
    assert openpgp.keys_for(user.email, bob_ring.gnupg) == []
    uid = await newest(bob, "bob", 1)
    shown = await bob.message("bob", "INBOX", uid)
    assert shown is not None and shown.security is None
    peer = autocrypt.PeerStore(bob_peers).peer(user.email)
    assert peer is not None and peer.prefer_encrypt == "mutual"
    assert peer.fingerprint == alice_ring.fingerprints[user.email]
    assert openpgp.keys_for(user.email, bob_ring.gnupg) == []  # the user's keyring untouched

    # His reply is proposed encrypted (both mutual), and goes out encrypted.
    reply = await bob.compose.reply("bob", "INBOX", uid)
    assert await bob.compose.recommendation(reply) == "encrypt"
    reply = await bob.compose.crypto_defaults(reply)
    assert reply.draft.encrypt
    reply = replace(reply, draft=replace(reply.draft, body=f"Yes. {SECRET}\n" + reply.draft.body))
    events = bob.subscribe()
    await bob.send(reply)
    assert (await events.wait_for(MessageSent, 30)).refused == ()

    (answer,) = await asyncio.to_thread(wait_for_messages, dovecot, user, 1, timeout=30)
    assert b"multipart/encrypted" in answer and SECRET.encode() not in answer
    assert f"Autocrypt: addr={user2.email};".encode() in answer
    uid = await newest(alice, "alice", 1)
    read = await alice.message("alice", "INBOX", uid)
    assert read is not None and read.security is not None and read.security.decrypted
    assert read.text is not None and SECRET in read.text
    # And Alice has learnt Bob's key from the reply's header in turn.
    assert autocrypt.PeerStore(alice_peers).peer(user2.email) is not None
