"""An account's supervisor ends when it is cancelled (asyncio.run's teardown after an error, a
task group), not only through ``stop()``: cancelling it while it closes its connections after
a loss must not be swallowed, or it reconnects forever and the process never exits (found by
the fault suite: a driver run that failed before ``stop()`` hung in asyncio's teardown)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from kittiwake.core.config import config_from_dict
from kittiwake.core.engine import Engine
from kittiwake.core.events import EventBus
from kittiwake.core.pop3.fetch import FetchProgress, FetchStats
from kittiwake.core.pop3.poller import Pop3Poller


async def test_cancelling_close_all_while_a_watcher_ends_is_not_swallowed(
    tmp_path: Path,
) -> None:
    config = config_from_dict(
        {"accounts": {"me": {"email": "me@example.test", "imap": {"host": "127.0.0.2", "port": 1}}}}
    )
    account = Engine(config, tmp_path / "cache").imap["me"]
    started, asked_to_end, may_end = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def slow_watcher() -> None:
        try:
            started.set()
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            asked_to_end.set()
            await may_end.wait()  # a watcher that takes a moment to wind down
            raise

    account._watchers = [asyncio.create_task(slow_watcher())]
    await asyncio.wait_for(started.wait(), 5)
    closing = asyncio.create_task(account._close_all())
    await asyncio.wait_for(asked_to_end.wait(), 5)  # _close_all now awaits the watcher
    closing.cancel()  # the supervisor is cancelled right then
    may_end.set()
    done, _ = await asyncio.wait({closing}, timeout=5)
    assert done, "_close_all never ended"
    assert closing.cancelled(), "the cancellation was swallowed: the supervisor would go on"


async def _slow_to_end(
    started: asyncio.Event, asked: asyncio.Event, may_end: asyncio.Event
) -> None:
    """A task that takes a moment to wind down when cancelled (a download closing its spool
    files, a watcher saying DONE)."""
    try:
        started.set()
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        asked.set()
        await may_end.wait()
        raise


async def _cancel_while_stopping(
    stop: Callable[[], Awaitable[None]], asked: asyncio.Event, may_end: asyncio.Event
) -> asyncio.Task[None]:
    async def stopping() -> None:
        await stop()

    task = asyncio.create_task(stopping())
    await asyncio.wait_for(asked.wait(), 5)  # stop() now waits for the slow task
    task.cancel()  # and the task calling stop() is cancelled right then
    may_end.set()
    done, _ = await asyncio.wait({task}, timeout=5)
    assert done, "stop() never ended"
    return task


async def test_cancelling_a_pop3_pollers_stop_is_not_swallowed() -> None:
    """The task that stops a poller, cancelled meanwhile (the app's shutdown, a task group),
    ended as if nothing had happened and went on with what followed."""
    started, asked, may_end = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def fetch(_progress: Callable[[FetchProgress], None]) -> FetchStats:
        await _slow_to_end(started, asked, may_end)
        raise AssertionError("not reached")

    poller = Pop3Poller("pop", fetch, EventBus(), 60.0)
    poller.start()
    await asyncio.wait_for(started.wait(), 5)
    task = await _cancel_while_stopping(poller.stop, asked, may_end)
    assert task.cancelled(), "the cancellation was swallowed by Pop3Poller.stop"


async def test_cancelling_an_imap_accounts_stop_is_not_swallowed(tmp_path: Path) -> None:
    config = config_from_dict(
        {"accounts": {"me": {"email": "me@example.test", "imap": {"host": "127.0.0.2", "port": 1}}}}
    )
    account = Engine(config, tmp_path / "cache").imap["me"]
    started, asked, may_end = asyncio.Event(), asyncio.Event(), asyncio.Event()
    account._watchers = [asyncio.create_task(_slow_to_end(started, asked, may_end))]
    await asyncio.wait_for(started.wait(), 5)
    task = await _cancel_while_stopping(account.stop, asked, may_end)
    assert task.cancelled(), "the cancellation was swallowed by ImapAccount.stop"
    assert account._watchers == [] and account._client is None
