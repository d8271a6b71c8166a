"""Download a POP3 maildrop into a sink, each message exactly once: ``fetch_once``.

One run:

1. Lock the ledger (``ledger.py``) and resolve what an earlier run left half done: every
   ``committing`` row is asked of the sink (``Sink.recover``): delivered -> ``stored``,
   not delivered -> forgotten (so it is downloaded again now).
2. Connect (TLS/STLS as configured), log in, UIDL and LIST.
3. RETR every message whose unique-id the ledger does not know, oldest first, pipelined,
   each streamed into its own spool file which is fsynced in a worker thread while the next
   one downloads. Batches (``FetchTuning``) are then committed: tokens recorded
   (``committing``), delivered by the sink, recorded ``stored``. A connection lost mid-way
   still commits the messages that arrived complete; the partial one is thrown away.
4. DELE what ``keep_on_server`` says may go, but only messages the ledger has as ``stored``
   (durably delivered): ``false`` (or 0) all of them, ``N`` days those downloaded at least
   N days ago, ``true`` none. Then QUIT, which is what commits the DELEs; only after the
   server's +OK are those rows marked ``deleted``. A connection that drops before QUIT
   leaves the server as it was; the next run downloads nothing twice (the ledger knows
   every unique-id) and sends the DELEs again.

The crash windows, in order: before ``committing``, the spool file is an orphan in
``tmp/`` (removed by the 36-hour rule) and the message is simply downloaded again; between
``committing`` and ``stored``, recovery decides from the sink itself; after ``stored``,
the message is never fetched again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from kittiwake.core import paths
from kittiwake.core.config import Account, Pop3Config
from kittiwake.core.maildir import Maildir
from kittiwake.core.pop3.client import (
    DEFAULT_WINDOW,
    Pop3Client,
    Pop3CommandFailed,
    Pop3Error,
)
from kittiwake.core.pop3.ledger import Ledger, LedgerEntry
from kittiwake.core.pop3.sinks import (
    MaildirSink,
    Sink,
    SpoolFile,
    StoreSink,
    discard_all,
)
from kittiwake.core.secrets import Secret
from kittiwake.core.store import MailStore
from kittiwake.core.transport import credential, tls_context

__all__ = [
    "Delivered",
    "FetchProgress",
    "FetchStats",
    "FetchTuning",
    "Phase",
    "Pop3Fetcher",
    "fetch_once",
    "ledger_path",
    "maildir_path",
    "sink_for",
    "spool_dir",
]

log = logging.getLogger(__name__)

DAY = 86400.0
Phase = Literal[
    "recovering", "connecting", "listing", "downloading", "deleting", "quitting", "done"
]


# -- where things live -----------------------------------------------------------------------


def maildir_path(account: Account) -> Path:
    """The account's Maildir++ root: ``maildir = PATH`` or ``$XDG_DATA_HOME/kittiwake/mail/KEY``."""
    cfg = account.pop3
    if cfg is not None and cfg.maildir:
        return Path(cfg.maildir).expanduser()
    return paths.data_dir() / "mail" / account.key


def ledger_path(account: Account) -> Path:
    """The UIDL ledger: ``$XDG_DATA_HOME/kittiwake/pop3/KEY.sqlite3`` (see ledger.py for why)."""
    return paths.data_dir() / "pop3" / f"{account.key}.sqlite3"


def spool_dir(account: Account) -> Path:
    """Spool files for ``deliver_to`` (the Maildir sink spools in the Maildir's ``tmp/``)."""
    return paths.data_dir() / "pop3" / f"{account.key}.spool"


def maildrop_of(account: Account) -> str:
    cfg = _pop3(account)
    return f"{cfg.user or account.email}@{cfg.host.lower()}"


def sink_for(account: Account, stores: Mapping[str, MailStore] | None = None) -> Sink[Any]:
    """The account's sink: its Maildir, or the folder of the store (in ``stores``, by account
    name) that ``deliver_to`` names."""
    cfg = _pop3(account)
    if cfg.deliver_to:
        dest, _, folder = cfg.deliver_to.partition("/")
        store = (stores or {}).get(dest)
        if store is None:
            raise ValueError(f"deliver_to needs the mail store of the account {dest}")
        return StoreSink(store, folder, spool_dir(account))
    return MaildirSink(Maildir(maildir_path(account)))


def _pop3(account: Account) -> Pop3Config:
    if account.pop3 is None:
        raise ValueError(f"account {account.key} is not a POP3 account")
    return account.pop3


# -- reports ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FetchProgress:
    account: str
    phase: Phase
    done: int = 0
    """Messages downloaded (durably delivered) so far in this run."""
    total: int = 0
    """Messages to download in this run."""
    bytes_done: int = 0
    bytes_total: int = 0


@dataclass(frozen=True, slots=True)
class Delivered:
    """One message durably delivered: ``locator`` is the Maildir key, or for ``deliver_to``
    the UID the store reported ("" when the server gave no APPENDUID; "UIDVALIDITY:UID" when
    recovery found it). Also reported for deliveries of an interrupted run that recovery
    found complete."""

    uidl: bytes
    locator: str
    size: int


@dataclass
class FetchStats:
    new: int = 0
    """Messages downloaded and delivered in this run."""
    bytes: int = 0
    deleted: int = 0
    """Messages the server confirmed deleted (QUIT +OK)."""
    on_server: int = 0
    """Messages in the maildrop at the start of the run."""
    recovered: int = 0
    """Deliveries of an interrupted run found complete (not downloaded again)."""
    refused: int = 0
    """RETRs the server refused (tried again next time)."""
    seconds: float = 0.0


@dataclass(frozen=True)
class FetchTuning:
    window: int = DEFAULT_WINDOW
    """RETRs in flight (with PIPELINING)."""
    batch_messages: int = 200
    batch_bytes: int = 32 * 1024 * 1024
    batch_seconds: float = 0.5
    """A batch is committed when any of these is reached: new mail shows up promptly."""
    max_syncing: int = 16
    """Spool files being fsynced (in worker threads) at most; the download waits beyond.
    Small messages wait in memory until their sync (``maildir.SPOOL_MEMORY``), so this
    also bounds memory."""


ProgressCallback = Callable[[FetchProgress], None]
DeliveredCallback = Callable[[Sequence[Delivered]], None]


# -- the run ---------------------------------------------------------------------------------


@dataclass
class _Pending:
    key: bytes
    spool: SpoolFile
    synced: asyncio.Future[None]


class Pop3Fetcher:
    """One download run with explicit dependencies (``fetch_once`` builds one from config)."""

    def __init__(
        self,
        *,
        account: str,
        settings: Pop3Config,
        user: str,
        sink: Sink[Any],
        ledger_path: Path,
        password: Secret | None = None,
        oauth2_token: Secret | None = None,
        ssl_context: ssl.SSLContext | None = None,
        progress: ProgressCallback | None = None,
        on_delivered: DeliveredCallback | None = None,
        clock: Callable[[], float] = time.time,
        tuning: FetchTuning | None = None,
        login_mechanisms: Sequence[str] | None = None,
    ) -> None:
        self.account = account
        self.cfg = settings
        self.user = user
        self.sink = sink
        self.ledger_path = ledger_path
        self.password = password
        self.oauth2_token = oauth2_token
        self.ssl_context = ssl_context
        self._progress_cb = progress
        self._on_delivered = on_delivered
        self.clock = clock
        self.tuning = tuning or FetchTuning()
        self.login_mechanisms = login_mechanisms
        self.maildrop = f"{user}@{settings.host.lower()}"
        self.stats = FetchStats()
        self._total = 0
        self._bytes_total = 0

    @property
    def label(self) -> str:
        return f"{self.cfg.host}:{self.cfg.port}"

    def _progress(self, phase: Phase) -> None:
        if self._progress_cb is None:
            return
        try:
            self._progress_cb(
                FetchProgress(
                    self.account,
                    phase,
                    self.stats.new,
                    self._total,
                    self.stats.bytes,
                    self._bytes_total,
                )
            )
        except Exception:
            log.exception("%s: progress callback failed", self.account)

    async def run(self) -> FetchStats:
        started = time.monotonic()
        with Ledger(self.ledger_path, self.maildrop) as ledger:
            self._progress("recovering")
            await self.sink.begin_run()
            await self._recover(ledger)
            client = Pop3Client(timeout=self.cfg.timeout)
            self._progress("connecting")
            await client.connect(
                self.cfg.host,
                self.cfg.port or 995,
                self.cfg.security,
                self.ssl_context,
            )
            try:
                await self._login(client)
                self._progress("listing")
                listing = await self._listing(client)
                sizes = await client.list_all()
                self.stats.on_server = len(listing)
                known = ledger.entries()
                todo = [(n, key) for n, key in listing if key not in known]
                self._total = len(todo)
                self._bytes_total = sum(sizes.get(n, 0) for n, _ in todo)
                if todo:
                    self._progress("downloading")
                    await self._download(client, ledger, todo)
                doomed = self._to_delete(listing, ledger.entries())
                if doomed:
                    self._progress("deleting")
                    refused = set(await client.dele_many([n for n, _ in doomed]))
                    doomed = [(n, k) for n, k in doomed if n not in refused]
                self._progress("quitting")
                await client.quit()
            except BaseException:
                client.abort()
                raise
            if doomed:
                ledger.deleted([k for _, k in doomed], self.clock())
                self.stats.deleted = len(doomed)
        self.stats.seconds = time.monotonic() - started
        self._progress("done")
        return self.stats

    async def _recover(self, ledger: Ledger) -> None:
        for entry in ledger.pending():
            locator = await self.sink.recover(entry.token, entry.size)
            if locator is not None:
                log.info("%s: an interrupted delivery had completed", self.account)
                ledger.stored([entry.uidl], self.clock())
                self.stats.recovered += 1
                self._delivered([Delivered(entry.uidl, locator, entry.size)])
            else:
                log.info("%s: an interrupted delivery had not completed", self.account)
                ledger.forget([entry.uidl])

    async def _login(self, client: Pop3Client) -> None:
        if self.oauth2_token is not None:
            await client.login_oauth2(self.user, self.oauth2_token)
        elif self.password is not None:
            await client.login(self.user, self.password, mechanisms=self.login_mechanisms)
        else:
            raise Pop3Error(f"{self.label}: no password or token to log in with")

    async def _listing(self, client: Pop3Client) -> list[tuple[int, bytes]]:
        try:
            raw = await client.uidl()
        except Pop3CommandFailed:
            raise Pop3Error(
                f"{self.label} does not support UIDL, which Kittiwake needs to download each "
                "message only once"
            ) from None
        # A (broken) server may repeat a unique-id: the n-th repeat gets its own key, so no
        # message is skipped as "already downloaded" because another one shares its id.
        seen: Counter[bytes] = Counter()
        out: list[tuple[int, bytes]] = []
        for number, uid in sorted(raw):
            seen[uid] += 1
            out.append((number, uid if seen[uid] == 1 else uid + b"\0#%d" % seen[uid]))
        return out

    def _to_delete(
        self, listing: list[tuple[int, bytes]], known: dict[bytes, LedgerEntry]
    ) -> list[tuple[int, bytes]]:
        keep = self.cfg.keep_on_server
        if keep is True:
            return []
        days = 0 if keep is False else int(keep)
        limit = self.clock() - days * DAY
        out = []
        for number, key in listing:
            entry = known.get(key)
            if entry is None or entry.state == "committing":
                continue
            if days == 0 or (entry.fetched_at is not None and entry.fetched_at <= limit):
                out.append((number, key))
        return out

    async def _download(
        self, client: Pop3Client, ledger: Ledger, todo: list[tuple[int, bytes]]
    ) -> None:
        keys = dict(todo)
        batch: list[_Pending] = []
        batch_bytes = 0
        batch_started = time.monotonic()
        current: list[SpoolFile] = []
        syncing: deque[asyncio.Future[None]] = deque()
        tuning = self.tuning

        def open_sink(_number: int) -> SpoolFile:
            spool: SpoolFile = self.sink.spool()
            current.append(spool)
            return spool

        stream = client.retr_many([n for n, _ in todo], open_sink, window=tuning.window)
        try:
            async with contextlib.aclosing(stream):
                async for number, octets, resp in stream:
                    if octets is None:
                        log.warning("%s: RETR %d refused: %s", self.label, number, resp.text)
                        self.stats.refused += 1
                        continue
                    spool = current.pop()
                    synced = asyncio.ensure_future(asyncio.to_thread(spool.sync))
                    batch.append(_Pending(keys[number], spool, synced))
                    batch_bytes += octets
                    syncing.append(synced)
                    while syncing and syncing[0].done():
                        syncing.popleft()
                    if len(syncing) > tuning.max_syncing:
                        await asyncio.wait([syncing[0]])
                    if (
                        len(batch) >= tuning.batch_messages
                        or batch_bytes >= tuning.batch_bytes
                        or time.monotonic() - batch_started >= tuning.batch_seconds
                    ):
                        full, batch = batch, []
                        batch_bytes, batch_started = 0, time.monotonic()
                        await self._commit(ledger, full)
        except BaseException:
            discard_all(current)  # the message whose RETR was cut off
            if batch:
                # Everything that arrived complete is kept: nothing is downloaded twice.
                await self._commit(ledger, batch)
            raise
        if batch:
            await self._commit(ledger, batch)

    async def _commit(self, ledger: Ledger, batch: list[_Pending]) -> None:
        results = await asyncio.gather(*(p.synced for p in batch), return_exceptions=True)
        failed = next((r for r in results if isinstance(r, BaseException)), None)
        spools = [p.spool for p in batch]
        if failed is not None:
            discard_all(spools)
            raise failed
        try:
            tokens = await self.sink.prepare(spools)
        except BaseException:
            discard_all(spools)
            raise
        # The ledger's fsyncs run in a worker thread too (one call at a time).
        rows = [(p.key, t, p.spool.size) for p, t in zip(batch, tokens, strict=True)]
        await asyncio.to_thread(ledger.begin, rows)
        locators = await self.sink.commit(spools)
        await asyncio.to_thread(ledger.stored, [p.key for p in batch], self.clock())
        delivered = [
            Delivered(p.key, loc, p.spool.size) for p, loc in zip(batch, locators, strict=True)
        ]
        self.stats.new += len(delivered)
        self.stats.bytes += sum(d.size for d in delivered)
        self._delivered(delivered)
        self._progress("downloading")

    def _delivered(self, delivered: list[Delivered]) -> None:
        if self._on_delivered is not None:
            try:
                self._on_delivered(delivered)
            except Exception:
                log.exception("%s: on_delivered callback failed", self.account)


async def fetch_once(
    account: Account,
    *,
    stores: Mapping[str, MailStore] | None = None,
    sink: Sink[Any] | None = None,
    ledger: Path | None = None,
    password: Secret | str | None = None,
    ssl_context: ssl.SSLContext | None = None,
    progress: ProgressCallback | None = None,
    on_delivered: DeliveredCallback | None = None,
    clock: Callable[[], float] = time.time,
    tuning: FetchTuning | None = None,
    login_mechanisms: Sequence[str] | None = None,
) -> FetchStats:
    """Download new mail of a POP3 account once (see the module docstring).

    Defaults come from the account: the sink (``sink_for``: its Maildir, or the folder of
    ``deliver_to``, which needs that account's store in ``stores``), the ledger path, the
    password or OAuth2 token (``password_command`` etc., run in a thread), the TLS context
    (system store plus ``ca_file``). Raises Pop3Error subclasses (``recoverable`` when a
    retry may help), MaildirError, SecretError; whatever was durably delivered before an
    error stays so.
    """
    cfg = _pop3(account)
    at = f"accounts.{account.key}.pop3"
    token: Secret | None = None
    secret: Secret | None = None
    if password is not None:
        secret = password if isinstance(password, Secret) else Secret(password)
    else:
        found = await credential(cfg, at, account)  # off the loop, killed on cancel
        token, secret = (found.secret, None) if found.oauth2 else (None, found.secret)
    if ssl_context is None:
        ssl_context = tls_context(cfg, at)
    own_sink = sink is None
    the_sink = sink if sink is not None else sink_for(account, stores)
    fetcher = Pop3Fetcher(
        account=account.key,
        settings=cfg,
        user=cfg.user or account.email,
        sink=the_sink,
        ledger_path=ledger if ledger is not None else ledger_path(account),
        password=secret,
        oauth2_token=token,
        ssl_context=ssl_context,
        progress=progress,
        on_delivered=on_delivered,
        clock=clock,
        tuning=tuning,
        login_mechanisms=login_mechanisms,
    )
    try:
        return await fetcher.run()
    finally:
        if own_sink:
            await the_sink.close()
