"""POP3 feeding a mail store: one download, then the new mail shown.

``Pop3Feed`` is what the engine's ``Pop3Poller`` runs every ``check_every`` (and on ctrl+r):
``fetch_once`` through the sink the engine built (the POP3 account's own Maildir, whose inbox
is rescanned as batches arrive, so a long download fills the list as it goes, and once more
at the end; or, with ``deliver_to``, a folder of another account's store, which then syncs
the folder). The feed knows the stores only as ``MailStore``: no protocol wing imports another.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from kittiwake.core.config import Account
from kittiwake.core.errors import KittiwakeError
from kittiwake.core.events import ConnState
from kittiwake.core.maildir import INBOX
from kittiwake.core.pop3.fetch import Delivered, FetchProgress, FetchStats, fetch_once
from kittiwake.core.pop3.sinks import Sink
from kittiwake.core.store import MailStore, SyncStats

__all__ = ["Pop3Feed"]

log = logging.getLogger(__name__)


class Pop3Feed:
    """Download a POP3 account's new mail into its own store, or ``deliver_to``'s folder."""

    def __init__(
        self,
        account: Account,
        own: MailStore,
        sink: Sink[Any],
        *,
        target: MailStore | None = None,
        folder: str = INBOX,
        on_delivered: Callable[[], None] | None = None,
    ) -> None:
        """``own`` is the POP3 account's store (its Maildir); ``sink`` delivers into
        ``folder`` of ``target`` (default: ``own``'s inbox); ``on_delivered`` is called
        after each batch (the own store rescans its inbox soon)."""
        self.account = account
        self.own = own
        self.sink = sink
        self.target = target if target is not None else own
        self.folder = folder
        self._on_delivered = on_delivered
        self.traffic = 0
        """Octets downloaded since the start (for ``kittiwake sync``)."""

    async def __call__(self, progress: Callable[[FetchProgress], None]) -> FetchStats:
        def delivered(batch: Sequence[Delivered]) -> None:
            if self._on_delivered is not None and batch:
                self._on_delivered()

        stats = await fetch_once(
            self.account, sink=self.sink, progress=progress, on_delivered=delivered
        )
        self.traffic += stats.bytes
        if self.target is self.own:
            await self.own.sync_folder(self.folder)
        else:  # also when nothing came: an earlier run may have appended while it was away
            await self._sync_target()
        return stats

    async def _sync_target(self) -> None:
        """Have the ``deliver_to`` account show what was appended (when online)."""
        store = self.target
        if store.state is not ConnState.ONLINE:
            return  # it syncs the folder when it is back
        try:
            await store.refresh_folders()
            await store.sync_folder(self.folder)
        except KittiwakeError as exc:
            # The mail is safely there; the folder shows it on the account's next sync.
            log.info(
                "%s: syncing %s after a download failed: %s", store.name, self.folder, exc.message
            )

    async def sync_once(self) -> SyncStats:
        """For ``kittiwake sync``: replay actions, index, download, index again. Errors
        propagate (one sentence for the command line)."""
        started = time.monotonic()
        await self.own.sync_all()
        stats = await self(lambda _progress: None)
        folders = self.own.cache.folders()
        return SyncStats(
            folders=len(folders),
            messages=sum(f.total for f in folders),
            fetched=stats.new,
            seconds=time.monotonic() - started,
        )
