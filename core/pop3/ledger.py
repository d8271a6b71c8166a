"""The UIDL ledger: which messages of a POP3 maildrop this machine already has.

Where it lives, and why not in the account's cache file: the cache
(``$XDG_CACHE_HOME/kittiwake/ACCOUNT.sqlite3``) is disposable by design (XDG says a cache
may be deleted at any time, and ``core/cache.py`` starts afresh when a newer schema wrote
it), while losing the ledger would download every message still on the server again. The
ledger belongs with the master copy, so it is a small SQLite file of its own under the XDG
data dir (``$XDG_DATA_HOME/kittiwake/pop3/ACCOUNT.sqlite3``), next to the default Maildir,
kept even when ``maildir = PATH`` points elsewhere or ``deliver_to`` sends mail to an IMAP
folder. Rows are keyed by the maildrop (``user@host``): unique-ids mean something only for
the maildrop that issued them, so pointing the account at another server starts a fresh
record instead of skipping that server's messages.

A row's life (``state``):

* ``committing``: the message is completely and durably spooled, and the sink's ``token``
  (the Maildir key, or the IMAP append's identity) is recorded *before* the sink delivers
  it. A crash from here on is resolved by ``Sink.recover(token)``: delivered, or not.
* ``stored``: delivered durably; ``fetched_at`` starts the keep_on_server clock. The message
  is never downloaded again, even if it is deleted locally.
* ``deleted``: DELE was committed by the server's +OK to QUIT.

Every write is one transaction with ``synchronous = FULL``: a commit is on disk when it
returns. An exclusive ``flock`` on ``ACCOUNT.sqlite3.lock`` keeps two downloaders (the app
and ``kittiwake sync`` in another terminal) from fetching the same maildrop at once.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Literal

from kittiwake.core.pop3.client import Pop3Error

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

__all__ = ["Ledger", "LedgerBusy", "LedgerEntry", "State"]

State = Literal["committing", "stored", "deleted"]

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS downloads (
    maildrop TEXT NOT NULL,
    uidl BLOB NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('committing', 'stored', 'deleted')),
    token TEXT NOT NULL,
    size INTEGER NOT NULL,
    fetched_at REAL,
    deleted_at REAL,
    PRIMARY KEY (maildrop, uidl)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS downloads_pending ON downloads(maildrop, state);
"""


class LedgerBusy(Pop3Error):
    """Another Kittiwake (or another task) is downloading this account's mail right now."""

    recoverable = True


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    uidl: bytes
    """The server's unique-id (plus ``\\0#n`` for the n-th duplicate in one listing)."""
    state: State
    token: str
    size: int
    fetched_at: float | None
    deleted_at: float | None


class Ledger:
    """The ledger of one maildrop, locked for one download run. Use as a context manager."""

    def __init__(self, path: Path, maildrop: str, *, lock: bool = True) -> None:
        self.path = path
        self.maildrop = maildrop
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock_fd: int | None = None
        if lock:
            self._lock()
        try:
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
            if version > SCHEMA_VERSION:
                raise Pop3Error(
                    f"{path} was written by a newer Kittiwake; it is left untouched so no "
                    "message is downloaded twice"
                )
            self._db.executescript(_SCHEMA)
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except BaseException:
            self._unlock()
            raise

    def _lock(self) -> None:
        if fcntl is None:  # pragma: no cover
            return
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LedgerBusy(
                f"{self.maildrop}: mail is already being downloaded by another Kittiwake "
                f"(lock {lock_path})"
            ) from None
        self._lock_fd = fd

    def _unlock(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            os.close(fd)  # closing the descriptor releases the flock

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._db.close()
        self._unlock()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- reading --------------------------------------------------------------------------

    def entries(self) -> dict[bytes, LedgerEntry]:
        rows = self._db.execute(
            "SELECT uidl, state, token, size, fetched_at, deleted_at FROM downloads "
            "WHERE maildrop = ?",
            (self.maildrop,),
        )
        return {bytes(r[0]): LedgerEntry(bytes(r[0]), r[1], r[2], r[3], r[4], r[5]) for r in rows}

    def pending(self) -> list[LedgerEntry]:
        """Rows left in ``committing`` by a run that did not finish."""
        rows = self._db.execute(
            "SELECT uidl, state, token, size, fetched_at, deleted_at FROM downloads "
            "WHERE maildrop = ? AND state = 'committing'",
            (self.maildrop,),
        )
        return [LedgerEntry(bytes(r[0]), r[1], r[2], r[3], r[4], r[5]) for r in rows]

    def get(self, uidl: bytes) -> LedgerEntry | None:
        r = self._db.execute(
            "SELECT uidl, state, token, size, fetched_at, deleted_at FROM downloads "
            "WHERE maildrop = ? AND uidl = ?",
            (self.maildrop, uidl),
        ).fetchone()
        return LedgerEntry(bytes(r[0]), r[1], r[2], r[3], r[4], r[5]) if r else None

    def count(self, state: State | None = None) -> int:
        args: tuple[str, ...]
        if state is None:
            sql, args = "SELECT COUNT(*) FROM downloads WHERE maildrop = ?", (self.maildrop,)
        else:
            sql = "SELECT COUNT(*) FROM downloads WHERE maildrop = ? AND state = ?"
            args = (self.maildrop, state)
        return int(self._db.execute(sql, args).fetchone()[0])

    # -- writing (each call is one durable transaction) -----------------------------------

    def _write(self, sql: str, rows: Iterable[tuple[object, ...]]) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(sql, rows)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def begin(self, items: Sequence[tuple[bytes, str, int]]) -> None:
        """Record ``(uidl, token, size)`` as ``committing``: before the sink delivers."""
        self._write(
            "INSERT INTO downloads (maildrop, uidl, state, token, size) "
            "VALUES (?, ?, 'committing', ?, ?) "
            "ON CONFLICT (maildrop, uidl) DO UPDATE SET state = 'committing', "
            "token = excluded.token, size = excluded.size",
            [(self.maildrop, uidl, token, size) for uidl, token, size in items],
        )

    def stored(self, uidls: Iterable[bytes], now: float) -> None:
        """The sink has delivered these durably."""
        self._write(
            "UPDATE downloads SET state = 'stored', fetched_at = ? WHERE maildrop = ? AND uidl = ?",
            [(now, self.maildrop, uidl) for uidl in uidls],
        )

    def forget(self, uidls: Iterable[bytes]) -> None:
        """A ``committing`` row whose delivery did not happen: download it again."""
        self._write(
            "DELETE FROM downloads WHERE maildrop = ? AND uidl = ? AND state = 'committing'",
            [(self.maildrop, uidl) for uidl in uidls],
        )

    def deleted(self, uidls: Iterable[bytes], now: float) -> None:
        """The server confirmed (QUIT +OK) that these are gone."""
        self._write(
            "UPDATE downloads SET state = 'deleted', deleted_at = ? "
            "WHERE maildrop = ? AND uidl = ? AND state != 'committing'",
            [(now, self.maildrop, uidl) for uidl in uidls],
        )
