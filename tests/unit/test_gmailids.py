"""``core/gmailids.py``: Gmail's id of a message across folders, on an in-memory SQLite."""

from __future__ import annotations

import sqlite3

from kittiwake.core import gmailids
from kittiwake.core.gmailids import GmailIds
from kittiwake.core.search.service import Hit


def _db() -> sqlite3.Connection:
    return sqlite3.connect(":memory:", isolation_level=None)


def test_readers_never_create_the_table() -> None:
    db = _db()
    assert gmailids.msgids(db) == {}
    assert gmailids.labels_of(db, "INBOX", 1) is None
    gmailids.set_labels(db, "INBOX", 1, ["Work"])
    assert db.execute("SELECT name FROM sqlite_master").fetchall() == []


def test_a_folder_is_replaced_whole_and_labels_change_in_place() -> None:
    db = _db()
    gmailids.store_folder(
        db, "INBOX", [GmailIds(1, 77, 5, ("\\Inbox", "Work")), GmailIds(2, 78, 5, ())]
    )
    gmailids.store_folder(db, "Work", [GmailIds(9, 77, 5, ("\\Inbox", "Work"))])
    gmailids.store_folder(db, "INBOX", [GmailIds(1, 77, 5, ("\\Inbox", "Work"))])  # 2 is gone
    assert gmailids.known_uids(db, "INBOX") == {1}
    assert gmailids.msgids(db) == {("INBOX", 1): 77, ("Work", 9): 77}
    assert gmailids.msgids(db, ["Work"]) == {("Work", 9): 77}
    gmailids.set_labels(db, "INBOX", 1, ["\\Inbox", "Big Project"])
    assert gmailids.labels_of(db, "INBOX", 1) == ("\\Inbox", "Big Project")
    assert gmailids.labels_of(db, "INBOX", 2) is None


def test_each_message_is_kept_once_at_its_first_place() -> None:
    ids = {("INBOX", 1): 77, ("Work", 9): 77, ("[Gmail]/All Mail", 3): 77, ("INBOX", 2): 78}
    hits = [Hit("Work", 9), Hit("INBOX", 2), Hit("INBOX", 1), Hit("Local", 5), Hit("Local", 6)]
    assert gmailids.once_each(hits, ids) == [
        Hit("Work", 9),
        Hit("INBOX", 2),
        Hit("Local", 5),
        Hit("Local", 6),
    ]
    assert gmailids.once_each(hits, {}) == hits
