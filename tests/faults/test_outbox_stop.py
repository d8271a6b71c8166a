"""Stopping the outbox runner while a message's Sent copy is on its way: ``stop`` returns
within a bound, and nothing is lost (the copy is filed once on the next start). The Sent copy
goes through the real ``SentFiler`` and IMAP account to a private Dovecot, through the fault
proxy, which holds the APPEND in the middle of its literal; the message itself goes to the
real Postfix."""

from __future__ import annotations

import asyncio
import imaplib
from collections.abc import Callable
from pathlib import Path

import pytest
from faults.deliveries import deliveries
from harness import Dovecot, Postfix, TcpProxy, User

from kittiwake.core.api import MailApi
from kittiwake.core.compose.mime import build_mime
from kittiwake.core.compose.reply import new_message
from kittiwake.core.config import config_from_dict
from kittiwake.core.engine import Engine
from kittiwake.core.events import ConnectionChanged, ConnState, OutboxChanged
from kittiwake.core.imap.account import Tuning
from kittiwake.core.models import Address
from kittiwake.core.smtp.outbox import CopyState

SUBJECT = "stalled sent copy"


def sent_copies(server: Dovecot, user: User, message_id: str) -> int:
    assert server.ports.imap is not None
    imap = imaplib.IMAP4(server.host, server.ports.imap, timeout=30)
    try:
        imap.login(user.login, user.password)
        status, _ = imap.select("Sent", readonly=True)
        if status != "OK":
            return 0
        _, data = imap.search(None, "HEADER", "Message-ID", message_id)
        return len(data[0].split())
    finally:
        imap.logout()


async def test_stopping_the_runner_during_the_sent_copy_append_ends_and_loses_nothing(
    dovecot_factory: Callable[..., Dovecot],
    postfix: Postfix,
    dovecot: Dovecot,
    user: User,
    user2: User,
    proxy_factory: Callable[[str, int], TcpProxy],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    mine = dovecot_factory(tls=False)
    sender = mine.add_user("sender")
    assert mine.ports.imap is not None
    proxy = proxy_factory(mine.host, mine.ports.imap)
    imap = {
        "host": proxy.host,
        "port": proxy.port,
        "security": "none",
        "user": sender.login,
        "password": sender.password,
        "timeout": 60,  # the stalled APPEND is not given up on by itself during the test
    }
    smtp = {
        "host": postfix.host,
        "port": postfix.ports.plain,
        "security": "none",
        "user": user.login,  # Postfix asks the shared Dovecot
        "password": user.password,
    }
    config = config_from_dict(
        {"accounts": {"me": {"email": sender.email, "imap": imap, "smtp": smtp}}}
    )
    tuning = Tuning(backoff_min=0.05, backoff_max=0.2)
    api = MailApi(Engine(config, tmp_path / "cache", tuning))
    events = api.subscribe()
    api.start()
    try:
        account = api.engine.imap["me"]
        await account.wait_synced(15)
        runner = api.engine.outboxes["me"]
        acct = config.accounts["me"]
        built = build_mime(
            new_message(acct, to=[Address("", user2.email)], subject=SUBJECT, body="x\n"), acct
        )
        stalled = proxy.stall_after(f"Subject: {SUBJECT}".encode(), "client")
        item = await runner.enqueue(
            built.raw, built.envelope_from, built.envelope_rcpts, message_id=built.message_id
        )
        assert await asyncio.to_thread(stalled.wait, 30), runner.outbox.items()  # sent by then

        # Bounded, and not by ``wait_for``: on its timeout it cancels ``stop``, and a ``stop``
        # that swallowed that cancellation would look as if it had returned.
        stopping = asyncio.create_task(runner.stop())
        done, _ = await asyncio.wait({stopping}, timeout=5)
        assert stopping in done, "stop waited on the stalled APPEND"

        kept = runner.outbox.get(item.id)
        assert kept is not None and kept.copy is CopyState.STARTED
        events.pending()
        proxy.kill_connections()  # the held literal never reaches the server
        proxy.release()
        await events.wait_for(ConnectionChanged, 15, state=ConnState.OFFLINE)
        await account.wait_synced(15)
        runner.start()  # the next start files the copy (asking Sent first: it may be there)
        await events.wait_for(OutboxChanged, 30, queued=0, saving=0)
        assert runner.outbox.items() == []
    finally:
        await asyncio.wait_for(api.stop(), 30)
    assert await asyncio.to_thread(sent_copies, mine, sender, built.message_id) == 1
    got = await asyncio.to_thread(deliveries, postfix, dovecot, user2, built.message_id)
    assert got == 1
