"""The closed set of events the engine publishes, and the bus that carries them.

The UI (and ``kittiwake sync --watch``) subscribe; nothing polls. Each subscriber gets its own
unbounded queue, so a slow consumer never blocks the engine; events are small and immutable.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from kittiwake.core.models import FolderInfo, MessageSummary

log = logging.getLogger(__name__)


class ConnState(StrEnum):
    CONNECTING = "connecting"
    ONLINE = "online"
    OFFLINE = "offline"
    AUTH_FAILED = "auth-failed"


@dataclass(frozen=True, slots=True)
class Event:
    account: str


@dataclass(frozen=True, slots=True)
class ConnectionChanged(Event):
    """``reason`` says why we are offline; ``retry_in`` is seconds until the next attempt."""

    state: ConnState
    reason: str | None = None
    retry_in: float | None = None


@dataclass(frozen=True, slots=True)
class FolderListChanged(Event):
    folders: tuple[FolderInfo, ...]


@dataclass(frozen=True, slots=True)
class FolderCountsChanged(Event):
    folder: str
    total: int
    unread: int


@dataclass(frozen=True, slots=True)
class MessagesAdded(Event):
    """New summaries in the cache. The bulk batches of a first sync carry a
    ``cache.LazySummaries``: a Sequence whose items decode on first access, so a subscriber
    that only counts them or reads ``uids`` costs nothing, one that reads them works as ever."""

    folder: str
    summaries: Sequence[MessageSummary]

    @property
    def uids(self) -> tuple[int, ...]:
        known = getattr(self.summaries, "uids", None)  # LazySummaries: without decoding
        if known is not None:
            return tuple(known)
        return tuple(s.uid for s in self.summaries)


@dataclass(frozen=True, slots=True)
class FlagsChanged(Event):
    folder: str
    flags: dict[int, frozenset[str]] = field(hash=False)
    """New flag set per UID."""

    @property
    def uids(self) -> tuple[int, ...]:
        return tuple(sorted(self.flags))


@dataclass(frozen=True, slots=True)
class MessagesExpunged(Event):
    folder: str
    uids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class FolderReset(Event):
    """UIDVALIDITY changed: everything cached for the folder was dropped and is refetched."""

    folder: str


@dataclass(frozen=True, slots=True)
class CacheRefreshed(Event):
    """Another program (``kittiwake sync``, a second Kittiwake) changed what the cache holds
    for this folder: whatever shows it reads it again."""

    folder: str


@dataclass(frozen=True, slots=True)
class SyncProgress(Event):
    folder: str
    done: int
    total: int


@dataclass(frozen=True, slots=True)
class SyncError(Event):
    """Something failed but the engine carries on; ``message`` is one sentence for the user."""

    message: str
    folder: str | None = None


# -- sending (published by the outbox runners, ``core/smtp/outbox.py``) ---------------------


@dataclass(frozen=True, slots=True)
class OutboxChanged(Event):
    """How many messages wait (``queued``), were refused (``failed``, kept for editing), were
    sent but still need their Sent copy (``saving``), or may have been delivered
    (``uncertain``). ``reason`` is why queued ones wait."""

    queued: int
    failed: int
    saving: int = 0
    reason: str | None = None
    retry_in: float | None = None
    uncertain: int = 0
    """Sent, but the server's reply was lost: they may have been delivered (kept, not resent
    until the user says so)."""


@dataclass(frozen=True, slots=True)
class MessageSent(Event):
    """The server accepted the message (for every recipient except those in ``refused``)."""

    message_id: str
    refused: tuple[tuple[str, str], ...] = ()
    """(recipient, the server's words) for recipients refused for good."""
    context: Mapping[str, str] = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True, slots=True)
class DraftsRecovered(Event):
    """Drafts an earlier run left on disk (it stopped mid-compose) were saved to ``folder``."""

    folder: str
    subjects: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SendFailed(Event):
    """The server refused the message for good; it is kept in the outbox (``item_id``)."""

    message_id: str
    message: str
    item_id: str = ""


@dataclass(frozen=True, slots=True)
class DeliveryUncertain(Event):
    """The message went out but the server's reply never came: it may have been delivered.
    Kept in the outbox (``item_id``), not sent again unless the user says so."""

    message_id: str
    message: str
    item_id: str = ""


class EventBus:
    """Fan-out of events to any number of subscribers."""

    def __init__(self) -> None:
        self._queues: list[asyncio.Queue[Event | None]] = []
        self._observers: list[Callable[[Event], None]] = []

    def publish(self, event: Event) -> None:
        for observer in self._observers:
            try:
                observer(event)
            except Exception:  # one broken observer must not stop the event reaching the rest
                log.exception("event observer failed on %s", type(event).__name__)
        for queue in self._queues:
            queue.put_nowait(event)

    def observe(self, observer: Callable[[Event], None]) -> Callable[[], None]:
        """Call ``observer`` on every event as it is published, before any subscriber can
        see it: state kept from events (the API's outbox and connection state) is then
        already current when a subscriber reads it. Returns the function that stops it."""
        self._observers.append(observer)
        return lambda: self._observers.remove(observer) if observer in self._observers else None

    def subscribe(self) -> Subscription:
        queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self._queues.append(queue)
        return Subscription(self, queue)

    def close(self) -> None:
        for queue in self._queues:
            queue.put_nowait(None)

    def _drop(self, queue: asyncio.Queue[Event | None]) -> None:
        if queue in self._queues:
            self._queues.remove(queue)


class Subscription:
    """An async iterator of events; ``async with`` unsubscribes on exit."""

    def __init__(self, bus: EventBus, queue: asyncio.Queue[Event | None]) -> None:
        self._bus = bus
        self._queue = queue

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        event = await self._queue.get()
        if event is None:
            raise StopAsyncIteration
        return event

    async def next(self, timeout: float) -> Event:
        """The next event, or TimeoutError after ``timeout`` seconds."""
        return await asyncio.wait_for(self.__anext__(), timeout)

    async def wait_for(self, kind: type[Any], timeout: float, **match: Any) -> Any:
        """Skip events until one of ``kind`` whose attributes equal ``match`` arrives."""

        async def find() -> Any:
            async for event in self:
                if isinstance(event, kind) and all(
                    getattr(event, k) == v for k, v in match.items()
                ):
                    return event
            raise EOFError("event stream closed")

        return await asyncio.wait_for(find(), timeout)

    def pending(self) -> list[Event]:
        """Everything already queued, without waiting."""
        out: list[Event] = []
        while not self._queue.empty():
            event = self._queue.get_nowait()
            if event is not None:
                out.append(event)
        return out

    def close(self) -> None:
        self._bus._drop(self._queue)

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
