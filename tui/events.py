"""The engine's events, delivered to the widgets and screens that show them.

The app holds the one subscription to the engine's bus (``EngineEvents.start`` in
``KittiwakeApp.on_mount``). A node says which kinds it shows, usually in ``on_mount``::

    follow(self, FlagsChanged, MessagesExpunged)

and then receives each such event as an ``EngineEvent`` message (``on_engine_event``), in its
own message queue: handled between keys and timers like any Textual message, in the order the
engine published. Each node keeps to what it shows (its account, its folder, its message), so
no screen dispatches for the others.

A follower is dropped when it unmounts: ``follow`` ties a worker to the node, and Textual
cancels a node's workers when it is removed, so a closed screen is neither kept alive nor
sent anything.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from textual.message import Message

from kittiwake.core.events import Event, Subscription
from kittiwake.tui.context import app_context

if TYPE_CHECKING:
    from textual.dom import DOMNode


class EngineEvent(Message, bubble=False):
    """An engine event of a kind the receiving node follows. It does not bubble: a parent
    that shows the same kind follows it itself."""

    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event


class EngineEvents:
    """One subscription, fanned out to the nodes that follow each kind."""

    def __init__(self) -> None:
        self._followers: dict[DOMNode, tuple[type[Event], ...]] = {}

    def start(self, owner: DOMNode, subscription: Subscription) -> None:
        """Deliver what ``subscription`` brings until the engine closes its bus or
        ``owner`` (the app) goes away."""
        owner.run_worker(self._deliver(subscription), name="engine events", group="engine-events")

    async def _deliver(self, subscription: Subscription) -> None:
        async with subscription as events:
            async for event in events:
                self.publish(event)

    def publish(self, event: Event) -> None:
        """Post ``event`` to every node that follows its kind."""
        for node, kinds in list(self._followers.items()):
            if isinstance(event, kinds) and not node.post_message(EngineEvent(event)):
                self._followers.pop(node, None)  # closing: its worker has not ended yet

    def follow(self, node: DOMNode, kinds: tuple[type[Event], ...]) -> None:
        """``node`` receives events of ``kinds`` too."""
        known = self._followers.get(node)
        if known is None:
            node.run_worker(
                self._until_unmounted(node), name="follows engine events", group="engine-events"
            )
        self._followers[node] = tuple(dict.fromkeys((*(known or ()), *kinds)))

    async def _until_unmounted(self, node: DOMNode) -> None:
        try:
            await asyncio.Event().wait()  # cancelled when the node unmounts
        finally:
            self._followers.pop(node, None)

    def followers(self) -> list[DOMNode]:
        """The nodes following now (tests check that closed screens left)."""
        return list(self._followers)


def follow(node: DOMNode, *kinds: type[Event]) -> None:
    """Deliver the engine's events of ``kinds`` to ``node`` as ``EngineEvent`` messages,
    until it unmounts."""
    app_context(node).engine_events.follow(node, kinds)
