"""The outbox's own promises: durable items, one sender at a time, the journal, backoff, and
the Sent-copy step. Most of this needs no server; the race at the end uses the real Postfix."""

from __future__ import annotations

import asyncio
import json
import os
import time
from dataclasses import replace
from pathlib import Path

import pytest
from harness import Dovecot, Postfix, User, wait_for, wait_for_async, wait_for_messages

from kittiwake.core.compose.mime import build_mime
from kittiwake.core.compose.reply import new_message
from kittiwake.core.config import Account, config_from_dict
from kittiwake.core.events import Event
from kittiwake.core.models import Address
from kittiwake.core.smtp import outbox as ob
from kittiwake.core.smtp.outbox import (
    Backoff,
    CopyState,
    ItemState,
    Outbox,
    OutboxChanged,
    OutboxRunner,
    SentInfo,
)

RAW = b"From: me@example.test\r\nTo: you@example.test\r\nSubject: x\r\n\r\nbody\r\n"
FAST = Backoff(first=0.2, factor=2.0, maximum=1.0, jitter=0.0)


def account(host: str = "127.0.0.2", port: int = 1, **smtp: object) -> Account:
    return config_from_dict(
        {
            "accounts": {
                "me": {
                    "email": "me@example.test",
                    "imap": {"host": host},
                    "smtp": {"host": host, "port": port, "security": "none", **smtp},
                }
            }
        }
    ).accounts["me"]


def test_an_item_is_written_whole_before_enqueue_returns(tmp_path: Path) -> None:
    box = Outbox("me", tmp_path)
    item = box.enqueue(
        RAW,
        "me@example.test",
        ["you@example.test", "YOU@example.test", "you@example.test"],
        message_id="<a@x>",
        save_sent=True,
        sent_copy=RAW + b"",
        context={"answers": "INBOX/1/7"},
    )
    directory = tmp_path / "me" / "items" / item.id
    assert sorted(p.name for p in directory.iterdir()) == ["lock", "message.eml", "meta.json"]
    assert (directory / "message.eml").read_bytes() == RAW
    meta = json.loads((directory / "meta.json").read_text())
    assert meta["state"] == "queued" and meta["copy"] == "waiting"
    assert meta["recipients"] == ["you@example.test", "YOU@example.test"]
    assert list((tmp_path / "me" / "tmp").iterdir()) == []
    (again,) = Outbox("me", tmp_path).items()  # a new process sees the same
    assert again == item and again.context == {"answers": "INBOX/1/7"}
    assert Outbox("me", tmp_path).counts() == (1, 0, 0)
    with pytest.raises(ValueError):
        box.enqueue(RAW, "me@example.test", [], message_id="<b@x>", save_sent=True)


def test_a_half_written_item_is_invisible_and_cleaned_up(tmp_path: Path) -> None:
    box = Outbox("me", tmp_path)
    half = box.tmp_dir / "18abc-dead"
    half.mkdir()
    (half / "message.eml").write_bytes(RAW)  # the crash came before meta.json and the rename
    assert box.items() == []
    old = time.time() - 2 * ob.TMP_MAX_AGE
    os.utime(half, (old, old))
    Outbox("me", tmp_path)
    assert not half.exists()


def test_only_one_holder_works_on_an_item(tmp_path: Path) -> None:
    first, second = Outbox("me", tmp_path), Outbox("me", tmp_path)
    item = first.enqueue(
        RAW, "me@example.test", ["you@example.test"], message_id="<c@x>", save_sent=False
    )
    with first.claim(item.id) as got:
        assert got
        with second.claim(item.id) as other:
            assert not other  # another process (or object) is on it
    with second.claim(item.id) as got_now:
        assert got_now
    second.remove(item.id)
    with first.claim(item.id) as gone:
        assert not gone
    assert first.items() == []


def test_journal_records_durably_and_compacts_old_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    box = Outbox("me", tmp_path)
    box.record_accepted("<m@x>", ["A@example.test", "b@example.test"])
    box.record_accepted("<other@x>", ["c@example.test"])
    assert Outbox("me", tmp_path).sent_recipients("<m@x>") == {"a@example.test", "b@example.test"}
    old = int(time.time() - ob.JOURNAL_KEEP - 10)
    with box.journal_path.open("a") as f:
        f.writelines(f"{old}\t<ancient{i}@x>\tz@example.test\n" for i in range(100))
    monkeypatch.setattr(ob, "JOURNAL_COMPACT_AT", 10)
    compacted = Outbox("me", tmp_path)
    assert compacted.sent_recipients("<ancient1@x>") == set()
    assert compacted.sent_recipients("<m@x>") == {"a@example.test", "b@example.test"}
    assert "ancient" not in box.journal_path.read_text()
    box.record_accepted("<after@x>", ["d@example.test"])  # the old object follows the new file
    assert compacted.sent_recipients("<after@x>") == {"d@example.test"}


def test_backoff_grows_and_is_capped() -> None:
    backoff = Backoff(first=30, factor=2, maximum=600, jitter=0)
    assert [backoff.delay(n) for n in (1, 2, 3, 6, 20)] == [30, 60, 120, 600, 600]
    jittered = Backoff(first=10, jitter=0.1)
    assert all(10 <= jittered.delay(1) <= 11 for _ in range(50))


async def test_unreachable_server_keeps_the_item_and_backs_off(tmp_path: Path) -> None:
    events: list[Event] = []
    runner = OutboxRunner(account(), Outbox("me", tmp_path), publish=events.append, backoff=FAST)
    item = await runner.enqueue(RAW, "me@example.test", ["you@example.test"], message_id="<u@x>")

    (outcome,) = await runner.flush()

    assert outcome.status == "queued" and "cannot reach 127.0.0.2:1" in outcome.message
    (kept,) = runner.outbox.items()
    assert kept.state is ItemState.QUEUED and kept.attempts == 1
    assert 0 < runner.next_due_in() <= FAST.first  # type: ignore[operator]
    assert await runner.flush() == []  # not due yet: nothing tried
    second = await runner.send_now(item.id)  # forced
    assert second.status == "queued"
    (kept,) = runner.outbox.items()
    assert kept.attempts == 2
    changed = [e for e in events if isinstance(e, OutboxChanged)]
    assert changed[-1].queued == 1 and changed[-1].retry_in is not None
    assert "cannot reach" in (changed[-1].reason or "")


async def test_the_runner_retries_by_itself(tmp_path: Path) -> None:
    runner = OutboxRunner(account(), Outbox("me", tmp_path), backoff=FAST)
    await runner.enqueue(RAW, "me@example.test", ["you@example.test"], message_id="<r@x>")
    runner.start()
    try:
        await wait_for_async(
            lambda: runner.outbox.items()[0].attempts >= 3, 10, message="three attempts"
        )
    finally:
        await runner.stop()


async def test_a_failing_sent_copy_is_retried_and_told_it_may_be_done(tmp_path: Path) -> None:
    box = Outbox("me", tmp_path)
    item = box.enqueue(
        RAW, "me@example.test", ["you@example.test"], message_id="<s@x>", save_sent=True
    )
    box.record_accepted("<s@x>", ["you@example.test"])  # accepted earlier, e.g. before a crash
    calls: list[SentInfo] = []

    async def on_sent(name: str, raw: bytes, info: SentInfo) -> None:
        calls.append(info)
        if len(calls) == 1:
            raise ConnectionError("IMAP is offline")

    runner = OutboxRunner(account(), box, on_sent=on_sent, backoff=FAST)
    (first,) = await runner.flush()
    assert first.status == "accepted" and first.copy_pending
    (waiting,) = box.items()
    assert waiting.state is ItemState.DELIVERED and waiting.copy is CopyState.STARTED
    assert waiting.copy_error is not None and "IMAP is offline" in waiting.copy_error
    assert box.counts() == (0, 0, 1)
    (second,) = await runner.flush(force=True)
    assert second.status == "filed" and not second.copy_pending
    assert [c.possibly_done for c in calls] == [False, True]
    assert box.items() == [] and item.id not in os.listdir(box.items_dir)


async def test_without_on_sent_the_copy_waits_for_a_runner_that_has_one(tmp_path: Path) -> None:
    box = Outbox("me", tmp_path)
    box.enqueue(RAW, "me@example.test", ["you@example.test"], message_id="<w@x>", save_sent=True)
    box.record_accepted("<w@x>", ["you@example.test"])
    headless = OutboxRunner(account(), box)  # e.g. `kittiwake send` without an IMAP side
    await headless.flush()
    (item,) = box.items()
    assert item.copy is CopyState.PENDING and headless.next_due_in() is None
    copies: list[bytes] = []

    async def on_sent(name: str, raw: bytes, info: SentInfo) -> None:
        copies.append(raw)

    await OutboxRunner(account(), box, on_sent=on_sent).flush()
    assert copies == [RAW] and box.items() == []


async def test_save_sent_false_means_no_copy(tmp_path: Path) -> None:
    runner = OutboxRunner(account(save_sent=False), Outbox("me", tmp_path))
    item = await runner.enqueue(RAW, "me@example.test", ["you@example.test"], message_id="<n@x>")
    assert item.copy is CopyState.NONE


async def test_two_runners_racing_send_once(
    tmp_path: Path, postfix: Postfix, dovecot: Dovecot, user: User, user2: User
) -> None:
    acct = config_from_dict(
        {
            "accounts": {
                "me": {
                    "email": user.email,
                    "imap": {"host": postfix.host},
                    "smtp": {
                        "host": postfix.host,
                        "port": postfix.ports.submission,
                        "security": "starttls",
                        "user": user.login,
                        "password": user.password,
                        "ca_file": str(postfix.ca_file),
                        "save_sent": False,
                    },
                }
            }
        }
    ).accounts["me"]
    built = build_mime(new_message(acct, to=[Address("", user2.email)], body="race"), acct)
    Outbox("me", tmp_path).enqueue(
        built.raw,
        built.envelope_from,
        built.envelope_rcpts,
        message_id=built.message_id,
        save_sent=False,
    )
    app = OutboxRunner(acct, Outbox("me", tmp_path))
    script = OutboxRunner(acct, Outbox("me", tmp_path))

    results = await asyncio.gather(app.flush(force=True), script.flush(force=True))

    statuses = sorted(o.status for outcomes in results for o in outcomes)
    assert statuses in (["accepted"], ["accepted", "busy"])
    await asyncio.to_thread(wait_for_messages, dovecot, user2, 1)

    def submitted() -> int:
        return postfix.maillog.read_text(errors="replace").count(f"message-id={built.message_id}")

    await asyncio.to_thread(wait_for, submitted, 10, message="maillog")
    assert submitted() == 1
    assert Outbox("me", tmp_path).items() == [], results


def test_a_failed_item_can_be_retried_or_discarded(tmp_path: Path) -> None:
    box = Outbox("me", tmp_path)
    item = box.enqueue(
        RAW, "me@example.test", ["you@example.test"], message_id="<f@x>", save_sent=True
    )
    box.save(replace(item, state=ItemState.FAILED, error="550 no", next_attempt=time.time() + 99))
    assert box.counts() == (0, 1, 0)
    retried = box.retry(item.id)
    assert retried is not None and retried.state is ItemState.QUEUED
    assert retried.next_attempt == 0.0 and retried.error == "550 no"
    box.remove(item.id)
    assert box.items() == [] and box.retry(item.id) is None
