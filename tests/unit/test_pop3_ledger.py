"""The UIDL ledger and the Maildir sink's crash recovery (no server needed)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from kittiwake.core.maildir import INBOX, Maildir
from kittiwake.core.pop3.client import Pop3Error
from kittiwake.core.pop3.ledger import Ledger, LedgerBusy
from kittiwake.core.pop3.sinks import MaildirSink


def test_life_of_a_row(tmp_path: Path) -> None:
    path = tmp_path / "pop3" / "acct.sqlite3"
    with Ledger(path, "alice@pop.example") as ledger:
        ledger.begin([(b"uid-1", "key-1", 10), (b"uid-2", "key-2", 20)])
        assert {e.uidl for e in ledger.pending()} == {b"uid-1", b"uid-2"}
        ledger.stored([b"uid-1"], 1000.0)
        ledger.forget([b"uid-2"])
        entries = ledger.entries()
        assert set(entries) == {b"uid-1"}
        assert entries[b"uid-1"].state == "stored" and entries[b"uid-1"].fetched_at == 1000.0
        ledger.forget([b"uid-1"])  # only committing rows can be forgotten
        assert ledger.count() == 1
        ledger.deleted([b"uid-1"], 2000.0)
        assert ledger.get(b"uid-1") is not None
        assert ledger.get(b"uid-1").state == "deleted"  # type: ignore[union-attr]
    # durable across reopening, and per maildrop
    with Ledger(path, "alice@pop.example") as ledger:
        assert ledger.count("deleted") == 1
    with Ledger(path, "alice@other.example") as ledger:
        assert ledger.count() == 0


def test_binary_uidls_are_keys_not_text(tmp_path: Path) -> None:
    with Ledger(tmp_path / "l.sqlite3", "m") as ledger:
        odd = b"\xff\xfe'; DROP TABLE downloads; --"
        ledger.begin([(odd, "k", 1)])
        ledger.stored([odd], 1.0)
        assert set(ledger.entries()) == {odd}


def test_one_downloader_at_a_time(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite3"
    first = Ledger(path, "m")
    try:
        with pytest.raises(LedgerBusy) as err:
            Ledger(path, "m")
        assert err.value.recoverable
        assert "already being downloaded" in err.value.message
    finally:
        first.close()
    Ledger(path, "m").close()  # released


def test_newer_schema_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite3"
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version=99")
    db.close()
    with pytest.raises(Pop3Error, match="newer Kittiwake"):
        Ledger(path, "m")
    Ledger(path.with_name("other.sqlite3"), "m").close()  # and the lock was released


def test_maildir_sink_recovery_windows(tmp_path: Path) -> None:
    md = Maildir(tmp_path / "mail")
    sink = MaildirSink(md)

    async def scenario() -> None:
        # 1. committed (renamed) but the ledger never heard: found in new/
        a = sink.spool()
        a.write(b"a\r\n")
        [token_a] = await sink.prepare([a])
        await sink.commit([a])
        assert await sink.recover(token_a, 3) == token_a
        # 2. the user already moved it to another folder: still found, by key
        md.move(INBOX, token_a, "Archive")
        assert await sink.recover(token_a, 3) == token_a
        # 3. spooled and fsynced, token recorded, never renamed: delivered by recovery
        b = sink.spool()
        b.write(b"bb\r\n")
        b.sync()
        [token_b] = await sink.prepare([b])
        assert await sink.recover(token_b, 4) == token_b
        assert md.read(INBOX, token_b) == b"bb\r\n"
        # 4. nothing left anywhere: not delivered (downloaded again)
        assert await sink.recover("1.M1P1Q1R1.gone", 9) is None
        # 5. a token that is not a key at all
        assert await sink.recover("../../etc/passwd", 9) is None

    asyncio.run(scenario())
