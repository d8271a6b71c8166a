"""One SQLite transaction around a block, for every module that writes to the cache file.

The cache's connection runs in autocommit mode, so writers open their own transaction; one
inside another must not BEGIN again (SQLite refuses) nor COMMIT the outer one early.

Writers take the write lock at BEGIN (IMMEDIATE): a deferred transaction that read first and
then finds the lock taken (another process, or the cache's checkpoint truncating the WAL)
fails at once with "database is locked", where BEGIN IMMEDIATE waits for the lock (the
connection's busy timeout).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def transaction(
    db: sqlite3.Connection, on_commit: Callable[[], None] | None = None
) -> Iterator[None]:
    """BEGIN/COMMIT around the block, ROLLBACK on any error; nothing extra inside another
    transaction. ``on_commit`` runs after a COMMIT this block made."""
    if db.in_transaction:
        yield
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    if on_commit is not None:
        on_commit()
