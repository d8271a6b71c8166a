"""The message list's order (date, arrival, sender, subject, size, unread first; either way)
and the order chosen for each folder, remembered in the state directory. The conversation
view of the folder is sorted by the same choice (``ordered_threads``), each conversation by
what mutt's ``sort_aux`` and aerc take: its newest message (date), its latest arrival in the
folder, its first message's sender (the one its row shows) and subject, the size of all its
messages, any unread first; inside a conversation the thread's own order stays.

Date, arrival (UID order: the order the server took them in), size and unread first are
columns of the cache; sender and subject are in the envelope, so those two read every
summary of the folder once (about 1.5 s at 100,000 messages; a choice the user makes, not a
cost of every reload of the default order) into a table SQLite sorts by (``SortTexts``).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import sqlite3
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kittiwake.core import paths
from kittiwake.core.cache import NEWEST_FIRST, PAGE_CACHE_KIB, Cache, uid_array
from kittiwake.core.files import PRIVATE_FILE, atomic_write, make_private_dirs
from kittiwake.core.message.subjects import base_subject

if TYPE_CHECKING:  # threading is loaded when the conversations are first shown
    from collections.abc import Sequence

    from kittiwake.core.models import MessageSummary
    from kittiwake.core.search.threads import Threading

#: key: (name, what "descending" means for it, what ascending means)
SORT_KEYS: dict[str, tuple[str, str, str]] = {
    "date": ("Date", "newest first", "oldest first"),
    "arrival": ("Arrival", "latest arrived first", "first arrived first"),
    "sender": ("Sender", "Z to A", "A to Z"),
    "subject": ("Subject", "Z to A", "A to Z"),
    "size": ("Size", "largest first", "smallest first"),
    "unread": ("Unread first", "then newest first", "then oldest first"),
}


@dataclass(frozen=True, slots=True)
class SortOrder:
    key: str = "date"
    descending: bool = True

    @property
    def code(self) -> str:
        return f"{self.key}-{'desc' if self.descending else 'asc'}"

    @classmethod
    def from_code(cls, code: str) -> SortOrder | None:
        key, _, way = code.partition("-")
        if key not in SORT_KEYS or way not in ("asc", "desc"):
            return None
        return cls(key, way == "desc")

    def describe(self) -> str:
        name, down, up = SORT_KEYS[self.key]
        return f"{name}, {down if self.descending else up}"

    def brief(self) -> str:
        """ "subject ↑": for a short status line (↓: descending, newest or largest first)."""
        return f"{SORT_KEYS[self.key][0].lower()} {'↓' if self.descending else '↑'}"

    @property
    def is_default(self) -> bool:
        return self == SortOrder()


#: Every order, as the picker lists them.
ALL_ORDERS = [SortOrder(key, way) for key in SORT_KEYS for way in (True, False)]


def _sort_texts(summary: MessageSummary) -> tuple[str, str]:
    """(sender, subject) of a message as they are sorted: the first sender's name (else its
    address) and the base subject, case-folded."""
    env = summary.envelope
    first = env.from_[0] if env.from_ else None
    sender = ((first.name or first.addr) if first else "").casefold()
    return sender, base_subject(env.subject).casefold()


_TEXTS_TABLE = (
    # The texts as UTF-8 blobs: compared byte by byte, the order of Python's str comparison.
    "CREATE TEMP TABLE IF NOT EXISTS sort_texts (memo INTEGER NOT NULL, uid INTEGER NOT NULL,"
    " sender BLOB NOT NULL, subject BLOB NOT NULL, PRIMARY KEY (memo, uid)) WITHOUT ROWID"
)


class SortTexts:
    """The sender and subject keys of one folder's messages (as it is now: UIDVALIDITY
    included), kept between sorts: an envelope never changes, so a list that reloads (a sync
    adds a batch every few milliseconds) decodes each message once.

    They are rows of a TEMP table of the cache's connection, which SQLite keeps in a
    temporary file beyond a small page cache, and sorts by there: a dict of a (sender,
    subject) tuple per message held ~400 bytes a message in this process (+40 MB at 100,000
    messages, for as long as the folder was in that order; issue 19). ``drop`` when done."""

    _ids = itertools.count(1)

    def __init__(self, cache: Cache) -> None:
        self.cache = cache
        self.id = next(SortTexts._ids)
        self._used = False

    def _db(self) -> sqlite3.Connection:
        """The cache's connection with the table (made again if the connection is new: a
        cache set aside and replaced starts without it, and its rows are read again)."""
        db = self.cache.db
        self._used = True
        db.execute(f"PRAGMA temp.cache_size=-{PAGE_CACHE_KIB}")
        db.execute(_TEXTS_TABLE)
        return db

    def fill(self, folder: str) -> None:
        """Keep the keys of ``folder``'s messages not kept yet."""
        fid = self.cache.folder_id(folder)
        if fid is None:
            return
        missing = uid_array(
            r[0]
            for r in self._db().execute(
                "SELECT uid FROM messages WHERE folder_id=? AND uid NOT IN"
                " (SELECT uid FROM temp.sort_texts WHERE memo=?)",
                (fid, self.id),
            )
        )
        self._put(folder, missing)

    def _put(self, folder: str, uids: Sequence[int]) -> None:
        """Keep the keys of ``uids``, from their envelopes, a batch at a time."""
        if uids:
            self.cache.want_decoded()  # the folder's envelopes are read: decode raw rows once
        db = self._db()
        for start in range(0, len(uids), _TEXTS_BATCH):
            # A batch of summaries at a time: all of a 100,000-message folder's at once held
            # ~150 MB of envelopes for the two strings kept of each.
            batch = self.cache.summaries(folder, uids[start : start + _TEXTS_BATCH])
            db.executemany(
                "INSERT OR REPLACE INTO temp.sort_texts VALUES (?, ?, ?, ?)",
                [(self.id, uid, *(t.encode() for t in _sort_texts(s))) for uid, s in batch.items()],
            )

    def texts(self, folder: str, uids: Sequence[int]) -> dict[int, tuple[str, str]]:
        """(sender, subject) of each of ``uids`` that has them (kept, or read now from
        ``folder``)."""
        out = self._read(uids)
        missing = uid_array(uid for uid in uids if uid not in out)
        if missing:
            self._put(folder, missing)
            out.update(self._read(missing))
        return out

    def _read(self, uids: Sequence[int]) -> dict[int, tuple[str, str]]:
        db = self._db()
        out: dict[int, tuple[str, str]] = {}
        for start in range(0, len(uids), 500):
            chunk = list(uids[start : start + 500])
            for uid, sender, subject in db.execute(
                "SELECT uid, sender, subject FROM temp.sort_texts WHERE memo=? AND uid IN"  # noqa: S608
                f" ({','.join('?' * len(chunk))})",
                (self.id, *chunk),
            ):
                out[uid] = (sender.decode(), subject.decode())
        return out

    def ordered(self, folder: str, key: str, descending: bool) -> array[int]:
        """The UIDs of ``folder`` by the kept ``key`` ("sender" or "subject"), ties newest
        first either way (as a stable sort of the newest-first list); a message without a
        row sorts as an empty text. SQLite's sorter spills to a temporary file beyond its
        page cache."""
        fid = self.cache.folder_id(folder)
        if fid is None:
            return uid_array()
        column = {"sender": "t.sender", "subject": "t.subject"}[key]
        db = self._db()
        return uid_array(
            r[0]
            for r in db.execute(
                "SELECT m.uid FROM messages AS m LEFT JOIN temp.sort_texts AS t"  # noqa: S608
                " ON t.memo=? AND t.uid=m.uid WHERE m.folder_id=?"
                f" ORDER BY COALESCE({column}, X''){' DESC' if descending else ''},"
                " m.sort_date DESC, m.uid DESC",
                (self.id, fid),
            )
        )

    def drop(self) -> None:
        """Forget the keys (the folder left the memory of recent ones). Nothing to do when
        the cache was closed meanwhile: its TEMP table went with its connection."""
        if self._used:
            with contextlib.suppress(sqlite3.ProgrammingError):  # a closed connection
                self._db().execute("DELETE FROM temp.sort_texts WHERE memo=?", (self.id,))


def _texts(
    cache: Cache, folder: str, uids: Sequence[int], memo: SortTexts | None
) -> dict[int, tuple[str, str]]:
    """(sender, subject) of ``uids``: kept in ``memo``, else read for this once."""
    if memo is not None:
        return memo.texts(folder, uids)
    out: dict[int, tuple[str, str]] = {}
    if uids:
        cache.want_decoded()
    for start in range(0, len(uids), _TEXTS_BATCH):
        batch = cache.summaries(folder, uids[start : start + _TEXTS_BATCH])
        out.update((uid, _sort_texts(s)) for uid, s in batch.items())
    return out


_TEXTS_BATCH = 2000


#: The orders SQLite sorts (``Cache.ordered_uids``), ties as in the default order: a
#: (uid, date, size, seen) tuple per message sorted in Python costs ~170 bytes a message
#: (170 MB for a million). Date and arrival have no ties; unread, oldest first, keeps the
#: oldest first among equals.
_SQL_ORDERS = {
    ("date", False): "sort_date, uid",
    ("arrival", True): "uid DESC",
    ("arrival", False): "uid",
    ("size", True): "size DESC, sort_date DESC, uid DESC",
    ("size", False): "size, sort_date DESC, uid DESC",
    ("unread", True): "seen, sort_date DESC, uid DESC",
    ("unread", False): "seen, sort_date, uid",
}


def ordered_uids(
    cache: Cache, folder: str, order: SortOrder, memo: SortTexts | None = None
) -> array[int]:
    """The UIDs of ``folder`` in ``order`` (ties: newest first, then by UID), compact
    (``uid_array``); ``memo`` keeps the sender and subject keys of the folder (as it is
    now: UIDVALIDITY included) between calls."""
    if order.is_default:
        return cache.ordered_uids(folder)
    by_sql = _SQL_ORDERS.get((order.key, order.descending))
    if by_sql is not None:
        return cache.ordered_uids(folder, by_sql)
    # Sender or subject: keys from the envelopes, kept in a table SQLite sorts by.
    texts = SortTexts(cache) if memo is None else memo
    try:
        texts.fill(folder)
        return texts.ordered(folder, order.key, order.descending)
    finally:
        if memo is None:
            texts.drop()


#: The orders whose rows SQLite reads straight from an index (``messages_by_date``, either
#: way, or the primary key), with the condition of a row that comes after the row of UID
#: ``:uid`` in that order: the head of the list costs what a screenful does whatever the
#: folder's size, and the rest is read a slice at a time from where the last one ended
#: (never with OFFSET). The other orders sort (or scan) the whole folder first.
_AT_UID = "(SELECT sort_date, uid FROM messages WHERE folder_id=:fid AND uid=:uid)"
_INDEXED_ORDERS = {
    ("date", True): (NEWEST_FIRST, f"(sort_date, uid) < {_AT_UID}"),
    ("date", False): ("sort_date, uid", f"(sort_date, uid) > {_AT_UID}"),
    ("arrival", True): ("uid DESC", "uid < :uid"),
    ("arrival", False): ("uid", "uid > :uid"),
}


def head_uids(cache: Cache, folder: str, order: SortOrder, count: int) -> array[int] | None:
    """The first ``count`` UIDs of ``folder`` in ``order`` (the first rows of
    ``ordered_uids``), or None when ``order`` has no index to read them from cheaply."""
    by_index = _INDEXED_ORDERS.get((order.key, order.descending))
    if by_index is None:
        return None
    return cache.ordered_uids(folder, by_index[0], first=count)


def uids_after(
    cache: Cache, folder: str, order: SortOrder, uid: int, count: int
) -> array[int] | None:
    """The ``count`` UIDs that follow ``uid`` in ``order`` (the next rows of
    ``ordered_uids``; none when ``uid`` is no longer in the folder), or None when ``order``
    has no index to read them from."""
    by_index = _INDEXED_ORDERS.get((order.key, order.descending))
    if by_index is None:
        return None
    return cache.ordered_uids_after(folder, *by_index, uid, count)


def ordered_threads(
    cache: Cache,
    threading: Threading[tuple[int, int]],
    names: dict[int, str],
    folder: str,
    order: SortOrder,
    memo: SortTexts | None = None,
) -> Threading[tuple[int, int]]:
    """The conversations of ``threading`` (keys (folder id, UID), threaded newest first) in
    ``order``; ties stay newest first. ``memo`` is ``folder``'s, as for ``ordered_uids``
    (the Sent folder's messages threaded in are read each time: a few)."""
    from kittiwake.core.search.threads import reorder_threads

    if order.is_default:
        return threading
    count = len(threading.threads)
    if order.key == "date":
        return reorder_threads(threading, range(count - 1, -1, -1))
    home = cache.folder_id(folder)
    # (folder id, uid) -> (sort_date, size, seen), for the folders the threads hold
    columns: dict[tuple[int, int], tuple[float, int, int]] = {}
    members: list[list[tuple[int, int]]] = []
    by_folder: dict[int, list[int]] = {}
    for info in threading.threads:
        start = info.first_row
        keys = [k for k in threading.keys[start : start + info.rows] if k is not None]
        members.append(keys)
        for fid, uid in keys:
            by_folder.setdefault(fid, []).append(uid)
    for fid in by_folder:
        for uid, date, _internal, size, seen in cache.sort_columns(names.get(fid, "")):
            columns[(fid, uid)] = (date, size, seen)
    texts: dict[int, dict[int, tuple[str, str]]] = {}
    if order.key in ("sender", "subject"):  # a conversation sorts by its first message's
        firsts: dict[int, list[int]] = {}
        for info in threading.threads:
            fid, uid = info.first_key
            firsts.setdefault(fid, []).append(uid)
        for fid, uids in firsts.items():
            own = memo if fid == home else None
            texts[fid] = _texts(cache, names.get(fid, ""), uids, own)

    def text_of(key: tuple[int, int], column: int) -> str:
        return texts.get(key[0], {}).get(key[1], ("", ""))[column]

    flip = order.descending
    numbers = list(range(count))  # newest first: the order ties keep
    if order.key == "arrival":
        numbers.sort(
            key=lambda t: max((uid for fid, uid in members[t] if fid == home), default=-1),
            reverse=flip,
        )
    elif order.key == "size":
        numbers.sort(key=lambda t: sum(columns.get(k, (0, 0, 0))[1] for k in members[t]),
                     reverse=flip)  # fmt: skip
    elif order.key == "unread":
        if not flip:
            numbers.reverse()
        numbers.sort(key=lambda t: all(columns.get(k, (0, 0, 1))[2] for k in members[t]))
    elif order.key == "sender":
        # The first message's sender: the one the conversation's row shows (mutt's sort_aux
        # without "last-"); the newest's would put rows out of their visible order.
        numbers.sort(key=lambda t: text_of(threading.threads[t].first_key, 0), reverse=flip)
    else:
        numbers.sort(key=lambda t: text_of(threading.threads[t].first_key, 1), reverse=flip)
    return reorder_threads(threading, numbers)


class SortMemory:
    """The order chosen per folder (``sort-orders.json`` in the state directory); a folder
    left in the default order has no entry."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or paths.state_dir() / "sort-orders.json"
        self._orders: dict[str, dict[str, str]] | None = None

    def _load(self) -> dict[str, dict[str, str]]:
        if self._orders is None:
            try:
                data = json.loads(self.path.read_text("utf-8"))
            except (OSError, ValueError):
                data = {}
            self._orders = {
                str(a): {str(f): str(c) for f, c in folders.items()}
                for a, folders in (data.items() if isinstance(data, dict) else ())
                if isinstance(folders, dict)
            }
        return self._orders

    def get(self, account: str, folder: str) -> SortOrder:
        code = self._load().get(account, {}).get(folder)
        return (SortOrder.from_code(code) if code else None) or SortOrder()

    def set(self, account: str, folder: str, order: SortOrder) -> None:
        orders = self._load()
        folders = orders.setdefault(account, {})
        if order.is_default:
            folders.pop(folder, None)
        else:
            folders[folder] = order.code
        try:
            make_private_dirs(self.path.parent)
            data = json.dumps(orders, indent=1, sort_keys=True).encode()
            atomic_write(self.path, data, PRIVATE_FILE)
        except OSError:
            pass  # kept for this session only; the list is sorted all the same
