"""All accounts of one config, their caches and the one event bus they publish on."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

from kittiwake.core import cache_repair, paths
from kittiwake.core.cache import Cache, register_raw_decoder
from kittiwake.core.config import Account, Config, parse_duration
from kittiwake.core.errors import ConfigError
from kittiwake.core.events import EventBus
from kittiwake.core.imap.account import ImapAccount, Tuning
from kittiwake.core.smtp.filing import SentFiler
from kittiwake.core.store import MailStore, SyncStats

# POP3 and local accounts, and the outbox (SMTP), are loaded only when the config has an
# account that needs them: an IMAP-only start does not pay for their imports.
if TYPE_CHECKING:
    from kittiwake.core.local.account import LocalAccount
    from kittiwake.core.models import Envelope
    from kittiwake.core.pop3.feed import Pop3Feed
    from kittiwake.core.pop3.poller import Pop3Poller
    from kittiwake.core.smtp.outbox import OutboxRunner


def decode_raw(raw: bytes) -> tuple[Envelope, tuple[str, ...], bool]:
    """The reader of the rows a first sync left raw (``imap/lazy.py``), loaded with the first
    such row: importing it loads the IMAP parser (~25 ms), which a warm start whose rows are
    all decoded does not need before its first frame. Later rows go to lazy's own reader."""
    from kittiwake.core.imap.lazy import decode_raw as decode

    register_raw_decoder(decode)
    return decode(raw)


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
                cache = Cache(self.cache_dir / f"{account.key}.sqlite3", raw_decoder=decode_raw)
                self.imap[account.key] = ImapAccount(account, cache, self.bus, tuning)
        #: Every account that holds mail, whatever its kind (what ``MailApi`` reads and acts on).
        self.stores: dict[str, MailStore] = dict(self.imap)
        # -- local accounts: a Maildir fed by POP3 (``core/local/``) ---------------------------
        self.local: dict[str, LocalAccount] = {}
        self.pop3: dict[str, Pop3Poller] = {}
        self.feeds: dict[str, Pop3Feed] = {}
        for account in config.accounts.values():
            if account.pop3 is not None and account.imap is None:
                from kittiwake.core.local.account import LocalAccount
                from kittiwake.core.pop3.fetch import maildir_path
                from kittiwake.core.pop3.poller import Pop3Poller

                cache = Cache(self.cache_dir / f"{account.key}.sqlite3")
                local = LocalAccount(account.key, maildir_path(account), cache, self.bus)
                self.local[account.key] = self.stores[account.key] = local
                feed = self.feeds[account.key] = self._feed(account, local)
                every = parse_duration(account.pop3.check_every)
                self.pop3[account.key] = Pop3Poller(account.key, feed, self.bus, every)
        # -- compose and send: one outbox runner per account with an [smtp] section ---------
        self.filer = SentFiler(lambda: self.stores, self.bus.publish)
        self.outboxes: dict[str, OutboxRunner] = {}
        for a in config.accounts.values():
            if a.smtp is not None:
                from kittiwake.core.smtp.outbox import Outbox, OutboxRunner

                self.outboxes[a.key] = OutboxRunner(
                    a, Outbox(a.key), publish=self.filer.publish, on_sent=self.filer.file_copy
                )
        #: Sentences for the user about caches found damaged and rebuilt (``Cache.notice``).
        self.notices = [s.cache.notice for s in self.stores.values() if s.cache.notice]

    def user_input(self) -> None:
        """A key was pressed: background work that competes with drawing it waits a moment."""
        for account in self.imap.values():
            account.hold_background()

    def select(self, name: str | None) -> list[Account]:
        """The named account, or all of them; an unknown name is a config-level mistake."""
        if name is None:
            return list(self.config.accounts.values())
        if name not in self.config.accounts:
            known = ", ".join(self.config.accounts) or "none"
            raise ConfigError(f"no account named {name!r} (accounts: {known})")
        return [self.config.accounts[name]]

    def cache_failure(self, exc: sqlite3.DatabaseError) -> str:
        """One sentence for an SQLite error at run time, naming the damaged cache file."""
        return cache_repair.runtime_failure([s.cache.path for s in self.stores.values()], exc)

    def _feed(self, account: Account, local: LocalAccount) -> Pop3Feed:
        """The POP3 feed of ``account``: into its own Maildir (a sink with a Maildir object of
        its own: it delivers from worker threads), or into the folder of the IMAP account
        that ``deliver_to`` names (the config allows only those)."""
        from kittiwake.core.maildir import INBOX, Maildir
        from kittiwake.core.pop3.feed import Pop3Feed
        from kittiwake.core.pop3.fetch import spool_dir
        from kittiwake.core.pop3.sinks import MaildirSink, StoreSink

        assert account.pop3 is not None
        if not account.pop3.deliver_to:
            own = MaildirSink(Maildir(local.maildir.root))
            return Pop3Feed(account, local, own, on_delivered=lambda: local.mark_dirty(INBOX))
        name, _, folder = account.pop3.deliver_to.partition("/")
        target = self.imap[name]
        sink = StoreSink(target, folder, spool_dir(account))
        return Pop3Feed(account, local, sink, target=target, folder=folder)

    def traffic(self, name: str) -> int:
        """Octets received from the account's server in this run."""
        if name in self.imap:
            return self.imap[name].traffic
        feed = self.feeds.get(name)
        return feed.traffic if feed is not None else 0

    def start(self) -> None:
        for account in self.stores.values():
            account.start()
        for poller in self.pop3.values():
            poller.start()
        for runner in self.outboxes.values():
            runner.start()  # sends what an earlier run left in the outbox

    async def stop(self) -> None:
        await asyncio.gather(*(p.stop() for p in self.pop3.values()))
        await asyncio.gather(*(r.stop() for r in self.outboxes.values()))
        await asyncio.gather(*(a.stop() for a in self.stores.values()))
        for account in self.stores.values():
            with contextlib.suppress(Exception):
                account.cache.close()
        self.bus.close()

    async def sync_once(self, name: str | None = None) -> dict[str, SyncStats]:
        """Connect, sync every folder once, disconnect: for ``kittiwake sync``."""
        out: dict[str, SyncStats] = {}
        for account in self.select(name):
            feed = self.feeds.get(account.key)
            if feed is not None:  # a local account: its journal, its Maildir, then POP3
                runner = self.outboxes.get(account.key)
                if runner is not None:
                    await runner.flush(force=True)
                out[account.key] = await feed.sync_once()
                continue
            imap = self.imap.get(account.key)
            if imap is None:
                continue
            await imap.connect_once()
            try:
                runner = self.outboxes.get(account.key)
                if runner is not None:  # queued mail goes first; its Sent copy uses this login
                    await runner.flush(force=True)
                out[account.key] = await imap.sync_all()
            finally:
                await imap.stop()
        return out
