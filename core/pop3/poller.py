"""Checking a POP3 account while the app runs: every ``check_every``, and on demand.

POP3 has no push, so the engine polls. ``Pop3Poller`` runs one download at a time
(``fetch_once`` or any coroutine function given to it), publishes what the status bar needs on
the event bus, and knows when the next check is:

* ``ConnectionChanged``: CONNECTING while a check runs; ONLINE afterwards with
  ``retry_in`` = seconds to the next check (the status bar shows "next check in 4 min");
  OFFLINE (or AUTH_FAILED) with the error's sentence when a check fails. A failure that may
  pass (network, server busy) is retried sooner, with exponential backoff capped at
  ``check_every``; a configuration-level one waits for the normal interval.
* ``SyncProgress`` for folder "INBOX" while downloading (done / total messages).
* ``SyncError`` with one sentence when a check fails.

``check_now()`` (ctrl+r) starts a check at once, or returns the one already running.
New messages are reported through ``on_delivered`` (the engine indexes them and publishes
``MessagesAdded``); the poller does not know the local index.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable

from kittiwake.core.errors import KittiwakeError
from kittiwake.core.events import ConnectionChanged, ConnState, EventBus, SyncError, SyncProgress
from kittiwake.core.maildir import INBOX
from kittiwake.core.pop3.client import Pop3AuthFailed
from kittiwake.core.pop3.fetch import FetchProgress, FetchStats
from kittiwake.core.tasks import reap

__all__ = ["FetchFunction", "Pop3Poller"]

log = logging.getLogger(__name__)

FetchFunction = Callable[[Callable[[FetchProgress], None]], Awaitable[FetchStats]]
"""Runs one download, reporting progress through the callback it is given."""

_FIRST_RETRY = 5.0


class Pop3Poller:
    """Periodic checks of one POP3 account (``start()`` ... ``await stop()``)."""

    def __init__(
        self,
        account: str,
        fetch: FetchFunction,
        bus: EventBus,
        every: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.account = account
        self._fetch = fetch
        self.bus = bus
        self.every = every
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self._running: asyncio.Task[FetchStats | None] | None = None
        self._wake = asyncio.Event()
        self._failures = 0
        self._planned = every
        self.next_check_at: float | None = None
        """When (``clock()``) the next scheduled check starts; None while one runs."""
        self.last_stats: FetchStats | None = None
        self.last_error: KittiwakeError | None = None

    @property
    def next_check_in(self) -> float | None:
        if self.next_check_at is None:
            return None
        return max(0.0, self.next_check_at - self._clock())

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name=f"pop3-poll-{self.account}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        running, self._running = self._running, None
        for t in (task, running):
            if t is not None:
                t.cancel()
        for t in (task, running):
            if t is not None:
                await reap(t)

    def _ensure_running(self) -> asyncio.Task[FetchStats | None]:
        running = self._running
        if running is None or running.done():
            running = self._running = asyncio.create_task(self._check())
        return running

    async def check_now(self) -> FetchStats | None:
        """Check at once (or join the check that is running); None if it failed."""
        running = self._ensure_running()
        self._wake.set()
        return await asyncio.shield(running)

    async def _loop(self) -> None:
        while True:
            await asyncio.shield(self._ensure_running())
            self.next_check_at = self._clock() + self._planned
            self._wake.clear()
            # Not ``asyncio.wait_for``: cancelled just as check_now() wakes it, it returns
            # instead of raising (Python 3.11), and ``stop`` then waited out another check.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._planned):
                    await self._wake.wait()
            # Woken by check_now(): its check is running and is joined at the top.

    def _delay(self) -> float:
        if self._failures == 0:
            return self.every
        retry: float = _FIRST_RETRY * 2.0 ** (self._failures - 1)
        return min(self.every, retry * random.uniform(0.8, 1.2))  # noqa: S311 - jitter

    async def _check(self) -> FetchStats | None:
        self.next_check_at = None
        self._publish_state(ConnState.CONNECTING)

        def progress(p: FetchProgress) -> None:
            if p.phase == "downloading" and p.total:
                self.bus.publish(SyncProgress(self.account, INBOX, p.done, p.total))

        try:
            stats = await self._fetch(progress)
        except Exception as exc:
            if isinstance(exc, KittiwakeError):
                self.last_error = exc
                message = exc.message
                transient = bool(getattr(exc, "recoverable", False))
                log.info("%s: POP3 check failed: %s", self.account, message)
            else:
                self.last_error = KittiwakeError(
                    f"Checking {self.account} failed unexpectedly; see the log."
                )
                message = self.last_error.message
                transient = True
                log.exception("%s: POP3 check failed", self.account)
            self._failures = self._failures + 1 if transient else 0
            self._planned = self._delay()
            state = ConnState.AUTH_FAILED if isinstance(exc, Pop3AuthFailed) else ConnState.OFFLINE
            self.bus.publish(SyncError(self.account, message, INBOX))
            self._publish_state(state, message, self._planned)
            return None
        self._failures = 0
        self._planned = self.every
        self.last_error = None
        self.last_stats = stats
        self._publish_state(ConnState.ONLINE, None, self.every)
        return stats

    def _publish_state(
        self, state: ConnState, reason: str | None = None, retry_in: float | None = None
    ) -> None:
        self.bus.publish(ConnectionChanged(self.account, state, reason, retry_in))
