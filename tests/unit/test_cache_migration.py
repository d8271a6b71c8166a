"""Cache schema 3 -> 4 (and on to the current one): a cache written before the search index gets one, filled from what
it holds (decoded rows and cached bodies; raw rows when the decode pass reaches them), and
the index then follows every change the cache makes."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import msgspec

from kittiwake.core.cache import _MIGRATIONS, SCHEMA_VERSION, Cache
from kittiwake.core.imap.lazy import decode_pass, extract
from kittiwake.core.models import Address, Envelope, FolderInfo
from kittiwake.core.search import index as searchindex
from kittiwake.core.search.service import local_hits, local_hits_off_loop


def _body(text: str) -> bytes:
    msg = EmailMessage()
    msg["Subject"] = "x"
    msg.set_content(text)
    return msg.as_bytes()


def _lazy_fetch(uid: int, subject: str) -> bytes:
    return (
        f'* {uid} FETCH (UID {uid} FLAGS () INTERNALDATE "01-Jan-2026 10:00:00 +0000"'
        f' RFC822.SIZE 500 ENVELOPE ("Thu, 01 Jan 2026 10:00:00 +0000" "{subject}"'
        ' (("Ann" NIL "ann" "example.org")) NIL NIL NIL NIL NIL NIL "<l@x>")'
        ' BODYSTRUCTURE ("text" "plain" ("charset" "utf-8") NIL NIL "7bit" 10 1 NIL NIL NIL'
        " NIL))"
    ).encode()


def _write_v3(path: Path) -> None:
    """A cache as schema 3 left it: two decoded messages, a raw one, a cached body."""
    db = sqlite3.connect(path, isolation_level=None)
    for version in (1, 2, 3):
        db.executescript(f"BEGIN; {_MIGRATIONS[version]}; PRAGMA user_version={version}; COMMIT;")
    db.execute("INSERT INTO folders(id, name, uidvalidity) VALUES (1, 'INBOX', 7)")
    db.execute("INSERT INTO folders(id, name, uidvalidity) VALUES (2, 'Old', 7)")
    encode = msgspec.msgpack.Encoder().encode
    when = datetime(2026, 1, 2, tzinfo=UTC).timestamp()
    for fid, uid, subject, who in [
        (1, 1, "Walrus census", "ann@example.org"),
        (1, 2, "Lunch plans", "bob@example.net"),
        (2, 1, "Walrus archive", "ann@example.org"),
    ]:
        env = Envelope(subject=subject, from_=(Address("", who),), message_id=f"<{fid}.{uid}@x>")
        db.execute(
            "INSERT INTO messages(folder_id, uid, sort_date, flags, seen, internal_date, size,"
            " envelope) VALUES (?,?,?,?,?,?,?,?)",
            (fid, uid, when + uid, "", 0, when, 100, encode(env)),
        )
    row = extract(_lazy_fetch(3, "Narwhal raw"))
    assert row is not None
    db.execute(
        "INSERT INTO messages(folder_id, uid, sort_date, flags, seen, internal_date, size,"
        " modseq, raw, envelope) VALUES (1,?,?,?,?,?,?,?,?,x'')",
        row,
    )
    db.execute(
        "INSERT INTO bodies(folder_id, uid, raw) VALUES (1, 2, ?)", (_body("pizza kumquat"),)
    )
    db.close()


def test_v3_cache_gets_an_index_of_what_it_holds(tmp_path: Path) -> None:
    path = tmp_path / "acct.sqlite3"
    _write_v3(path)
    cache = Cache(path)
    db = cache.db
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    # v5: every row carried over into the rowid table, with its indexes.
    (sql,) = db.execute("SELECT sql FROM sqlite_master WHERE name='messages'").fetchone()
    assert "WITHOUT ROWID" not in sql
    found = cache.summaries("INBOX", [1, 2, 3])
    assert [found[u].envelope.subject for u in (1, 2, 3)] == [
        "Walrus census",
        "Lunch plans",
        "Narwhal raw",
    ]
    assert list(cache.ordered_uids("Old")) == [1] and cache.body("INBOX", 2) is not None
    # v6: no message was degraded before; one stored so is read back so.
    assert not any(s.degraded for s in found.values())
    cache.put_summaries("INBOX", [dataclasses.replace(found[1], uid=9, degraded=True)])
    read = cache.summary("INBOX", 9)
    assert read is not None and read.degraded and read.envelope.subject == "Walrus census"
    assert cache.remove("INBOX", [9]) == [9]
    # v7: the index merges its segments 16 at a time.
    assert _automerge(db) == searchindex.AUTOMERGE == 16
    assert db.execute(f"SELECT count(*) FROM {searchindex.TABLE}").fetchone()[0] == 3
    assert sorted(local_hits(cache, None, "walrus")) == [("INBOX", 1), ("Old", 1)]
    assert [tuple(h) for h in local_hits(cache, ["INBOX"], "kumquat")] == [("INBOX", 2)]
    # The raw row is not in the index yet, but found all the same (judged in Python) ...
    assert searchindex.pending(db) == 1
    assert [tuple(h) for h in local_hits(cache, ["INBOX"], "narwhal")] == [("INBOX", 3)]
    # (the UI's path: the same search in a worker thread, on a connection of its own)
    off_loop = asyncio.run(local_hits_off_loop(cache, None, "narwhal OR walrus"))
    assert off_loop == local_hits(cache, None, "narwhal OR walrus") and len(off_loop) == 3
    # ... and, v8, decoded by a first sync's pass, which leaves indexing it to a search ...
    assert asyncio.run(decode_pass(cache, "INBOX", index=False)) == 1
    assert searchindex.pending(db) == searchindex.deferred(db) == 1
    assert db.execute(f"SELECT count(*) FROM {searchindex.TABLE}").fetchone()[0] == 3
    # ... which indexes it first.
    assert [tuple(h) for h in local_hits(cache, ["INBOX"], "narwhal")] == [("INBOX", 3)]
    assert searchindex.pending(db) == 0
    assert db.execute(f"SELECT count(*) FROM {searchindex.TABLE}").fetchone()[0] == 4
    cache.close()
    # Opening it again migrates nothing and keeps the index.
    again = Cache(path)
    assert [tuple(h) for h in local_hits(again, ["INBOX"], "narwhal")] == [("INBOX", 3)]
    again.close()


def test_index_follows_removals_resets_and_deleted_folders(tmp_path: Path) -> None:
    path = tmp_path / "acct.sqlite3"
    _write_v3(path)
    cache = Cache(path)
    db = cache.db

    def rows() -> int:
        return int(db.execute(f"SELECT count(*) FROM {searchindex.TABLE}").fetchone()[0])

    assert rows() == 3
    assert cache.remove("INBOX", [1]) == [1]
    assert local_hits(cache, None, "walrus") == [("Old", 1)]
    assert rows() == 2
    cache.put_body("INBOX", 2, _body("mango"))  # a new body replaces the old words
    assert local_hits(cache, None, "mango") == [("INBOX", 2)]
    assert local_hits(cache, None, "kumquat") == []
    cache.index_body_words("INBOX", 2, "zanzibar")  # a body kept elsewhere (a Maildir file)
    assert local_hits(cache, None, "zanzibar lunch") == [("INBOX", 2)]
    cache.set_folders([FolderInfo("INBOX", "/")])  # "Old" is gone on the server
    assert local_hits(cache, None, "walrus") == []
    assert rows() == 1
    cache.reset_folder("INBOX")
    assert rows() == 0 and local_hits(cache, None, "lunch") == []
    assert searchindex.prune(db) == 0  # nothing was left behind
    cache.close()


def _automerge(db: sqlite3.Connection) -> int | None:
    row = db.execute(f"SELECT v FROM {searchindex.TABLE}_config WHERE k='automerge'").fetchone()
    return None if row is None else int(row[0])


def test_v7_cache_gets_the_table_of_deferred_rows(tmp_path: Path) -> None:
    """Schema 8 adds ``searchindex.PENDING``; a v7 cache's index is kept as it is."""
    path = tmp_path / "acct.sqlite3"
    _write_v3(path)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("BEGIN")
    searchindex.ensure_schema(db)
    searchindex.rebuild(db)
    db.execute("PRAGMA user_version=4")
    db.execute("COMMIT")
    for version in (5, 6, 7):
        db.executescript(f"BEGIN; {_MIGRATIONS[version]}; PRAGMA user_version={version}; COMMIT;")
    tables = {n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert searchindex.PENDING not in tables
    db.close()
    cache = Cache(path)
    assert cache.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 8
    assert searchindex.deferred(cache.db) == 0
    assert sorted(local_hits(cache, None, "walrus")) == [("INBOX", 1), ("Old", 1)]
    cache.close()


def test_new_cache_is_current_and_empty(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "new.sqlite3")
    assert cache.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert searchindex.deferred(cache.db) == 0
    assert _automerge(cache.db) == searchindex.AUTOMERGE
    assert local_hits(cache, None, "anything") == []
    cache.close()
