"""``OutboxRunner.stop`` (and ``Pop3Poller.stop``) end the task even when it is woken at the
moment it is stopped.

Before: the runner waited for its wake-up with ``asyncio.wait_for``, which (Python 3.11)
returns the inner result instead of raising when the task is cancelled just as that result
arrives: the cancellation was swallowed, the runner went on for another pass and a wait of up
to a minute, and ``stop`` (an unbounded ``await``) hung with it. The engine wakes the runner
whenever an IMAP account comes online (a Sent copy may be waiting), so a shutdown right after
a reconnect hit it: a test teardown hung twice after a send."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from kittiwake.core.config import config_from_dict
from kittiwake.core.events import Event, EventBus, OutboxChanged
from kittiwake.core.pop3.fetch import FetchProgress, FetchStats
from kittiwake.core.pop3.poller import Pop3Poller
from kittiwake.core.smtp.outbox import Outbox, OutboxRunner


def runner(tmp_path: Path, publish: list[Event], idle: asyncio.Event) -> OutboxRunner:
    account = config_from_dict(
        {
            "accounts": {
                "me": {
                    "email": "me@example.test",
                    "imap": {"host": "127.0.0.2"},
                    "smtp": {"host": "127.0.0.2", "port": 1, "security": "none"},
                }
            }
        }
    ).accounts["me"]

    def note(event: Event) -> None:
        publish.append(event)
        if isinstance(event, OutboxChanged):
            idle.set()  # the pass is over: the runner goes on to wait for a wake-up

    return OutboxRunner(account, Outbox("me", tmp_path / "outbox"), publish=note)


async def stops_within(outbox: OutboxRunner, seconds: float) -> bool:
    """Whether ``stop`` returned in time. Not ``wait_for``: on its timeout it cancels
    ``stop``, and a ``stop`` that swallows that too would look as if it had returned."""
    stopping = asyncio.create_task(outbox.stop())
    done, _ = await asyncio.wait({stopping}, timeout=seconds)
    if not done:
        stopping.cancel()
        await asyncio.wait({stopping}, timeout=seconds)
    return bool(done)


async def test_stop_ends_a_runner_woken_at_the_same_moment(tmp_path: Path) -> None:
    events: list[Event] = []
    idle = asyncio.Event()
    outbox = runner(tmp_path, events, idle)
    outbox.start()
    await asyncio.wait_for(idle.wait(), 5)
    task = outbox._task  # the test looks inside: the task must be gone after stop
    assert task is not None
    outbox.wake()  # an account came online ...
    assert await stops_within(outbox, 2)  # ... as the app shuts down
    assert task.cancelled()


async def test_stop_ends_an_idle_runner(tmp_path: Path) -> None:
    events: list[Event] = []
    idle = asyncio.Event()
    outbox = runner(tmp_path, events, idle)
    outbox.start()
    await asyncio.wait_for(idle.wait(), 5)
    task = outbox._task
    assert task is not None
    assert await stops_within(outbox, 2)
    assert task.cancelled()


class Watched(asyncio.Event):
    """An event that says when someone starts waiting on it."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting = asyncio.Event()

    async def wait(self) -> Literal[True]:
        self.waiting.set()
        return await super().wait()


async def test_stop_ends_a_pop3_poller_woken_at_the_same_moment() -> None:
    """The POP3 poller waited for its next check the same way (``wait_for``): woken by ctrl+r
    as the app shuts down, it went on to another check and a wait of ``check_every``."""

    async def fetch(progress: Callable[[FetchProgress], None]) -> FetchStats:
        return FetchStats()

    poller = Pop3Poller("home", fetch, EventBus(), 300.0)
    watched = poller._wake = Watched()  # the test looks inside
    poller.start()
    await asyncio.wait_for(watched.waiting.wait(), 5)  # the first check is done
    task = poller._task
    assert task is not None
    watched.set()  # what check_now() does first ...
    stopping = asyncio.create_task(poller.stop())  # ... as the app shuts down
    done, _ = await asyncio.wait({stopping}, timeout=2)
    if not done:
        task.cancel()
        await asyncio.wait({stopping}, timeout=2)
    assert done, "stop did not return"
    assert task.cancelled()
