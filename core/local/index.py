"""Which Maildir file is which UID, and what a rescan must change in the cache.

The cache (``core/cache.py``) knows messages by (folder, UID), as IMAP does; a Maildir knows
them by key (the file name up to ``:``). ``FileIndex`` keeps the mapping in a table of the
account's cache file, owned by this package (created with ``IF NOT EXISTS``, so the cache's
own schema versions are not involved). A UID is given once per folder and never reused: the
folder's UIDNEXT is kept in the cache's folder state, with a UIDVALIDITY set when the folder
was first indexed, so a journaled action never lands on another message.

The mapping says what is on disk (as of the last rescan or action); the cache's message rows
are the optimistic view the UI reads. ``plan_rescan`` is the pure diff between the two and
the folder's files; a rescan applies it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from kittiwake.core.cache import Cache, FolderState
from kittiwake.core.maildir import flags_from_info
from kittiwake.core.sqltx import transaction

__all__ = ["MAILDIR_FLAGS", "FileIndex", "RescanPlan", "plan_rescan", "transaction"]

MAILDIR_FLAGS = flags_from_info("2,DFPRST")
"""The flags a Maildir file name can carry; any other keyword lives only in the cache."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS local_files (
    folder_id INTEGER NOT NULL REFERENCES folders(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    uid INTEGER NOT NULL,
    PRIMARY KEY (folder_id, key)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS local_files_uid ON local_files(folder_id, uid);
"""


class FileIndex:
    """(folder, key) -> UID, in the account's cache file."""

    def __init__(self, cache: Cache) -> None:
        self.cache = cache
        self.db = cache.db
        self.db.executescript(_SCHEMA)

    def _fid(self, folder: str) -> int | None:
        row = self.db.execute("SELECT id FROM folders WHERE name=?", (folder,)).fetchone()
        return int(row[0]) if row else None

    def keys(self, folder: str) -> dict[str, int]:
        """Every key of ``folder`` with its UID."""
        fid = self._fid(folder)
        if fid is None:
            return {}
        rows = self.db.execute("SELECT key, uid FROM local_files WHERE folder_id=?", (fid,))
        return {str(key): int(uid) for key, uid in rows}

    def keys_of(self, folder: str, uids: Iterable[int]) -> dict[int, str]:
        """The keys of ``uids`` (UIDs without a file are left out)."""
        fid = self._fid(folder)
        if fid is None:
            return {}
        out: dict[int, str] = {}
        for uid in uids:
            row = self.db.execute(
                "SELECT key FROM local_files WHERE folder_id=? AND uid=?", (fid, uid)
            ).fetchone()
            if row is not None:
                out[uid] = str(row[0])
        return out

    def add(self, folder: str, pairs: Iterable[tuple[str, int]]) -> None:
        fid = self._fid(folder)
        if fid is None:
            raise KeyError(folder)
        self.db.executemany(
            "INSERT OR REPLACE INTO local_files(folder_id, key, uid) VALUES (?,?,?)",
            [(fid, key, uid) for key, uid in pairs],
        )

    def forget(self, folder: str, keys: Iterable[str]) -> None:
        fid = self._fid(folder)
        if fid is not None:
            self.db.executemany(
                "DELETE FROM local_files WHERE folder_id=? AND key=?", [(fid, k) for k in keys]
            )

    def ensure_state(self, folder: str) -> FolderState:
        """The folder's UIDVALIDITY and UIDNEXT (given on first sight)."""
        state = self.cache.folder_state(folder)
        if state is None or state.uidnext is None:
            state = FolderState(time.time_ns() // 1_000_000, 1, None)
            self.cache.set_folder_state(folder, state)
        return state

    def allocate(self, folder: str, count: int) -> list[int]:
        """``count`` fresh UIDs of ``folder``, in increasing order."""
        if count <= 0:
            return []
        state = self.ensure_state(folder)
        first = state.uidnext or 1
        self.cache.set_folder_state(
            folder, FolderState(state.uidvalidity, first + count, state.highestmodseq)
        )
        return list(range(first, first + count))


@dataclass
class RescanPlan:
    forget: list[str] = field(default_factory=list)
    """Mapped keys whose file is gone."""
    new: list[str] = field(default_factory=list)
    """Files without a UID yet, oldest key first."""
    index: list[tuple[str, int]] = field(default_factory=list)
    """(key, UID) mapped but not in the cache (an interrupted rescan or action)."""
    stale: list[int] = field(default_factory=list)
    """Cached UIDs that no file has."""
    flags: dict[int, frozenset[str]] = field(default_factory=dict)
    """New flags of cached messages whose file says otherwise."""

    @property
    def empty(self) -> bool:
        return not (self.forget or self.new or self.index or self.stale or self.flags)


def plan_rescan(
    files: Mapping[str, frozenset[str]],
    mapping: Mapping[str, int],
    cached: Mapping[int, frozenset[str]],
) -> RescanPlan:
    """What brings the cache of a folder in step with its files.

    ``files``: key -> flags on disk; ``mapping``: key -> UID; ``cached``: UID -> flags in
    the cache. Keywords a file name cannot carry are kept from the cache.
    """
    plan = RescanPlan()
    plan.forget = sorted(k for k in mapping if k not in files)
    plan.new = sorted(k for k in files if k not in mapping)
    live: set[int] = set()
    for key, uid in mapping.items():
        on_disk = files.get(key)
        if on_disk is None:
            continue
        live.add(uid)
        have = cached.get(uid)
        if have is None:
            plan.index.append((key, uid))
        elif have & MAILDIR_FLAGS != on_disk:
            plan.flags[uid] = on_disk | (have - MAILDIR_FLAGS)
    plan.index.sort(key=lambda pair: pair[1])
    plan.stale = sorted(u for u in cached if u not in live)
    return plan
