"""All accounts of one config, their caches and the one event bus they publish on."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from kittiwake.core import paths
from kittiwake.core.cache import Cache
from kittiwake.core.config import Account, Config
from kittiwake.core.errors import ConfigError
from kittiwake.core.events import EventBus
from kittiwake.core.imap.account import ImapAccount, SyncStats, Tuning
from kittiwake.core.store import MailStore


class Engine:
    """Owns the accounts. The UI and headless commands drive it and listen on ``bus``."""

    def __init__(
        self, config: Config, cache_dir: Path | None = None, tuning: Tuning | None = None
    ) -> None:
        self.config = config
        self.bus = EventBus()
        self.cache_dir = cache_dir or paths.cache_dir()
        self.imap: dict[str, ImapAccount] = {}
        for account in config.accounts.values():
            if account.imap is not None:
                cache = Cache(self.cache_dir / f"{account.key}.sqlite3")
                self.imap[account.key] = ImapAccount(account, cache, self.bus, tuning)
        #: Every account that holds mail, whatever its kind (what ``MailApi`` reads and acts on).
        self.stores: dict[str, MailStore] = dict(self.imap)

    def select(self, name: str | None) -> list[Account]:
        """The named account, or all of them; an unknown name is a config-level mistake."""
        if name is None:
            return list(self.config.accounts.values())
        if name not in self.config.accounts:
            known = ", ".join(self.config.accounts) or "none"
            raise ConfigError(f"no account named {name!r} (accounts: {known})")
        return [self.config.accounts[name]]

    def start(self) -> None:
        for account in self.stores.values():
            account.start()

    async def stop(self) -> None:
        await asyncio.gather(*(a.stop() for a in self.stores.values()))
        for account in self.stores.values():
            with contextlib.suppress(Exception):
                account.cache.close()
        self.bus.close()

    async def sync_once(self, name: str | None = None) -> dict[str, SyncStats]:
        """Connect, sync every folder once, disconnect: for ``kittiwake sync``."""
        out: dict[str, SyncStats] = {}
        for account in self.select(name):
            imap = self.imap.get(account.key)
            if imap is None:
                continue  # POP3 accounts arrive with their own issue
            await imap.connect_once()
            try:
                out[account.key] = await imap.sync_all()
            finally:
                await imap.stop()
        return out
