"""Gmail's identity of a message across folders: X-GM-MSGID, X-GM-THRID and X-GM-LABELS.

On Gmail a folder is a label, so one message with three labels is three (folder, UID) pairs,
plus a fourth in All Mail. Everything that counts or lists messages across folders (search
results, conversations, the account's unread total) must see it once: this table maps each
cached (folder, UID) to Gmail's message id, and remembers its labels for the list and the
reader. It is filled only for accounts whose server offers ``X-GM-EXT-1``; elsewhere it stays
empty and every function here is the identity.

Its own table beside the cache's (created on first use, dropped with the cache file), keyed
by folder name: it is rebuilt from the server at each sync of a folder, so nothing in it is
ever the only copy of anything.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import NamedTuple, TypeVar

from kittiwake.core.sqltx import transaction

SCHEMA = """
CREATE TABLE IF NOT EXISTS gmail_ids (
    folder TEXT NOT NULL,
    uid INTEGER NOT NULL,
    msgid INTEGER NOT NULL,
    thrid INTEGER,
    labels TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (folder, uid)
)
"""

_SEP = "\x1f"  # between labels: a control character no label name can hold


class GmailIds(NamedTuple):
    """What Gmail says about one message in one folder."""

    uid: int
    msgid: int
    thrid: int | None
    labels: tuple[str, ...]


K = TypeVar("K", bound=tuple[str, int])


def _ensure(db: sqlite3.Connection) -> None:
    db.execute(SCHEMA)


def _exists(db: sqlite3.Connection) -> bool:
    """Whether the table was ever made: readers never create it, so a cache of an account
    that is not Gmail's stays as it was."""
    found = db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='gmail_ids'")
    return found.fetchone() is not None


def present(db: sqlite3.Connection) -> bool:
    """Whether this cache ever held Gmail's ids: the account is Gmail's (known offline too)."""
    return _exists(db)


def store_folder(db: sqlite3.Connection, folder: str, rows: Iterable[GmailIds]) -> None:
    """Replace what is known of ``folder`` with ``rows`` (one FETCH of the whole folder)."""
    _ensure(db)
    with transaction(db):
        db.execute("DELETE FROM gmail_ids WHERE folder = ?", (folder,))
        db.executemany(
            "INSERT OR REPLACE INTO gmail_ids VALUES (?, ?, ?, ?, ?)",
            [(folder, r.uid, r.msgid, r.thrid, _SEP.join(r.labels)) for r in rows],
        )


def add_rows(db: sqlite3.Connection, folder: str, rows: Iterable[GmailIds]) -> None:
    """Rows for some messages of ``folder`` (found by a search before it was ever synced)."""
    _ensure(db)
    db.executemany(
        "INSERT OR REPLACE INTO gmail_ids VALUES (?, ?, ?, ?, ?)",
        [(folder, r.uid, r.msgid, r.thrid, _SEP.join(r.labels)) for r in rows],
    )


def set_labels(db: sqlite3.Connection, folder: str, uid: int, labels: Sequence[str]) -> None:
    """After a label change the user made (shown at once; the next sync confirms it)."""
    if not _exists(db):
        return
    db.execute(
        "UPDATE gmail_ids SET labels = ? WHERE folder = ? AND uid = ?",
        (_SEP.join(labels), folder, uid),
    )


def known_uids(db: sqlite3.Connection, folder: str) -> set[int]:
    if not _exists(db):
        return set()
    return {int(u) for (u,) in db.execute("SELECT uid FROM gmail_ids WHERE folder = ?", (folder,))}


def labels_of(db: sqlite3.Connection, folder: str, uid: int) -> tuple[str, ...] | None:
    """The message's labels; None where Gmail's were never fetched (not a Gmail account)."""
    if not _exists(db):
        return None
    row = db.execute(
        "SELECT labels FROM gmail_ids WHERE folder = ? AND uid = ?", (folder, uid)
    ).fetchone()
    if row is None:
        return None
    return tuple(x for x in str(row[0]).split(_SEP) if x)


def msgids(
    db: sqlite3.Connection, folders: Iterable[str] | None = None
) -> dict[tuple[str, int], int]:
    """(folder, uid) -> X-GM-MSGID, for ``folders`` (None: all)."""
    if not _exists(db):
        return {}
    rows = db.execute("SELECT folder, uid, msgid FROM gmail_ids")
    wanted = None if folders is None else set(folders)
    return {(str(f), int(u)): int(m) for f, u, m in rows if wanted is None or f in wanted}


def thrids(
    db: sqlite3.Connection, folders: Iterable[str] | None = None
) -> dict[tuple[str, int], int]:
    """(folder, uid) -> X-GM-THRID (Gmail's conversation), for ``folders`` (None: all)."""
    if not _exists(db):
        return {}
    rows = db.execute("SELECT folder, uid, thrid FROM gmail_ids WHERE thrid IS NOT NULL")
    wanted = None if folders is None else set(folders)
    return {(str(f), int(u)): int(t) for f, u, t in rows if wanted is None or f in wanted}


def once_each(items: Sequence[K], ids: dict[tuple[str, int], int]) -> list[K]:
    """``items`` (each a (folder, uid) or a NamedTuple of them) with every message kept once,
    at its first place in the list: Gmail's copies of one message under several labels."""
    if not ids:
        return list(items)
    seen: set[int] = set()
    out: list[K] = []
    for item in items:
        msgid = ids.get((item[0], item[1]))
        if msgid is not None:
            if msgid in seen:
                continue
            seen.add(msgid)
        out.append(item)
    return out
