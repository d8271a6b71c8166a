"""The local Maildir account on its own: crash recovery of actions, appends (Sent copies),
folders, and changes made by other programs. Real files, a real cache; no server needed."""

from __future__ import annotations

from pathlib import Path

import pytest

from kittiwake.core import transfer
from kittiwake.core.cache import Cache
from kittiwake.core.events import (
    EventBus,
    FolderListChanged,
    MessagesAdded,
    MessagesExpunged,
    SyncError,
)
from kittiwake.core.journal import Action
from kittiwake.core.local.account import LocalAccount
from kittiwake.core.maildir import INBOX, Maildir, MaildirError
from kittiwake.core.message.mbox import mbox_entry
from kittiwake.core.models import ANSWERED, FLAGGED, SEEN
from kittiwake.core.search.service import local_hits

DEADLINE = 10.0


def message(n: int) -> bytes:
    return (
        f"From: Ann <ann@example.org>\r\nSubject: message {n}\r\n"
        f"Message-ID: <local{n}@example.org>\r\nDate: Sat, 01 Mar 2025 10:0{n}:00 +0000\r\n"
        f"\r\nbody {n}\r\n"
    ).encode()


def seed(root: Path, count: int) -> Maildir:
    maildir = Maildir(root)
    for n in range(count):
        maildir.add(INBOX, message(n))
    return maildir


def open_account(tmp_path: Path, bus: EventBus | None = None) -> LocalAccount:
    return LocalAccount(
        "home", tmp_path / "mail", Cache(tmp_path / "home.sqlite3"), bus or EventBus()
    )


def subjects(account: LocalAccount, folder: str) -> list[str]:
    rows = account.cache.summaries(folder, account.cache.ordered_uids(folder))
    return sorted(s.envelope.subject for s in rows.values())


async def test_an_action_journaled_before_a_crash_is_replayed(tmp_path: Path) -> None:
    maildir = seed(tmp_path / "mail", 3)
    account = open_account(tmp_path)
    await account.sync_all()
    uids = account.cache.ordered_uids(INBOX)
    flagged, moved = uids[0], uids[1]
    account.triage.submit(
        Action(kind="flags", folder=INBOX, uidvalidity=None, uids=(flagged,), add=(FLAGGED,))
    )
    account.triage.submit(
        Action(kind="move", folder=INBOX, uidvalidity=None, uids=(moved,), dest="Archive")
    )
    # The app dies here: the journal holds both, the files are untouched.
    assert len(account.triage.journal) == 2
    assert len(maildir.messages(INBOX)) == 3 and not maildir.messages("Archive")
    account.cache.close()

    bus = EventBus()
    again = open_account(tmp_path, bus)
    async with bus.subscribe() as events:
        again.start()
        try:
            await again.wait_synced(DEADLINE)
            assert len(again.triage.journal) == 0
            assert [m.flags for m in maildir.messages(INBOX) if m.flags] == [{FLAGGED}]
            [archived] = maildir.messages("Archive")
            assert subjects(again, "Archive") == ["message 1"]
            assert archived.key not in {m.key for m in maildir.messages(INBOX)}
            assert subjects(again, INBOX) == ["message 0", "message 2"]
            assert not [e for e in events.pending() if isinstance(e, SyncError)]
        finally:
            await again.stop()


async def test_a_move_already_done_on_disk_is_not_done_twice(tmp_path: Path) -> None:
    maildir = seed(tmp_path / "mail", 2)
    account = open_account(tmp_path)
    await account.sync_all()
    uid = account.cache.ordered_uids(INBOX)[0]
    [key] = account.files.keys_of(INBOX, [uid]).values()
    account.triage.submit(
        Action(kind="move", folder=INBOX, uidvalidity=None, uids=(uid,), dest="Trash")
    )
    maildir.move(INBOX, key, "Trash")  # the rename happened, then the crash
    account.cache.close()

    bus = EventBus()
    again = open_account(tmp_path, bus)
    async with bus.subscribe() as events:
        await again.sync_all()
        assert [m.key for m in maildir.messages("Trash")] == [key]
        assert len(maildir.messages(INBOX)) == 1
        assert subjects(again, "Trash") == ["message 1"]
        assert len(again.cache.ordered_uids(INBOX)) == 1
        assert not [e for e in events.pending() if isinstance(e, SyncError)]


async def test_append_files_a_sent_copy_once(tmp_path: Path) -> None:
    bus = EventBus()
    account = open_account(tmp_path, bus)
    await account.sync_all()
    async with bus.subscribe() as events:
        uid = await account.append("Sent", message(7), frozenset({SEEN}))
        added = await events.wait_for(MessagesAdded, DEADLINE, folder="Sent")
        assert added.uids == (uid,)
    [sent] = Maildir(tmp_path / "mail").messages("Sent")
    assert sent.filename.endswith(":2,S") and sent.path.read_bytes() == message(7)
    assert account.cache.counts("Sent") == (1, 0)
    assert await account.has_message_id("Sent", "<local7@example.org>")
    assert not await account.has_message_id("Sent", "<other@example.org>")
    assert await account.fetch_body("Sent", uid) == message(7)
    # A file written by another program just before (or a crash after the write) counts.
    Maildir(tmp_path / "mail").add("Sent", message(8), {SEEN})
    assert await account.has_message_id("Sent", "<local8@example.org>")


async def test_folders_are_created_renamed_and_deleted_on_disk(tmp_path: Path) -> None:
    bus = EventBus()
    account = open_account(tmp_path, bus)
    await account.sync_all()
    async with bus.subscribe() as events:
        await account.create_folder("Lists/python")
        listed = await events.wait_for(FolderListChanged, DEADLINE)
        assert "Lists/python" in {f.name for f in listed.folders}
        assert (tmp_path / "mail/.Lists.python/cur").is_dir()
        await account.append("Lists/python", message(1), frozenset())
        await account.rename_folder("Lists/python", "Lists/py")
        assert subjects(account, "Lists/py") == ["message 1"]
        assert not (tmp_path / "mail/.Lists.python").exists()
        await account.delete_folder("Lists/py")
        assert not (tmp_path / "mail/.Lists.py").exists()
        assert "Lists/py" not in {f.name for f in account.cache.folders()}
        with pytest.raises(MaildirError, match=r"'\.' cannot be used"):
            await account.create_folder("a.b")


async def test_changes_by_another_program_are_picked_up(tmp_path: Path) -> None:
    maildir = seed(tmp_path / "mail", 3)
    bus = EventBus()
    account = open_account(tmp_path, bus)
    await account.sync_all()
    uids = account.cache.ordered_uids(INBOX)
    first = account.files.keys_of(INBOX, uids)
    async with bus.subscribe() as events:
        keys = sorted(m.key for m in maildir.messages(INBOX))
        maildir.set_flags(INBOX, keys[0], {SEEN})  # read in mutt
        maildir.delete(INBOX, keys[1])  # deleted in mutt
        assert await account.sync_folder(INBOX) == 0
        gone = await events.wait_for(MessagesExpunged, DEADLINE, folder=INBOX)
        assert [first[u] for u in gone.uids] == [keys[1]]
        flags = account.cache.flags(INBOX)
        assert sorted(flags.values(), key=len) == [frozenset(), frozenset({SEEN})]
    # UIDs stay stable across restarts (the mapping is in the cache file).
    account.cache.close()
    again = open_account(tmp_path)
    await again.sync_all()
    assert again.files.keys_of(INBOX, uids) == {u: k for u, k in first.items() if k != keys[1]}


async def test_bodies_of_local_mail_are_searchable_and_stay_so_when_moved(
    tmp_path: Path,
) -> None:
    maildir = seed(tmp_path / "mail", 3)
    maildir.add(INBOX, message(7).replace(b"body 7", b"the walrus sings"))
    account = open_account(tmp_path)
    await account.sync_all()
    [hit] = local_hits(account.cache, [INBOX], "body:walrus")
    account.triage.submit(
        Action(kind="move", folder=INBOX, uidvalidity=None, uids=(hit.uid,), dest="Archive")
    )
    await account.flush_actions()
    assert local_hits(account.cache, [INBOX], "walrus") == []
    [moved] = local_hits(account.cache, ["Archive"], "body:walrus")
    assert moved.folder == "Archive"
    uid = await account.append(
        "Sent", message(8).replace(b"body 8", b"penguin parade"), frozenset()
    )
    assert [h.uid for h in local_hits(account.cache, ["Sent"], "penguin")] == [uid]
    account.cache.close()


async def test_undo_follows_a_message_moved_back_with_a_new_uid(tmp_path: Path) -> None:
    maildir = seed(tmp_path / "mail", 2)
    account = open_account(tmp_path)
    await account.sync_all()
    uid = account.cache.ordered_uids(INBOX)[0]
    flag = account.triage.submit(
        Action(kind="flags", folder=INBOX, uidvalidity=None, uids=(uid,), add=(FLAGGED,))
    )
    move = account.triage.submit(
        Action(kind="move", folder=INBOX, uidvalidity=None, uids=(uid,), dest="Trash")
    )
    account.triage.keep(flag)  # in the undo history, as MailApi.act keeps them
    account.triage.keep(move)
    await account.flush_actions()
    inverse = account.triage.inverse(move)
    assert not isinstance(inverse, str)
    for step in inverse:
        account.triage.submit(step)
    await account.flush_actions()
    [back] = [u for u in account.cache.ordered_uids(INBOX) if u != uid and u > 2]
    unflag = account.triage.inverse(flag)
    assert not isinstance(unflag, str) and [a.uids for a in unflag] == [(back,)]
    for step in unflag:
        account.triage.submit(step)
    await account.flush_actions()
    assert all(not m.flags for m in maildir.messages(INBOX))
    account.cache.close()


async def test_an_mbox_import_keeps_flags_and_adds_each_message_once(tmp_path: Path) -> None:
    """A Maildir account imports one message after another (no round trips to save), with
    the flags of the mbox's Status lines, and a second run adds nothing."""
    seed(tmp_path / "mail", 1)
    account = open_account(tmp_path)
    await account.sync_all()
    box = tmp_path / "in.mbox"
    flags = [{SEEN}, {FLAGGED, ANSWERED}, set()]
    box.write_bytes(b"".join(mbox_entry(message(n), flags[n - 1]) for n in (1, 2, 3)))
    items = transfer.read_source(box)
    first = await transfer.import_messages(account, INBOX, items)
    again = await transfer.import_messages(account, INBOX, items)
    assert (first.added, again.added, again.skipped) == (3, 0, 3)
    rows = account.cache.summaries(INBOX, account.cache.ordered_uids(INBOX)).values()
    by_subject = {s.envelope.subject: s.flags for s in rows}
    assert by_subject == {
        "message 0": frozenset(),
        "message 1": {SEEN},
        "message 2": {FLAGGED, ANSWERED},
        "message 3": frozenset(),
    }
    stored = [await account.fetch_body(INBOX, s.uid) for s in rows]
    assert not any(b"Status:" in (raw or b"") for raw in stored)  # bookkeeping, not mail
    account.cache.close()
