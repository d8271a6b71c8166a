"""A damaged cache file: noticed on open, set aside, its unsent actions carried over.

The cache is rebuilt from the server, but the journal of the user's unsent actions lives in
the same file and exists nowhere else. So before a damaged file is touched, its journal is
read from a scratch copy (padded with empty pages when the file was cut short: SQLite then
finds the pages it needs near the start, where the journal's are). If that fails, the file
is left exactly as it is and the user is told how to recover (``CacheError``); else it is
renamed to ``NAME.damaged-<UTC time>`` (with its WAL) and the caller starts a fresh file.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sqlite3
import tempfile
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from kittiwake.core.errors import CacheError

log = logging.getLogger(__name__)

#: (id, created, action JSON) of one journal row, the action as stored (bytes).
JournalRow = tuple[int, float, bytes | str]

_MAGIC = b"SQLite format 3\x00"


#: Quick checks started by ``check_early``, by absolute path: the thread, and True in the list
#: once it found the file sound.
_early: dict[Path, tuple[threading.Thread, list[bool]]] = {}


def check_early(paths: Iterable[Path]) -> None:
    """Start the quick check of each cache file that exists, each in a thread of its own.

    SQLite releases the GIL while it walks the pages, so the check (~60 ms of CPU for a
    100,000-message cache, more wall time when its pages are not in memory, ten times that at
    a million) runs on another core while the app imports Textual, instead of after it (issue
    19). ``check_at_open`` takes the verdict; only "sound" is taken, so a file found damaged,
    or one that could not be read here, is checked again at open exactly as without this."""
    for path in paths:
        key = Path(os.path.abspath(path))
        if key in _early or not key.exists():
            continue
        verdict: list[bool] = []

        def run(key: Path = key, verdict: list[bool] = verdict) -> None:
            try:
                db = sqlite3.connect(key.as_uri() + "?mode=ro", uri=True)
                try:
                    row = db.execute("PRAGMA quick_check(1)").fetchone()
                finally:
                    db.close()
            except sqlite3.Error:
                return
            if row is not None and row[0] == "ok":
                verdict.append(True)

        thread = threading.Thread(target=run, name=f"check {key.name}", daemon=True)
        _early[key] = (thread, verdict)
        thread.start()


def check_at_open(db: sqlite3.Connection, path: Path) -> None:
    """``check``, unless ``check_early`` found the file at ``path`` sound (a verdict is used
    once: the next open checks again)."""
    early = _early.pop(Path(os.path.abspath(path)), None)
    if early is not None:
        thread, verdict = early
        thread.join()
        if verdict:
            return
    check(db)


def check(db: sqlite3.Connection) -> None:
    """Raise ``sqlite3.DatabaseError`` unless SQLite's quick check finds the file sound
    (every page of every table and index walked; no cross-check of indexes, hence quick)."""
    verdict = db.execute("PRAGMA quick_check(1)").fetchone()
    if verdict is None or verdict[0] != "ok":
        log.warning("quick_check: %s", verdict[0] if verdict else "no answer")
        raise sqlite3.DatabaseError("database disk image is malformed")  # SQLite's own words


def salvage_journal(path: Path, reason: str) -> list[JournalRow]:
    """The journal rows of the damaged cache at ``path``, read from a scratch copy; a
    ``CacheError`` naming the file (which is left untouched) when they cannot be read."""
    with tempfile.TemporaryDirectory(prefix="kittiwake-salvage-") as scratch:
        copy = Path(scratch) / path.name
        try:
            shutil.copyfile(path, copy)
            wal = path.with_name(path.name + "-wal")
            if wal.exists():
                shutil.copyfile(wal, copy.with_name(copy.name + "-wal"))
            _pad_to_header_size(copy)
            db = sqlite3.connect(copy, isolation_level=None)
            try:
                rows = db.execute("SELECT id, created, action FROM journal ORDER BY id").fetchall()
            finally:
                db.close()
        except (sqlite3.Error, OSError) as exc:
            log.warning("cannot read the journal of damaged %s: %s", path, exc)
            raise CacheError(
                f"{path}: the cache is damaged ({reason}) and the actions it holds that were not"
                " sent yet cannot be read, so it is left as it is; move it elsewhere and"
                " Kittiwake will rebuild the cache from the server, without those actions"
            ) from None
    return [(int(i), float(created), action) for i, created, action in rows]


def _pad_to_header_size(path: Path) -> None:
    """A file cut short: zero pages up to the size its header records, so SQLite reads what
    is left instead of calling the whole file malformed."""
    with open(path, "r+b") as f:
        header = f.read(100)
        if len(header) < 100 or not header.startswith(_MAGIC):
            return
        page_size = int.from_bytes(header[16:18], "big")
        page_size = 65536 if page_size == 1 else page_size
        pages = int.from_bytes(header[28:32], "big")
        wanted = page_size * pages
        size = f.seek(0, os.SEEK_END)
        if 0 < size < wanted <= 1 << 36:
            f.truncate(wanted)


def set_aside(path: Path) -> Path:
    """Rename the damaged file (and its WAL) to ``NAME.damaged-<UTC time>``; the shared-memory
    index is only a cache of the WAL and goes."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    aside = path.with_name(f"{path.name}.damaged-{stamp}")
    os.replace(path, aside)
    wal = path.with_name(path.name + "-wal")
    if wal.exists():
        os.replace(wal, aside.with_name(aside.name + "-wal"))
    with contextlib.suppress(FileNotFoundError):
        path.with_name(path.name + "-shm").unlink()
    return aside


def restore_journal(db: sqlite3.Connection, rows: list[JournalRow]) -> None:
    """Put salvaged rows into the fresh file's journal, ids and order kept, durably."""
    if not rows:
        return
    db.execute("PRAGMA synchronous=FULL")
    try:
        db.execute("BEGIN")
        db.executemany("INSERT INTO journal(id, created, action) VALUES (?, ?, ?)", rows)
        db.execute("COMMIT")
    finally:
        db.execute("PRAGMA synchronous=NORMAL")


def recovered_notice(path: Path, aside: Path, reason: str, kept: int) -> str:
    actions = f"{kept} unsent action{'s' if kept != 1 else ''}"
    return (
        f"The cache {path} was damaged ({reason}): it was moved to {aside.name} and is rebuilt"
        f" from the server, and the {actions} it held {'was' if kept == 1 else 'were'} kept"
    )


def damaged(paths: list[Path]) -> list[Path]:
    """The files among ``paths`` that SQLite's quick check finds damaged."""
    found = []
    for path in paths:
        try:
            db = sqlite3.connect(path)
            try:
                check(db)
            finally:
                db.close()
        except sqlite3.DatabaseError:
            found.append(path)
    return found


def runtime_failure(paths: list[Path], exc: sqlite3.DatabaseError) -> str:
    """One sentence for a cache that failed while running: the damaged file if a quick check
    finds one, else every file the failure may have come from."""
    bad = damaged(paths)
    if bad:
        names = ", ".join(str(p) for p in bad)
        return (
            f"{names}: the cache is damaged ({exc}); start Kittiwake again to set it aside and"
            " rebuild it from the server (unsent actions are kept)"
        )
    return f"{', '.join(str(p) for p in paths) or 'the cache'}: {exc}"
