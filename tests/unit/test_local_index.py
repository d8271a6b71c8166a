"""The local account's pure parts: the rescan diff, Maildir flags, summaries from headers."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from kittiwake.core.cache import Cache
from kittiwake.core.local.account import role_of
from kittiwake.core.local.index import MAILDIR_FLAGS, FileIndex, plan_rescan
from kittiwake.core.local.summary import summary_from_bytes, summary_from_file
from kittiwake.core.maildir import flags_from_info, info_from_flags
from kittiwake.core.models import (
    ANSWERED,
    DELETED,
    DRAFT,
    FLAGGED,
    FORWARDED,
    JUNK,
    SEEN,
    FolderInfo,
    FolderRole,
)

# -- flags <-> Maildir info -----------------------------------------------------------------


def test_info_letters_map_to_imap_flags() -> None:
    assert flags_from_info("2,S") == {SEEN}
    assert flags_from_info("2,R") == {ANSWERED}
    assert flags_from_info("2,F") == {FLAGGED}
    assert flags_from_info("2,T") == {DELETED}
    assert flags_from_info("2,D") == {DRAFT}
    assert flags_from_info("2,DFPRST") == MAILDIR_FLAGS
    assert {SEEN, ANSWERED, FLAGGED, DELETED, DRAFT, FORWARDED} == MAILDIR_FLAGS
    assert info_from_flags({SEEN, FLAGGED}) == "2,FS"  # letters in ASCII order
    assert info_from_flags({SEEN, JUNK}) == "2,S"  # no letter for $Junk
    assert info_from_flags({SEEN}, previous="2,Sab") == "2,Sab"  # Dovecot keywords kept


@given(st.sets(st.sampled_from(sorted(MAILDIR_FLAGS))))
def test_flags_round_trip_through_the_file_name(flags: set[str]) -> None:
    assert flags_from_info(info_from_flags(flags)) == flags


def test_roles_of_local_folders() -> None:
    assert role_of("INBOX") is FolderRole.INBOX
    assert role_of("Sent") is FolderRole.SENT
    assert role_of("Drafts") is FolderRole.DRAFTS
    assert role_of("Trash") is FolderRole.TRASH
    assert role_of("Archive") is FolderRole.ARCHIVE
    assert role_of("Lists/python") is None


# -- the rescan diff ---------------------------------------------------------------------------


def test_rescan_plan_finds_new_gone_stale_and_changed_flags() -> None:
    files = {
        "k1": frozenset({SEEN}),
        "k2": frozenset(),
        "k4": frozenset({FLAGGED}),
        "k5": frozenset(),
    }
    mapping = {"k1": 1, "k2": 2, "k3": 3, "k4": 4}
    cached = {1: frozenset({SEEN, JUNK}), 2: frozenset({SEEN}), 3: frozenset(), 9: frozenset()}
    plan = plan_rescan(files, mapping, cached)
    assert plan.forget == ["k3"]  # its file is gone
    assert plan.new == ["k5"]  # a file nobody gave a UID yet
    assert plan.index == [("k4", 4)]  # mapped, not in the cache (an interrupted rescan)
    assert plan.stale == [3, 9]  # cached, no file
    # k1 unchanged: $Junk has no Maildir letter and is not a difference; k2 was read elsewhere
    assert plan.flags == {2: frozenset()}
    assert not plan.empty


def test_rescan_plan_of_a_folder_in_step_is_empty() -> None:
    files = {"a": frozenset({SEEN}), "b": frozenset()}
    plan = plan_rescan(files, {"a": 1, "b": 2}, {1: frozenset({SEEN}), 2: frozenset()})
    assert plan.empty


def test_keywords_without_a_letter_are_kept_when_flags_change() -> None:
    plan = plan_rescan({"a": frozenset({FLAGGED})}, {"a": 1}, {1: frozenset({SEEN, JUNK})})
    assert plan.flags == {1: frozenset({FLAGGED, JUNK})}


def test_uids_are_never_reused(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c.sqlite3")
    cache.set_folders([FolderInfo("INBOX", "/", FolderRole.INBOX)])
    index = FileIndex(cache)
    assert index.allocate("INBOX", 3) == [1, 2, 3]
    index.add("INBOX", [("a", 1), ("b", 2), ("c", 3)])
    index.forget("INBOX", ["c"])
    assert index.allocate("INBOX", 1) == [4]
    assert index.keys("INBOX") == {"a": 1, "b": 2}
    assert index.keys_of("INBOX", [2, 3]) == {2: "b"}
    state = cache.folder_state("INBOX")
    assert state is not None and state.uidvalidity is not None
    cache.close()
    again = FileIndex(Cache(tmp_path / "c.sqlite3"))  # kept in the cache file
    assert again.keys("INBOX") == {"a": 1, "b": 2}
    assert again.allocate("INBOX", 1) == [5]


def test_a_deleted_folder_takes_its_mapping_with_it(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c.sqlite3")
    cache.set_folders([FolderInfo("INBOX", "/"), FolderInfo("Old", "/")])
    index = FileIndex(cache)
    index.add("Old", [("a", 1)])
    cache.set_folders([FolderInfo("INBOX", "/")])
    cache.set_folders([FolderInfo("INBOX", "/"), FolderInfo("Old", "/")])
    assert index.keys("Old") == {}


# -- summaries from headers --------------------------------------------------------------------


RAW = (
    b"From: =?utf-8?q?J=C3=B6rg?= <jm@example.de>\r\n"
    b"To: Me <me@example.test>, other@example.test\r\n"
    b"Cc: cc@example.test\r\n"
    b"Subject: Hello\r\n  world\r\n"
    b"Date: Sat, 01 Mar 2025 10:00:00 +0100\r\n"
    b"Message-ID: <m1@example.de>\r\n"
    b"In-Reply-To: <m0@example.de> (comment)\r\n"
    b"References: <r1@x> <r2@x>\r\n <m0@example.de>\r\n"
    b"Content-Type: text/plain\r\n"
    b"\r\n"
    b"Body with\r\nReferences: <not@header>\r\n"
)


def test_summary_from_headers() -> None:
    s = summary_from_bytes(7, RAW, frozenset({SEEN}), arrived=1_740_000_000.0)
    env = s.envelope
    assert s.uid == 7 and s.flags == {SEEN} and s.size == len(RAW)
    assert env.subject == "Hello world"
    assert [str(a) for a in env.from_] == ["Jörg <jm@example.de>"]
    assert [a.addr for a in env.to] == ["me@example.test", "other@example.test"]
    assert [a.addr for a in env.cc] == ["cc@example.test"]
    assert env.date is not None and env.date.isoformat() == "2025-03-01T10:00:00+01:00"
    assert env.message_id == "<m1@example.de>"
    assert env.in_reply_to == "<m0@example.de>"
    assert s.references == ("<r1@x>", "<r2@x>", "<m0@example.de>")
    assert not s.has_attachments
    assert s.internal_date is not None and s.internal_date.timestamp() == 1_740_000_000.0


def test_attachments_are_seen_in_mixed_multiparts_only(tmp_path: Path) -> None:
    from email.message import EmailMessage

    msg = EmailMessage()
    msg["Subject"] = "report"
    msg.set_content("see attached")
    alternative = EmailMessage()
    alternative.set_content("text")
    alternative.add_alternative("<p>html</p>", subtype="html")
    assert not summary_from_bytes(1, msg.as_bytes(), frozenset(), None).has_attachments
    assert not summary_from_bytes(1, alternative.as_bytes(), frozenset(), None).has_attachments
    msg.add_attachment(b"%PDF", maintype="application", subtype="pdf", filename="r.pdf")
    path = tmp_path / "m"
    path.write_bytes(msg.as_bytes())
    assert summary_from_file(path, 1, frozenset()).has_attachments
    related = EmailMessage()
    related.set_content("no files")
    related.add_related(b"png", maintype="image", subtype="png", cid="<i@x>")
    assert not summary_from_bytes(1, related.as_bytes(), frozenset(), None).has_attachments


def test_malformed_messages_give_a_summary_not_an_error(tmp_path: Path) -> None:
    hostile = [
        b"",
        b"no headers at all, just text\n",
        b"\x00\xff\xfe binary \x80\x81\n\n\x00",
        b"Message-ID: <<<>>>@@\nDate: yesterday-ish\nFrom: <<@>>\nSubject: \xe9t\xe9\n\nbody",
        b"Content-Type: multipart/mixed; boundary=\n\n--\n--",
        b"Subject: =?utf-8?b?!!!?=\nFrom: a@b\nReferences: <<<\n\n",
        b"X: " + b"a" * 2_000_000 + b"\n\n",
    ]
    for n, raw in enumerate(hostile):
        path = tmp_path / f"m{n}"
        path.write_bytes(raw)
        s = summary_from_file(path, n + 1, frozenset())
        assert s.uid == n + 1 and s.size == len(raw)
    broken = summary_from_file(tmp_path / "m3", 4, frozenset())
    assert broken.envelope.subject == "été"  # raw 8-bit Latin-1 read as cp1252
    assert broken.envelope.date is None
