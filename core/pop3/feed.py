"""POP3 feeding a local account: one download, then the new mail shown.

``Pop3Feed`` is what the engine's ``Pop3Poller`` runs every ``check_every`` (and on ctrl+r):
``fetch_once`` into the account's Maildir, its inbox rescanned as batches arrive (so a long
download fills the list as it goes) and once more at the end. With ``deliver_to`` the mail
goes to a folder of an IMAP account instead, and that account syncs the folder.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence

from kittiwake.core.config import Account, Config
from kittiwake.core.errors import KittiwakeError
from kittiwake.core.events import ConnState
from kittiwake.core.local.account import LocalAccount
from kittiwake.core.maildir import INBOX, Maildir
from kittiwake.core.pop3.fetch import Delivered, FetchProgress, FetchStats, fetch_once
from kittiwake.core.pop3.sinks import MaildirSink
from kittiwake.core.store import MailStore, SyncStats

__all__ = ["Pop3Feed"]

log = logging.getLogger(__name__)


class Pop3Feed:
    """Download a POP3 account's new mail into its local store (or ``deliver_to``)."""

    def __init__(
        self,
        account: Account,
        config: Config,
        local: LocalAccount,
        stores: Callable[[], Mapping[str, MailStore]],
    ) -> None:
        assert account.pop3 is not None
        self.account = account
        self.config = config
        self.local = local
        self._stores = stores
        self.deliver_to = account.pop3.deliver_to
        # Its own Maildir object: the sink delivers from worker threads.
        self._sink = None if self.deliver_to else MaildirSink(Maildir(local.maildir.root))
        self.traffic = 0
        """Octets downloaded since the start (for ``kittiwake sync``)."""

    async def __call__(self, progress: Callable[[FetchProgress], None]) -> FetchStats:
        def delivered(batch: Sequence[Delivered]) -> None:
            if self._sink is not None and batch:
                self.local.mark_dirty(INBOX)

        stats = await fetch_once(
            self.account,
            self.config,
            sink=self._sink,
            progress=progress,
            on_delivered=delivered,
        )
        self.traffic += stats.bytes
        if self.deliver_to is None:
            await self.local.sync_folder(INBOX)
        else:  # also when nothing came: an earlier run may have appended while it was away
            await self._sync_target(self.deliver_to)
        return stats

    async def _sync_target(self, target: str) -> None:
        """Have the ``deliver_to`` IMAP account show what was appended (when online)."""
        name, _, folder = target.partition("/")
        store = self._stores().get(name)
        if store is None or store.state is not ConnState.ONLINE:
            return  # it syncs the folder when it is back
        try:
            await store.refresh_folders()
            await store.sync_folder(folder)
        except KittiwakeError as exc:
            # The mail is safely there; the folder shows it on the account's next sync.
            log.info("%s: syncing %s after a download failed: %s", name, folder, exc.message)

    async def sync_once(self) -> SyncStats:
        """For ``kittiwake sync``: replay actions, index, download, index again. Errors
        propagate (one sentence for the command line)."""
        started = time.monotonic()
        await self.local.sync_all()
        stats = await self(lambda _progress: None)
        folders = self.local.cache.folders()
        return SyncStats(
            folders=len(folders),
            messages=sum(f.total for f in folders),
            fetched=stats.new,
            seconds=time.monotonic() - started,
        )
