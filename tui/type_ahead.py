"""Keys typed ahead apply in order, each to the screen it was meant for.

Textual hands a key to the widget focused when the key arrives; the key then bubbles up to
the app, which runs its binding. A mutt user types ``Enter q j j Enter`` without waiting:
the ``j`` arrives while ``Enter`` is still on its way, goes to the list and moves the cursor
before the reader opens (which then shows the wrong message); a key sent into a screen that
is being closed is dropped with it.

So a key that arrives while the one before it is still at work is held, and let through
(in order) once that work is done: the widgets the last key was sent through have nothing
left to handle (the key itself, and what its binding posted on them: ``Opened``,
``Submitted``, the messages that push and pop screens bubble up that same way), the key
is not still on its way back to the app, and the screen on top (perhaps just pushed or
uncovered) has handled what it was sent (its mount, its resume: the focus it gives). A key
typed at an idle app goes through at once, at the cost of a few queue lengths read.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import TYPE_CHECKING

from textual import events
from textual.app import ScreenStackError

if TYPE_CHECKING:
    from textual.app import App
    from textual.message_pump import MessagePump

#: A key held this many seconds goes through whatever the app is doing (a widget that never
#: gets quiet must not swallow the keyboard).
STUCK = 0.5
#: Held keys are looked at again on the loop's next turn for this long, then every 2 ms.
EAGER = 0.005


class KeyGate:
    """Holds keys typed ahead of the screen, and lets them through in order."""

    def __init__(self, app: App[None]) -> None:
        self.app = app
        self._last: events.Key | None = None
        self._path: tuple[MessagePump, ...] = ()
        """The widget the last key was sent to and its ancestors, the app left out."""
        self._held: deque[events.Key] = deque()
        self._released: events.Key | None = None
        self._screen: MessagePump | None = None
        self._since = 0.0
        self._retry: asyncio.Handle | None = None

    def admit(self, key: events.Key) -> bool:
        """True when ``key`` goes through now; else it is held, and posted again later."""
        if key is self._released:
            self._released = None
            return True
        if not self._held and self._released is None and not self._busy():
            return True
        if not self._held:
            self._since = time.monotonic()
        self._held.append(key)
        self._schedule()
        return False

    def sent(self, key: events.Key, target: MessagePump | None) -> None:
        """The app has handled ``key`` as it arrived: forwarded it to ``target`` (the
        focused widget or the screen), or not (a priority binding ran)."""
        self._last = key if target is not None else None
        nodes = target.ancestors_with_self if target is not None else []  # type: ignore[attr-defined]
        self._path = tuple(node for node in nodes if node is not self.app)
        self._screen = self._top()

    def _top(self) -> MessagePump | None:
        try:
            return self.app.screen
        except ScreenStackError:
            return None

    def _busy(self) -> bool:
        """The last key (or what it started) is still at work. Once it is not, nothing is
        looked at for the keys after it until another key is sent."""
        if any(pump.message_queue_size for pump in self._path):
            return True
        if self._last is not None and self._last in self.app._message_queue.values:
            return True  # on its way back up, for its binding
        screen = self._top()
        if screen is not self._screen and screen is not None and screen.message_queue_size:
            return True  # pushed or uncovered: its mount and resume first
        self._last, self._path, self._screen = None, (), screen
        return False

    def _schedule(self) -> None:
        if self._retry is None:
            loop = asyncio.get_running_loop()
            if time.monotonic() - self._since < EAGER:
                self._retry = loop.call_soon(self._try)
            else:
                self._retry = loop.call_later(0.002, self._try)

    def _try(self) -> None:
        self._retry = None
        if not self._held:
            return
        if self._released is None and (not self._busy() or time.monotonic() - self._since > STUCK):
            key = self._released = self._held.popleft()
            self._last, self._path = None, ()
            self._since = time.monotonic()
            self.app.post_message(key)
        if self._held or self._released is not None:
            self._schedule()
