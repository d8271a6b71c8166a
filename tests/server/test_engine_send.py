"""Compose and send through the engine (``MailApi.compose``, the engine's outbox runners and
Sent filing), against the private Postfix delivering to the private Dovecot.

Waits are on events or on server state with deadlines, never sleeps.
"""

from __future__ import annotations

import asyncio
import imaplib
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from harness import (
    Dovecot,
    Postfix,
    TcpProxy,
    User,
    imap_device,
    imap_fetch_all,
    wait_for,
    wait_for_async,
    wait_for_messages,
)

from kittiwake.core.api import MailApi
from kittiwake.core.compose.draft import parse_addresses
from kittiwake.core.compose.drafts import LocalDrafts
from kittiwake.core.config import Config, config_from_dict
from kittiwake.core.engine import Engine
from kittiwake.core.events import (
    DraftsRecovered,
    MessageSent,
    OutboxChanged,
    SendFailed,
    Subscription,
)
from kittiwake.core.message.mime import parse_message
from kittiwake.core.models import Address
from kittiwake.core.smtp.outbox import Backoff

FAST = Backoff(first=0.2, factor=1.5, maximum=1.0, jitter=0.0)


@pytest.fixture
def xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("CACHE", "STATE", "DATA", "CONFIG"):
        monkeypatch.setenv(f"XDG_{name}_HOME", str(tmp_path / name.lower()))
    return tmp_path


def config_for(
    dovecot: Dovecot, user: User, host: str, port: int, *, security: str = "starttls"
) -> Config:
    return config_from_dict(
        {
            "accounts": {
                "me": {
                    "email": user.email,
                    "name": "Ålice Mé",
                    "addresses": ["alias@example.test"],
                    "imap": {
                        "host": dovecot.host,
                        "port": dovecot.ports.imaps,
                        "user": user.login,
                        "password": user.password,
                        "ca_file": str(dovecot.ca_file),
                        "timeout": 5,
                    },
                    "smtp": {
                        "host": host,
                        "port": port,
                        "security": security,
                        "user": user.login,
                        "password": user.password,
                        "ca_file": str(dovecot.ca_file),
                        "timeout": 10,
                    },
                }
            }
        }
    )


def original(sender: User, me: User, cc: User, n: int = 1) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"Bób Sender <{sender.email}>"
    msg["To"] = f"Me <{me.email}>, Alias <alias@example.test>"
    msg["Cc"] = f"Carol <{cc.email}>, bob again <{sender.email.upper()}>"
    msg["Subject"] = "Re: Re: Lunch plans"
    msg["Message-ID"] = f"<orig{n}@example.test>"
    msg["References"] = "<root@example.test>"
    msg["Date"] = "Thu, 26 Nov 2026 10:00:00 +0000"
    msg.set_content("Shall we meet at noon?\n")
    return msg.as_bytes()


def put(dovecot: Dovecot, user: User, raw: bytes, folder: str = "INBOX") -> None:
    device = imap_device(dovecot, user)
    try:
        typ, _ = device.append(folder, "", None, raw)
        assert typ == "OK"
    finally:
        device.logout()


def server_flags(dovecot: Dovecot, user: User, folder: str = "INBOX") -> list[bytes]:
    device = imap_device(dovecot, user)
    try:
        device.select(folder, readonly=True)
        _, data = device.uid("FETCH", "1:*", "(FLAGS)")
        return [d for d in data if isinstance(d, bytes)]
    finally:
        device.logout()


def folder_messages(dovecot: Dovecot, user: User, folder: str) -> list[bytes]:
    device = imap_device(dovecot, user)
    try:
        return imap_fetch_all(device, folder)
    except imaplib.IMAP4.error:
        return []
    finally:
        device.logout()


async def outbox_waits(events: Subscription, timeout: float = 20) -> OutboxChanged:
    """The first OutboxChanged that says why a queued message waits."""

    async def find() -> OutboxChanged:
        async for event in events:
            if isinstance(event, OutboxChanged) and event.queued and event.reason:
                return event
        raise EOFError("event stream closed")

    return await asyncio.wait_for(find(), timeout)


@pytest.fixture
async def running() -> AsyncIterator[Callable[[Config], Any]]:
    started: list[MailApi] = []

    async def start(config: Config, events: list[Subscription] | None = None) -> MailApi:
        api = MailApi(Engine(config))
        if events is not None:  # listening before anything starts
            events.append(api.subscribe())
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


async def test_reply_all_goes_out_with_its_sent_copy_once_and_answers_the_original(
    xdg: Path,
    postfix: Postfix,
    dovecot: Dovecot,
    user: User,
    user2: User,
    running: Callable[[Config], Any],
) -> None:
    carol = dovecot.add_user("carol")
    put(dovecot, user, original(user2, user, carol))
    api: MailApi = await running(config_for(dovecot, user, postfix.host, postfix.ports.submission))
    events = api.subscribe()
    (uid,) = api.message_index("me", "INBOX")

    local = await api.compose.reply("me", "INBOX", uid, all=True)
    assert LocalDrafts().text_path(local.id).exists()  # on disk before the editor opens
    draft = local.draft
    assert draft.subject == "Re: Lunch plans"
    assert [a.addr for a in draft.to] == [user2.email]  # the author, once
    assert [a.addr for a in draft.cc] == [carol.email]  # own addresses and duplicates gone
    assert draft.in_reply_to == "<orig1@example.test>"
    assert draft.references == ("<root@example.test>", "<orig1@example.test>")
    assert draft.body.startswith("On Thu, 26 Nov 2026") and "> Shall we meet at noon?" in draft.body
    said = await api.send(replace(local, draft=replace(draft, body="Noon it is.\n" + draft.body)))
    assert said == "Sending to 2 recipients from me"
    assert not LocalDrafts().text_path(local.id).exists()  # in the outbox now

    sent = await events.wait_for(MessageSent, 30, message_id=draft.message_id)
    assert sent.refused == ()
    for person in (user2, carol):
        (got,) = await asyncio.to_thread(wait_for_messages, dovecot, person, 1, timeout=30)
        parsed = parse_message(got)
        assert parsed.subject == "Re: Lunch plans"
        assert parsed.header("In-Reply-To") == "<orig1@example.test>"
        assert parsed.from_ == (Address("Ålice Mé", user.email),)
        assert parsed.text is not None and parsed.text.startswith("Noon it is.")
    await wait_for_async(
        lambda: asyncio.to_thread(lambda: len(folder_messages(dovecot, user, "Sent")) == 1),
        20,
        message="one copy in Sent",
    )
    await wait_for_async(
        lambda: asyncio.to_thread(lambda: b"\\Answered" in server_flags(dovecot, user)[0]),
        20,
        message="the original answered",
    )
    await wait_for_async(lambda: not api.engine.outboxes["me"].outbox.items(), 10)
    (copy,) = folder_messages(dovecot, user, "Sent")
    assert parse_message(copy).message_id == draft.message_id
    assert api.outbox_status().describe() == ""


async def test_with_postfix_stopped_the_message_waits_and_goes_exactly_once(
    xdg: Path,
    postfix_factory: Callable[..., Postfix],
    dovecot: Dovecot,
    user: User,
    user2: User,
    running: Callable[[Config], Any],
) -> None:
    mta = postfix_factory()
    mta.stop()
    api: MailApi = await running(config_for(dovecot, user, mta.host, mta.ports.submission))
    events = api.subscribe()
    local = api.compose.new("me", f"Bob <{user2.email}>", "patience")
    await api.send(replace(local, draft=replace(local.draft, body="eventually\n")))

    waiting = await outbox_waits(events)
    assert "cannot reach" in (waiting.reason or "")
    status = api.outbox_status().describe()
    assert status.startswith("1 in outbox: ") and "cannot reach" in status

    mta.start()
    api.engine.outboxes["me"].wake()
    await events.wait_for(MessageSent, 30, message_id=local.draft.message_id)
    await events.wait_for(OutboxChanged, 30, queued=0, failed=0, saving=0)
    (got,) = await asyncio.to_thread(wait_for_messages, dovecot, user2, 1, timeout=30)
    assert parse_message(got).subject == "patience"
    mid = local.draft.message_id or ""
    await asyncio.to_thread(
        wait_for,
        lambda: mta.maillog.read_text(errors="replace").count(f"message-id={mid}") >= 1,
        10,
        message="maillog",
    )
    await api.engine.outboxes["me"].flush(force=True)  # nothing is left to send again
    assert mta.maillog.read_text(errors="replace").count(f"message-id={mid}") == 1
    assert len(folder_messages(dovecot, user, "Sent")) == 1
    assert api.outbox_status().describe() == ""


async def test_a_draft_survives_a_killed_app_and_is_replaced_not_duplicated(
    xdg: Path,
    postfix: Postfix,
    dovecot: Dovecot,
    user: User,
    user2: User,
    running: Callable[[Config], Any],
) -> None:
    config = config_for(dovecot, user, postfix.host, postfix.ports.submission)
    api: MailApi = await running(config)
    local = api.compose.new("me", user2.email, "Half-written")
    local = await api.compose.keep(replace(local, draft=replace(local.draft, body="first\n")))
    saved = await api.save_draft(local)
    assert saved.server_folder == "Drafts" and saved.server_uid is not None
    saved = await api.save_draft(replace(saved, draft=replace(saved.draft, body="second\n")))
    await api.engine.imap["me"].flush_actions()
    (only,) = folder_messages(dovecot, user, "Drafts")  # replaced, not duplicated
    assert "second" in (parse_message(only).text or "")
    # Typing goes on (the local copy follows every change); then the app is killed: no
    # shutdown, nothing saved to the server after this point.
    await api.compose.keep(replace(saved, draft=replace(saved.draft, body="third, unsaved\n")))
    text_on_disk = LocalDrafts().text_path(saved.id).read_text()
    assert "third, unsaved" in text_on_disk and f"To: {user2.email}" in text_on_disk

    heard: list[Subscription] = []
    again: MailApi = await running(config, heard)  # the next start, same data dir
    told = await heard[0].wait_for(DraftsRecovered, 20, account="me")
    assert isinstance(told, DraftsRecovered)
    assert told.subjects == ("Half-written",) and told.folder == "Drafts"
    await wait_for_async(
        lambda: asyncio.to_thread(
            lambda: [m for m in folder_messages(dovecot, user, "Drafts") if b"third, unsaved" in m]
        ),
        20,
        message="the recovered draft in Drafts",
    )
    await again.engine.imap["me"].flush_actions()
    await wait_for_async(
        lambda: asyncio.to_thread(lambda: len(folder_messages(dovecot, user, "Drafts")) == 1),
        10,
        message="the earlier copy replaced",
    )
    assert LocalDrafts().all() == []
    (uid,) = again.message_index("me", "Drafts") or [0]
    reopened = await again.draft_from("me", "Drafts", uid)
    assert reopened.draft.subject == "Half-written"
    assert reopened.draft.to == parse_addresses(user2.email)
    assert reopened.draft.message_id == saved.draft.message_id
    assert reopened.draft.body.startswith("third, unsaved")


async def test_starttls_required_but_not_offered_sends_nothing(
    xdg: Path,
    postfix: Postfix,
    dovecot: Dovecot,
    user: User,
    user2: User,
    running: Callable[[Config], Any],
    proxy_factory: Callable[[str, int], TcpProxy],
) -> None:
    proxy = proxy_factory(postfix.host, postfix.ports.plain)  # no STARTTLS, AUTH offered anyway
    api: MailApi = await running(config_for(dovecot, user, proxy.host, proxy.port))
    events = api.subscribe()
    local = api.compose.new("me", user2.email, "secret plans")
    await api.send(replace(local, draft=replace(local.draft, body="top secret\n")))

    waiting = await outbox_waits(events)
    assert "STARTTLS" in (waiting.reason or "")
    sent = proxy.client_bytes()
    assert not any(form in sent for form in user.secret_forms())
    assert b"AUTH" not in sent and b"MAIL FROM" not in sent and b"top secret" not in sent
    assert len(api.engine.outboxes["me"].outbox.items()) == 1  # kept, to go when it can


def test_kittiwake_send_command_sends_and_files_the_copy(
    xdg: Path, postfix: Postfix, dovecot: Dovecot, user: User, user2: User
) -> None:
    config_path = xdg / "config.toml"
    config_path.write_text(
        f'[accounts.me]\nemail = "{user.email}"\n'
        f'[accounts.me.imap]\nhost = "{dovecot.host}"\nport = {dovecot.ports.imaps}\n'
        f'user = "{user.login}"\npassword = "{user.password}"\nca_file = "{dovecot.ca_file}"\n'
        f'[accounts.me.smtp]\nhost = "{postfix.host}"\nport = {postfix.ports.submission}\n'
        f'security = "starttls"\nuser = "{user.login}"\npassword = "{user.password}"\n'
        f'ca_file = "{dovecot.ca_file}"\n'
    )
    config_path.chmod(0o600)
    raw = (
        f"From: {user.email}\nTo: {user2.email}\nSubject: from a script\n\nhello from git\n"
    ).encode()
    done = subprocess.run(
        [sys.executable, "-m", "kittiwake.cli.main", "send", "--config", str(config_path)],
        input=raw,
        capture_output=True,
        env=dict(os.environ),
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert b"accepted" in done.stderr
    (got,) = wait_for_messages(dovecot, user2, 1, timeout=30)
    assert parse_message(got).subject == "from a script"
    (copy,) = folder_messages(dovecot, user, "Sent")
    assert parse_message(copy).subject == "from a script"


REFUSING = (
    "smtpd_recipient_restrictions = check_recipient_access inline:{ "
    "{ nobody@example.test = 550 5.1.1 Mailbox nobody is unknown here } }, permit"
)


async def test_a_refused_message_says_why_and_comes_back_to_be_fixed(
    xdg: Path,
    postfix_factory: Callable[..., Postfix],
    dovecot: Dovecot,
    user: User,
    user2: User,
    running: Callable[[Config], Any],
) -> None:
    mta = postfix_factory(extra_main_cf=REFUSING)
    api: MailApi = await running(config_for(dovecot, user, mta.host, mta.ports.submission))
    events = api.subscribe()
    local = api.compose.new("me", "nobody@example.test", "typo in the address")
    await api.send(replace(local, draft=replace(local.draft, body="hello?\n")))

    failed = await events.wait_for(SendFailed, 30, message_id=local.draft.message_id)
    assert "550 5.1.1 <nobody@example.test>: Recipient address rejected" in failed.message
    status = api.outbox_status().describe()
    assert status.startswith("1 not sent: ") and "Mailbox nobody is unknown here" in status
    ((account, item_id, words),) = api.compose.refused()
    assert account == "me" and "550" in words

    fixing = await api.compose.edit_refused(account, item_id)
    assert api.engine.outboxes["me"].outbox.items() == []
    assert LocalDrafts().text_path(fixing.id).exists()
    assert fixing.draft.subject == "typo in the address"
    assert fixing.draft.body == "hello?\n"
    fixed = replace(fixing.draft, to=parse_addresses(user2.email))
    await api.send(replace(fixing, draft=fixed))
    await events.wait_for(MessageSent, 30, message_id=local.draft.message_id)
    # The outbox says so after it has recorded the delivery (the event after MessageSent).
    await events.wait_for(OutboxChanged, 30, queued=0, failed=0)
    (got,) = await asyncio.to_thread(wait_for_messages, dovecot, user2, 1, timeout=30)
    assert parse_message(got).subject == "typo in the address"
    assert api.outbox_status().describe() in ("", "1 being saved to Sent")
