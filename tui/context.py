"""What a screen or widget may ask of the app, typed, without importing ``tui/app.py``.

``app_context(self).api`` instead of ``self.app  # type: ignore``: the app module imports
every screen, so a screen importing it (even under ``TYPE_CHECKING``) closes a cycle.
``KittiwakeApp`` provides all of this (checked in ``tui/app.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, cast

if TYPE_CHECKING:
    from textual.dom import DOMNode

    from kittiwake.core.api import MailApi
    from kittiwake.core.config import Config
    from kittiwake.tui.events import EngineEvents


class AppContext(Protocol):
    api: MailApi
    config: Config
    open_drafts: set[Any]
    """The review screens open now (saved to Drafts when the app quits)."""
    engine_events: EngineEvents
    """The engine's events for the nodes that follow them (``tui/events.follow``)."""

    def action_help(self) -> None:
        """The keys of the screen on top."""

    def start_engine(self) -> None:
        """Connect and sync every account (once; later calls do nothing)."""


def app_context(node: DOMNode) -> AppContext:
    """The running app of ``node`` (or ``node`` itself, the app), as screens and widgets
    know it."""
    from textual.app import App

    return cast("AppContext", node if isinstance(node, App) else node.app)
