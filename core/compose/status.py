"""What waits in the outboxes, for the status bar: read from each outbox on disk once, then
followed from the events.

The status bar asks at every start, before the first frame; the compose service
(``service.py``: drafts, MIME, the address book, OpenPGP) loads only when something is first
composed or sent, so this tally lives apart from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kittiwake.core.events import Event, OutboxChanged, SendFailed

if TYPE_CHECKING:
    from kittiwake.core.smtp.outbox import OutboxRunner


@dataclass(frozen=True)
class OutboxStatus:
    """Every account's outbox together, for the status bar."""

    queued: int = 0
    failed: int = 0
    saving: int = 0
    reason: str | None = None
    """Why queued mail waits, or the server's words for a refused one."""
    uncertain: int = 0
    """Sent but never confirmed: may have been delivered; the user decides."""

    def describe(self) -> str:
        """ "1 in outbox (cannot reach ...)", "1 not sent: 550 ...", "1 may have been
        delivered", or "" when empty."""
        parts = []
        if self.queued:
            parts.append(f"{self.queued} in outbox")
        if self.failed:
            parts.append(f"{self.failed} not sent")
        if self.uncertain:
            parts.append(f"{self.uncertain} may have been delivered")
        if self.saving and not parts:
            parts.append(f"{self.saving} being saved to Sent")
        text = ", ".join(parts)
        if text and self.reason and (self.queued or self.failed):
            text += f": {self.reason}"
        return text


class OutboxTally:
    """Each account's last ``OutboxChanged`` and the server's words of its last refusal."""

    def __init__(self, runners: Mapping[str, OutboxRunner]) -> None:
        self.runners = runners
        self._outbox: dict[str, OutboxChanged] = {}
        self._failed_words: dict[str, str] = {}

    def note(self, event: Event) -> None:
        if isinstance(event, OutboxChanged):
            self._outbox[event.account] = event
        elif isinstance(event, SendFailed):
            self._failed_words[event.account] = event.message

    def recount(self, account: str) -> None:
        """The account's outbox changed behind the events: read it from disk when next asked."""
        self._outbox.pop(account, None)

    def status(self) -> OutboxStatus:
        """What waits in every outbox, and why (read from disk once, then from events)."""
        queued = failed = saving = uncertain = 0
        reasons: list[str] = []
        for key, runner in self.runners.items():
            event = self._outbox.get(key)
            if event is None:
                from kittiwake.core.smtp.outbox import ItemState  # loaded with the runner

                items = runner.outbox.items()
                waiting = [i for i in items if i.state is ItemState.QUEUED]
                refused = [i for i in items if i.state is ItemState.FAILED]
                event = OutboxChanged(
                    key,
                    len(waiting),
                    len(refused),
                    sum(1 for i in items if i.state is ItemState.DELIVERED and not i.finished),
                    next((i.error for i in waiting if i.error), None),
                    uncertain=sum(1 for i in items if i.state is ItemState.UNCERTAIN),
                )
                self._outbox[key] = event
                if refused and refused[-1].error:
                    self._failed_words[key] = refused[-1].error
            queued += event.queued
            failed += event.failed
            saving += event.saving
            uncertain += event.uncertain
            if event.failed and key in self._failed_words:
                reasons.append(self._failed_words[key])
            elif event.queued and event.reason:
                reasons.append(event.reason)
        return OutboxStatus(queued, failed, saving, reasons[0] if reasons else None, uncertain)
