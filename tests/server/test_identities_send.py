"""Signatures, identities, aliases and the external address book, end to end: drafts made
by ``MailApi.compose``, sent through the private Postfix and read back from Dovecot.

Waits are on events or server state with deadlines, never sleeps.
"""

from __future__ import annotations

import asyncio
import imaplib
import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from email.message import EmailMessage
from pathlib import Path

import pytest
from harness import (
    Dovecot,
    Postfix,
    User,
    imap_device,
    imap_fetch_all,
    wait_for_async,
    wait_for_messages,
)

from kittiwake.core.api import MailApi
from kittiwake.core.config import Config, config_from_dict
from kittiwake.core.engine import Engine
from kittiwake.core.events import MessageSent
from kittiwake.core.message.mime import parse_message
from kittiwake.core.models import Address

WORK = "work-me@example.test"
HOME_SIG = "Home signature\nsecond line"
WORK_SIG = "Work signature"


@pytest.fixture
def xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("CACHE", "STATE", "DATA", "CONFIG"):
        monkeypatch.setenv(f"XDG_{name}_HOME", str(tmp_path / name.lower()))
    return tmp_path


def config_for(
    dovecot: Dovecot, postfix: Postfix, user: User, crew: list[str], query: list[str]
) -> Config:
    server = {
        "user": user.login,
        "password": user.password,
        "ca_file": str(dovecot.ca_file),
        "timeout": 10,
    }
    return config_from_dict(
        {
            "accounts": {
                "me": {
                    "email": user.email,
                    "name": "Me Home",
                    "signature": HOME_SIG,
                    "identities": [{"address": WORK, "name": "Me Work", "signature": WORK_SIG}],
                    "imap": {"host": dovecot.host, "port": dovecot.ports.imaps, **server},
                    "smtp": {
                        "host": postfix.host,
                        "port": postfix.ports.submission,
                        "security": "starttls",
                        **server,
                    },
                }
            },
            "aliases": {"crew": crew},
            "addressbook": {"query_command": query},
        }
    )


@pytest.fixture
async def api(
    xdg: Path, postfix: Postfix, dovecot: Dovecot, user: User, user2: User
) -> AsyncIterator[MailApi]:
    script = xdg / "query.py"
    script.write_text(
        "import sys\n"
        "print('searching the address book... found 1')\n"
        "if 'zed'.startswith(sys.argv[1].lower()):\n"
        "    print('zed@example.test\\tZed Zebra\\tfriends')\n"
    )
    crew = [f"Bob <{user2.email}>", "carol@example.test"]
    put(dovecot, user, letter_to_work(user2))  # before the start: in the cache once synced
    started = MailApi(
        Engine(config_for(dovecot, postfix, user, crew, [sys.executable, str(script)]))
    )
    started.start()
    for imap in started.engine.imap.values():
        await imap.wait_synced(20)
    yield started
    await started.stop()


def put(dovecot: Dovecot, user: User, raw: bytes) -> None:
    device = imap_device(dovecot, user)
    try:
        typ, _ = device.append("INBOX", "", None, raw)
        assert typ == "OK"
    finally:
        device.logout()


def letter_to_work(sender: User) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"Sender <{sender.email}>"
    msg["To"] = f"Me at work <{WORK}>"
    msg["Subject"] = "Work question"
    msg["Message-ID"] = "<work1@example.test>"
    msg["Date"] = "Thu, 26 Nov 2026 10:00:00 +0000"
    msg.set_content("Is the report done?\n")
    return msg.as_bytes()


def signed_once(body: str, sig: str) -> bool:
    return body.replace("\r\n", "\n").count("-- \n" + sig) == 1


async def arrived(dovecot: Dovecot, person: User, n: int) -> list[bytes]:
    return await asyncio.to_thread(wait_for_messages, dovecot, person, n, timeout=30)


def sent_folder(dovecot: Dovecot, user: User) -> list[bytes]:
    device = imap_device(dovecot, user)
    try:
        return imap_fetch_all(device, "Sent")
    except imaplib.IMAP4.error:
        return []
    finally:
        device.logout()


async def filed_in_sent(dovecot: Dovecot, user: User, sig: str) -> None:
    """The Sent copy is there once, signed once (and the engine is done with it before the
    fixture stops it)."""
    copies = await wait_for_async(
        lambda: asyncio.to_thread(lambda: sent_folder(dovecot, user) or None),
        30,
        message="the Sent copy",
    )
    assert len(copies) == 1
    assert signed_once(parse_message(copies[0]).text or "", sig)


async def test_a_reply_to_the_work_address_goes_out_from_it_signed_once(
    api: MailApi, dovecot: Dovecot, user: User, user2: User
) -> None:
    (uid,) = api.message_index("me", "INBOX")
    local = await api.compose.reply("me", "INBOX", uid)
    assert local.draft.from_ == Address("Me Work", WORK)
    assert signed_once(local.draft.body, WORK_SIG) and HOME_SIG not in local.draft.body
    body = "Yes, attached tomorrow.\n" + local.draft.body
    events = api.subscribe()
    await api.send(replace(local, draft=replace(local.draft, body=body)))
    await events.wait_for(MessageSent, 30, message_id=local.draft.message_id)
    (got,) = await arrived(dovecot, user2, 1)
    parsed = parse_message(got)
    assert [(a.name, a.addr) for a in parsed.from_] == [("Me Work", WORK)]
    assert signed_once(parsed.text or "", WORK_SIG)
    await filed_in_sent(dovecot, user, WORK_SIG)


async def test_an_alias_reaches_the_envelope_and_a_new_message_is_signed_once(
    api: MailApi, dovecot: Dovecot, user: User, user2: User
) -> None:
    carol = dovecot.add_user("carol")
    # The alias stands for bob's address and for one the test rewrites to carol's.
    aliases = dict(api.config.aliases)
    aliases["crew"] = (aliases["crew"][0], carol.email)
    api.config.aliases.update(aliases)
    local = api.compose.new("me", "crew", "Crew news")
    assert [a.addr for a in local.draft.to] == [user2.email, carol.email]
    assert local.draft.body == "\n\n-- \n" + HOME_SIG + "\n"
    events = api.subscribe()
    said = await api.send(
        replace(local, draft=replace(local.draft, body="News." + local.draft.body))
    )
    assert said == "Sending to 2 recipients from me"
    sent = await events.wait_for(MessageSent, 30, message_id=local.draft.message_id)
    assert sent.refused == ()
    for person in (user2, carol):
        (got,) = await arrived(dovecot, person, 1)
        parsed = parse_message(got)
        assert parsed.subject == "Crew news"
        assert signed_once(parsed.text or "", HOME_SIG)
    await filed_in_sent(dovecot, user, HOME_SIG)


async def test_a_reopened_draft_and_a_forward_keep_one_signature(
    api: MailApi, dovecot: Dovecot, user: User, user2: User
) -> None:
    (uid,) = api.message_index("me", "INBOX")
    forward = await api.compose.forward("me", "INBOX", uid)
    assert signed_once(forward.draft.body, HOME_SIG)
    assert forward.draft.body.index("Is the report done?") < forward.draft.body.index("-- \n")
    forward = replace(forward, draft=replace(forward.draft, to=(Address("", user2.email),)))
    saved = await api.save_draft(forward)
    await api.engine.imap["me"].flush_actions()
    await api.compose.discard(saved, keep_server_copy=True)
    await wait_for_async(lambda: _has(api, "Drafts"), 20, message="the draft in the cache")
    (draft_uid,) = api.message_index("me", "Drafts")
    reopened = await api.draft_from("me", "Drafts", draft_uid)
    assert signed_once(reopened.draft.body, HOME_SIG)
    events = api.subscribe()
    await api.send(reopened)
    await events.wait_for(MessageSent, 30, message_id=reopened.draft.message_id)
    (got,) = await arrived(dovecot, user2, 1)
    assert signed_once(parse_message(got).text or "", HOME_SIG)
    await filed_in_sent(dovecot, user, HOME_SIG)


async def _has(api: MailApi, folder: str) -> bool:
    await api.open_folder("me", folder)  # synced now, as when the user looks at it
    return bool(api.message_index("me", folder))


async def test_completion_asks_the_query_command_and_knows_the_aliases(api: MailApi) -> None:
    assert await api.query_addresses("ze") == [Address("Zed Zebra", "zed@example.test")]
    assert await api.query_addresses("q") == []
    assert api.complete_addresses("cr") == [Address("", "crew")]
