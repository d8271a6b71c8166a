"""One IMAP account kept in step with its server: sync into the cache, watch, reconnect.

Two connections: a *command* connection that runs every sync and user command one at a time,
and a *watch* connection that only listens (NOTIFY over every subscribed folder where the
server has it, else IDLE on INBOX and on the folder the user has open, plus STATUS polls of
the rest). Notifications do not carry enough to update the cache on their own, so each one
marks its folder dirty and the command connection resyncs it; with QRESYNC a resync is one
SELECT that reports what vanished and what changed, so this stays cheap.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import sqlite3
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar

from kittiwake.core import cache_repair, gmailids
from kittiwake.core.cache import Cache, FolderState, LazySummaries
from kittiwake.core.config import Account, parse_duration
from kittiwake.core.errors import (
    AuthFailed,
    CommandFailed,
    ConfigError,
    ConnectionLost,
    ImapError,
    KittiwakeError,
    SignInRequired,
)
from kittiwake.core.events import (
    CacheRefreshed,
    ConnectionChanged,
    ConnState,
    EventBus,
    FlagsChanged,
    FolderCountsChanged,
    FolderListChanged,
    FolderReset,
    MessagesAdded,
    MessagesExpunged,
    SyncError,
    SyncProgress,
)
from kittiwake.core.imap import codes
from kittiwake.core.imap.triage import Triage
from kittiwake.core.imap.uidset import UidSet
from kittiwake.core.memory import keep_heap_small
from kittiwake.core.models import FolderInfo, FolderRole, MessageSummary
from kittiwake.core.search.index import body_words
from kittiwake.core.secrets import command_key
from kittiwake.core.store import SyncStats
from kittiwake.core.tasks import reap
from kittiwake.core.transport import Credential, credential

# The protocol itself (the parser, the connection and client, aioimaplib, the raw rows'
# decoder) is imported when the account first connects or decodes, not with the account: a
# warm start draws the cached list before the engine connects, and those imports cost ~30 ms
# of CPU (tests/tui/test_first_screen_imports.py holds the line).
if TYPE_CHECKING:
    from kittiwake.core.imap.client import ImapClient, SelectInfo
    from kittiwake.core.imap.connection import ImapConnection
    from kittiwake.core.imap.parser import Fetch, Status, Untagged

log = logging.getLogger(__name__)

T = TypeVar("T")

#: What Autocrypt's update needs beyond the summary's ENVELOPE (whose Date is used): the
#: header itself, From as sent (one address, or none counts), Content-Type (reports do not).
AUTOCRYPT_FIELDS = ("FROM", "AUTOCRYPT", "CONTENT-TYPE")
#: How long the background decode pass waits while the account has other work to do.
DECODE_BACKOFF = 0.02
#: The decode pass stands aside this long after the user's last key: on the app's event loop
#: its 4 ms slices ran between every step of drawing a key (a key at 100,000 messages took
#: 78 ms instead of 9 while the pass ran).
INPUT_HOLD = 1.0

#: Messages fetched in the first round trip of a folder never synced: one screenful and then some.
FIRST_WINDOW = 100
#: How long a message load that lost its connection waits for the next one (at least the
#: account's timeout): the supervisor's first retry comes within ``Tuning.backoff_min``.
RELOAD_WAIT = 10.0
#: Later batches: bounded so memory stays flat and user commands can get in between.
BATCH = 2000
#: Flags of a resumed first sync are compared and stored this many messages at a time
#: (``Cache.set_flags`` reads the current ones of each slice: all at once, ~0.3 KB a message).
FLAGS_SLICE = 10_000
#: RFC 2177 asks for a new IDLE at least every 29 minutes. Renewing every 5 also proves the
#: link alive (DONE must be answered within ``dead_after``), so a connection that died
#: silently (suspend, NAT timeout) is noticed within minutes, not half an hour.
IDLE_RENEW = 5 * 60
#: Gmail's bandwidth and command limits last minutes to a day (Google's "Gmail bandwidth
#: limits"), and every attempt while they last counts against the account again: the first
#: retry waits 1 to 2 minutes, each next one twice as long, up to 30 minutes.
LIMIT_BACKOFF_MIN = 2 * 60.0
LIMIT_BACKOFF_MAX = 30 * 60.0


@dataclass
class Tuning:
    """Knobs tests turn down; defaults are for people."""

    idle_renew: float = IDLE_RENEW
    backoff_min: float = 1.0
    backoff_max: float = 300.0
    first_window: int = FIRST_WINDOW
    batch: int = BATCH
    flags_slice: int = FLAGS_SLICE
    poll_every: float | None = None
    dead_after: float = 30.0
    decode_after_sync: bool = True
    """Decode the rows a first sync left raw right after it (the background pass: ~3 s of
    CPU at 100,000 messages, once, while the user reads), so that the conversations or a
    sort by sender are as quick as any later one; their search index waits for a first
    search (``Cache.want_decoded(index=True)``: ~1 s more at 100,000). False leaves the
    machine quiet until one of those asks (``Cache.want_decoded``); the first of them then
    pays the pass (benches/bench_decode_pass.py compares both)."""
    limit_backoff_min: float = LIMIT_BACKOFF_MIN
    limit_backoff_max: float = LIMIT_BACKOFF_MAX


@dataclass(frozen=True)
class _FirstPage:
    """A cold folder's newest page, fetched before the watch was live (``_first_page``):
    the SELECT it came from, on which connection, and the lowest sequence number it holds,
    so the full sync goes on below it on the same selection instead of selecting again."""

    client: ImapClient
    sel: SelectInfo
    lowest: int
    before_watch: bool


@dataclass
class _Dirty:
    folders: set[str] = field(default_factory=set)
    folder_list: bool = False
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    marks: int = 0
    marked_at: dict[str, int] = field(default_factory=dict)
    """When each folder was last marked, counted in marks: a STATUS read before is stale."""

    def mark(self, folder: str | None) -> None:
        if folder is not None:
            self.folders.add(folder)
            self.marks += 1
            self.marked_at[folder] = self.marks
            self.wake.set()

    def mark_list(self) -> None:
        self.folder_list = True
        self.wake.set()


class ImapAccount:
    """The engine for one IMAP account. ``start()`` runs it until ``stop()``."""

    searches_server = True

    def __init__(
        self, account: Account, cache: Cache, bus: EventBus, tuning: Tuning | None = None
    ) -> None:
        assert account.imap is not None
        self.account = account
        self.cfg = account.imap
        self.cache = cache
        self.bus = bus
        self.tuning = tuning or Tuning()
        if self.tuning.poll_every is None:
            self.tuning.poll_every = parse_duration(self.cfg.poll_every)
        self.name = account.key
        self.state = ConnState.OFFLINE
        self.open_folder: str | None = None
        self._client: ImapClient | None = None
        self._lock = asyncio.Lock()
        self._dirty = _Dirty()
        #: Folders that may have been recreated (a LIST or STATUS notification named them,
        #: or the poll came round): their next sync SELECTs them. The selected folder's live
        #: resync asks only what changed, and Dovecot's LIST-STATUS and STATUS of the
        #: selected folder describe the deleted one it still has open, so a new SELECT is
        #: the one way to learn its UIDVALIDITY.
        self._suspect: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self._decoder: asyncio.Task[None] | None = None
        self._held_until = 0.0  # the decode pass waits until then (``hold_background``)
        #: Set when the decode pass has waited for the user's keys (for tests and benches).
        self.decode_held = asyncio.Event()
        #: Something read every row of a folder (``Cache.want_decoded``): decode the raw ones.
        self._decode_wanted = self.tuning.decode_after_sync
        #: A search asked (``Cache.want_decoded(index=True)``): index what the pass decodes,
        #: and what it decoded before without indexing.
        self._index_wanted = False
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop ``start`` runs it on
        self.cache.on_decode_wanted(self._want_decoded)
        self._watchers: list[asyncio.Task[None]] = []
        self._open_changed: asyncio.Event | None = None
        #: The folder the NOTIFY connection has examined while it idles (None otherwise):
        #: that folder's changes come as they are, the rest as STATUS.
        self.notify_examines: str | None = None
        self._idling: dict[str, asyncio.Event] = {}
        self._watching = asyncio.Event()
        self._lost = asyncio.Event()
        self._lost_reason: ConnectionLost | None = None
        self._watch_conns: list[ImapConnection] = []
        #: Cold folders whose newest page was fetched before the full sync (``_first_page``).
        self._first_pages: dict[str, _FirstPage] = {}
        #: Retries in a row refused for the server's bandwidth or command limits (reset by
        #: a full sync): their backoff is in minutes (``Tuning.limit_backoff_min``).
        self._limited = 0
        #: Attempts in a row that failed before a full sync (reset by one, not by a login):
        #: a server that lets us in and then stalls (a folder still locked by a Dovecot
        #: killed mid-write) keeps every session we give up on, so retrying at the first
        #: backoff filled its cap on connections per user in 30 s (CI).
        self._failures = 0
        self._secret: Credential | None = None
        #: The greeting's and login's notices told since this connection attempt began.
        self._told: set[str] = set()
        #: Set by ``signed_in`` when the user has signed in again (OAuth2).
        self._signed_in = asyncio.Event()
        #: Why the account waits for the user to sign in (OAuth2), else None.
        self.sign_in_needed: str | None = None
        self._stopping = False
        self._online = asyncio.Event()
        self._synced = asyncio.Event()
        #: Set (and replaced) at every change of ``state``: ``_new_session`` waits on it.
        self._state_changed = asyncio.Event()
        self.stats = SyncStats()
        self._bytes_done = 0
        self.triage = Triage(
            self.name,
            cache,
            bus,
            self._dirty.mark,
            self._dirty.wake.set,
            self._reset_folder,
            self._dirty.mark_list,
        )

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self._loop = asyncio.get_running_loop()
            self._task = asyncio.create_task(self._supervise(), name=f"imap:{self.name}")

    async def stop(self) -> None:
        self._stopping = True
        tasks = [t for t in [self._task, self._decoder, *self._watchers] if t is not None]
        for task in tasks:
            task.cancel()
        try:
            for task in tasks:
                await reap(task)
        finally:  # cancelled meanwhile: the connections are closed all the same
            self._task = None
            self._decoder = None
            await self._close_all()

    def _start_decoding(self) -> None:
        """Decode, in the background, the summaries a first sync stored raw (see
        ``core/imap/lazy.py``): conversation, search and threads then read decoded rows
        instead of decoding each at ~18 µs. Cache work only, so it outlives reconnects."""
        if self._decoder is None or self._decoder.done():
            self._decoder = asyncio.create_task(self._decode_all(), name=f"decode:{self.name}")

    def _want_decoded(self, index: bool = False) -> None:
        """A search, the conversations or a sort by sender or subject read every row: the
        raw ones are decoded from now on (after the sync in progress), never before, so a
        first start that is only read leaves the machine quiet (issue 19: ~4 s of CPU at
        100,000 messages otherwise). ``index`` (a search): the search index too, which
        the pass after a first sync leaves to the first search (~1 s at 100,000)."""
        try:
            here = asyncio.get_running_loop()
        except RuntimeError:  # a worker thread (a search run off the loop): tell the loop
            here = None
        if here is not self._loop:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.call_soon_threadsafe(self._want_decoded, index)
            return
        self._decode_wanted = True
        self._index_wanted = self._index_wanted or index
        if self._synced.is_set() and self._task is not None:
            self._start_decoding()

    def hold_background(self, seconds: float = INPUT_HOLD) -> None:
        """The user is typing: the decode pass waits until ``seconds`` after now."""
        self._held_until = time.monotonic() + seconds

    async def _after_decode_slice(self) -> None:
        """The decode pass is the least urgent work there is: a change another device made,
        a user's command, a resync or a key being drawn goes first (measured: a live flag
        change took 90 ms instead of 10 while the pass ran flat out beside it)."""
        await asyncio.sleep(0)
        while True:
            held = self._held_until - time.monotonic()
            if held > 0:
                self.decode_held.set()
                await asyncio.sleep(min(held, 0.25))
            elif self._lock.locked() or self._dirty.folders or self._dirty.wake.is_set():
                await asyncio.sleep(DECODE_BACKOFF)
            else:
                return

    async def wait_decoded(self, timeout: float) -> None:
        """Until the background decode pass has finished (it starts once wanted, see
        ``_want_decoded``)."""
        async with asyncio.timeout(timeout):
            while self._decoder is None:
                await self._synced.wait()
                await asyncio.sleep(0)
            await asyncio.shield(self._decoder)

    async def _decode_all(self) -> None:
        from kittiwake.core.imap.lazy import decode_pass, index_pass

        keep_heap_small()

        def index() -> bool:  # read at each write: a search may ask meanwhile
            return self._index_wanted

        for folder in self.cache.folders():
            try:
                await decode_pass(
                    self.cache, folder.name, between=self._after_decode_slice, index=index
                )
            except Exception:
                log.exception("decoding the cached summaries of %s failed", folder.name)
        if not self._index_wanted:
            return
        for folder in self.cache.folders():
            try:
                await index_pass(self.cache, folder.name, between=self._after_decode_slice)
            except Exception:
                log.exception("indexing the cached summaries of %s failed", folder.name)

    async def wait_online(self, timeout: float) -> None:
        await asyncio.wait_for(self._online.wait(), timeout)

    @property
    def is_synced(self) -> bool:
        return self._synced.is_set()

    async def wait_synced(self, timeout: float) -> None:
        """Until the full sync after the latest (re)connect has finished."""
        await asyncio.wait_for(self._synced.wait(), timeout)

    def _set_state(
        self, state: ConnState, reason: str | None = None, retry: float | None = None
    ) -> None:
        self.state = state
        self._state_changed.set()
        self._state_changed = asyncio.Event()
        if state is ConnState.ONLINE:
            self._online.set()
        else:
            self._online.clear()
            self._synced.clear()
        self.bus.publish(ConnectionChanged(self.name, state, reason, retry))

    async def _supervise(self) -> None:
        """Connect, sync, watch; on any loss, go offline, back off with jitter, and retry."""
        while not self._stopping:
            try:
                self._set_state(ConnState.CONNECTING)
                self._secret = None  # each attempt asks again: the password may have changed
                self._told = set()
                self._lost.clear()
                self._lost_reason = None
                self._client = await self._connect(self._on_unsolicited)
                self._set_state(ConnState.ONLINE)
                await self._run_until_failure()
            except asyncio.CancelledError:
                raise
            except ConfigError as exc:
                # A broken setting (ca_file) does not mend itself: say so once, do not retry.
                log.warning("%s stopped: %s", self.name, exc.message)
                self._set_state(ConnState.OFFLINE, exc.message)
                await self._close_all()
                return
            except SignInRequired as exc:
                # An OAuth2 sign-in is needed: retrying cannot help, the user must act.
                log.info("%s: %s", self.name, exc.message)
                self.sign_in_needed = exc.message
                self._set_state(ConnState.AUTH_FAILED, exc.message)
                await self._close_all()
                self._signed_in.clear()
                await self._signed_in.wait()
                self.sign_in_needed = None
            except AuthFailed as exc:
                if exc.temporary:  # [UNAVAILABLE], a connection cap: not now, not "not you"
                    self._failures += 1
                    await self._retry_later(exc.message, self._failures, exc.text)
                    continue
                # Retrying a wrong password only locks the account; wait for a long while.
                self._set_state(ConnState.AUTH_FAILED, exc.message, self.tuning.backoff_max)
                await self._close_all()
                await asyncio.sleep(self.tuning.backoff_max)
            except (ImapError, OSError, KittiwakeError, sqlite3.DatabaseError) as exc:
                if isinstance(exc, sqlite3.DatabaseError):
                    reason = cache_repair.runtime_failure([self.cache.path], exc)
                    if cache_repair.damaged([self.cache.path]):
                        # A damaged file does not mend itself; the next start rebuilds it.
                        log.warning("%s stopped: %s", self.name, reason, exc_info=True)
                        self._set_state(ConnState.OFFLINE, reason)
                        await self._close_all()
                        return
                else:  # (a busy file, "database is locked", is retried like the network)
                    reason = exc.message if isinstance(exc, KittiwakeError) else str(exc)
                self._failures += 1
                await self._retry_later(reason, self._failures, getattr(exc, "text", ""))

    async def _retry_later(self, reason: str, failures: int, text: str = "") -> None:
        """Offline with ``reason``, then back off exponentially with jitter (many clients
        coming back from one outage must not arrive at once). The server's bandwidth or
        command limits (``text`` or ``reason`` say so) are waited out in minutes: a retry
        every few seconds would only keep the account over them."""
        low, high, n = self.tuning.backoff_min, self.tuning.backoff_max, failures
        if codes.BANDWIDTH in (codes.server_limit(text), codes.server_limit(reason)):
            self._limited += 1
            low, high, n = (
                self.tuning.limit_backoff_min,
                self.tuning.limit_backoff_max,
                self._limited,
            )
        delay = min(high, low * 2 ** (n - 1))
        delay *= random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not crypto
        log.info("%s offline: %s (retry in %.1fs)", self.name, reason, delay)
        self._set_state(ConnState.OFFLINE, reason, delay)
        await self._close_all()
        await asyncio.sleep(delay)

    async def _run_until_failure(self) -> None:
        """Watch first, then sync, then resync dirty folders, until something fails.

        The watcher is listening before the full sync starts, so a change made on another
        device while we sync is never missed: it marks its folder dirty and is resynced.
        """
        self._watching = asyncio.Event()
        watch = asyncio.create_task(self._watch_main(), name=f"watch:{self.name}")
        lost = asyncio.create_task(self._raise_when_lost(), name=f"lost:{self.name}")
        self._watchers = [watch, lost]
        self._first_pages = {}
        try:
            first = asyncio.create_task(self._first_page(), name=f"first-page:{self.name}")
            ready = asyncio.create_task(self._watching.wait())
            try:
                done, _ = await asyncio.wait(
                    [watch, lost, ready], return_when=asyncio.FIRST_COMPLETED
                )
                for task in done - {ready}:
                    task.result()
                await first
            finally:
                ready.cancel()
                first.cancel()
                await reap(first)
            await self.sync_all()
            self._synced.set()
            self._limited = 0
            self._failures = 0
            if self._decode_wanted:
                self._start_decoding()
            resync = asyncio.create_task(self._process_dirty_forever(), name=f"resync:{self.name}")
            keepalive = asyncio.create_task(self._keepalive(), name=f"keepalive:{self.name}")
            self._watchers += [resync, keepalive]
            done, _ = await asyncio.wait(self._watchers, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()
        finally:
            for task in self._watchers:
                task.cancel()

    def _note_lost(self, exc: ConnectionLost) -> None:
        """Any of our connections died (seen even while idle): reconnect everything."""
        self._lost_reason = exc
        self._lost.set()

    async def _raise_when_lost(self) -> None:
        await self._lost.wait()
        raise self._lost_reason or ConnectionLost(f"{self.cfg.host}: connection lost")

    async def _close_all(self) -> None:
        for task in self._watchers:
            task.cancel()
        try:
            for task in self._watchers:
                await reap(task)
        finally:  # cancelled meanwhile: no connection is left open
            self._watchers = []
            conns = [c.conn for c in [self._client] if c is not None] + self._watch_conns
            self._client = None
            self._watch_conns = []
            for conn in conns:
                self._bytes_done += conn.bytes_in + conn.bytes_out
                with contextlib.suppress(Exception):
                    await conn.close()

    @property
    def traffic(self) -> int:
        """IMAP bytes sent and received by this account so far, over all its connections."""
        live = [c.conn for c in [self._client] if c is not None] + self._watch_conns
        return self._bytes_done + sum(c.bytes_in + c.bytes_out for c in live)

    # -- connecting ---------------------------------------------------------------------

    async def _connect(
        self, on_unsolicited: Callable[[ImapClient, str | None, Untagged], None] | None
    ) -> ImapClient:
        from kittiwake.core.imap.client import ImapClient
        from kittiwake.core.imap.session import imap_session

        at = f"accounts.{self.name}.imap"
        conn = await imap_session(
            self.account,
            on_lost=self._note_lost,
            source=lambda: self._credential(at),
            forget=self._forget_credential,
        )
        try:
            client = ImapClient(conn)
            if on_unsolicited is not None:
                listen = on_unsolicited  # (bound for the closure, for mypy)
                client.on_unsolicited = lambda folder, item: listen(client, folder, item)
            client.on_notice = self._notice
            for text in client.early_notices():
                # Every connection hears the greeting: told once per connection attempt.
                if text not in self._told:
                    self._told.add(text)
                    self._notice(text)
            await client.enable_extensions()
        except BaseException:
            with contextlib.suppress(Exception):
                await conn.close()
            raise
        return client

    def _notice(self, text: str) -> None:
        """A server's ``[ALERT]`` (``[OVERQUOTA]``, ...) for the user, in plain words."""
        self.bus.publish(SyncError(self.name, text))

    async def _credential(self, at: str) -> Credential:
        """The password or token of this connection attempt (the watch connections reuse
        the command connection's). A command runs off the event loop, and the status bar
        says it is being waited for: it may be a password manager asking for a passphrase."""
        if self._secret is None:
            key = command_key(self.cfg)
            if key is not None and self.state is not ConnState.ONLINE:
                self._set_state(ConnState.CONNECTING, f"waiting for {key}")
            self._secret = await credential(self.cfg, at, self.account)
        return self._secret

    def _forget_credential(self) -> None:
        self._secret = None

    # -- syncing ------------------------------------------------------------------------

    @property
    def client(self) -> ImapClient:
        if self._client is None:
            raise ConnectionLost(f"{self.cfg.host}:{self.cfg.port} is not connected")
        return self._client

    @property
    def has_labels(self) -> bool:
        """Gmail (``X-GM-EXT-1``): from the connected server, else from what the cache kept
        of an earlier connection (the app may start offline)."""
        if self._client is not None:
            from kittiwake.core.imap.gmail import GMAIL

            return self._client.has(GMAIL)
        return gmailids.present(self.cache.db)

    def signed_in(self) -> None:
        """The user has signed in again (OAuth2): reconnect now."""
        self._secret = None
        self._signed_in.set()

    async def connect_once(self) -> None:
        """Connect the command connection without the supervisor (``kittiwake sync``)."""
        self._set_state(ConnState.CONNECTING)
        self._secret = None
        try:
            self._client = await self._connect(self._on_unsolicited)
        except KittiwakeError as exc:
            refused = isinstance(exc, AuthFailed) and not exc.temporary
            self._set_state(ConnState.AUTH_FAILED if refused else ConnState.OFFLINE, exc.message)
            raise
        self._set_state(ConnState.ONLINE)

    def _publish_outside_changes(self) -> None:
        """Only events move the UI, and a sync that finds the cache already current (another
        program filled it: ``kittiwake sync`` beside the app) publishes none: so when another
        connection committed to the file, say what it holds now, folder by folder."""
        if not self.cache.changed_elsewhere():
            return
        log.info("%s: the cache was changed by another program; publishing it", self.name)
        folders = self.cache.folders()
        self.bus.publish(FolderListChanged(self.name, tuple(folders)))
        for info in folders:
            self.bus.publish(FolderCountsChanged(self.name, info.name, info.total, info.unread))
            self.bus.publish(CacheRefreshed(self.name, info.name))

    async def sync_all(self) -> SyncStats:
        """Sync the folder list, then every selectable folder: the one a first page was
        fetched of (still selected), INBOX, the open folder, the rest."""
        started = time.monotonic()
        self._publish_outside_changes()
        folders, statuses = await self.sync_folder_list()
        order = sorted(
            (f for f in folders if f.selectable and not self._waits_until_opened(f.name, f.role)),
            key=lambda f: (
                f.name not in self._first_pages,  # goes on where its first page left off
                f.role is not FolderRole.INBOX,
                f.name != self.open_folder,
                f.name,
            ),
        )
        stats = SyncStats(folders=len(order))
        for folder in order:
            fetched = await self.sync_folder(folder.name, statuses.get(folder.name))
            stats.fetched += fetched
            stats.messages += self.cache.counts(folder.name)[0]
        # Leave the folder most likely to change selected: its live resyncs then need no
        # SELECT at all (see _quick_resync).
        focus = self.open_folder or next(
            (f.name for f in order if f.role is FolderRole.INBOX), None
        )
        if focus is not None and self._client is not None and self.client.selected != focus:
            async with self._lock:
                await self._select_for_resync(focus)
        self._publish_outside_changes()
        stats.seconds = time.monotonic() - started
        self.stats = stats
        return stats

    async def _first_page(self) -> None:
        """A cold start's first screen, at once: the open folder (INBOX at a start) has
        nothing cached, so its newest ``first_window`` messages are fetched on the command
        connection while the watch connection is still being set up (a second TLS handshake,
        login, EXAMINE and NOTIFY: most of a cold start's wait for its first page). The full
        sync still starts only once changes are heard; it goes on below this page on the
        same selection and, since the page was read before the watch was live, resyncs the
        folder once after it (``_finish_first_page``), so nothing changed meanwhile is
        missed."""
        folder = self.open_folder or "INBOX"
        state = self.cache.folder_state(folder)
        if (state is not None and state.uidnext is not None) or self.cache.counts(folder)[0]:
            return
        async with self._lock:
            client = self.client
            before_watch = not self._watching.is_set()
            try:
                sel = await client.select(folder)
            except CommandFailed as exc:  # no such folder (yet): the full sync will say
                log.info("%s: no first page of %s: %s", self.name, folder, exc.message)
                return
            lowest = max(1, sel.exists - self.tuning.first_window + 1)
            page = await client.fetch_summaries(lowest, sel.exists) if sel.exists else []
            self.cache.set_folder_state(folder, FolderState(sel.uidvalidity, None, None))
            self._store_new(folder, page)
            self.bus.publish(SyncProgress(self.name, folder, len(page), sel.exists))
            self._first_pages[folder] = _FirstPage(client, sel, lowest, before_watch)

    async def _finish_first_page(self, folder: str, page: _FirstPage) -> int:
        """The rest of a folder whose newest page ``_first_page`` fetched: below it, newest
        first, on the SELECT that page came from (a second SELECT of a 100,000-message folder
        costs the server ~200 ms, and the cached-rows path of ``_fill`` reads every flag)."""
        client, sel = self.client, page.sel
        fetched = 0
        done = max(0, sel.exists - page.lowest + 1)
        batches = client.fetch_summaries_newest_first(
            page.lowest - 1, self.tuning.batch, self.tuning.batch
        )
        async with contextlib.aclosing(batches):
            async for batch in batches:
                self._store_new(folder, batch)
                fetched += len(batch)
                self.bus.publish(SyncProgress(self.name, folder, done + fetched, sel.exists))
        await self._reconcile_expunges(folder, sel)
        self.cache.set_folder_state(
            folder, FolderState(sel.uidvalidity, sel.uidnext, sel.highestmodseq)
        )
        if page.before_watch:
            # What changed between the page's SELECT and the watch going live was heard by
            # no one: one resync from that SELECT's UIDNEXT and HIGHESTMODSEQ finds it.
            self._dirty.mark(folder)
        return fetched

    def _waits_until_opened(self, folder: str, role: FolderRole | None) -> bool:
        """Gmail's All Mail (``\\All``) holds every message again, and is often the biggest
        folder of all: it is first fetched when the user opens it (or searches it), not with
        the others. Once cached, it is kept up to date like any folder."""
        return (
            role is FolderRole.ALL
            and folder != self.open_folder
            and self.cache.folder_state(folder) is None
        )

    async def sync_folder_list(self) -> tuple[list[FolderInfo], dict[str, Status]]:
        """LIST (with the STATUS of every folder where LIST-STATUS is offered: a folder
        recreated since shows by its UIDVALIDITY and is reset)."""
        async with self._lock:
            client = self.client
            folders, statuses = await client.list_folders()
        before = set(self.cache.folder_roles())  # names only: folders() counts every message
        self.cache.set_folders(folders)
        for name, st in statuses.items():
            state = self.cache.folder_state(name)
            if state is not None and _recreated(state, st, client, name):
                self._reset_folder(name)
            if st.messages is not None:
                self.cache.set_server_counts(name, st.messages, st.unseen or 0)
        if set(self.cache.folder_roles()) != before or not before:
            self.bus.publish(FolderListChanged(self.name, tuple(self.cache.folders())))
        return folders, statuses

    async def sync_folder(self, folder: str, status: Status | None = None) -> int:
        """Bring ``folder``'s cache in step with the server; return how many summaries came."""
        from kittiwake.core.imap import gmail

        async with self._lock:
            fetched = await self._sync_folder_locked(folder, status)
            if self._client is not None and self.client.has(gmail.GMAIL):
                await self._sync_gmail_ids(folder, changed=fetched > 0)
            return fetched

    async def _sync_gmail_ids(self, folder: str, *, changed: bool) -> None:
        """Gmail: each message's X-GM-MSGID and labels, so the copies of one message under
        several labels are seen as one (``core/gmailids.py``). Fetched again whenever the
        folder gained or lost messages (a cheap FETCH: no headers)."""
        from kittiwake.core.imap import gmail

        cached = set(self.cache.uids(folder))  # not flags: a frozenset each, 1M in All Mail
        db = self.cache.db
        if not changed and cached == gmailids.known_uids(db, folder):
            return
        client = self.client
        if client.selected != folder:
            await client.select(folder)
        rows = await gmail.fetch_ids(client) if cached else []
        gmailids.store_folder(db, folder, rows)

    async def _sync_folder_locked(self, folder: str, status: Status | None) -> int:
        log.debug("%s: syncing %s", self.name, folder)
        client = self.client
        self._publish_outside_changes()  # ctrl+r shows what another program stored, too
        if self.triage.has_pending():
            # The user's own actions first, so the server's state we read includes them.
            await self.triage.flush(client)
        state = self.cache.folder_state(folder)
        if (
            status is None
            and state is not None
            and state.uidnext is not None
            and (folder != client.selected)
        ):
            status = await client.status(folder)
        if state is not None and _recreated(state, status, client, folder):
            self._reset_folder(folder)
            state = None
        suspect = folder in self._suspect
        self._suspect.discard(folder)
        page = self._first_pages.pop(folder, None)
        if (
            page is not None
            and not suspect
            and state is not None
            and state.uidvalidity == page.sel.uidvalidity
            and state.uidnext is None
            and page.client is client
            and client.selected == folder
            and client.selected_uidvalidity == page.sel.uidvalidity
        ):
            fetched = await self._finish_first_page(folder, page)
            total, unread = self.cache.counts(folder)
            self.cache.set_server_counts(folder, total, unread)
            self.bus.publish(FolderCountsChanged(self.name, folder, total, unread))
            return fetched
        if (
            not suspect
            and state is not None
            and status is not None
            and _unchanged(state, status, self.cache.counts(folder)[0])
        ):
            return 0
        if (
            not suspect
            and state is not None
            and state.uidnext is not None
            and state.highestmodseq
            and client.qresync
            and client.selected == folder
        ):
            # Already selected: ask what changed since our modseq, no new SELECT (a SELECT of
            # a 100,000-message folder costs the server ~200 ms; this costs a few ms).
            return await self._quick_resync(folder, state)
        qresync = None
        if state is not None and state.highestmodseq and state.uidnext is not None:
            # Known UIDs are optional in QRESYNC; leaving them out spares a scan of the cache.
            qresync = (state.uidvalidity or 0, state.highestmodseq, None)
        sel = await client.select(folder, qresync=qresync)
        if state is not None and sel.uidvalidity != state.uidvalidity:
            self._reset_folder(folder)
            state = None
            qresync = None
        fetched = 0
        if state is None or state.uidnext is None:
            self.cache.set_folder_state(folder, FolderState(sel.uidvalidity, None, None))
            fetched = await self._fill(folder, sel)
        else:
            await self._catch_up(folder, sel, state, used_qresync=qresync is not None)
            if sel.uidnext is not None and sel.uidnext > state.uidnext:
                fetched = len(await self._fetch_new(folder, state.uidnext))
            await self._reconcile_expunges(folder, sel)
        self.cache.set_folder_state(
            folder, FolderState(sel.uidvalidity, sel.uidnext, sel.highestmodseq)
        )
        total, unread = self.cache.counts(folder)
        self.cache.set_server_counts(folder, total, unread)
        self.bus.publish(FolderCountsChanged(self.name, folder, total, unread))
        return fetched

    def _reset_folder(self, folder: str) -> None:
        """The folder was recreated (new UIDVALIDITY): its UIDs name other messages now.
        Its rows, bodies and search words go, and every view of it hears ``FolderReset``;
        the sync that follows fetches it as new."""
        log.info("%s/%s: UIDVALIDITY changed, refetching", self.name, folder)
        self.cache.reset_folder(folder)
        self.bus.publish(FolderReset(self.name, folder))
        self._dirty.mark(folder)

    async def _select_for_resync(self, folder: str) -> None:
        """SELECT ``folder`` and apply what its QRESYNC data says (nothing is lost)."""
        state = self.cache.folder_state(folder)
        if state is None or not state.highestmodseq or state.uidnext is None:
            return
        sel = await self.client.select(
            folder, qresync=(state.uidvalidity or 0, state.highestmodseq, None)
        )
        if sel.uidvalidity != state.uidvalidity:
            self._dirty.mark(folder)
            return
        await self._catch_up(folder, sel, state, used_qresync=self.client.qresync)
        if sel.uidnext is not None and sel.uidnext > state.uidnext:
            self._dirty.mark(folder)
        elif sel.highestmodseq is not None:
            self.cache.set_folder_state(
                folder, FolderState(sel.uidvalidity, state.uidnext, sel.highestmodseq)
            )

    async def _quick_resync(self, folder: str, state: FolderState) -> int:
        assert state.highestmodseq is not None and state.uidnext is not None
        # New mail first, by UID range: it is what the user waits for, and the changes below
        # cost the server a pass over the folder's mod-sequences (tens of ms at 100,000).
        # Not from the answer below either: Dovecot leaves out of it messages this session
        # had not been told of yet (their EXISTS comes with it), and the modseq stored below
        # would then move past them for good. A FETCH does not show them either (the
        # server brings a session up to date after a command, not before): the NOOP does,
        # its EXISTS taken here (the FETCH is its answer; flag changes and expunges it
        # brings go on to ``_on_unsolicited``). Without it the new message came one whole
        # resync later (measured: +35 ms at 10,000 messages).
        from kittiwake.core.imap.parser import Exists

        await self.client.run("NOOP", claim=lambda r: isinstance(r, Exists))
        fresh = await self._fetch_new(folder, state.uidnext)
        fetched = len(fresh)
        flags, modseqs, vanished = await self.client.uid_fetch_changed(state.highestmodseq)
        self._expunge(folder, list(vanished))
        cached = self.cache.flags(folder, flags.keys())
        self._apply_flags(folder, {u: f for u, f in flags.items() if u in cached})
        highest = max([state.highestmodseq, *modseqs.values()])
        uidnext = max([state.uidnext, *(s.uid + 1 for s in fresh)])
        self.cache.set_folder_state(folder, FolderState(state.uidvalidity, uidnext, highest))
        if flags or vanished or fresh:
            total, unread = self.cache.counts(folder)
            self.cache.set_server_counts(folder, total, unread)
            self.bus.publish(FolderCountsChanged(self.name, folder, total, unread))
        return fetched

    async def _fill(self, folder: str, sel: SelectInfo) -> int:
        """First sync (or an interrupted one): newest first, in bounded batches."""
        client = self.client
        fetched = 0
        if not self.cache.counts(folder)[0]:
            keep_heap_small()  # bulk batches: their buffers are not to pin the heap
            # The small first window is for a screenful on screen at once: a folder nobody
            # looks at yet comes in bulk batches only, stored raw (200 folders' windows were
            # 20,000 messages decoded in full, and 200 more round trips).
            shown = folder.upper() == "INBOX" or folder == self.open_folder
            first = self.tuning.first_window if shown else self.tuning.batch
            # Pipelined: the next batch is on the wire while this one is stored.
            batches = client.fetch_summaries_newest_first(sel.exists, first, self.tuning.batch)
            async with contextlib.aclosing(batches):
                async for batch in batches:
                    self._store_new(folder, batch)
                    fetched += len(batch)
                    self.bus.publish(SyncProgress(self.name, folder, fetched, sel.exists))
        else:
            # The flags of what is cached may have changed since (another device, or a
            # cache from before this server's UIDNEXT was known): one FETCH says both.
            # Memory (a first sync of 1M messages resumed): the UIDs as ranges, the flags
            # dict the only thing per message, applied a slice at a time.
            flags, _ = await client.uid_fetch_flags("1:*")
            server = UidSet.from_iterable(flags)
            cached = UidSet.from_iterable(self.cache.iter_uids(folder))
            missing = server.difference(cached)
            self._expunge(folder, list(cached.difference(server)))
            for uid in missing:
                flags.pop(uid, None)  # what is left: the flags of cached messages
            items = iter(flags.items())
            while some := dict(itertools.islice(items, self.tuning.flags_slice)):
                self._apply_flags(folder, some)
            del flags, items
            for chunk in _descending_chunks(missing, self.tuning.batch):
                batch = await client.uid_fetch_summaries(chunk)
                self._store_new(folder, batch)
                fetched += len(batch)
                self.bus.publish(SyncProgress(self.name, folder, fetched, len(missing)))
        await self._reconcile_expunges(folder, sel)
        return fetched

    async def _catch_up(
        self, folder: str, sel: SelectInfo, state: FolderState, used_qresync: bool
    ) -> None:
        """Apply flag changes and expunges that happened since ``state``."""
        if used_qresync:
            self._expunge(folder, list(sel.vanished))
            self._apply_flags(folder, sel.changed)
            return
        client = self.client
        if client.condstore and state.highestmodseq and not sel.nomodseq:
            if sel.highestmodseq != state.highestmodseq:
                flags, _ = await client.uid_fetch_flags("1:*", changedsince=state.highestmodseq)
                self._apply_flags(folder, flags)
            return
        # No CONDSTORE: every flag, every time (the only way to see changes).
        flags, _ = await client.uid_fetch_flags("1:*")
        self._apply_flags(folder, flags)
        cached = self.cache.uids(folder)
        self._expunge(folder, [u for u in cached if u not in flags and u < (state.uidnext or 0)])

    async def _fetch_new(self, folder: str, since_uid: int) -> list[MessageSummary]:
        """Summaries from ``since_uid`` up that the cache lacks, stored (``n:*`` always
        answers with the newest message, usually cached: only the answer's UIDs are looked
        up, never the folder's every UID)."""
        batch = await self.client.uid_fetch_summaries(f"{since_uid}:*", self._new_mail_headers)
        known = self.cache.flags(folder, [s.uid for s in batch]) if batch else {}
        fresh = [s for s in batch if s.uid not in known]
        self._store_new(folder, fresh)
        return fresh

    @property
    def _new_mail_headers(self) -> tuple[str, ...]:
        """Header fields fetched with new mail's summaries (not with a first sync's: that
        stays as fast as ever): Autocrypt's, so the peer state is updated on receipt."""
        return AUTOCRYPT_FIELDS if self.account.autocrypt else ()

    async def _reconcile_expunges(self, folder: str, sel: SelectInfo) -> None:
        """If the cache holds more than the server, find out which are gone."""
        exists = sel.exists
        cached = self.cache.counts(folder)[0]
        if cached == exists:
            return
        server = await self.client.uid_search_all()
        gone = [u for u in self.cache.iter_uids(folder) if u not in server]
        self._expunge(folder, gone)
        if self.cache.counts(folder)[0] < len(server):
            missing = server.difference(UidSet.from_iterable(self.cache.iter_uids(folder)))
            for chunk in _descending_chunks(missing, self.tuning.batch):
                self._store_new(folder, await self.client.uid_fetch_summaries(chunk))

    # -- cache updates that publish events ----------------------------------------------

    def _store_new(self, folder: str, summaries: Sequence[MessageSummary]) -> None:
        if not summaries:
            return
        self.cache.put_summaries(folder, summaries)
        # A bulk batch stays lazy: its envelopes decode only if a subscriber reads them.
        batch = summaries if isinstance(summaries, LazySummaries) else tuple(summaries)
        self.bus.publish(MessagesAdded(self.name, folder, batch))

    def _apply_flags(self, folder: str, flags: dict[int, frozenset[str]]) -> None:
        changed = self.cache.set_flags(folder, flags)
        if changed:
            self.bus.publish(FlagsChanged(self.name, folder, changed))

    def _expunge(self, folder: str, uids: list[int]) -> None:
        if not uids:
            return
        removed = self.cache.remove(folder, uids)
        if removed:
            self.bus.publish(MessagesExpunged(self.name, folder, tuple(removed)))

    # -- live updates -------------------------------------------------------------------

    def _on_unsolicited(self, client: ImapClient, folder: str | None, item: Untagged) -> None:
        """Another device changed something: have the folder resynced. A flag change is
        shown at once from the response itself (``_flags_heard``); the resync still follows
        (it keeps the folder's mod-sequence and corrects anything the response left out)."""
        from kittiwake.core.imap.parser import Exists, Expunge, Fetch, ListItem, Status, Vanished

        log.debug("%s: unsolicited in %s: %r", self.name, folder, item)
        if isinstance(item, Fetch) and folder is not None:
            self._flags_heard(client, folder, item)
        if isinstance(item, Exists | Expunge | Vanished | Fetch):
            if isinstance(item, Expunge | Vanished) and folder is not None:
                # Sequence numbers moved: the rest is not fetched below the first page's.
                self._first_pages.pop(folder, None)
            self._dirty.mark(folder)
        elif isinstance(item, Status):
            state = self.cache.folder_state(item.mailbox)
            if state is not None and item.uidvalidity not in (None, state.uidvalidity):
                self._suspect.add(item.mailbox)  # recreated: see _suspect
            elif state is not None:
                self._counts_heard(item)
            self._dirty.mark(item.mailbox)
        elif isinstance(item, ListItem):
            # Created, deleted or renamed: a folder of that name may be a new one now.
            self._suspect.add(item.name_decoded)
            self._dirty.mark(item.name_decoded)
            self._dirty.mark_list()

    def _counts_heard(self, item: Status) -> None:
        """A folder's counts from its STATUS notification (NOTIFY; Dovecot sends MESSAGES
        and UNSEEN with it), published now: the folder list shows them without waiting for
        the resync (a STATUS, a SELECT and the FETCH on the command connection, behind
        whatever it is doing), whose own counts follow. Not while the user's actions wait
        in the journal: the server has not seen them yet."""
        total, unread = item.messages, item.unseen
        if total is None or unread is None or self.triage.has_pending():
            return
        self.cache.set_server_counts(item.mailbox, total, unread)
        self.bus.publish(FolderCountsChanged(self.name, item.mailbox, total, unread))

    def _flags_heard(self, client: ImapClient, folder: str, item: Fetch) -> None:
        """Apply the FLAGS of an unsolicited FETCH to the cache now: a round trip on the
        command connection (behind whatever it is doing) sooner than the resync could. Only
        with the UID in it (QRESYNC makes the server send it), from a connection whose
        folder has the cached UIDVALIDITY, and with no action of the user's waiting to be
        sent (the server has not seen it yet: the resync after the flush decides)."""
        uid, flags = item.uid, item.flags
        if uid is None or flags is None or self.triage.has_pending():
            return
        state = self.cache.folder_state(folder)
        if (
            state is None
            or state.uidvalidity is None
            or client.selected_uidvalidity != state.uidvalidity
        ):
            return
        from kittiwake.core.imap.client import RECENT

        self._apply_flags(folder, {uid: flags - {RECENT}})  # \Recent: per session

    async def _process_dirty_forever(self) -> None:
        while True:
            await self._dirty.wake.wait()
            self._dirty.wake.clear()
            if self.triage.has_pending():
                async with self._lock:
                    await self.triage.flush(self.client)
            statuses: dict[str, Status] = {}
            listed_at = 0
            if self._dirty.folder_list:
                self._dirty.folder_list = False
                known = set(self.cache.folder_roles())
                # With LIST-STATUS, the list brings every folder's STATUS: a poll of 200
                # folders is then one command, not one STATUS each. Only for folders last
                # marked before it was sent: a change reported since may be newer than it.
                listed_at = self._dirty.marks
                folders, statuses = await self.sync_folder_list()
                for info in folders:  # created or renamed elsewhere: fill it now
                    if info.selectable and info.name not in known:
                        self._dirty.mark(info.name)
            while self._dirty.folders:
                folder = self._dirty.folders.pop()
                roles = self.cache.folder_roles()  # not folders(): that counts every message
                if folder in roles and not self._waits_until_opened(folder, roles[folder]):
                    try:
                        status = statuses.pop(folder, None)
                        if self._dirty.marked_at.get(folder, 0) > listed_at:
                            status = None
                        await self.sync_folder(folder, status)
                    except CommandFailed as exc:
                        if codes.passing(exc.code, exc.text):
                            raise  # over the server's limits: the supervisor waits it out
                        self.bus.publish(SyncError(self.name, exc.message, folder))
            if not self._dirty.folders and not self._dirty.folder_list:
                await self._refocus()

    def _focus(self) -> str | None:
        """The folder most likely to change under the user's eyes: the open one, else INBOX."""
        if self.open_folder is not None:
            return self.open_folder
        roles = self.cache.folder_roles()
        return next((n for n, r in roles.items() if r is FolderRole.INBOX), None)

    async def _refocus(self) -> None:
        """Leave the open folder (INBOX until another is opened) selected on the command
        connection once the dirty folders are done, as ``sync_all`` does: its live resyncs
        then need neither STATUS nor SELECT (``_quick_resync``). Opening a folder, or a
        change in another one, had left another folder selected, and the open folder's next
        change waited for a STATUS and a SELECT (~200 ms of the server's at 100,000)."""
        focus = self._focus()
        if not self.is_synced or focus is None or self._client is None:
            return  # during a full sync: it leaves the focus selected when it ends
        if self.client.selected == focus:
            return
        state = self.cache.folder_state(focus)
        if state is None or state.uidnext is None or not state.highestmodseq:
            return  # not synced yet (or no CONDSTORE): the sync of it selects it
        async with self._lock:
            if self._client is None or self.client.selected == focus:
                return
            try:
                await self._select_for_resync(focus)
            except CommandFailed as exc:  # gone meanwhile: the folder list's sync will say
                if codes.passing(exc.code, exc.text):
                    raise
                log.info("%s: %s not selected: %s", self.name, focus, exc.message)

    async def _watch_main(self) -> None:
        """NOTIFY on every subscribed folder where offered; else IDLE on INBOX and on the
        open folder, and STATUS polls of the rest."""
        if self.client.has("NOTIFY"):
            await self._watch_notify()
            return
        self._open_changed = open_changed = asyncio.Event()
        tasks = [
            asyncio.create_task(self._poll_others()),
            asyncio.create_task(self._watch_idle("INBOX")),
        ]
        try:
            while True:
                follower = None
                if self.open_folder not in (None, "INBOX"):
                    follower = asyncio.create_task(self._watch_idle(self.open_folder))
                    tasks.append(follower)
                changed = asyncio.create_task(open_changed.wait())
                done, _ = await asyncio.wait([*tasks, changed], return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    if task is not changed:
                        task.result()  # a watcher died: raise so the supervisor reconnects
                open_changed.clear()
                if follower is not None:
                    follower.cancel()
                    tasks.remove(follower)
                    await asyncio.wait([follower])  # its connection closed before the next
        finally:
            for task in tasks:
                task.cancel()

    def set_open_folder(self, folder: str | None) -> None:
        """The folder the user looks at: watched live even without NOTIFY."""
        if folder != self.open_folder:
            self.open_folder = folder
            self._dirty.wake.set()  # selected on the command connection (``_refocus``)
            if folder != "INBOX":  # INBOX's watcher stays: its readiness still holds
                self._idling.pop(folder or "", None)
            if self._open_changed is not None:
                self._open_changed.set()

    async def watch_folder(self, folder: str, timeout: float = 10.0) -> None:
        """Make ``folder`` the open one and return once changes to it are pushed to us."""
        self.set_open_folder(folder)
        if self._client is not None and self.client.has("NOTIFY"):
            return  # NOTIFY covers every subscribed folder already
        ready = self._idling.setdefault(folder, asyncio.Event())
        await asyncio.wait_for(ready.wait(), timeout)

    async def _watch_connection(self, folder: str) -> ImapClient | None:
        """A connection of its own for watching ``folder``; None when the server caps
        connections per user and this one is over the cap (another client may hold the
        rest): the account then works with its one command connection and polls instead.
        Taking the refusal for a wrong password made the account reconnect for ever.

        Never more than ``codes.OWN_CONNECTIONS`` in all (Gmail allows 15 per account, shared
        with the user's other devices): over that, the folder is polled too."""
        if 1 + len(self._watch_conns) >= codes.OWN_CONNECTIONS:
            log.warning(
                "%s: %d connections open; polling %s", self.name, 1 + len(self._watch_conns), folder
            )
            return None
        try:
            client = await self._connect(self._on_unsolicited)
        except AuthFailed as exc:
            if not exc.temporary:
                raise
            log.warning(
                "%s: %s; checking %s every %gs instead",
                self.name,
                exc.message,
                folder,
                self._poll_interval,
            )
            self._notice(exc.message)
            return None
        self._watch_conns.append(client.conn)
        return client

    async def _drop_watch_connection(self, client: ImapClient) -> None:
        """A watcher has ended (the user opened another folder): its connection goes with
        it, so following the user from folder to folder never piles connections up."""
        if client.conn in self._watch_conns:
            self._watch_conns.remove(client.conn)
            self._bytes_done += client.conn.bytes_in + client.conn.bytes_out
            with contextlib.suppress(Exception):
                await client.conn.close()

    @property
    def _poll_interval(self) -> float:
        return self.tuning.poll_every or self.tuning.idle_renew

    async def _poll_instead(self, folder: str) -> None:
        """No connection to watch ``folder`` (``"*"``: every folder) with: mark it for a
        resync on the command connection every ``poll_every``."""
        self._watching.set()
        self._idling.setdefault(folder, asyncio.Event()).set()
        while True:
            await asyncio.sleep(self._poll_interval)
            if folder == "*":
                self._dirty.mark_list()
                self._dirty.mark("INBOX")
                if self.open_folder is not None:
                    self._dirty.mark(self.open_folder)
            else:
                self._dirty.mark(folder)

    async def _watch_notify(self) -> None:
        client = await self._watch_connection("*")
        if client is None:
            await self._poll_instead("*")
            return
        # The open folder (INBOX until another is opened) is examined, so its changes arrive
        # as EXISTS/FETCH/VANISHED at once (a flag change shown from the FETCH itself); other
        # folders' come as STATUS, which the server must compute first (~50 ms at 100,000)
        # and which only has the folder resynced.
        watched = self.open_folder or "INBOX"
        await client.select(watched, readonly=True)
        events = "(MessageNew MessageExpunge FlagChange)"
        await client.conn.command(
            "NOTIFY",
            f"SET (selected {events}) (inboxes {events}) (subscribed {events})"
            " (personal (MailboxName SubscriptionChange))",
        )
        conn = client.conn
        if not conn.has_capability("IDLE"):
            await self._idle_loop(client, "*")
            return
        self._open_changed = changed = asyncio.Event()
        while True:
            self.notify_examines = None
            await conn.idle_start()
            self.notify_examines = watched
            self._watching.set()
            self._idling.setdefault("*", asyncio.Event()).set()
            # asyncio.wait, not wait_for: Python 3.11's wait_for loses a cancellation that
            # comes as the event is set (stop() right after the user opened a folder), and
            # this loop then never ended.
            waiter = asyncio.ensure_future(changed.wait())
            try:
                await asyncio.wait([waiter], timeout=self.tuning.idle_renew)
            finally:
                waiter.cancel()
            await conn.idle_done(timeout=self.tuning.dead_after)
            changed.clear()
            wanted = self.open_folder or "INBOX"
            if wanted != watched:
                try:
                    await client.select(wanted, readonly=True)
                except CommandFailed:  # gone meanwhile: INBOX, which always exists
                    wanted = "INBOX"
                    await client.select(wanted, readonly=True)
                watched = wanted

    async def _watch_idle(self, folder: str) -> None:
        client = await self._watch_connection(folder)
        if client is None:
            await self._poll_instead(folder)
            return
        try:
            await client.select(folder, readonly=True)
            await self._idle_loop(client, folder)
        finally:
            await self._drop_watch_connection(client)

    async def _idle_loop(self, client: ImapClient, folder: str) -> None:
        """IDLE, renewed before servers drop it; a DONE without answer means a dead link.
        Without IDLE (not offered, or switched off with ``disable``): NOOP every
        ``poll_every``, whose answer carries the same news (and proves the link alive)."""
        conn = client.conn
        if not conn.has_capability("IDLE"):
            self._watching.set()
            self._idling.setdefault(folder, asyncio.Event()).set()
            while True:
                await asyncio.sleep(self.tuning.poll_every or self.tuning.idle_renew)
                await client.run("NOOP", claim=lambda r: False)
        while True:
            await conn.idle_start()
            self._watching.set()
            self._idling.setdefault(folder, asyncio.Event()).set()
            await asyncio.sleep(self.tuning.idle_renew)
            await conn.idle_done(timeout=self.tuning.dead_after)

    async def _keepalive(self) -> None:
        """NOOP on the command connection when it has been quiet: proves it alive."""
        while True:
            await asyncio.sleep(self.tuning.idle_renew)
            async with self._lock:
                await self.client.conn.noop(timeout=self.tuning.dead_after)

    async def _poll_others(self) -> None:
        """Without NOTIFY, other folders are checked with STATUS every ``poll_every``, and
        the folder list with LIST (folders created, renamed or deleted elsewhere)."""
        assert self.tuning.poll_every is not None
        while True:
            await asyncio.sleep(self.tuning.poll_every)
            self._dirty.mark_list()  # folders made, deleted or recreated elsewhere
            if self._client is not None and self.client.selected is not None:
                self._suspect.add(self.client.selected)  # see _suspect
            for folder in self.cache.folders():
                if folder.selectable and folder.name != "INBOX":
                    self._dirty.mark(folder.name)

    # -- reading ------------------------------------------------------------------------

    async def fetch_body(self, folder: str, uid: int) -> bytes | None:
        cached = self.cache.body(folder, uid)
        if cached is not None:
            return cached
        supervised = self._task is not None and not self._task.done()
        old = self._client if self.state is ConnState.ONLINE and supervised else None
        try:
            return await self._fetch_body_once(folder, uid)
        except ConnectionLost:
            # The connection ended under the load (a network blip; Dovecot's BYE for a folder
            # recreated by another session, which a new session reads): one more try on the
            # supervisor's next connection, as a user pressing Enter again would. Offline
            # from the start, or when that connection cannot be made, the loss is the answer.
            if old is None or not await self._new_session(old, max(self.cfg.timeout, RELOAD_WAIT)):
                raise
            log.info("%s: loading %s UID %d again on a new connection", self.name, folder, uid)
            return await self._fetch_body_once(folder, uid)

    async def _new_session(self, old: ImapClient, timeout: float) -> bool:
        """Whether the supervisor brings a connection other than ``old`` online: False as
        soon as its first attempt after the loss fails, or after ``timeout`` seconds."""
        tried = False
        try:
            async with asyncio.timeout(timeout):
                while True:
                    if self.state is ConnState.ONLINE and self._client not in (None, old):
                        return True
                    if self.state is ConnState.CONNECTING:
                        tried = True
                    elif tried:
                        return False  # that attempt failed (offline, or refused)
                    await self._state_changed.wait()
        except TimeoutError:
            return False

    async def _fetch_body_once(self, folder: str, uid: int) -> bytes | None:
        async with self._lock:
            client = self.client
            if client.selected != folder:
                await client.select(folder)
            state = self.cache.folder_state(folder)
            if state is None or client.selected_uidvalidity != state.uidvalidity:
                self._dirty.mark(folder)  # recreated: UID ``uid`` is another message there
                return None
            raw = await client.uid_fetch_body(uid)
        if raw is not None:
            # The words for the search index: MIME parsing, off the event loop (~25 ms with
            # a 1 MB attachment).
            words = await asyncio.to_thread(body_words, raw)
            self.cache.put_body(folder, uid, raw, words)
        return raw

    async def flush_actions(self) -> None:
        """Send every journaled action now (``kittiwake sync`` and tests wait on this)."""
        async with self._lock:
            if self.triage.has_pending():
                await self.triage.flush(self.client)

    async def store_flags(
        self, folder: str, uids: list[int], add: frozenset[str], remove: frozenset[str]
    ) -> None:
        """Change flags on the server, then in the cache (publishing FlagsChanged)."""
        async with self._lock:
            client = self.client
            if client.selected != folder:
                await client.select(folder)
            if add:
                await client.uid_store(uids, "+FLAGS", sorted(add))
            if remove:
                await client.uid_store(uids, "-FLAGS", sorted(remove))
        current = self.cache.flags(folder, uids)
        self._apply_flags(folder, {u: (f | add) - remove for u, f in current.items()})

    async def run_locked(self, action: Callable[[ImapClient], Awaitable[object]]) -> object:
        async with self._lock:
            return await action(self.client)

    async def _on_a_connection(self, action: Callable[[ImapClient], Awaitable[T]]) -> T:
        """``action`` on the command connection when online, else on a one-off connection:
        POP3 mail for ``deliver_to`` arrives whether this account runs or not (``kittiwake
        sync`` of the POP3 account alone; the account offline in the app). After a refused
        login there is no other try behind the user's back: that raises as offline."""
        online = self.state is ConnState.ONLINE and self._client is not None
        if online or self.state is ConnState.AUTH_FAILED:
            async with self._lock:
                return await action(self.client)
        from kittiwake.core.imap.client import ImapClient
        from kittiwake.core.imap.session import imap_session

        conn = await imap_session(self.account)
        try:
            return await action(ImapClient(conn, None))
        finally:
            with contextlib.suppress(Exception):
                await conn.logout()
            with contextlib.suppress(Exception):
                await conn.close()

    async def append(
        self, folder: str, raw: bytes, flags: frozenset[str] = frozenset()
    ) -> int | None:
        """APPEND (a Sent copy, a draft, POP3 mail), then sync the folder so the cache shows
        it (when online; else it shows on the next sync)."""
        online = self.state is ConnState.ONLINE
        uid = await self._on_a_connection(lambda client: client.append(folder, raw, sorted(flags)))
        if online:
            await self.sync_folder(folder)
        return uid

    async def append_many(
        self, folder: str, messages: Sequence[tuple[bytes, frozenset[str], datetime | None]]
    ) -> None:
        """MULTIAPPEND where the server has it (``ImapClient.append_many``), then one sync."""
        online = self.state is ConnState.ONLINE
        await self._on_a_connection(lambda client: client.append_many(folder, messages))
        if online:
            await self.sync_folder(folder)

    async def append_mark(self, folder: str) -> str:
        from kittiwake.core.imap import deliver

        return await self._on_a_connection(lambda client: deliver.append_mark(client, folder))

    async def find_appended(
        self, folder: str, mark: str, sizes: Collection[int], matches: Callable[[bytes], bool]
    ) -> str | None:
        from kittiwake.core.imap import deliver

        return await self._on_a_connection(
            lambda client: deliver.find_appended(client, folder, mark, sizes, matches)
        )

    async def has_message_id(self, folder: str, message_id: str) -> bool:
        """Whether ``folder`` holds a message with this Message-ID (asked of the server, so a
        Sent copy or a draft saved just before a crash is found)."""
        return bool(await self.message_id_uids(folder, message_id))

    async def message_id_uids(self, folder: str, message_id: str) -> set[int]:
        """The UIDs in ``folder`` of messages with this Message-ID, asked of the server."""

        async def search(client: ImapClient) -> set[int]:
            if client.selected != folder:
                await client.select(folder)
            return await client.uid_search_header("Message-ID", message_id)

        async with self._lock:
            return await search(self.client)

    async def refresh_folders(self) -> None:
        await self.sync_folder_list()

    async def search_folder(self, folder: str, query: str) -> Collection[int]:
        """UID SEARCH for ``query`` in ``folder`` (holding the command lock); the summaries
        of UIDs the cache lacks are stored and published like a sync's, so every hit can be
        shown. Nothing when IMAP SEARCH cannot narrow the query down (``has:attachment``
        alone would return the whole folder)."""
        from kittiwake.core.imap import gmail
        from kittiwake.core.imap.search import search_and_fetch, to_imap_search
        from kittiwake.core.search.query import gmail_raw, parse_query

        raw = gmail_raw(query)
        if raw is not None:
            if self._client is None or not self.client.has(gmail.GMAIL):
                raise CommandFailed("Gmail's search syntax (gmail:) works only on Gmail")
            search = gmail.raw_search(raw)
        else:
            search = to_imap_search(parse_query(query))
        if search.matches_all:
            return ()

        async def run(client: ImapClient) -> tuple[UidSet, Sequence[MessageSummary]]:
            found = await search_and_fetch(client, folder, search, lambda: self.cache.uids(folder))
            if client.has(gmail.GMAIL):
                # Gmail: the found messages' ids, so a hit in All Mail (never synced) is
                # known as the message already found in INBOX or under a label.
                known = gmailids.known_uids(self.cache.db, folder)
                missing = UidSet.from_iterable(u for u in found[0] if u not in known)
                if len(missing):
                    rows = await gmail.fetch_ids(client, missing.format())
                    gmailids.add_rows(self.cache.db, folder, rows)
            return found

        result = await self.run_locked(run)
        assert isinstance(result, tuple)
        uids, fetched = result
        self._store_new(folder, fetched)
        assert isinstance(uids, UidSet)
        return uids

    def new_folder_name(self, name: str) -> str:
        """Where a folder Kittiwake makes on its own (Archive, Sent) goes: under the personal
        namespace (Courier, and Cyrus with its Debian defaults, refuse ``CREATE "Archive"``
        and take ``INBOX.Archive``). Before this run has listed the folders, the cached list
        tells: every folder but INBOX under ``INBOX`` and its delimiter."""
        prefix: str | None = None
        if self._client is not None and self._client.personal_namespace is not None:
            prefix = self._client.personal_namespace[0]
        if prefix is None:
            prefix = _cached_prefix(self.cache.folders())
        return name if name.startswith(prefix) else prefix + name

    async def create_folder(self, name: str) -> None:
        await self.run_locked(lambda client: client.create(name))
        await self.sync_folder_list()

    async def rename_folder(self, old: str, new: str) -> None:
        await self.run_locked(lambda client: client.rename(old, new))
        await self.sync_folder_list()

    async def delete_folder(self, folder: str) -> None:
        await self.run_locked(lambda client: client.delete(folder))
        await self.sync_folder_list()


def _unchanged(state: FolderState, status: Status, cached: int) -> bool:
    """STATUS says nothing happened since the last sync: skip SELECT entirely."""
    return (
        state.uidvalidity == status.uidvalidity
        and state.uidnext == status.uidnext
        and status.messages == cached
        and (status.highestmodseq is None or status.highestmodseq == state.highestmodseq)
        and status.highestmodseq is not None
    )


def _recreated(state: FolderState, status: Status | None, client: ImapClient, folder: str) -> bool:
    """The server's UIDVALIDITY (STATUS or LIST-STATUS, or the SELECT that left the folder
    selected) is not the one the cache was filled under."""
    if status is not None and status.uidvalidity is not None:
        return status.uidvalidity != state.uidvalidity
    if client.selected == folder and client.selected_uidvalidity is not None:
        return client.selected_uidvalidity != state.uidvalidity
    return False


def _cached_prefix(folders: Sequence[FolderInfo]) -> str:
    inbox = next((f for f in folders if f.name == "INBOX"), None)
    if inbox is None or not inbox.delimiter:
        return ""
    prefix = "INBOX" + inbox.delimiter
    others = [f.name for f in folders if f.name != "INBOX"]
    return prefix if others and all(n.startswith(prefix) for n in others) else ""


def _descending_chunks(uids: UidSet, size: int) -> list[UidSet]:
    """``uids`` in chunks of at most ``size``, newest (highest) chunk first."""
    values = sorted(uids, reverse=True)
    return [UidSet.from_iterable(values[i : i + size]) for i in range(0, len(values), size)]
