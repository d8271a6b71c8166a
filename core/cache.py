"""The local cache: one SQLite file per account, read and written by the engine's loop.

Measured here: stdlib sqlite3 answers an indexed point query in 5-9 µs, while aiosqlite or
``to_thread`` cost 90-400 µs, so the cache is synchronous and called straight from the event
loop; writes are batched into one transaction each. The message list is paged by key
(folder, sort_date, uid), never with OFFSET, so the 99,000th row costs what the first does.
Envelopes are stored as msgpack blobs (~1 µs to decode) next to the columns the list sorts
and counts by.

Lazy rows (schema 3): the bulk batches of a first sync store only the columns the list sorts
and counts by, plus ``raw``, the server's FETCH data from ENVELOPE on (``imap/lazy.py``);
``envelope`` is empty and ``refs``/``has_attachments`` are not set yet. Every read that returns
summaries (``page``, ``summaries``, ``summary``, ``conversation``) decodes such rows on the
fly, so callers always get fully decoded ``MessageSummary`` objects. ``undecoded`` and
``set_decoded`` let a background pass (``imap.lazy.decode_pass``) fill the decoded columns
of a whole folder; ``raw`` is NULL once a row is decoded. The decoder lives with the IMAP
parser (the only writer of raw rows) and is imported on first use. The pass runs after a
first sync (``Tuning.decode_after_sync``), else once something needs every row of a folder (a
search, the conversations, a conversation, the order by sender or subject: ``want_decoded``):
decoding and indexing 100,000 rows costs a few seconds of CPU (``benches/bench_decode_pass.py``).

Search index (schema 4): ``core.search.index``'s FTS5 table holds the words of every decoded
summary and of every cached body, written in the transaction that writes the row
(``put_summaries``, ``set_decoded``, ``put_body``) and forgotten with it (``remove``,
``reset_folder``, ``set_folders``). Raw rows are indexed when they are decoded, not in the
bulk write path of a first sync; ``core.search.query`` judges them in Python meanwhile.
The decode pass that follows a first sync defers even that (``set_decoded(index=False)``,
schema 8): the rows' keys wait in ``searchindex.PENDING`` until a search asks
(``want_decoded(index=True)``) and ``index_deferred`` indexes them.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeAlias, overload

import msgspec

from kittiwake.core import cache_repair
from kittiwake.core.errors import CacheError
from kittiwake.core.files import make_durable_dirs
from kittiwake.core.message.dates import sort_date
from kittiwake.core.models import SEEN, Envelope, FolderInfo, FolderRole, MessageSummary
from kittiwake.core.search import index as searchindex
from kittiwake.core.sqltx import transaction

SCHEMA_VERSION = 8


def uid_array(uids: Iterable[int] = ()) -> array[int]:
    """UIDs as a compact array (four bytes each, as IMAP's are 32-bit): what views hold one
    of per message, a folder of a million included."""
    return array("I", uids)


log = logging.getLogger(__name__)

#: The list's default order (``ordered_uids``): newest first, ties by UID.
NEWEST_FIRST = "sort_date DESC, uid DESC"

#: SQLite's page cache of the connection, in KiB (its default is 2,000). The open's quick
#: check and the list's index read walk more pages than that, so the cache fills whatever
#: its size; the pages read again (b-tree tops, a screenful's rows) fit in this, and a page
#: missed is read again from the OS's cache (no CPU or write difference seen filling 50,000
#: summaries). 1.5 MB less peak memory with 100,000 messages open.
PAGE_CACHE_KIB = 512

#: Rows changed since the last checkpoint that start the next one (about 5-10 MB of WAL).
CHECKPOINT_EVERY = 10_000

#: A WAL larger than this after a checkpoint is truncated (``_Checkpointer``): what an open
#: after a crash reads back (SQLite's recovery of a 1.18 GB WAL took 13.5 s).
WAL_LIMIT = 32 << 20

#: How long the checkpoint may hold the writers back while it truncates the WAL, waiting for
#: readers of the WAL to finish (writers wait up to 5 s before they fail: sqlite3's default).
TRUNCATE_WAIT_MS = 1000

_MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE folders (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        delimiter TEXT,
        role TEXT,
        attributes TEXT NOT NULL DEFAULT '',
        subscribed INTEGER NOT NULL DEFAULT 1,
        uidvalidity INTEGER,
        uidnext INTEGER,
        highestmodseq INTEGER,
        server_total INTEGER NOT NULL DEFAULT 0,
        server_unread INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE messages (
        folder_id INTEGER NOT NULL REFERENCES folders(id) ON DELETE CASCADE,
        uid INTEGER NOT NULL,
        sort_date REAL NOT NULL,
        flags TEXT NOT NULL,
        seen INTEGER NOT NULL,
        internal_date REAL,
        size INTEGER NOT NULL,
        envelope BLOB NOT NULL,
        refs TEXT NOT NULL DEFAULT '',
        has_attachments INTEGER NOT NULL DEFAULT 0,
        modseq INTEGER,
        PRIMARY KEY (folder_id, uid)
    ) WITHOUT ROWID;
    CREATE INDEX messages_by_date ON messages(folder_id, sort_date DESC, uid DESC);
    CREATE INDEX messages_unseen ON messages(folder_id, seen);
    CREATE TABLE bodies (
        folder_id INTEGER NOT NULL REFERENCES folders(id) ON DELETE CASCADE,
        uid INTEGER NOT NULL,
        raw BLOB NOT NULL,
        PRIMARY KEY (folder_id, uid)
    ) WITHOUT ROWID;
    """,
    2: """
    CREATE TABLE journal (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        created REAL NOT NULL,
        action TEXT NOT NULL
    );
    """,
    3: """
    ALTER TABLE messages ADD COLUMN raw BLOB;
    """,
    # 4: the search index; created and filled in Python (``_migrate_v4``).
    # 5: messages as a rowid table. WITHOUT ROWID suits small rows; these carry an envelope
    # (or raw FETCH bytes) of 300-700 bytes, and inserting 100,000 of them took 0.63 s against
    # 0.42 s for a rowid table with the same key (a tenth of a first sync's wall time).
    5: """
    CREATE TABLE messages_v5 (
        folder_id INTEGER NOT NULL REFERENCES folders(id) ON DELETE CASCADE,
        uid INTEGER NOT NULL,
        sort_date REAL NOT NULL,
        flags TEXT NOT NULL,
        seen INTEGER NOT NULL,
        internal_date REAL,
        size INTEGER NOT NULL,
        envelope BLOB NOT NULL,
        refs TEXT NOT NULL DEFAULT '',
        has_attachments INTEGER NOT NULL DEFAULT 0,
        modseq INTEGER,
        raw BLOB,
        UNIQUE (folder_id, uid)
    );
    INSERT INTO messages_v5(folder_id, uid, sort_date, flags, seen, internal_date, size,
        envelope, refs, has_attachments, modseq, raw)
        SELECT folder_id, uid, sort_date, flags, seen, internal_date, size,
        envelope, refs, has_attachments, modseq, raw FROM messages ORDER BY folder_id, uid;
    DROP TABLE messages;
    ALTER TABLE messages_v5 RENAME TO messages;
    CREATE INDEX messages_by_date ON messages(folder_id, sort_date DESC, uid DESC);
    CREATE INDEX messages_unseen ON messages(folder_id, seen);
    """,
    # 6: a message shown from its raw headers because the server's FETCH data for it could
    # not be read (``core/imap/salvage.py``): the list and the reader mark it.
    6: """
    ALTER TABLE messages ADD COLUMN degraded INTEGER NOT NULL DEFAULT 0;
    """,
    # 7: the search index merges its segments 16 at a time, not 4 (``searchindex.AUTOMERGE``).
    7: searchindex.SET_AUTOMERGE,
    # 8: decoded rows whose indexing waits for a first search (``searchindex.PENDING``).
    8: searchindex.PENDING_SCHEMA,
}

#: One summary stored with its envelope undecoded, in column order: uid, sort_date, flags
#: (sorted, blank-separated, no \\Recent), seen, internal_date (epoch seconds), size,
#: modseq, raw (the FETCH response from ENVELOPE to its end, as the server sent it).
RawRow: TypeAlias = tuple[int, float, str, int, float | None, int, int | None, bytes]
#: raw -> (envelope, references, has_attachments)
RawDecoder: TypeAlias = Callable[[bytes], tuple[Envelope, tuple[str, ...], bool]]

_raw_decoder: RawDecoder | None = None


def register_raw_decoder(decoder: RawDecoder) -> None:
    """Name the reader of ``raw`` rows. The wing that writes them (``imap/lazy.py``) registers
    its own reader, so the cache reads those rows without importing any protocol wing."""
    global _raw_decoder
    _raw_decoder = decoder


def decode_raw(raw: bytes) -> tuple[Envelope, tuple[str, ...], bool]:
    """Decode a lazy row's ``raw`` with the registered decoder."""
    if _raw_decoder is None:
        raise CacheError("the cache holds undecoded rows but no decoder for them is registered")
    return _raw_decoder(raw)


def _summary_from_raw(row: RawRow) -> MessageSummary:
    uid, _sort, flags, _seen, internal, size, modseq, raw = row
    envelope, refs, attachments = decode_raw(raw)
    return MessageSummary(
        uid=uid,
        flags=frozenset(flags.split()) if flags else frozenset(),
        internal_date=datetime.fromtimestamp(internal, UTC) if internal is not None else None,
        size=size,
        envelope=envelope,
        references=refs,
        has_attachments=attachments,
        modseq=modseq,
    )


class LazySummaries(Sequence[MessageSummary]):
    """The summaries of one bulk FETCH: mostly raw rows (see ``RawRow``), decoded on first
    access (and kept), plus the few the fast path left to the full decoder. A Sequence of
    ``MessageSummary`` for everyone (``MessagesAdded.summaries``); ``Cache.put_summaries``
    stores the raw rows as they are, and ``uids`` costs no decoding. Dates of decoded rows
    are in UTC, as the cache returns them."""

    __slots__ = ("_decoded", "_full", "_items", "_rows")

    def __init__(self, items: Sequence[RawRow | MessageSummary] = ()) -> None:
        self._items: list[RawRow | MessageSummary] = list(items)
        self._rows = [i for i in self._items if not isinstance(i, MessageSummary)]
        self._full = [i for i in self._items if isinstance(i, MessageSummary)]
        self._decoded: dict[int, MessageSummary] = {}

    @classmethod
    def of(cls, rows: list[RawRow], full: list[MessageSummary]) -> LazySummaries:
        """Raw rows, then summaries decoded in full (without sorting them out again)."""
        batch = cls.__new__(cls)
        batch._items = [*rows, *full]
        batch._rows, batch._full = rows, full
        batch._decoded = {}
        return batch

    def __len__(self) -> int:
        return len(self._items)

    @overload
    def __getitem__(self, index: int) -> MessageSummary: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[MessageSummary, ...]: ...
    def __getitem__(self, index: int | slice) -> MessageSummary | tuple[MessageSummary, ...]:
        if isinstance(index, slice):
            return tuple(self[i] for i in range(*index.indices(len(self._items))))
        item = self._items[index]
        if isinstance(item, MessageSummary):
            return item
        key = index % len(self._items)
        summary = self._decoded.get(key)
        if summary is None:
            summary = self._decoded[key] = _summary_from_raw(item)
        return summary

    def __iter__(self) -> Iterator[MessageSummary]:
        for i in range(len(self._items)):
            yield self[i]

    def __repr__(self) -> str:
        return f"LazySummaries(<{len(self._items)} summaries>)"

    @property
    def uids(self) -> tuple[int, ...]:
        items = self._items
        return tuple(i.uid if isinstance(i, MessageSummary) else i[0] for i in items)

    def parts(self) -> tuple[list[RawRow], list[MessageSummary]]:
        """(raw rows, summaries decoded in full): what the cache stores."""
        return self._rows, self._full


_ENCODE = msgspec.msgpack.Encoder().encode
_DECODE_ENVELOPE = msgspec.msgpack.Decoder(Envelope).decode


def envelope_from_blob(blob: bytes) -> Envelope:
    """A decoded row's ``envelope`` column read back (``core.search.query`` judges rows the
    search index does not hold yet from it)."""
    return _DECODE_ENVELOPE(blob)


@dataclass(frozen=True, slots=True)
class FolderState:
    """What a resync needs to know about the last time a folder was seen."""

    uidvalidity: int | None
    uidnext: int | None
    highestmodseq: int | None


@dataclass(frozen=True, slots=True)
class PageKey:
    """Where a page of the newest-first list ends; pass it back for the next page."""

    sort_date: float
    uid: int


class Cache:
    def __init__(self, path: Path, *, raw_decoder: RawDecoder | None = None) -> None:
        if raw_decoder is not None:
            register_raw_decoder(raw_decoder)
        make_durable_dirs(path.parent)  # the action journal lives here: see core/files.py
        self.path = path
        #: One sentence for the user when the file was found damaged and set aside.
        self.notice: str | None = None
        self._folder_ids: dict[str, int] = {}
        self._checkpoints: _Checkpointer | None = None
        trusted = cache_repair.take_mark(path)
        #: Whether this open ran SQLite's full quick check (``cache_repair``: not when the
        #: file is as the last clean close left it).
        self.checked = trusted is None
        self._last_check = trusted or cache_repair.Checked(time.time(), 0)
        try:
            self._open(trusted is not None)
        except sqlite3.DatabaseError as exc:
            self._recover(str(exc))
        self._checkpoints = _Checkpointer(path, self._db)
        self._data_version = self._read_data_version()
        self._decode_wanted: Callable[[bool], None] | None = None
        self._counted: dict[int, tuple[tuple[int, int], tuple[int, int]]] = {}
        self._listed: tuple[tuple[int, int], list[FolderInfo]] | None = None
        """Counts by folder id, and ``folders()``, with the ``_stamp`` they were read under:
        a count reads an index entry per message (~50 ms at 1,000,000), and one change is
        asked about by the engine, the status line and the folder list in turn."""

    def on_decode_wanted(self, hook: Callable[[bool], None] | None) -> None:
        """``hook(index)`` when ``want_decoded`` is called (the account starts its decode
        pass, and indexes what it deferred if ``index``)."""
        self._decode_wanted = hook

    def want_decoded(self, index: bool = False) -> None:
        """Something reads every row of a folder (see the module docstring): the rows stored
        raw are worth decoding once, in the background; ``index``: a search, for which the
        rows decoded but not indexed yet are worth indexing too. Cheap; call freely, from
        any thread."""
        if self._decode_wanted is not None:
            self._decode_wanted(index)

    def _read_data_version(self) -> int:
        return int(self._db.execute("PRAGMA data_version").fetchone()[0])

    def _stamp(self) -> tuple[int, int]:
        """Moves with every row this connection changes and every commit of another one (the
        decode pass, ``kittiwake sync``): what was counted under a stamp holds while it does."""
        return (self._db.total_changes, self._read_data_version())

    def changed_elsewhere(self) -> bool:
        """Whether another connection (another process: ``kittiwake sync``) committed to the
        file since the last call: what the engine published may no longer be what it holds."""
        version = self._read_data_version()
        changed, self._data_version = version != self._data_version, version
        if changed:
            self._folder_ids.clear()  # the other program may have dropped and added folders
        return changed

    def _open(self, trusted: bool = False) -> None:
        """Connect, check the file (``cache_repair.check``, unless ``trusted``: see
        ``cache_repair.take_mark``) and bring its schema up to date."""
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            self._refuse_newer()  # before anything, even the journal mode, changes the file
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.execute(f"PRAGMA cache_size=-{PAGE_CACHE_KIB}")
            self._migrate(trusted)
        except BaseException:
            self._db.close()
            raise

    def _recover(self, reason: str) -> None:
        """A damaged file: its unsent actions are read first (else it is left alone and
        ``CacheError`` says how to recover), then it is set aside and a fresh file, holding
        those actions, is rebuilt from the server by the usual sync."""
        log.warning("cache %s is damaged: %s", self.path, reason)
        journal = cache_repair.salvage_journal(self.path, reason)
        aside = cache_repair.set_aside(self.path)
        self.checked, self._last_check = True, cache_repair.Checked(time.time(), 0)
        self._open()
        cache_repair.restore_journal(self._db, journal)
        self.notice = cache_repair.recovered_notice(self.path, aside, reason, len(journal))
        log.warning("%s", self.notice)

    def close(self) -> None:
        """Close cleanly: SQLite checkpoints and removes the WAL as the last connection goes,
        and the file is marked as left clean (``cache_repair.leave_mark``)."""
        if self._checkpoints is not None:
            self._checkpoints.close()
        self._db.close()
        cache_repair.leave_mark(self.path, self._last_check)

    def _committed(self) -> None:
        if self._checkpoints is not None:
            self._checkpoints.maybe()

    @property
    def db(self) -> sqlite3.Connection:
        """For the journal, which shares the file (and so the transactions) of the cache, and
        the list's sort keys (a TEMP table of this connection: ``core/search/order.py``)."""
        return self._db

    # -- schema -------------------------------------------------------------------------

    def _refuse_newer(self) -> None:
        """A newer Kittiwake wrote this file, and its journal holds unsent actions that
        exist nowhere else: it is not ours to rebuild."""
        version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise CacheError(
                f"{self.path}: this cache was written by a newer Kittiwake (cache schema"
                f" {version}; this version reads up to {SCHEMA_VERSION}), so it is left"
                " untouched; upgrade Kittiwake"
            )

    def _migrate(self, trusted: bool) -> None:
        version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
        if version > 0 and not trusted:
            cache_repair.check_at_open(self._db, self.path)
            cache_repair.cleared(self.path)
        for target in range(version + 1, SCHEMA_VERSION + 1):
            # One transaction per step: the schema and its version number move together.
            if target == 4:
                self._migrate_v4()
                continue
            self._db.executescript(
                f"BEGIN; {_MIGRATIONS[target]}; PRAGMA user_version={target}; COMMIT;"
            )

    def _migrate_v4(self) -> None:
        """The search index, filled from what is cached (decoded rows and bodies; raw rows are
        indexed by the decode pass), in one transaction with the version number: a crash
        midway leaves a v3 cache that migrates again. 100,000 messages take a few seconds."""
        db = self._db
        db.execute("BEGIN")
        try:
            searchindex.ensure_schema(db)
            searchindex.rebuild(db)
            db.execute("PRAGMA user_version=4")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _tx(self) -> contextlib.AbstractContextManager[None]:
        return transaction(self._db, self._committed)

    # -- folders ------------------------------------------------------------------------

    def _fid(self, folder: str, create: bool = False) -> int | None:
        fid = self._folder_ids.get(folder)
        if fid is not None:
            return fid
        row = self._db.execute("SELECT id FROM folders WHERE name=?", (folder,)).fetchone()
        if row is None:
            if not create:
                return None
            cur = self._db.execute("INSERT INTO folders(name) VALUES (?)", (folder,))
            fid = int(cur.lastrowid or 0)
        else:
            fid = int(row[0])
        self._folder_ids[folder] = fid
        return fid

    def folder_id(self, folder: str) -> int | None:
        """The row id of a cached folder: what ``core.search`` (query, threads) keys by."""
        return self._fid(folder)

    def folder_names(self) -> dict[int, str]:
        """Row id -> folder name, for every cached folder."""
        return {int(i): n for i, n in self._db.execute("SELECT id, name FROM folders")}

    def folder_roles(self) -> dict[str, FolderRole | None]:
        """Folder name -> role, for every cached folder: ``folders()`` without its counts."""
        rows = self._db.execute("SELECT name, role FROM folders")
        return {n: FolderRole(r) if r else None for n, r in rows}

    def _require(self, folder: str) -> int:
        fid = self._fid(folder, create=True)
        assert fid is not None
        return fid

    def set_folders(self, folders: Sequence[FolderInfo]) -> None:
        """Replace the folder list; folders that disappeared lose their messages too."""
        names = {f.name for f in folders}
        with self._tx():
            for info in folders:
                fid = self._require(info.name)
                self._db.execute(
                    "UPDATE folders SET delimiter=?, role=?, attributes=?, subscribed=? WHERE id=?",
                    (
                        info.delimiter,
                        info.role.value if info.role else None,
                        " ".join(sorted(info.attributes)),
                        int(info.subscribed),
                        fid,
                    ),
                )
            for fid, name in self._db.execute("SELECT id, name FROM folders").fetchall():
                if name not in names:
                    searchindex.remove_folder(self._db, fid)  # ids may be reused
                    self._db.execute("DELETE FROM folders WHERE id=?", (fid,))
                    self._folder_ids.pop(name, None)

    def folders(self) -> list[FolderInfo]:
        """Folders with counts from the cache (or the server's STATUS where nothing is cached)."""
        stamp = self._stamp()
        if self._listed is not None and self._listed[0] == stamp:
            return list(self._listed[1])
        out = self._read_folders(stamp)
        self._listed = (stamp, out)
        return list(out)

    def _read_folders(self, stamp: tuple[int, int]) -> list[FolderInfo]:
        """The folders with their counts; the cached ones are ``counts``' too under the same
        ``stamp`` (a start asks both for the open folder: 28 ms a count at 1,000,000)."""
        rows = self._db.execute(
            "SELECT f.name, f.delimiter, f.role, f.attributes, f.subscribed,"
            " f.server_total, f.server_unread,"
            " (SELECT count(*) FROM messages m WHERE m.folder_id=f.id),"
            " (SELECT count(*) FROM messages m WHERE m.folder_id=f.id AND m.seen=0),"
            " f.uidvalidity, f.id"
            " FROM folders f ORDER BY f.name"
        ).fetchall()
        out = []
        for row in rows:
            name, delim, role, attrs, sub, stotal, sunread, total, unread, uidvalidity, fid = row
            self._counted[fid] = (stamp, (int(total), int(unread)))
            synced = uidvalidity is not None
            out.append(
                FolderInfo(
                    name=name,
                    delimiter=delim,
                    role=FolderRole(role) if role else None,
                    attributes=frozenset(attrs.split()) if attrs else frozenset(),
                    subscribed=bool(sub),
                    total=total if synced else stotal,
                    unread=unread if synced else sunread,
                )
            )
        return out

    def set_server_counts(self, folder: str, total: int, unread: int) -> None:
        self._db.execute(
            "UPDATE folders SET server_total=?, server_unread=? WHERE id=?",
            (total, unread, self._require(folder)),
        )

    def folder_state(self, folder: str) -> FolderState | None:
        fid = self._fid(folder)
        if fid is None:
            return None
        row = self._db.execute(
            "SELECT uidvalidity, uidnext, highestmodseq FROM folders WHERE id=?", (fid,)
        ).fetchone()
        if row is None or row[0] is None:
            return None
        return FolderState(row[0], row[1], row[2])

    def set_folder_state(self, folder: str, state: FolderState) -> None:
        self._db.execute(
            "UPDATE folders SET uidvalidity=?, uidnext=?, highestmodseq=? WHERE id=?",
            (state.uidvalidity, state.uidnext, state.highestmodseq, self._require(folder)),
        )

    def reset_folder(self, folder: str) -> None:
        """Forget every message of ``folder`` (its UIDVALIDITY changed)."""
        fid = self._require(folder)
        with self._tx():
            self._db.execute("DELETE FROM messages WHERE folder_id=?", (fid,))
            self._db.execute("DELETE FROM bodies WHERE folder_id=?", (fid,))
            searchindex.remove_folder(self._db, fid)
            self._db.execute(
                "UPDATE folders SET uidvalidity=NULL, uidnext=NULL, highestmodseq=NULL WHERE id=?",
                (fid,),
            )

    # -- messages -----------------------------------------------------------------------

    def put_summaries(self, folder: str, summaries: Iterable[MessageSummary]) -> None:
        """Store (or replace) summaries; a ``LazySummaries`` is stored undecoded."""
        fid = self._require(folder)
        with self._bulk(), self._tx():
            if isinstance(summaries, LazySummaries):
                raw_rows, summaries = summaries.parts()
                self._db.executemany(
                    "INSERT OR REPLACE INTO messages(folder_id, uid, sort_date, flags, seen,"  # noqa: S608
                    " internal_date, size, modseq, raw, envelope)"
                    f" VALUES ({int(fid)},?,?,?,?,?,?,?,?,x'')",
                    raw_rows,
                )
            self._put_decoded(fid, summaries)

    @contextlib.contextmanager
    def _bulk(self) -> Iterator[None]:
        """Around a batch insert (only possible outside a transaction): foreign keys off,
        the batch's folder row having just been ensured; SQLite would otherwise run every
        row as its own sub-transaction (3-6 µs a row, about half the cost of storing a
        summary).

        ``synchronous=OFF`` for the bulk batches of a first sync was measured too (~1.5 µs a
        message, about 8% of a cold sync) and rejected: an OS crash or power cut during the
        fill could damage the file, and the journal of the user's actions lives in it.
        """
        if self._db.in_transaction:
            yield
            return
        self._db.execute("PRAGMA foreign_keys=OFF")
        try:
            yield
        finally:
            self._db.execute("PRAGMA foreign_keys=ON")

    def _put_decoded(self, fid: int, summaries: Iterable[MessageSummary]) -> None:
        summaries = summaries if isinstance(summaries, Sequence) else list(summaries)
        searchindex.index_summaries(self._db, fid, summaries)
        rows = [
            (
                fid,
                s.uid,
                sort_date(s),
                " ".join(sorted(s.flags)),
                int(SEEN in s.flags),
                s.internal_date.timestamp() if s.internal_date else None,
                s.size,
                _ENCODE(s.envelope),
                " ".join(s.references),
                int(s.has_attachments),
                s.modseq,
                int(s.degraded),
            )
            for s in summaries
        ]
        if rows:
            self._db.executemany(
                "INSERT OR REPLACE INTO messages(folder_id, uid, sort_date, flags, seen,"
                " internal_date, size, envelope, refs, has_attachments, modseq, degraded)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                rows,
            )

    def undecoded(
        self, folder: str, limit: int, below_uid: int | None = None
    ) -> list[tuple[int, bytes]]:
        """Up to ``limit`` (uid, raw) of rows stored undecoded, highest UID first, only UIDs
        below ``below_uid`` if given (to walk a folder: pass the last UID of the previous
        call). For the background decode pass (``imap.lazy.decode_pass``)."""
        fid = self._fid(folder)
        if fid is None:
            return []
        if below_uid is None:
            rows = self._db.execute(
                "SELECT uid, raw FROM messages WHERE folder_id=? AND raw IS NOT NULL"
                " ORDER BY uid DESC LIMIT ?",
                (fid, limit),
            ).fetchall()
        else:
            rows = self._db.execute(
                "SELECT uid, raw FROM messages WHERE folder_id=? AND uid<? AND raw IS NOT NULL"
                " ORDER BY uid DESC LIMIT ?",
                (fid, below_uid, limit),
            ).fetchall()
        return [(int(uid), bytes(raw)) for uid, raw in rows]

    def set_decoded(
        self,
        folder: str,
        decoded: Sequence[tuple[int, bytes, tuple[Envelope, tuple[str, ...], bool]]],
        *,
        index: bool = True,
    ) -> list[int]:
        """Fill the decoded columns of lazy rows, in one transaction: (uid, the raw it was
        decoded from, (envelope, references, has_attachments)). A row whose ``raw`` changed
        meanwhile (expunged, refetched after a UIDVALIDITY change, or already decoded) is
        left alone. The rows are indexed for search, or with ``index`` false only noted
        for ``index_deferred`` (``searchindex.defer``). Returns the UIDs written."""
        fid = self._fid(folder)
        if fid is None or not decoded:
            return []
        params = [
            (_ENCODE(envelope), " ".join(refs), int(attachments), fid, uid, raw)
            for uid, raw, (envelope, refs, attachments) in decoded
        ]
        with self._tx():
            # One executemany for the usual case (every row still holds the raw it was
            # decoded from); if one changed meanwhile, undone and done a row at a time, to
            # know which.
            self._db.execute("SAVEPOINT set_decoded")
            if self._db.executemany(_SET_DECODED, params).rowcount == len(params):
                rows = list(decoded)
            else:
                self._db.execute("ROLLBACK TO set_decoded")
                rows = [
                    d
                    for d, p in zip(decoded, params, strict=True)
                    if self._db.execute(_SET_DECODED, p).rowcount
                ]
            self._db.execute("RELEASE set_decoded")
            written = [r[0] for r in rows]
            if index:
                searchindex.index_envelopes(self._db, fid, [(r[0], r[2][0]) for r in rows])
            else:
                searchindex.defer(self._db, fid, written)
        return written

    def deferred(self, folder: str) -> int:
        """How many rows of ``folder`` wait for ``index_deferred``."""
        fid = self._fid(folder)
        return 0 if fid is None else searchindex.deferred(self._db, fid)

    def index_deferred(self, folder: str, limit: int) -> int:
        """Index up to ``limit`` of the rows of ``folder`` that ``set_decoded(index=False)``
        left out of the search index, in one transaction; return how many were taken (0:
        none left). For the background pass a first search starts
        (``imap.lazy.index_pass``)."""
        fid = self._fid(folder)
        if fid is None:
            return 0
        with self._tx():
            return searchindex.index_deferred(self._db, fid, limit)

    def set_flags(self, folder: str, flags: dict[int, frozenset[str]]) -> dict[int, frozenset[str]]:
        """Store new flags; return only the UIDs whose flags really changed (and are cached)."""
        fid = self._fid(folder)
        if fid is None or not flags:
            return {}
        current = self.flags(folder, flags.keys())
        changed = {uid: f for uid, f in flags.items() if uid in current and current[uid] != f}
        with self._tx():
            self._db.executemany(
                "UPDATE messages SET flags=?, seen=? WHERE folder_id=? AND uid=?",
                [(" ".join(sorted(f)), int(SEEN in f), fid, uid) for uid, f in changed.items()],
            )
        return changed

    def flags(self, folder: str, uids: Iterable[int] | None = None) -> dict[int, frozenset[str]]:
        fid = self._fid(folder)
        if fid is None:
            return {}
        rows: Iterable[tuple[int, str]]
        if uids is None:  # row by row: no list of every row beside the answer
            rows = self._db.execute("SELECT uid, flags FROM messages WHERE folder_id=?", (fid,))
        else:
            wanted = list(uids)
            rows = []
            for i in range(0, len(wanted), 500):
                chunk = wanted[i : i + 500]
                rows += self._db.execute(
                    f"SELECT uid, flags FROM messages WHERE folder_id=? AND uid IN"  # noqa: S608
                    f" ({','.join('?' * len(chunk))})",
                    (fid, *chunk),
                ).fetchall()
        sets: dict[str, frozenset[str]] = {}  # one object per distinct set, not per message
        out: dict[int, frozenset[str]] = {}
        for uid, f in rows:
            got = sets.get(f)
            if got is None:
                got = sets[f] = frozenset(f.split()) if f else frozenset()
            out[uid] = got
        return out

    def remove(self, folder: str, uids: Iterable[int]) -> list[int]:
        """Delete ``uids``; return the ones that were cached."""
        fid = self._fid(folder)
        if fid is None:
            return []
        present = sorted(self.flags(folder, uids))
        with self._tx():
            self._db.executemany(
                "DELETE FROM messages WHERE folder_id=? AND uid=?", [(fid, u) for u in present]
            )
            self._db.executemany(
                "DELETE FROM bodies WHERE folder_id=? AND uid=?", [(fid, u) for u in present]
            )
            searchindex.remove(self._db, fid, present)
        return present

    def uids(self, folder: str) -> list[int]:
        return list(self.iter_uids(folder))

    def iter_uids(self, folder: str) -> Iterator[int]:
        """The UIDs of ``folder`` ascending, row by row: a million as a list of ints would be
        ~36 MB (``UidSet.from_iterable`` takes them as ranges). Use it up before the next
        write (it reads with this connection)."""
        fid = self._fid(folder)
        if fid is None:
            return
        for (uid,) in self._db.execute(
            "SELECT uid FROM messages WHERE folder_id=? ORDER BY uid", (fid,)
        ):
            yield uid

    def counts(self, folder: str) -> tuple[int, int]:
        """(total, unread) of what is cached for ``folder``."""
        fid = self._fid(folder)
        if fid is None:
            return (0, 0)
        stamp = self._stamp()
        known = self._counted.get(fid)
        if known is not None and known[0] == stamp:
            return known[1]
        # Two queries: a count alone walks the (folder_id, seen) index without reading its
        # rows, the unread ones are a range of it (28 ms at 1,000,000 messages, against 64-88
        # ms for one query summing ``1 - seen`` over every row).
        (total,) = self._db.execute(
            "SELECT count(*) FROM messages WHERE folder_id=?", (fid,)
        ).fetchone()
        (unread,) = self._db.execute(
            "SELECT count(*) FROM messages WHERE folder_id=? AND seen=0", (fid,)
        ).fetchone()
        counts = (int(total), int(unread))
        self._counted[fid] = (stamp, counts)
        return counts

    def page(
        self, folder: str, limit: int, after: PageKey | None = None
    ) -> tuple[list[MessageSummary], PageKey | None]:
        """Up to ``limit`` summaries, newest first, starting after ``after``."""
        fid = self._fid(folder)
        if fid is None:
            return [], None
        cols = _SUMMARY_COLUMNS
        if after is None:
            rows = self._db.execute(
                f"SELECT {cols} FROM messages WHERE folder_id=?"  # noqa: S608
                " ORDER BY sort_date DESC, uid DESC LIMIT ?",
                (fid, limit),
            ).fetchall()
        else:
            rows = self._db.execute(
                f"SELECT {cols} FROM messages WHERE folder_id=?"  # noqa: S608
                " AND (sort_date, uid) < (?, ?) ORDER BY sort_date DESC, uid DESC LIMIT ?",
                (fid, after.sort_date, after.uid, limit),
            ).fetchall()
        out = [_row_summary(r) for r in rows]
        key = PageKey(rows[-1][8], rows[-1][0]) if rows else None
        return out, key

    def summary(self, folder: str, uid: int) -> MessageSummary | None:
        fid = self._fid(folder)
        if fid is None:
            return None
        row = self._db.execute(
            f"SELECT {_SUMMARY_COLUMNS} FROM messages WHERE folder_id=? AND uid=?",  # noqa: S608
            (fid, uid),
        ).fetchone()
        return _row_summary(row) if row else None

    def ordered_uids(
        self, folder: str, order_by: str = NEWEST_FIRST, first: int | None = None
    ) -> array[int]:
        """Every UID of ``folder``, newest first (or by ``order_by``, one of the SQL orders of
        ``core/search/order.py``): the position index of the message list; only the ``first``
        ones when given (the head, where new mail lands).

        Four bytes a message (UIDs are 32-bit), filled row by row: a list of Python ints
        costs 36 bytes a message, 36 MB for a million, and twice that while it is built.
        SQLite sorts what is not the index's order (its sorter spills to a temporary file
        beyond the page cache), not a list of a tuple per message.
        """
        fid = self._fid(folder)
        if fid is None:
            return uid_array()
        return self._uid_column(
            f"SELECT uid FROM messages WHERE folder_id=? ORDER BY {order_by} LIMIT ?",  # noqa: S608
            (fid, -1 if first is None else first),
        )

    def ordered_uids_after(
        self, folder: str, order_by: str, follows: str, uid: int, count: int
    ) -> array[int]:
        """The ``count`` UIDs of ``folder`` that come after ``uid`` in ``order_by``:
        ``follows`` is the SQL condition of such a row (``:uid``, ``:fid``; the orders of
        ``core/search/order.py`` that an index gives). Read from where ``uid`` is in the
        index, not counted from the first row: each slice costs the same."""
        fid = self._fid(folder)
        if fid is None:
            return uid_array()
        return self._uid_column(
            f"SELECT uid FROM messages WHERE folder_id=:fid AND {follows}"  # noqa: S608
            f" ORDER BY {order_by} LIMIT :count",
            {"fid": fid, "uid": uid, "count": count},
        )

    def _uid_column(self, sql: str, params: Sequence[object] | dict[str, object]) -> array[int]:
        """The first column of ``sql``'s rows, UIDs, into a compact array row by row."""
        uids = uid_array()
        uids.extend(r[0] for r in self._db.execute(sql, params))
        return uids

    def sort_columns(self, folder: str) -> list[tuple[int, float, float | None, int, int]]:
        """(uid, sort_date, internal_date, size, seen) of every message of ``folder``: what
        the list sorts by besides the envelope (``core/search/order.py``)."""
        fid = self._fid(folder)
        if fid is None:
            return []
        return list(
            self._db.execute(
                "SELECT uid, sort_date, internal_date, size, seen FROM messages WHERE folder_id=?",
                (fid,),
            )
        )

    def unseen_uids(self, folder: str) -> list[int]:
        fid = self._fid(folder)
        if fid is None:
            return []
        return [
            r[0]
            for r in self._db.execute(
                "SELECT uid FROM messages WHERE folder_id=? AND seen=0 ORDER BY uid", (fid,)
            )
        ]

    def summaries(self, folder: str, uids: Sequence[int]) -> dict[int, MessageSummary]:
        """Summaries for a screenful of ``uids`` (missing ones are left out)."""
        fid = self._fid(folder)
        if fid is None or not uids:
            return {}
        out: dict[int, MessageSummary] = {}
        for i in range(0, len(uids), 500):
            chunk = list(uids[i : i + 500])
            rows = self._db.execute(
                f"SELECT {_SUMMARY_COLUMNS} FROM messages WHERE folder_id=? AND uid IN"  # noqa: S608
                f" ({','.join('?' * len(chunk))})",
                (fid, *chunk),
            ).fetchall()
            for row in rows:
                summary = _row_summary(row)
                out[summary.uid] = summary
        return out

    def find_message_id(self, message_id: str) -> list[tuple[str, int]]:
        """(folder, uid) of every cached message whose Message-ID is ``message_id``
        (``<id@host>``): a byte search of the stored envelopes, then checked decoded."""
        needle = message_id.strip().strip("<>").encode("utf-8")
        if not needle:
            return []
        names = self.folder_names()
        found = []
        for row in self._db.execute(
            f"SELECT {_SUMMARY_COLUMNS}, folder_id FROM messages"  # noqa: S608
            " WHERE instr(envelope, ?) > 0 OR instr(raw, ?) > 0",
            (needle, needle),
        ):
            summary = _row_summary(row[:-1])
            own = (summary.envelope.message_id or "").strip().strip("<>")
            if own.encode("utf-8") == needle and row[-1] in names:
                found.append((names[row[-1]], summary.uid))
        return found

    def conversation(self, folder: str, uid: int) -> list[int]:
        """UIDs of ``folder`` linked to ``uid`` by Message-ID, In-Reply-To or References
        (its whole conversation as far as this folder knows), newest first."""
        fid = self._fid(folder)
        if fid is None:
            return []
        parent: dict[str, str] = {}

        def find(key: str) -> str:
            root = key
            while parent.get(root, root) != root:
                root = parent[root]
            while parent.get(key, key) != root:  # path compression
                parent[key], key = root, parent[key]
            return root

        def union(a: str, b: str) -> None:
            ra, rb = find(a), find(b)
            if ra != rb:
                parent[ra] = rb

        keys: dict[int, str] = {}
        order: list[int] = []
        wanted = False
        for row_uid, env_blob, refs, raw in self._db.execute(
            "SELECT uid, envelope, refs, raw FROM messages WHERE folder_id=?"
            " ORDER BY sort_date DESC, uid DESC",
            (fid,),
        ):
            if raw is not None:  # not decoded yet (see the module docstring)
                wanted = True
                env, refs_t, _ = decode_raw(bytes(raw))
                refs = " ".join(refs_t)
            else:
                env = _DECODE_ENVELOPE(env_blob)
            own = env.message_id or f"uid:{row_uid}"
            keys[row_uid] = own
            order.append(row_uid)
            parent.setdefault(own, own)
            for other in (*refs.split(), *([env.in_reply_to] if env.in_reply_to else [])):
                parent.setdefault(other, other)
                union(own, other)
        if wanted:
            self.want_decoded()
        if uid not in keys:
            return []
        root = find(keys[uid])
        return [u for u in order if find(keys[u]) == root]

    # -- bodies -------------------------------------------------------------------------

    def put_body(self, folder: str, uid: int, raw: bytes, words: str | None = None) -> None:
        """Store a whole message and index its text. ``words`` (``searchindex.body_words``,
        the slow MIME half: milliseconds for a big message) may be computed beforehand off
        the event loop; else it is computed here."""
        fid = self._require(folder)
        if words is None:
            words = searchindex.body_words(raw)
        with self._tx():
            self._db.execute(
                "INSERT OR REPLACE INTO bodies(folder_id, uid, raw) VALUES (?,?,?)",
                (fid, uid, raw),
            )
            searchindex.index_body_words(self._db, fid, uid, words)

    def index_body_words(self, folder: str, uid: int, words: str) -> None:
        """Index the words (``searchindex.body_words``) of a body kept elsewhere, such as a
        local account's Maildir file, without storing the body here."""
        with self._tx():
            searchindex.index_body_words(self._db, self._require(folder), uid, words)

    def carry_body_words(self, src: str, dest: str, uids: dict[int, int]) -> None:
        """Index moved or copied messages' bodies under their new UIDs (``{old: new}``):
        for a local account, whose bodies are never stored here, the words are all there is."""
        sfid, dfid = self._fid(src), self._fid(dest)
        if sfid is None or dfid is None or not uids:
            return
        with self._tx():
            for old, new in uids.items():
                row = self._db.execute(
                    f"SELECT body FROM {searchindex.TABLE} WHERE rowid=?",  # noqa: S608
                    (searchindex.key(sfid, old),),
                ).fetchone()
                if row is not None and row[0]:
                    searchindex.index_body_words(self._db, dfid, new, str(row[0]))

    def body(self, folder: str, uid: int) -> bytes | None:
        fid = self._fid(folder)
        if fid is None:
            return None
        row = self._db.execute(
            "SELECT raw FROM bodies WHERE folder_id=? AND uid=?", (fid, uid)
        ).fetchone()
        return bytes(row[0]) if row else None


class _Checkpointer:
    """Moves the WAL into the database file on a thread of its own.

    SQLite's automatic checkpoint runs inside the COMMIT that crosses its threshold, on the
    event loop: measured, 360 ms of a 100,000-message first sync (a tenth of its wall time)
    went to those. With ``wal_autocheckpoint`` off, a PASSIVE checkpoint on a second
    connection, in a thread, does the same work while the loop goes on (SQLite releases the
    GIL while it writes; WAL lets the writer continue meanwhile). Durability is unchanged:
    commits are as safe in the WAL as in the file.
    """

    def __init__(self, path: Path, db: sqlite3.Connection) -> None:
        self._path = path
        self._db = db
        self._thread: threading.Thread | None = None
        self._last = db.total_changes
        #: How many times the WAL was truncated (tests).
        self.truncated = 0
        db.execute("PRAGMA wal_autocheckpoint=0")

    def maybe(self) -> None:
        """After a commit: start a checkpoint once enough rows changed since the last one."""
        changes = self._db.total_changes
        if changes - self._last < CHECKPOINT_EVERY:
            return
        if self._thread is not None and self._thread.is_alive():
            return
        self._last = changes
        self._thread = threading.Thread(target=self._run, name="cache-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        """A PASSIVE checkpoint, then, if the WAL is past ``WAL_LIMIT``, a TRUNCATE one.

        A PASSIVE checkpoint copies the WAL into the file without stopping anyone, but the WAL
        only starts over when a writer begins while every frame in it is copied: a writer that
        never pauses (the decode pass after a first sync) always finds the frames it wrote
        during the checkpoint, so the WAL grew to the size of the file (1.18 GB at a million
        messages). TRUNCATE holds the writers back while it copies those few frames and waits
        for readers of the WAL (at most ``TRUNCATE_WAIT_MS``), then empties the file. Writers
        take the write lock first (``BEGIN IMMEDIATE``, ``core/sqltx.py``), so they wait for
        it instead of failing with "database is locked"."""
        try:
            db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            try:
                db.execute("PRAGMA wal_checkpoint(PASSIVE)")
                if cache_repair.wal_size(self._path) > WAL_LIMIT:
                    db.execute(f"PRAGMA busy_timeout={TRUNCATE_WAIT_MS}")
                    busy, _, _ = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                    if not busy:
                        self.truncated += 1
            finally:
                db.close()
        except sqlite3.Error as exc:
            log.info("checkpoint of %s failed: %s", self._path.name, exc)

    def close(self) -> None:
        if self._thread is not None:
            self._thread.join()


_SET_DECODED = (
    "UPDATE messages SET envelope=?, refs=?, has_attachments=?, raw=NULL"
    " WHERE folder_id=? AND uid=? AND raw=?"
)

_SUMMARY_COLUMNS = (
    "uid, flags, internal_date, size, envelope, refs, has_attachments, modseq, sort_date, raw,"
    " degraded"
)


def _row_summary(row: tuple[object, ...]) -> MessageSummary:
    uid, flags, internal, size, env, refs, att, modseq, _, raw, degraded = row
    assert isinstance(uid, int) and isinstance(flags, str) and isinstance(env, bytes)
    assert isinstance(size, int) and isinstance(refs, str)
    references: tuple[str, ...]
    if raw is not None:  # stored undecoded by the bulk path of a first sync
        assert isinstance(raw, bytes)
        envelope, references, attachments = decode_raw(raw)
    else:
        envelope = _DECODE_ENVELOPE(env)
        references = tuple(refs.split())
        attachments = bool(att)
    return MessageSummary(
        uid=uid,
        flags=frozenset(flags.split()) if flags else frozenset(),
        internal_date=(
            datetime.fromtimestamp(internal, UTC) if isinstance(internal, float) else None
        ),
        size=size,
        envelope=envelope,
        references=references,
        has_attachments=attachments,
        modseq=modseq if isinstance(modseq, int) else None,
        degraded=bool(degraded),
    )
