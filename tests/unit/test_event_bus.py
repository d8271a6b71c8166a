"""The event bus: observers see an event before any subscriber can."""

from __future__ import annotations

import asyncio

from kittiwake.core.events import EventBus, OutboxChanged


async def test_an_observer_has_seen_an_event_before_a_subscriber_wakes() -> None:
    bus = EventBus()
    seen: list[object] = []
    events = bus.subscribe()
    stop = bus.observe(seen.append)
    event = OutboxChanged("a", 0, 0)
    bus.publish(event)
    assert await events.next(1) is event
    assert seen == [event]
    stop()
    bus.publish(OutboxChanged("a", 1, 0))
    await events.next(1)
    assert seen == [event]


async def test_a_failing_observer_does_not_stop_the_event() -> None:
    bus = EventBus()
    seen: list[object] = []

    def broken(_: object) -> None:
        raise RuntimeError("bug")

    bus.observe(broken)
    bus.observe(seen.append)
    events = bus.subscribe()
    bus.publish(OutboxChanged("a", 0, 0))
    assert isinstance(await asyncio.wait_for(events.next(1), 2), OutboxChanged)
    assert len(seen) == 1
