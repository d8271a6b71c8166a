"""The local Maildir++ tree: names, flags, delivery, moves, and hostile input."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kittiwake.core.maildir import (
    INBOX,
    STANDARD_FOLDERS,
    Maildir,
    MaildirError,
    flags_from_info,
    folder_dirname,
    folder_from_dirname,
    info_from_flags,
    is_valid_key,
    split_filename,
    unique_name,
)
from kittiwake.core.models import ANSWERED, DELETED, DRAFT, FLAGGED, FORWARDED, JUNK, SEEN

ALL_FLAGS = [SEEN, ANSWERED, FLAGGED, DELETED, DRAFT, FORWARDED]


# --------------------------------------------------------------------------- names


def test_unique_name_shape_and_uniqueness() -> None:
    name = unique_name(1764201600.25, pid=42, counter=7, random=0xABC, host="my/host:x")
    assert name == "1764201600.M250000P42Q7R0000000000000abc.my_host_x"
    names = {unique_name() for _ in range(5000)}
    assert len(names) == 5000
    for n in list(names)[:50]:
        assert re.fullmatch(r"\d+\.M\d+P\d+Q\d+R[0-9a-f]{16}\.[A-Za-z0-9._-]+", n)
        assert is_valid_key(n)


@given(st.text(max_size=80))
def test_hostile_host_never_breaks_a_name(host: str) -> None:
    name = unique_name(host=host)
    assert is_valid_key(name)
    assert "/" not in name and ":" not in name


def test_split_filename() -> None:
    assert split_filename("123.M1P2.h:2,FS") == ("123.M1P2.h", "2,FS")
    assert split_filename("123.M1P2.h") == ("123.M1P2.h", "")
    assert split_filename("123.M1P2.h,S=1234:2,") == ("123.M1P2.h,S=1234", "2,")


# --------------------------------------------------------------------------- flags


def test_flags_mapping() -> None:
    assert flags_from_info("2,DFPRST") == frozenset(ALL_FLAGS)
    assert flags_from_info("2,S") == {SEEN}
    assert flags_from_info("2,Tab") == {DELETED}
    assert flags_from_info("1,S") == frozenset()  # experimental info: no flags
    assert flags_from_info("") == frozenset()
    assert info_from_flags([SEEN, FLAGGED, ANSWERED]) == "2,FRS"
    assert info_from_flags([]) == "2,"
    assert info_from_flags([JUNK, "$Label1"]) == "2,"  # no letter: dropped
    assert info_from_flags([SEEN], previous="2,Fab") == "2,Sab"  # Dovecot keywords kept


@given(st.sets(st.sampled_from(ALL_FLAGS)))
def test_flags_roundtrip(flags: set[str]) -> None:
    info = info_from_flags(flags)
    assert flags_from_info(info) == flags
    letters = info[2:]
    assert list(letters) == sorted(letters)  # the spec: ASCII order


@given(st.text(max_size=20))
def test_hostile_info_never_crashes(info: str) -> None:
    flags = flags_from_info(info)
    assert flags <= set(ALL_FLAGS)
    again = info_from_flags(flags, info)
    assert again.startswith("2,") and "/" not in again


# --------------------------------------------------------------------------- folder names


def test_folder_dirnames() -> None:
    assert folder_dirname("INBOX") == ""
    assert folder_dirname("inbox") == ""
    assert folder_dirname("Sent") == ".Sent"
    assert folder_dirname("Lists/python") == ".Lists.python"
    assert folder_dirname("Entwürfe") == ".Entw&APw-rfe"
    assert folder_dirname("R&D") == ".R&-D"
    assert folder_from_dirname(".Entw&APw-rfe") == "Entwürfe"
    assert folder_from_dirname(".Lists.python") == "Lists/python"
    for bad in ("", "a//b", "/a", "a/", "..", "a.b", "../etc", "x\x00y", " a", "INBOX/sub"):
        with pytest.raises(ValueError):
            folder_dirname(bad)
    for not_folder in ("cur", ".", "..", ".a..b", "..x"):
        assert folder_from_dirname(not_folder) is None


@given(st.text(max_size=60))
def test_hostile_folder_names(name: str) -> None:
    try:
        dirname = folder_dirname(name)
    except ValueError:
        return
    if dirname == "":
        assert name.upper() == "INBOX"
        return
    root = Path("/maildir")
    assert dirname.startswith(".") and dirname not in (".", "..")
    assert "/" not in dirname and "\x00" not in dirname
    assert (root / dirname).parent == root
    assert folder_from_dirname(dirname) == name


@given(st.text(max_size=60))
def test_hostile_keys(key: str) -> None:
    if not is_valid_key(key):
        return
    base = Path("/maildir/cur")
    path = base / key
    assert path.parent == base
    assert os.path.normpath(path) == str(path)
    assert not key.startswith(".")


# --------------------------------------------------------------------------- the tree


@pytest.fixture
def md(tmp_path: Path) -> Maildir:
    return Maildir(tmp_path / "mail")


def test_tree_layout(md: Maildir) -> None:
    for sub in ("cur", "new", "tmp"):
        assert (md.root / sub).is_dir()
    for name in STANDARD_FOLDERS:
        folder = md.root / f".{name}"
        for sub in ("cur", "new", "tmp"):
            assert (folder / sub).is_dir()
        assert (folder / "maildirfolder").is_file()
    assert md.folders() == [INBOX, "Archive", "Drafts", "Sent", "Trash"]
    assert oct(md.root.stat().st_mode & 0o777) == "0o700"
    Maildir(md.root)  # opening an existing tree changes nothing
    with pytest.raises(MaildirError):
        Maildir(md.root.parent / "nothing", create=False)


def test_deliver_read_flags_move_delete(md: Maildir) -> None:
    msg = md.add(INBOX, b"Subject: hi\r\n\r\nbody\r\n")
    assert msg.subdir == "new" and msg.flags == frozenset()
    assert msg.path.parent == md.root / "new"
    assert md.read(INBOX, msg.key) == b"Subject: hi\r\n\r\nbody\r\n"
    assert list((md.root / "tmp").iterdir()) == []
    assert oct(msg.path.stat().st_mode & 0o777) == "0o600"

    seen = md.set_flags(INBOX, msg.key, {SEEN, FLAGGED})
    assert seen.subdir == "cur" and seen.filename == f"{msg.key}:2,FS"
    assert not msg.path.exists() and seen.path.exists()
    assert md.get(INBOX, msg.key).flags == {SEEN, FLAGGED}
    assert md.add_flags(INBOX, msg.key, {ANSWERED}).flags == {SEEN, FLAGGED, ANSWERED}
    assert md.remove_flags(INBOX, msg.key, {FLAGGED}).flags == {SEEN, ANSWERED}

    moved = md.move(INBOX, msg.key, "Archive")
    assert moved.key == msg.key and moved.flags == {SEEN, ANSWERED}
    assert moved.path.parent == md.root / ".Archive" / "cur"
    assert md.find(INBOX, msg.key) is None
    assert md.locate(msg.key) == moved
    assert md.read("Archive", msg.key).endswith(b"body\r\n")

    copy = md.copy("Archive", msg.key, "Trash")
    assert copy.key != msg.key and copy.flags == {SEEN, ANSWERED}

    md.delete("Archive", msg.key)
    assert md.locate(msg.key) is None
    with pytest.raises(MaildirError):
        md.get("Archive", msg.key)


def test_sent_copy_goes_to_cur_with_flags(md: Maildir) -> None:
    msg = md.add("Sent", b"x\r\n", {SEEN}, mtime=1_000_000_000)
    assert msg.subdir == "cur" and msg.filename.endswith(":2,S")
    assert msg.path.stat().st_mtime == 1_000_000_000


def test_hostile_keys_are_refused(md: Maildir) -> None:
    md.add(INBOX, b"x\r\n")
    for bad in ("../../etc/passwd", "a/b", ".hidden", "", "x:2,S", "a\x00b", " x"):
        with pytest.raises(ValueError):
            md.find(INBOX, bad)
    with pytest.raises(ValueError):
        md.spool(INBOX, key="../escape")
    with pytest.raises(ValueError):
        md.folder_path("../../etc")


def test_listing_skips_what_is_not_a_message(md: Maildir) -> None:
    good = md.add(INBOX, b"x\r\n")
    (md.root / "cur" / ".hidden").write_bytes(b"x")
    (md.root / "new" / ".nfs0001").write_bytes(b"x")
    (md.root / "not-a-folder").mkdir()
    (md.root / ".nocur").mkdir()
    other = "1700000000.M1P1.other,S=3:2,RS"  # another program's delivery
    (md.root / "cur" / other).write_bytes(b"y\r\n")
    keys = {m.key: m for m in md.messages(INBOX)}
    assert set(keys) == {good.key, "1700000000.M1P1.other,S=3"}
    assert keys["1700000000.M1P1.other,S=3"].flags == {SEEN, ANSWERED}
    assert md.folders() == [INBOX, "Archive", "Drafts", "Sent", "Trash"]


def test_finds_a_message_renamed_by_another_program(md: Maildir) -> None:
    msg = md.add(INBOX, b"x\r\n")
    md.get(INBOX, msg.key)  # indexed
    os.rename(msg.path, md.root / "cur" / f"{msg.key}:2,S")  # mutt marked it read
    assert md.get(INBOX, msg.key).flags == {SEEN}
    assert md.read(INBOX, msg.key) == b"x\r\n"


def test_folders_create_rename_delete(md: Maildir) -> None:
    md.create_folder("Lists/python")
    md.create_folder("Entwürfe")
    assert "Lists/python" in md.folders() and "Entwürfe" in md.folders()
    assert (md.root / ".Entw&APw-rfe" / "maildirfolder").exists()
    msg = md.add("Lists/python", b"x\r\n")
    md.rename_folder("Lists/python", "Lists/py")
    assert md.read("Lists/py", msg.key) == b"x\r\n"
    with pytest.raises(MaildirError):
        md.delete_folder("Lists/py")  # not empty
    md.delete("Lists/py", msg.key)
    md.delete_folder("Lists/py")
    assert "Lists/py" not in md.folders()
    with pytest.raises(MaildirError):
        md.delete_folder(INBOX)
    with pytest.raises(ValueError):
        md.create_folder("a.b")


def test_spool_commit_and_recover(md: Maildir) -> None:
    spool = md.spool()
    spool.write(b"part one ")
    spool.write(b"part two\r\n")
    assert spool.path.parent == md.root / "tmp"
    assert spool.size == 19
    [delivered] = md.commit([spool])
    assert delivered.path == md.root / "new" / spool.key
    assert delivered.path.read_bytes() == b"part one part two\r\n"

    # a crash after the spool was complete but before the rename: recovery delivers it
    crashed = md.spool()
    crashed.write(b"complete\r\n")
    crashed.sync()
    got = md.recover_spool(INBOX, crashed.key, 10)
    assert got is not None and got.path.read_bytes() == b"complete\r\n"
    # an incomplete spool (size differs) is removed instead
    partial = md.spool()
    partial.write(b"trunc")
    partial.sync()
    assert md.recover_spool(INBOX, partial.key, 100) is None
    assert not partial.path.exists()
    assert md.recover_spool(INBOX, "1.M1P1Q1R1.nothing", 1) is None


def test_discard_and_clean_tmp(md: Maildir) -> None:
    spool = md.spool()
    spool.write(b"half")
    spool.discard()
    assert not spool.path.exists()
    old = md.root / ".Sent" / "tmp" / "old-delivery"
    old.write_bytes(b"x")
    fresh = md.root / "tmp" / "fresh-delivery"
    fresh.write_bytes(b"x")
    past = time.time() - 40 * 3600
    os.utime(old, (past, past))
    assert md.clean_tmp() == 1
    assert not old.exists() and fresh.exists()


@settings(max_examples=50, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sets(st.sampled_from(ALL_FLAGS)), min_size=1, max_size=6))
def test_flag_changes_keep_one_file(tmp_path: Path, changes: list[set[str]]) -> None:
    md = Maildir(tmp_path / f"m{time.monotonic_ns()}")
    msg = md.add(INBOX, b"x\r\n")
    for flags in changes:
        assert md.set_flags(INBOX, msg.key, flags).flags == flags
    files = list((md.root / "cur").iterdir()) + list((md.root / "new").iterdir())
    assert len(files) == 1
    assert md.get(INBOX, msg.key).flags == changes[-1]
