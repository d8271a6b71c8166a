"""Sending for real: Kittiwake's composer, SMTP session and outbox against the private Postfix,
which delivers to the private Dovecot, where the recipient's INBOX is read over IMAP.

Synchronisation is by conditions with deadlines (``wait_for``/``wait_for_async``), never sleeps.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import random
import subprocess
import sys
import textwrap
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

import pytest
import trustme
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

from kittiwake.core.compose.draft import Draft
from kittiwake.core.compose.mime import build_mime
from kittiwake.core.compose.reply import draft_from_message, new_message, reply
from kittiwake.core.config import Account, config_from_dict
from kittiwake.core.events import EventBus
from kittiwake.core.message.mime import parse_message
from kittiwake.core.models import Address
from kittiwake.core.smtp.client import SmtpSession, probe
from kittiwake.core.smtp.outbox import (
    Backoff,
    CopyState,
    ItemState,
    MessageSent,
    Outbox,
    OutboxChanged,
    OutboxRunner,
    SendFailed,
    SentInfo,
)

FAST = Backoff(first=0.2, factor=1.5, maximum=1.0, jitter=0.0)
REFUSED = "nobody"
DEFERRED = "later"
RESTRICTIONS = (
    "smtpd_recipient_restrictions = check_recipient_access inline:{ "
    f"{{ {REFUSED}@example.test = 550 5.1.1 Mailbox {REFUSED} is unknown here }}, "
    f"{{ {DEFERRED}@example.test = 450 4.2.0 Mailbox {DEFERRED} is busy, try later }} }}, permit"
)


def account_for(
    user: User,
    server: Postfix | TcpProxy,
    port: int,
    *,
    security: str = "starttls",
    ca_file: Path,
    save_sent: bool = True,
    name: str = "Ålice Éxample-Ünïcode",
) -> Account:
    config = config_from_dict(
        {
            "accounts": {
                "me": {
                    "email": user.email,
                    "name": name,
                    "imap": {"host": server.host, "ca_file": str(ca_file)},
                    "smtp": {
                        "host": server.host,
                        "port": port,
                        "security": security,
                        "user": user.login,
                        "password": user.password,
                        "ca_file": str(ca_file),
                        "timeout": 10,
                        "save_sent": save_sent,
                    },
                }
            }
        }
    )
    return config.accounts["me"]


class SentFolder:
    """What the engine's ``on_sent`` does: APPEND to Sent with \\Seen, exactly once (after a
    possible earlier attempt it looks for the Message-ID first). Over an independent client."""

    def __init__(self, dovecot: Dovecot, user: User) -> None:
        self.dovecot = dovecot
        self.user = user
        self.calls: list[SentInfo] = []

    async def __call__(self, account: str, raw: bytes, info: SentInfo) -> None:
        self.calls.append(info)
        await asyncio.to_thread(self._append, raw, info)

    def _append(self, raw: bytes, info: SentInfo) -> None:
        imap = imap_device(self.dovecot, self.user)
        try:
            if info.possibly_done:
                imap.select("Sent", readonly=True)
                typ, data = imap.uid("SEARCH", "HEADER", "Message-ID", info.message_id)
                if typ == "OK" and data and data[0].split():
                    return
            typ, _ = imap.append("Sent", "(\\Seen)", None, raw)
            assert typ == "OK"
        finally:
            imap.logout()

    def messages(self) -> list[bytes]:
        imap = imap_device(self.dovecot, self.user)
        try:
            return imap_fetch_all(imap, "Sent")
        finally:
            imap.logout()


def submissions(postfix: Postfix, message_id: str) -> int:
    """How many times Postfix received a message with this Message-ID (cleanup logs each)."""
    try:
        return postfix.maillog.read_text(errors="replace").count(f"message-id={message_id}")
    except FileNotFoundError:
        return 0


def inbox(dovecot: Dovecot, user: User) -> list[bytes]:
    imap = imap_device(dovecot, user)
    try:
        return imap_fetch_all(imap)
    finally:
        imap.logout()


def with_id(messages: list[bytes], message_id: str) -> list[bytes]:
    return [m for m in messages if message_id.encode() in m.split(b"\r\n\r\n", 1)[0]]


async def built_for(account: Account, draft: Draft) -> tuple[bytes, str, tuple[str, ...], str]:
    caps = await probe(account)
    built = build_mime(draft, account, caps.smtputf8, caps.eightbitmime)
    return built.raw, built.envelope_from, built.envelope_rcpts, built.message_id


# -- a rich message, both TLS paths ----------------------------------------------------------


async def test_rich_message_arrives_intact_with_its_sent_copy(
    tmp_path: Path, postfix: Postfix, dovecot: Dovecot, user: User, user2: User
) -> None:
    carol = dovecot.add_user("carol")
    account = account_for(user, postfix, postfix.ports.submission, ca_file=postfix.ca_file)
    attachment = tmp_path / "Überblick résumé — 日本.bin"
    payload = random.Random(6).randbytes(5 * 1024 * 1024)
    attachment.write_bytes(payload)
    long_line = ("Grüße " * 400)[:2000]
    subject = "Grüße aus Köln: «naïve» 日本語 and a long tail that has to be folded somewhere"
    draft = new_message(
        account,
        to=[Address("Bób Ünïcode, Jr. (日本)", user2.email)],
        bcc=[Address("Cärol", carol.email)],
        subject=subject,
        body=f"Hello Bób,\n\n{long_line}\n.\nFrom here on: the end.\n",
        attachments=[attachment],
    )
    caps = await probe(account)
    assert caps.eightbitmime and caps.smtputf8
    built = build_mime(draft, account, caps.smtputf8, caps.eightbitmime)
    sent = SentFolder(dovecot, user)
    bus = EventBus()
    events = bus.subscribe()
    runner = OutboxRunner(
        account, Outbox("me", tmp_path / "outbox"), publish=bus.publish, on_sent=sent
    )

    await runner.enqueue(
        built.raw,
        built.envelope_from,
        built.envelope_rcpts,
        message_id=built.message_id,
        sent_copy=built.sent_copy,
    )
    (outcome,) = await runner.flush()

    assert outcome.status == "accepted", outcome.message
    (delivered,) = await asyncio.to_thread(wait_for_messages, dovecot, user2, 1, timeout=30)
    (to_carol,) = await asyncio.to_thread(wait_for_messages, dovecot, carol, 1, timeout=30)
    for raw in (delivered, to_carol):
        assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
        ours = parse_message(raw)
        assert ours.subject == subject
        assert ours.from_ == (Address("Ålice Éxample-Ünïcode", user.email),)
        assert ours.to == (Address("Bób Ünïcode, Jr. (日本)", user2.email),)
        assert ours.header("Bcc") is None and b"Bcc:" not in raw.split(b"\r\n\r\n")[0]
        assert ours.message_id == built.message_id
        assert ours.text is not None and long_line in ours.text.replace("\r\n", "\n")
        (att,) = ours.attachments
        assert att.filename == "Überblick résumé — 日本.bin"
        assert att.payload() == payload
        # An independent parser reads the same.
        theirs = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(theirs, EmailMessage)
        assert theirs["Subject"] == subject
        assert theirs["To"].addresses[0].display_name == "Bób Ünïcode, Jr. (日本)"
        (part,) = list(theirs.iter_attachments())
        assert part.get_filename() == "Überblick résumé — 日本.bin"
        assert part.get_content() == payload
    # The Sent copy: once, with the Bcc, and the outbox is empty again.
    (copy,) = sent.messages()
    assert parse_message(copy).header("Bcc") == f"Cärol <{carol.email}>"
    assert [c.possibly_done for c in sent.calls] == [False]
    assert runner.outbox.items() == []
    kinds = [type(e) for e in events.pending()]
    assert MessageSent in kinds and kinds[-1] is OutboxChanged
    assert submissions(postfix, built.message_id) == 1


async def test_implicit_tls_path(
    tmp_path: Path, postfix: Postfix, dovecot: Dovecot, user: User
) -> None:
    account = account_for(
        user,
        postfix,
        postfix.ports.submissions,
        security="tls",
        ca_file=postfix.ca_file,
        save_sent=False,
    )
    draft = new_message(account, to=[Address("", user.email)], subject="über 465", body="hi\n")
    raw, env_from, rcpts, mid = await built_for(account, draft)
    runner = OutboxRunner(account, Outbox("me", tmp_path))

    item = await runner.enqueue(raw, env_from, rcpts, message_id=mid)
    assert item.copy is CopyState.NONE  # save_sent = false
    outcome = await runner.send_now(item.id)

    assert outcome.status == "accepted", outcome.message
    (got,) = await asyncio.to_thread(wait_for_messages, dovecot, user, 1)
    assert parse_message(got).subject == "über 465"
    assert runner.outbox.items() == []


async def test_untrusted_certificate_sends_nothing(
    tmp_path: Path, postfix: Postfix, user: User, proxy_factory: Callable[[str, int], TcpProxy]
) -> None:
    other_ca = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other_ca))  # trusts someone else, not the test CA
    proxy = proxy_factory(postfix.host, postfix.ports.submissions)
    account = account_for(user, proxy, proxy.port, security="tls", ca_file=other_ca)
    runner = OutboxRunner(account, Outbox("me", tmp_path / "o"), backoff=FAST)
    item = await runner.enqueue(
        b"Subject: x\r\n\r\nx\r\n", user.email, [user.email], message_id="<t@x.test>"
    )

    outcome = await runner.send_now(item.id)

    assert outcome.status == "queued"
    assert "certificate is not trusted" in outcome.message
    assert not any(form in proxy.client_bytes() for form in user.secret_forms())


# -- STARTTLS downgrade ------------------------------------------------------------------------


async def test_starttls_required_but_not_offered_sends_nothing(
    tmp_path: Path, postfix: Postfix, user: User, proxy_factory: Callable[[str, int], TcpProxy]
) -> None:
    proxy = proxy_factory(postfix.host, postfix.ports.plain)  # no STARTTLS, AUTH offered anyway
    account = account_for(user, proxy, proxy.port, security="starttls", ca_file=postfix.ca_file)
    bus = EventBus()
    events = bus.subscribe()
    runner = OutboxRunner(account, Outbox("me", tmp_path), publish=bus.publish, backoff=FAST)
    draft = new_message(account, to=[Address("", user.email)], subject="secret", body="hi\n")
    built = build_mime(draft, account)

    item = await runner.enqueue(
        built.raw, built.envelope_from, built.envelope_rcpts, message_id=built.message_id
    )
    outcome = await runner.send_now(item.id)

    assert outcome.status == "queued"
    assert "does not offer STARTTLS" in outcome.message
    sent = proxy.client_bytes()
    assert proxy.connection_count == 1 and b"EHLO" in sent
    assert not any(form in sent for form in user.secret_forms())
    assert b"AUTH" not in sent and b"MAIL FROM" not in sent and b"secret" not in sent
    (kept,) = runner.outbox.items()
    assert kept.state is ItemState.QUEUED and kept.attempts == 1 and kept.next_attempt > 0
    changed = [e for e in events.pending() if isinstance(e, OutboxChanged)]
    assert changed[-1].queued == 1 and "STARTTLS" in (changed[-1].reason or "")


# -- server down, restart, exactly once ----------------------------------------------------


async def test_message_waits_while_postfix_is_down_and_goes_exactly_once(
    tmp_path: Path,
    postfix_factory: Callable[..., Postfix],
    dovecot: Dovecot,
    user: User,
    user2: User,
) -> None:
    mta = postfix_factory()
    account = account_for(user, mta, mta.ports.submission, ca_file=mta.ca_file)
    draft = new_message(account, to=[Address("Bob", user2.email)], subject="patience", body="x\n")
    built = build_mime(draft, account, True, True)
    mta.stop()

    first = OutboxRunner(account, Outbox("me", tmp_path), backoff=FAST)
    item = await first.enqueue(
        built.raw, built.envelope_from, built.envelope_rcpts, message_id=built.message_id
    )
    outcome = await first.send_now(item.id)
    assert outcome.status == "queued" and "cannot reach" in outcome.message
    await first.stop()
    del first  # the app quits with the message in the outbox

    sent = SentFolder(dovecot, user)
    bus = EventBus()
    events = bus.subscribe()
    second = OutboxRunner(
        account, Outbox("me", tmp_path), publish=bus.publish, on_sent=sent, backoff=FAST
    )
    (waiting,) = second.outbox.items()
    assert waiting.id == item.id and waiting.attempts == 1 and waiting.error
    second.start()
    try:
        mta.start()
        event = await events.wait_for(MessageSent, 30, message_id=built.message_id)
        assert event.refused == ()
        await wait_for_async(lambda: not second.outbox.items(), 10, message="outbox empty")
        await second.flush(force=True)  # nothing left to send
    finally:
        await second.stop()

    messages = await asyncio.to_thread(wait_for_messages, dovecot, user2, 1)
    assert len(with_id(messages, built.message_id)) == 1
    await asyncio.to_thread(
        wait_for, lambda: submissions(mta, built.message_id) >= 1, 10, message="maillog"
    )
    assert submissions(mta, built.message_id) == 1
    assert len(sent.messages()) == 1


# -- refusals ----------------------------------------------------------------------------------


@pytest.fixture
def picky(postfix_factory: Callable[..., Postfix]) -> Postfix:
    """A Postfix that refuses nobody@ for good (550) and later@ for now (450) at RCPT."""
    return postfix_factory(extra_main_cf=RESTRICTIONS)


async def test_permanent_refusal_shows_the_servers_words_and_keeps_the_message(
    tmp_path: Path, picky: Postfix, user: User
) -> None:
    account = account_for(user, picky, picky.ports.submission, ca_file=picky.ca_file)
    draft = new_message(
        account,
        to=[Address("No One", f"{REFUSED}@example.test")],
        bcc=[Address("", f"{REFUSED}@example.test")],
        subject="for nobody",
        body="this will bounce at once\n",
    )
    built = build_mime(draft, account, True, True)
    bus = EventBus()
    events = bus.subscribe()
    runner = OutboxRunner(account, Outbox("me", tmp_path), publish=bus.publish, backoff=FAST)

    item = await runner.enqueue(
        built.raw,
        built.envelope_from,
        built.envelope_rcpts,
        message_id=built.message_id,
        sent_copy=built.sent_copy,
    )
    outcome = await runner.send_now(item.id)

    assert outcome.status == "failed"
    assert f"{REFUSED}@example.test: 550 5.1.1 <{REFUSED}@example.test>" in outcome.message
    assert f"Mailbox {REFUSED} is unknown here" in outcome.message
    (failed,) = [e for e in events.pending() if isinstance(e, SendFailed)]
    assert failed.message == outcome.message and failed.item_id == item.id
    (kept,) = runner.outbox.items()
    assert kept.state is ItemState.FAILED and kept.error == outcome.message
    # Kept for editing: the draft comes back, Bcc included.
    again = draft_from_message(parse_message(runner.outbox.sent_copy(item.id)))
    assert again.subject == "for nobody" and again.bcc == (Address("", f"{REFUSED}@example.test"),)
    # A failed item is not retried by itself.
    assert await runner.flush(force=True) == []
    assert runner.next_due_in() is None
    assert submissions(picky, built.message_id) == 0


async def test_partial_refusal_is_reported_and_the_rest_delivered(
    tmp_path: Path, picky: Postfix, dovecot: Dovecot, user: User, user2: User
) -> None:
    account = account_for(user, picky, picky.ports.submission, ca_file=picky.ca_file)
    draft = new_message(
        account,
        to=[Address("Bob", user2.email), Address("", f"{REFUSED}@example.test")],
        subject="some of you",
        body="hi\n",
    )
    built = build_mime(draft, account, True, True)
    bus = EventBus()
    events = bus.subscribe()
    sent = SentFolder(dovecot, user)
    runner = OutboxRunner(
        account, Outbox("me", tmp_path), publish=bus.publish, on_sent=sent, backoff=FAST
    )

    item = await runner.enqueue(
        built.raw, built.envelope_from, built.envelope_rcpts, message_id=built.message_id
    )
    outcome = await runner.send_now(item.id)

    assert outcome.status == "accepted"
    (refusal,) = outcome.refused
    assert refusal.recipient == f"{REFUSED}@example.test" and refusal.code == 550
    assert "is unknown here" in outcome.message
    (event,) = [e for e in events.pending() if isinstance(e, MessageSent)]
    assert event.refused == ((f"{REFUSED}@example.test", refusal.words),)
    (got,) = await asyncio.to_thread(wait_for_messages, dovecot, user2, 1)
    assert parse_message(got).message_id == built.message_id
    assert runner.outbox.items() == []
    assert len(sent.messages()) == 1


async def test_recipient_refused_for_now_is_retried_alone(
    tmp_path: Path, picky: Postfix, dovecot: Dovecot, user: User, user2: User
) -> None:
    account = account_for(user, picky, picky.ports.submission, ca_file=picky.ca_file)
    draft = new_message(
        account,
        to=[Address("Bob", user2.email), Address("", f"{DEFERRED}@example.test")],
        subject="one now, one later",
        body="hi\n",
    )
    built = build_mime(draft, account, True, True)
    sent = SentFolder(dovecot, user)
    runner = OutboxRunner(account, Outbox("me", tmp_path), on_sent=sent, backoff=FAST)
    item = await runner.enqueue(
        built.raw, built.envelope_from, built.envelope_rcpts, message_id=built.message_id
    )

    first = await runner.send_now(item.id)
    assert first.status == "accepted" and "tried again" in first.message
    (waiting,) = runner.outbox.items()
    assert waiting.state is ItemState.QUEUED
    assert waiting.recipients == (f"{DEFERRED}@example.test",)
    assert waiting.accepted == (user2.email,)
    assert waiting.error is not None and "450 4.2.0" in waiting.error
    assert waiting.copy is CopyState.DONE and len(sent.messages()) == 1  # filed once accepted

    second = await runner.send_now(item.id)  # still 450: only later@ is tried
    assert second.status == "queued" and "450 4.2.0" in second.message
    await asyncio.to_thread(
        wait_for, lambda: submissions(picky, built.message_id) >= 1, 10, message="maillog"
    )
    assert submissions(picky, built.message_id) == 1
    messages = await asyncio.to_thread(wait_for_messages, dovecot, user2, 1)
    assert len(with_id(messages, built.message_id)) == 1
    assert len(sent.messages()) == 1


# -- never twice across a crash ---------------------------------------------------------------

CRASHING_CHILD = textwrap.dedent(
    """
    import asyncio, json, os, sys
    from pathlib import Path
    from kittiwake.core.config import config_from_dict
    from kittiwake.core.smtp import outbox as ob

    args = json.loads(sys.argv[1])
    account = config_from_dict(args["config"]).accounts["me"]
    where = args["crash"]

    def die():
        os._exit(17)  # no cleanup, no finally: like a power cut

    if where == "after-acceptance":
        original = ob.Outbox.record_accepted
        def record_then_die(self, message_id, recipients):
            original(self, message_id, recipients)
            die()
        ob.Outbox.record_accepted = record_then_die

    async def on_sent(account_name, raw, info):
        import imaplib, ssl
        ctx = ssl.create_default_context(cafile=args["ca_file"])
        imap = imaplib.IMAP4_SSL(args["imap_host"], args["imap_port"], ssl_context=ctx)
        imap.login(args["login"], args["password"])
        imap.append("Sent", "(\\\\Seen)", None, raw)
        die()  # filed, but the outbox never hears of it

    async def main():
        runner = ob.OutboxRunner(account, ob.Outbox("me", Path(args["root"])), on_sent=on_sent)
        await runner.flush(force=True)

    asyncio.run(main())
    sys.exit(3)  # not reached if the crash happened
    """
)


def crash_child(
    tmp_path: Path, account_data: dict[str, object], crash: str, dovecot: Dovecot, user: User
) -> int:
    args = {
        "config": account_data,
        "crash": crash,
        "root": str(tmp_path),
        "ca_file": str(dovecot.ca_file),
        "imap_host": dovecot.host,
        "imap_port": dovecot.ports.imaps,
        "login": user.login,
        "password": user.password,
    }
    script = tmp_path / "child.py"
    script.write_text(CRASHING_CHILD)
    proc = subprocess.run(
        [sys.executable, str(script), json.dumps(args)], capture_output=True, timeout=60
    )
    assert proc.returncode == 17, proc.stderr.decode(errors="replace")
    return proc.returncode


def config_data(user: User, mta: Postfix) -> dict[str, object]:
    return {
        "accounts": {
            "me": {
                "email": user.email,
                "imap": {"host": mta.host, "ca_file": str(mta.ca_file)},
                "smtp": {
                    "host": mta.host,
                    "port": mta.ports.submission,
                    "security": "starttls",
                    "user": user.login,
                    "password": user.password,
                    "ca_file": str(mta.ca_file),
                    "timeout": 10,
                },
            }
        }
    }


@pytest.mark.parametrize("crash", ["after-acceptance", "inside-sent-copy"])
async def test_never_twice_across_a_crash(
    tmp_path: Path, crash: str, postfix: Postfix, dovecot: Dovecot, user: User, user2: User
) -> None:
    data = config_data(user, postfix)
    account = config_from_dict(data).accounts["me"]
    draft = new_message(
        account, to=[Address("", user2.email)], subject=f"crash {crash}", body="x\n"
    )
    built = build_mime(draft, account, True, True)
    Outbox("me", tmp_path).enqueue(
        built.raw,
        built.envelope_from,
        built.envelope_rcpts,
        message_id=built.message_id,
        sent_copy=built.sent_copy,
        save_sent=True,
    )

    crash_child(tmp_path, data, crash, dovecot, user)

    (left,) = Outbox("me", tmp_path).items()  # the crash left the item behind
    assert left.copy is (CopyState.WAITING if crash == "after-acceptance" else CopyState.STARTED)
    sent = SentFolder(dovecot, user)
    runner = OutboxRunner(account, Outbox("me", tmp_path), on_sent=sent, backoff=FAST)
    (outcome,) = await runner.flush()
    if crash == "after-acceptance":
        assert outcome.status == "accepted" and "not sent again" in outcome.message
    else:
        assert outcome.status == "filed" and not outcome.copy_pending
    assert runner.outbox.items() == []
    assert [c.possibly_done for c in sent.calls] == [crash == "inside-sent-copy"]

    messages = await asyncio.to_thread(wait_for_messages, dovecot, user2, 1)
    assert len(with_id(messages, built.message_id)) == 1
    await asyncio.to_thread(
        wait_for, lambda: submissions(postfix, built.message_id) >= 1, 10, message="maillog"
    )
    assert submissions(postfix, built.message_id) == 1
    assert len(with_id(sent.messages(), built.message_id)) == 1


async def test_a_message_id_once_accepted_is_not_submitted_again(
    tmp_path: Path, postfix: Postfix, dovecot: Dovecot, user: User, user2: User
) -> None:
    account = account_for(
        user, postfix, postfix.ports.submission, ca_file=postfix.ca_file, save_sent=False
    )
    draft = new_message(account, to=[Address("", user2.email)], subject="once", body="x\n")
    built = build_mime(draft, account, True, True)
    runner = OutboxRunner(account, Outbox("me", tmp_path), backoff=FAST)
    for _ in range(2):  # e.g. a script that runs `kittiwake send` twice with the same file
        item = await runner.enqueue(
            built.raw, built.envelope_from, built.envelope_rcpts, message_id=built.message_id
        )
        outcome = await runner.send_now(item.id)
        assert outcome.status == "accepted"
    assert outcome.message == "already sent; not sent again"
    await asyncio.to_thread(
        wait_for, lambda: submissions(postfix, built.message_id) >= 1, 10, message="maillog"
    )
    assert submissions(postfix, built.message_id) == 1


# -- a reply through the whole chain --------------------------------------------------------


async def test_reply_threads_on_the_recipients_side(
    tmp_path: Path, postfix: Postfix, dovecot: Dovecot, user: User, user2: User
) -> None:
    me = account_for(
        user, postfix, postfix.ports.submission, ca_file=postfix.ca_file, save_sent=False
    )
    bob = account_for(
        user2,
        postfix,
        postfix.ports.submission,
        ca_file=postfix.ca_file,
        save_sent=False,
        name="Bob",
    )
    first = build_mime(
        new_message(me, to=[Address("Bob", user2.email)], subject="Plans", body="Lunch?\n"),
        me,
        True,
        True,
    )
    runner_a = OutboxRunner(me, Outbox("me", tmp_path / "a"))
    await runner_a.enqueue(
        first.raw, first.envelope_from, first.envelope_rcpts, message_id=first.message_id
    )
    await runner_a.flush()
    (got,) = await asyncio.to_thread(wait_for_messages, dovecot, user2, 1)

    answer = reply(parse_message(got), bob)
    assert answer.to == (Address("Ålice Éxample-Ünïcode", user.email),)
    assert answer.subject == "Re: Plans" and answer.in_reply_to == first.message_id
    text = answer.to_text().replace("\n\nOn ", "\n\nSure.\n\nOn ", 1)
    answer = Draft.from_text(text, answer)  # as edited in $EDITOR
    built = build_mime(answer, bob, True, True)
    runner_b = OutboxRunner(bob, Outbox("me", tmp_path / "b"))
    await runner_b.enqueue(
        built.raw, built.envelope_from, built.envelope_rcpts, message_id=built.message_id
    )
    await runner_b.flush()
    (back,) = await asyncio.to_thread(wait_for_messages, dovecot, user, 1)
    parsed = parse_message(back)
    assert parsed.subject == "Re: Plans"
    assert parsed.header("In-Reply-To") == first.message_id
    assert parsed.header("References") == first.message_id
    assert (parsed.text or "").replace("\r\n", "\n").startswith("Sure.\n\nOn ")
    assert "> Lunch?" in (parsed.text or "")


async def test_capabilities_are_learned_once_and_remembered(
    tmp_path: Path, postfix: Postfix, user: User
) -> None:
    account = account_for(user, postfix, postfix.ports.submission, ca_file=postfix.ca_file)
    async with SmtpSession(account) as session:
        caps = session.capabilities
    assert caps.eightbitmime and caps.smtputf8 and caps.size is not None
    runner = OutboxRunner(account, Outbox("me", tmp_path))
    assert runner.outbox.capabilities() is None
    assert await runner.capabilities() == caps  # asks the server once
    assert Outbox("me", tmp_path).capabilities() == caps  # then remembers, across restarts
