"""S/MIME mail between two Kittiwake users through the real Postfix and Dovecot: each has a
gpgsm home with a certificate from one test CA (and the other's certificate), each sees the
other's verified signature, the Sent copy is encrypted to its sender, a tampered copy is
reported as bad, and the cache never holds the plaintext of an encrypted message.

Waits are on server state or on the engine with deadlines, never sleeps.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from harness import Dovecot, Postfix, User, imap_device, wait_for_async, wait_for_messages
from harness.gpgsm import SmimeHome, new_ca, new_smime_home

from kittiwake.core.api import MailApi
from kittiwake.core.config import Config, config_from_dict
from kittiwake.core.crypto import smime
from kittiwake.core.engine import Engine
from kittiwake.core.events import MessageSent
from kittiwake.core.message.mime import parse_message
from kittiwake.core.message.security import SigState
from kittiwake.core.smtp.outbox import Backoff

FAST = Backoff(first=0.2, factor=1.5, maximum=1.0, jitter=0.0)
SECRET = "Thelighthouseplanisxyzzy"


@pytest.fixture
def xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("CACHE", "STATE", "DATA", "CONFIG"):
        monkeypatch.setenv(f"XDG_{name}_HOME", str(tmp_path / name.lower()))
    return tmp_path


@pytest.fixture
def homes(user: User, user2: User) -> Iterator[tuple[SmimeHome, SmimeHome]]:
    """Alice's and Bob's gpgsm homes: one CA, each with their own key and the other's
    certificate (as after a first signed message)."""
    ca = new_ca()
    alice, bob = new_smime_home(ca), new_smime_home(ca)
    alice.add_user("Alice Test", user.email)
    bob.add_user("Bob Test", user2.email)
    alice.import_cert(bob.export(user2.email))
    bob.import_cert(alice.export(user.email))
    yield alice, bob
    alice.close()
    bob.close()
    ca.close()


def config_for(key: str, dovecot: Dovecot, postfix: Postfix, user: User, home: SmimeHome) -> Config:
    server = {
        "user": user.login,
        "password": user.password,
        "ca_file": str(dovecot.ca_file),
        "timeout": 10,
    }
    return config_from_dict(
        {
            "crypto": {"gnupg_home": str(home.home)},
            "accounts": {
                key: {
                    "email": user.email,
                    "crypto": "smime",
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


async def send(api: MailApi, account: str, to: str, body: str, **crypto: bool) -> str:
    events = api.subscribe()
    local = api.compose.new(account, to=to, subject="Plans", body=body)
    local = replace(local, draft=replace(local.draft, **crypto))
    await api.send(local)
    sent = await events.wait_for(MessageSent, 30)
    assert sent.refused == ()
    return sent.message_id


async def newest(api: MailApi, account: str, count: int) -> int:
    """The newest INBOX UID once the account's engine has ``count`` messages there."""
    await wait_for_async(
        lambda: len(api.message_index(account, "INBOX")) >= count, 30, message="mail arrived"
    )
    return api.message_index(account, "INBOX")[0]


def files_holding(root: Path, needle: bytes) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


async def test_two_users_exchange_smime_signed_and_encrypted_mail(
    xdg: Path,
    postfix: Postfix,
    dovecot: Dovecot,
    user: User,
    user2: User,
    homes: tuple[SmimeHome, SmimeHome],
    running: Callable[[Config], Any],
) -> None:
    alice_home, bob_home = homes
    alice: MailApi = await running(config_for("alice", dovecot, postfix, user, alice_home))
    bob: MailApi = await running(config_for("bob", dovecot, postfix, user2, bob_home))
    assert alice.compose.protocol("alice") == "S/MIME"

    await send(alice, "alice", user2.email, f"Meet me. {SECRET}\n", sign=True, encrypt=True)
    (delivered,) = await asyncio.to_thread(wait_for_messages, dovecot, user2, 1, timeout=30)
    assert SECRET.encode() not in delivered
    assert b"application/pkcs7-mime; smime-type=enveloped-data" in delivered

    uid = await newest(bob, "bob", 1)
    shown = await bob.message("bob", "INBOX", uid)
    assert shown is not None and shown.security is not None
    assert shown.security.protocol == "S/MIME"
    assert shown.security.encrypted and shown.security.decrypted
    (sig,) = shown.security.signatures
    assert sig.state is SigState.GOOD and sig.trust.startswith("full")
    assert sig.user_id == f"Alice Test <{user.email}>"
    assert sig.fingerprint == alice_home.fingerprints[user.email]
    assert shown.text is not None and SECRET in shown.text
    # Bob's cache holds the message only as it came: encrypted.
    cached = bob.engine.stores["bob"].cache.body("INBOX", uid)
    assert cached is not None and b"enveloped-data" in cached
    assert files_holding(xdg / "cache", SECRET.encode()) == []
    assert files_holding(xdg / "cache", SECRET.lower().encode()) == []
    assert bob.search_cached("bob", "INBOX", f"body:{SECRET}") == []

    # Alice's Sent copy is encrypted, to her own certificate too: she can read it back.
    sent = await asyncio.to_thread(wait_for_messages, dovecot, user, 1, mailbox="Sent", timeout=30)
    assert SECRET.encode() not in sent[0]
    mine = await smime.open_message(parse_message(sent[0]), alice_home.gnupg)
    assert mine.security is not None and mine.security.decrypted
    assert mine.text is not None and SECRET in mine.text

    # Bob answers, signed only: Alice sees his verified signature.
    await send(bob, "bob", user.email, "Agreed.\n", sign=True)
    uid = await newest(alice, "alice", 1)
    answer = await alice.message("alice", "INBOX", uid)
    assert answer is not None and answer.security is not None
    assert not answer.security.encrypted
    assert [(s.state, s.user_id) for s in answer.security.signatures] == [
        (SigState.GOOD, f"Bob Test <{user2.email}>")
    ]
    assert answer.security.lines()[0][0] == "good"
    assert answer.text is not None and "Agreed." in answer.text

    # The same signed message, changed on the way: reported as bad.
    (raw,) = await asyncio.to_thread(wait_for_messages, dovecot, user, 1, timeout=30)
    assert b"application/pkcs7-signature" in raw
    device = imap_device(dovecot, user)
    try:
        assert device.append("INBOX", None, None, raw.replace(b"Agreed.", b"Refused"))[0] == "OK"
    finally:
        device.logout()
    uid = await newest(alice, "alice", 2)
    tampered = await alice.message("alice", "INBOX", uid)
    assert tampered is not None and tampered.security is not None
    assert [s.state for s in tampered.security.signatures] == [SigState.BAD]
