"""An account's supervisor ends when it is cancelled (asyncio.run's teardown after an error, a
task group), not only through ``stop()``: cancelling it while it closes its connections after
a loss must not be swallowed, or it reconnects forever and the process never exits (found by
the fault suite: a driver run that failed before ``stop()`` hung in asyncio's teardown)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from kittiwake.core.config import config_from_dict
from kittiwake.core.engine import Engine


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
