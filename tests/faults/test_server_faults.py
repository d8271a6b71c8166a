"""Faults from the real servers themselves rather than the proxy: Postfix stopped and
started again while a message waits in the outbox, and Postfix answering late after DATA
(its ``sleep`` restriction at the end of data). Deliveries are counted by Message-ID in the
recipient's mailbox (``deliveries``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from faults.deliveries import deliveries
from harness import Dovecot, Postfix, User

from kittiwake.core.compose.mime import build_mime
from kittiwake.core.compose.reply import new_message
from kittiwake.core.config import Account, config_from_dict
from kittiwake.core.events import DeliveryUncertain, Event
from kittiwake.core.models import Address
from kittiwake.core.smtp.outbox import Backoff, Outbox, OutboxRunner, SentInfo

FAST = Backoff(first=0.2, factor=2.0, maximum=0.5, jitter=0.0)


def account(user: User, postfix: Postfix, timeout: float) -> Account:
    smtp = {
        "host": postfix.host,
        "port": postfix.ports.plain,
        "security": "none",
        "user": user.login,
        "password": user.password,
        "timeout": timeout,
    }
    return config_from_dict(
        {"accounts": {"me": {"email": user.email, "imap": {"host": postfix.host}, "smtp": smtp}}}
    ).accounts["me"]


class Runner:
    """An outbox runner whose Sent copies are counted, and an event when one is filed."""

    def __init__(self, acct: Account, outbox_dir: Path) -> None:
        self.copies: list[SentInfo] = []
        self.events: list[Event] = []
        self.filed = asyncio.Event()
        self.runner = OutboxRunner(
            acct,
            Outbox("me", outbox_dir),
            publish=self.events.append,
            on_sent=self._on_sent,
            backoff=FAST,
        )

    async def _on_sent(self, account_key: str, raw: bytes, info: SentInfo) -> None:
        self.copies.append(info)
        self.filed.set()

    async def enqueue(self, acct: Account, to: User, subject: str) -> str:
        built = build_mime(
            new_message(acct, to=[Address("", to.email)], subject=subject, body="hello\n"), acct
        )
        await self.runner.enqueue(
            built.raw, built.envelope_from, built.envelope_rcpts, message_id=built.message_id
        )
        return built.message_id


async def test_postfix_stopped_then_started_the_outbox_waits_and_sends_once(
    postfix_factory: Callable[..., Postfix],
    dovecot: Dovecot,
    user: User,
    user2: User,
    tmp_path: Path,
) -> None:
    postfix = postfix_factory()
    acct = account(user, postfix, timeout=5)
    run = Runner(acct, tmp_path / "outbox")
    await asyncio.to_thread(postfix.stop)
    message_id = await run.enqueue(acct, user2, "while Postfix is down")
    (first,) = await run.runner.flush(force=True)
    assert first.status == "queued", first  # refused: kept, retried later
    run.runner.start()  # retries by itself, with backoff
    try:
        await asyncio.to_thread(postfix.start)
        await asyncio.wait_for(run.filed.wait(), 30)
    finally:
        await run.runner.stop()
    assert run.runner.outbox.items() == []
    assert len(run.copies) == 1
    got = await asyncio.to_thread(deliveries, postfix, dovecot, user2, message_id)
    assert got == 1


async def test_a_late_reply_after_data_is_waited_for_or_left_uncertain_never_resent(
    postfix_factory: Callable[..., Postfix],
    dovecot: Dovecot,
    user: User,
    user2: User,
    tmp_path: Path,
) -> None:
    """Postfix sleeps 3 s after the final dot before it answers: a client timeout above that
    waits and sends once; one below it leaves the message "may have been delivered" (it was)
    and sends nothing again by itself."""
    postfix = postfix_factory(extra_main_cf="smtpd_end_of_data_restrictions = sleep 3, permit\n")
    patient = account(user, postfix, timeout=10)
    run = Runner(patient, tmp_path / "patient")
    waited = await run.enqueue(patient, user2, "a patient client")
    (outcome,) = await run.runner.flush(force=True)
    assert outcome.status == "accepted", outcome
    assert len(run.copies) == 1

    hasty = account(user, postfix, timeout=1)
    run = Runner(hasty, tmp_path / "hasty")
    cut = await run.enqueue(hasty, user2, "a hasty client")
    (outcome,) = await run.runner.flush(force=True)
    assert outcome.status == "uncertain", outcome
    assert any(isinstance(e, DeliveryUncertain) for e in run.events), run.events
    assert await run.runner.flush(force=True) == []  # never resent by itself
    (kept,) = run.runner.outbox.items()
    assert kept.state.value == "uncertain"
    assert run.copies == []

    assert await asyncio.to_thread(deliveries, postfix, dovecot, user2, waited) == 1
    assert await asyncio.to_thread(deliveries, postfix, dovecot, user2, cut) == 1
