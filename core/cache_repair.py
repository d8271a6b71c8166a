"""A damaged cache file: noticed on open, set aside, its unsent actions carried over.

The cache is rebuilt from the server, but the journal of the user's unsent actions lives in
the same file and exists nowhere else. So before a damaged file is touched, its journal is
read from a scratch copy (padded with empty pages when the file was cut short: SQLite then
finds the pages it needs near the start, where the journal's are). If that fails, the file
is left exactly as it is and the user is told how to recover (``CacheError``); else it is
renamed to ``NAME.damaged-<UTC time>`` (with its WAL) and the caller starts a fresh file.

The check reads every page (2.5 s for a 1.26 GB cache of a million messages: most of a warm
start at that size, issue 19), so it is skipped when the file is exactly as Kittiwake's own
clean close left it: that close records the file's size and modification time in
``NAME.clean`` (``leave_mark``), and the next open that finds them unchanged, with no WAL,
trusts the file and removes the mark (``take_mark``), so a crash leaves none and the open
after it checks. Any write to the file after the mark moves its modification time (the mark
is only left once the file system's clock has moved past the file's: a write in the same
clock tick would keep the time). The check still runs every ``CHECK_EVERY_OPENS`` opens and
after ``CHECK_EVERY_SECONDS`` (damage that changes no time, e.g. of the disk), and after
SQLite reported a failure while running (``runtime_failure`` leaves ``NAME.suspect``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sqlite3
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from kittiwake.core.errors import CacheError

log = logging.getLogger(__name__)

#: (id, created, action JSON) of one journal row, the action as stored (bytes).
JournalRow = tuple[int, float, bytes | str]

_MAGIC = b"SQLite format 3\x00"


#: A clean mark is trusted for at most this many opens in a row, and this long after the last
#: full check: damage that moves no modification time is found in the end.
CHECK_EVERY_OPENS = 50
CHECK_EVERY_SECONDS = 7 * 86400


@dataclass(frozen=True, slots=True)
class Checked:
    """When the file was last fully checked, and how many opens trusted a mark since."""

    at: float
    opens: int


def _sidecar(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def wal_path(path: Path) -> Path:
    """SQLite's write-ahead log beside the database file at ``path``."""
    return _sidecar(path, "-wal")


def wal_size(path: Path) -> int:
    """The size of ``path``'s write-ahead log; 0 when there is none."""
    try:
        return wal_path(path).stat().st_size
    except FileNotFoundError:
        return 0


def _wal_empty(path: Path) -> bool:
    return wal_size(path) == 0


def _trusted_mark(path: Path) -> Checked | None:
    """What the clean mark of ``path`` says, if the file is still as that close left it (and
    the mark is not too old to trust); else None: check the file."""
    mark = _sidecar(path, ".clean")
    try:
        held = mark.stat()
        data = json.loads(mark.read_bytes())
        size, mtime_ns = int(data["size"]), int(data["mtime_ns"])
        checked = Checked(float(data["checked"]), int(data["opens"]))
        now = path.stat()
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if (now.st_size, now.st_mtime_ns) != (size, mtime_ns) or held.st_mtime_ns <= mtime_ns:
        return None  # changed since, or the mark was made in the same clock tick as a write
    if not _wal_empty(path) or _sidecar(path, ".suspect").exists():
        return None
    if checked.opens + 1 >= CHECK_EVERY_OPENS or time.time() - checked.at > CHECK_EVERY_SECONDS:
        return None
    return Checked(checked.at, checked.opens + 1)


def take_mark(path: Path) -> Checked | None:
    """Before opening ``path``: the mark's verdict (``_trusted_mark``), the mark removed in any
    case (an open that is not followed by a clean close must be checked next time)."""
    trusted = _trusted_mark(path)
    with contextlib.suppress(FileNotFoundError):
        _sidecar(path, ".clean").unlink()
    if trusted is not None:
        log.info("%s: as its clean close left it; quick check skipped", path.name)
    return trusted


def leave_mark(path: Path, checked: Checked) -> None:
    """After the last connection to ``path`` closed cleanly (its final checkpoint done, the WAL
    gone): record the file's size and modification time in ``NAME.clean``, for ``take_mark``.
    Waits for the file system's clock to pass the file's time (a few ms at most; a write in
    that tick would go unseen), and leaves no mark if it does not, or if anything is unusual."""
    mark = _sidecar(path, ".clean")
    try:
        if not _wal_empty(path) or _sidecar(path, ".suspect").exists():
            return
        now = path.stat()
        data: dict[str, float] = {"size": now.st_size, "mtime_ns": now.st_mtime_ns}
        data |= {"checked": checked.at, "opens": checked.opens}
        mark.write_text(json.dumps(data))
        deadline = time.monotonic() + 0.1
        while mark.stat().st_mtime_ns <= now.st_mtime_ns:
            if time.monotonic() > deadline:
                mark.unlink()
                return
            time.sleep(0.001)  # the clock tick of file times: 1-10 ms
            os.utime(mark)
    except OSError as exc:
        log.info("no clean mark for %s: %s", path.name, exc)
        with contextlib.suppress(OSError):
            mark.unlink()


def suspect(paths: Iterable[Path]) -> None:
    """SQLite failed while running: the next open of each file checks it in full."""
    for path in paths:
        with contextlib.suppress(OSError):
            _sidecar(path, ".suspect").touch()
        with contextlib.suppress(OSError):
            _sidecar(path, ".clean").unlink()


def cleared(path: Path) -> None:
    """A full check found ``path`` sound (or a fresh file replaced it): no longer suspect."""
    with contextlib.suppress(FileNotFoundError):
        _sidecar(path, ".suspect").unlink()


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
        if key in _early or not key.exists() or _trusted_mark(key) is not None:
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
            wal = wal_path(path)
            if wal.exists():
                shutil.copyfile(wal, wal_path(copy))
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
    wal = wal_path(path)
    if wal.exists():
        os.replace(wal, wal_path(aside))
    for gone in ("-shm", ".clean", ".suspect"):
        with contextlib.suppress(FileNotFoundError):
            _sidecar(path, gone).unlink()
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
    finds one, else every file the failure may have come from. Each file is checked in full
    at its next open (``suspect``)."""
    suspect(paths)
    bad = damaged(paths)
    if bad:
        names = ", ".join(str(p) for p in bad)
        return (
            f"{names}: the cache is damaged ({exc}); start Kittiwake again to set it aside and"
            " rebuild it from the server (unsent actions are kept)"
        )
    return f"{', '.join(str(p) for p in paths) or 'the cache'}: {exc}"
