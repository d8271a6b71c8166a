"""The SMTP outbox under a fault at every stage of a submission, against the real Postfix
through the fault proxy; deliveries are counted by Message-ID in the recipient's mailbox.

What must hold (RELIABILITY.md): nothing lost (a message is delivered, or kept in the outbox
and told to the user); never a resend after a 5xx; a lost reply after the final dot makes the
item "uncertain", never resent by itself, and that window is the only one where a resend the
user asks for can deliver twice (counted here exactly); one Sent copy per accepted message.

Counting "not delivered" needs no waiting on time: a sentinel message is submitted after the
faulted run, and once it is in the mailbox and Postfix's queue is empty, everything Postfix
accepted before it has been delivered.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from faults.deliveries import deliveries
from harness import Dovecot, Postfix, TcpProxy, User

from kittiwake.core.compose.mime import build_mime
from kittiwake.core.compose.reply import new_message
from kittiwake.core.config import Account, config_from_dict
from kittiwake.core.events import DeliveryUncertain, Event, SendFailed
from kittiwake.core.models import Address
from kittiwake.core.smtp.outbox import Backoff, Outbox, OutboxRunner, SentInfo

FAST = Backoff(first=0.2, factor=2.0, maximum=1.0, jitter=0.0)
MARK = "MIDDLE-OF-THE-BODY"


def account(user: User, proxy: TcpProxy, security: str, ca_file: Path) -> Account:
    smtp: dict[str, object] = {
        "host": proxy.host,
        "port": proxy.port,
        "security": security,
        "user": user.login,
        "password": user.password,
        "timeout": 2,
    }
    if security != "none":
        smtp["ca_file"] = str(ca_file)
    return config_from_dict(
        {"accounts": {"me": {"email": user.email, "imap": {"host": proxy.host}, "smtp": smtp}}}
    ).accounts["me"]


@dataclass
class Fault:
    """One fault: how to arm it, on which port, what the first attempt must end as, and how
    many copies the recipient has once the fault is gone and the outbox is flushed again."""

    port: str  # "plain" (the proxy reads SMTP) or "submission" (STARTTLS)
    arm: Callable[[TcpProxy], threading.Event | None]
    first: str  # the first attempt's outcome
    delivered_without_user: int  # after the fault is gone and the outbox ran again
    delivered_if_user_resends: int | None = None  # "uncertain" only: the user's resend


FAULTS = {
    "connection refused": Fault("plain", lambda p: p.refuse_new_connections(), "queued", 1),
    "greeting hangs": Fault("plain", lambda p: p.pause(), "queued", 1),
    "421 greeting": Fault(
        "plain",
        lambda p: p.rewrite_line(b"220 ", b"421 4.3.2 Service not available\r\n"),
        "queued",
        1,
    ),
    "STARTTLS cut": Fault(
        "submission", lambda p: p.cut_after(b"Ready to start TLS", "server"), "queued", 1
    ),
    "451 on MAIL": Fault(
        "plain",
        lambda p: p.rewrite_line(b"250 2.1.0", b"451 4.3.0 Try again later\r\n"),
        "queued",
        1,
    ),
    "553 on MAIL": Fault(
        "plain",
        lambda p: p.rewrite_line(b"250 2.1.0", b"553 5.7.1 Sender rejected\r\n"),
        "failed",
        0,
    ),
    "450 on RCPT": Fault(
        "plain",
        lambda p: p.rewrite_line(b"250 2.1.5", b"450 4.2.0 Try again later\r\n"),
        "queued",
        1,
    ),
    "550 on RCPT": Fault(
        "plain",
        lambda p: p.rewrite_line(b"250 2.1.5", b"550 5.1.1 No such user\r\n"),
        "failed",
        0,
    ),
    "reset after 354": Fault("plain", lambda p: p.cut_after(b"354 ", "server"), "queued", 1),
    "reset inside the body": Fault(
        "plain", lambda p: p.cut_after(MARK.encode(), "client"), "uncertain", 0, 1
    ),
    # The link hangs in the middle of the message: the reply never comes within the timeout.
    "stall inside DATA": Fault(
        "plain", lambda p: p.stall_after(MARK.encode(), "client"), "uncertain", 0, 1
    ),
    # The server queued the message; its "250 ... queued as" never arrives (dropped, then the
    # connection is reset by the test): the one window SMTP cannot close.
    "reset between the dot and the reply": Fault(
        "plain", lambda p: p.rewrite_line(b"queued as", b""), "uncertain", 1, 2
    ),
}


@pytest.fixture
def outbox_dir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "outbox"


@pytest.mark.parametrize("name", list(FAULTS))
async def test_a_fault_at_each_stage_loses_nothing_and_never_resends_after_5xx(
    name: str,
    postfix: Postfix,
    dovecot: Dovecot,
    user: User,
    user2: User,
    proxy_factory: Callable[[str, int], TcpProxy],
    outbox_dir: Path,
) -> None:
    fault = FAULTS[name]
    ports = postfix.ports
    upstream = ports.plain if fault.port == "plain" else ports.submission
    proxy = proxy_factory(postfix.host, upstream)
    security = "none" if fault.port == "plain" else "starttls"
    acct = account(user, proxy, security, postfix.ca_file)
    built = build_mime(
        new_message(acct, to=[Address("", user2.email)], subject=name, body=f"a\n{MARK}\nb\n"),
        acct,
    )
    events: list[Event] = []
    copies: list[SentInfo] = []

    async def on_sent(account_key: str, raw: bytes, info: SentInfo) -> None:
        copies.append(info)

    runner = OutboxRunner(
        acct, Outbox("me", outbox_dir), publish=events.append, on_sent=on_sent, backoff=FAST
    )
    item = await runner.enqueue(
        built.raw, built.envelope_from, built.envelope_rcpts, message_id=built.message_id
    )
    fired = fault.arm(proxy)
    task = asyncio.create_task(runner.flush(force=True))
    if name == "reset between the dot and the reply":
        assert fired is not None
        assert await asyncio.to_thread(fired.wait, 10), "the reply never came"
        proxy.kill_connections()
    (outcome,) = await asyncio.wait_for(task, 30)
    assert outcome.status == fault.first, outcome

    # The fault is gone; the outbox runs again as it would by itself (forced: no backoff).
    proxy.heal()
    proxy.resume()
    proxy.accept_new_connections()
    proxy.kill_connections()
    mails_before = proxy.client_bytes().count(b"MAIL FROM")
    again = await runner.flush(force=True)
    resent = proxy.client_bytes().count(b"MAIL FROM") - mails_before
    if fault.first == "queued":
        assert [o.status for o in again] == ["accepted"], again
        assert runner.outbox.items() == []
    else:  # failed, uncertain: kept for the user, never sent again by itself
        assert again == [] and resent == 0
        (kept,) = runner.outbox.items()
        assert kept.state.value == fault.first
        told = SendFailed if fault.first == "failed" else DeliveryUncertain
        assert any(isinstance(e, told) for e in events), events
    got = await asyncio.to_thread(deliveries, postfix, dovecot, user2, built.message_id)
    assert got == fault.delivered_without_user
    # One Sent copy per accepted message; none while the outcome is unknown (the user
    # decides: see the test below).
    assert len(copies) == (1 if fault.first == "queued" else 0)

    if fault.delivered_if_user_resends is not None:  # the user says "send it anyway"
        assert runner.outbox.retry(item.id) is not None
        (resend,) = await runner.flush(force=True)
        assert resend.status == "accepted"
        got = await asyncio.to_thread(deliveries, postfix, dovecot, user2, built.message_id)
        assert got == fault.delivered_if_user_resends
        assert len(copies) == 1  # the copy in Sent is filed once, however often it went


async def test_an_uncertain_message_the_user_will_not_resend_keeps_one_sent_copy(
    postfix: Postfix,
    dovecot: Dovecot,
    user: User,
    user2: User,
    proxy_factory: Callable[[str, int], TcpProxy],
    outbox_dir: Path,
) -> None:
    """The reply after the final dot is lost, the message did arrive, and the user chooses
    "do not send again": it leaves the outbox with its copy in Sent, and is never resent.
    (Before: the item was deleted, and a delivered message had no Sent copy.)"""
    proxy = proxy_factory(postfix.host, postfix.ports.plain)
    acct = account(user, proxy, "none", postfix.ca_file)
    built = build_mime(new_message(acct, to=[Address("", user2.email)], body="once"), acct)
    copies: list[SentInfo] = []

    async def on_sent(account_key: str, raw: bytes, info: SentInfo) -> None:
        copies.append(info)

    runner = OutboxRunner(acct, Outbox("me", outbox_dir), on_sent=on_sent, backoff=FAST)
    item = await runner.enqueue(
        built.raw, built.envelope_from, built.envelope_rcpts, message_id=built.message_id
    )
    fired = proxy.rewrite_line(b"queued as", b"")
    task = asyncio.create_task(runner.flush(force=True))
    assert await asyncio.to_thread(fired.wait, 10)
    proxy.kill_connections()
    (outcome,) = await asyncio.wait_for(task, 30)
    assert outcome.status == "uncertain"

    assert runner.outbox.settle_uncertain(item.id) is not None
    mails_before = proxy.client_bytes().count(b"MAIL FROM")
    (filed,) = await runner.flush()
    assert filed.status == "filed" and len(copies) == 1
    assert runner.outbox.items() == []
    assert proxy.client_bytes().count(b"MAIL FROM") == mails_before  # not sent again
    got = await asyncio.to_thread(deliveries, postfix, dovecot, user2, built.message_id)
    assert got == 1
    # Another item with the same Message-ID (a second "send" of the same draft) is not sent.
    again = await runner.enqueue(
        built.raw, built.envelope_from, built.envelope_rcpts, message_id=built.message_id
    )
    (outcome,) = await runner.flush(force=True)
    assert outcome.status == "accepted" and "not sent again" in outcome.message
    assert proxy.client_bytes().count(b"MAIL FROM") == mails_before
    assert runner.outbox.get(again.id) is None
