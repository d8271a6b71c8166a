"""A POP3 account in the engine, against the real Dovecot: downloaded mail shows in the API
like IMAP mail, new mail arrives as events, triage works on the local Maildir, and
``kittiwake sync`` downloads too."""

from __future__ import annotations

import os
import smtplib
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from harness import Dovecot, User, make_message

from kittiwake.core.api import MailApi
from kittiwake.core.config import Config, config_from_dict
from kittiwake.core.engine import Engine
from kittiwake.core.events import ConnectionChanged, ConnState, MessagesAdded, SyncError
from kittiwake.core.journal import Action
from kittiwake.core.local.account import LocalAccount
from kittiwake.core.maildir import INBOX, Maildir
from kittiwake.core.models import FLAGGED, SEEN, FolderRole

DEADLINE = 15.0


@pytest.fixture
def xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("CACHE", "STATE", "DATA"):
        monkeypatch.setenv(f"XDG_{name}_HOME", str(tmp_path / name.lower()))
    return tmp_path


def deliver(dovecot: Dovecot, user: User, subjects: list[str], raw: list[bytes] = []) -> None:  # noqa: B006
    with smtplib.LMTP(dovecot.host, dovecot.ports.lmtp, timeout=60) as lmtp:
        for subject in subjects:
            msg = make_message(
                sender="Ann Lee <ann@example.org>", to=[user.email], subject=subject, body="hi\n"
            )
            assert not lmtp.sendmail("ann@example.org", [user.email], msg)
        for msg in raw:
            assert not lmtp.sendmail("ann@example.org", [user.email], msg)


def pop3_config(dovecot: Dovecot, user: User, **pop3: Any) -> Config:
    return config_from_dict(
        {
            "accounts": {
                "home": {
                    "email": user.email,
                    "pop3": {
                        "host": dovecot.host,
                        "port": dovecot.ports.pop3s,
                        "user": user.login,
                        "password": user.password,
                        "ca_file": str(dovecot.ca_file),
                        "timeout": 5,
                        "check_every": "1h",
                        **pop3,
                    },
                }
            }
        }
    )


def local_of(api: MailApi) -> LocalAccount:
    return api.engine.local["home"]


async def test_downloaded_mail_shows_in_the_api_and_new_mail_arrives_as_events(
    xdg: Path, dovecot: Dovecot, user: User
) -> None:
    deliver(dovecot, user, [f"first {n:02d}" for n in range(20)])
    api = MailApi(Engine(pop3_config(dovecot, user)))
    async with api.subscribe() as events:
        api.start()
        try:
            await events.wait_for(ConnectionChanged, DEADLINE, state=ConnState.ONLINE)
            assert api.synced("home")
            index = api.message_index("home", INBOX)
            assert len(index) == 20
            rows = api.summaries("home", INBOX, index)
            assert sorted(r.envelope.subject for r in rows.values()) == [
                f"first {n:02d}" for n in range(20)
            ]
            first = rows[index[0]]
            assert first.envelope.from_[0].addr == "ann@example.org"
            assert first.envelope.to[0].addr == user.email
            assert first.envelope.message_id and first.envelope.date is not None
            assert SEEN not in first.flags and first.size > 100
            assert api.counts("home", INBOX) == (20, 20)
            folders = {f.name: f.role for f in api.folders("home")}
            assert folders == {
                "INBOX": FolderRole.INBOX,
                "Archive": FolderRole.ARCHIVE,
                "Drafts": FolderRole.DRAFTS,
                "Sent": FolderRole.SENT,
                "Trash": FolderRole.TRASH,
            }
            assert api.role_folder("home", FolderRole.SENT) == "Sent"
            left = api.next_check_in("home")
            assert left is not None and 3500 < left <= 3600
            parsed = await api.message("home", INBOX, index[0])
            assert parsed is not None and (parsed.text or "").strip() == "hi"
            assert api.engine.traffic("home") > 20 * 100

            events.pending()
            deliver(dovecot, user, ["second 1", "second 2", "second 3"])
            await api.check_now("home")  # ctrl+r
            added = await events.wait_for(MessagesAdded, DEADLINE, account="home", folder=INBOX)
            new = [*added.summaries]
            new += [
                s for e in events.pending() if isinstance(e, MessagesAdded) for s in e.summaries
            ]
            assert sorted(s.envelope.subject for s in new) == ["second 1", "second 2", "second 3"]
            assert len(api.message_index("home", INBOX)) == 23
            assert len(Maildir(Path(xdg / "data/kittiwake/mail/home")).messages(INBOX)) == 23

            await api.check_now()  # nothing new: nothing added
            assert not [e for e in events.pending() if isinstance(e, MessagesAdded)]
        finally:
            await api.stop()


async def test_triage_on_the_local_maildir_with_undo(
    xdg: Path, dovecot: Dovecot, user: User
) -> None:
    deliver(dovecot, user, ["keep", "archive me", "delete me"])
    api = MailApi(Engine(pop3_config(dovecot, user, maildir=str(xdg / "Mail"))))
    async with api.subscribe() as events:
        api.start()
        try:
            await events.wait_for(ConnectionChanged, DEADLINE, state=ConnState.ONLINE)
            local = local_of(api)
            maildir = Maildir(xdg / "Mail")
            by_subject = {
                s.envelope.subject: s
                for s in api.summaries("home", INBOX, api.message_index("home", INBOX)).values()
            }
            keep = by_subject["keep"].uid

            def act(**kw: Any) -> Action:
                return api.act("home", Action(folder=INBOX, uidvalidity=None, **kw))

            act(kind="flags", uids=(keep,), add=(FLAGGED, SEEN))
            assert api.summaries("home", INBOX, [keep])[keep].flags == {FLAGGED, SEEN}  # at once
            await local.flush_actions()
            [kept] = [m for m in maildir.messages(INBOX) if m.flags]
            assert kept.subdir == "cur" and kept.filename.endswith(":2,FS")

            gone = by_subject["archive me"].uid
            act(kind="move", uids=(gone,), dest="Archive")
            assert gone not in api.message_index("home", INBOX)
            [moved] = api.summaries(
                "home", "Archive", api.message_index("home", "Archive")
            ).values()
            assert moved.envelope.subject == "archive me"
            await local.flush_actions()
            assert len(maildir.messages("Archive")) == 1 and len(maildir.messages(INBOX)) == 2

            assert api.undo().startswith("Undone")
            await local.flush_actions()
            assert maildir.messages("Archive") == [] and len(maildir.messages(INBOX)) == 3
            back = api.summaries("home", INBOX, api.message_index("home", INBOX))
            assert sorted(s.envelope.subject for s in back.values()) == [
                "archive me",
                "delete me",
                "keep",
            ]
            body = await api.message("home", INBOX, next(iter(back)))
            assert body is not None  # the moved-back file is found under its new UID

            doomed = by_subject["delete me"].uid
            act(kind="expunge", uids=(doomed,))
            await local.flush_actions()
            assert len(maildir.messages(INBOX)) == 2
            assert "cannot be brought back" in api.undo()
            assert api.pending_actions("home") == 0
            # Another program changes the Maildir: a rescan (opening the folder) follows it.
            maildir.add("Archive", b"Subject: from mutt\r\n\r\nhi\r\n")
            await api.open_folder("home", "Archive")
            [other] = api.summaries(
                "home", "Archive", api.message_index("home", "Archive")
            ).values()
            assert other.envelope.subject == "from mutt"
            assert not [e for e in events.pending() if isinstance(e, SyncError)]
        finally:
            await api.stop()


async def test_a_malformed_message_is_downloaded_indexed_and_read(
    xdg: Path, dovecot: Dovecot, user: User
) -> None:
    hostile = (
        b"Subject: \xff\xfe =?bogus?q?x?= \x1b[31mred\r\n"
        b"From: <<<@@>>>\r\nDate: the day after tomorrow\r\n"
        b"Message-ID: <<<>>>@@\r\nContent-Type: multipart/mixed; boundary=\r\n"
        b"\r\n--\r\n\x00\x01 body \xff\r\n"
    )
    deliver(dovecot, user, ["fine"], raw=[hostile])
    api = MailApi(Engine(pop3_config(dovecot, user)))
    async with api.subscribe() as events:
        api.start()
        try:
            await events.wait_for(ConnectionChanged, DEADLINE, state=ConnState.ONLINE)
            index = api.message_index("home", INBOX)
            assert len(index) == 2
            rows = api.summaries("home", INBOX, index)
            [bad] = [s for s in rows.values() if s.envelope.subject != "fine"]
            assert bad.envelope.date is None
            parsed = await api.message("home", INBOX, bad.uid)
            assert parsed is not None and b"body" in parsed.raw
        finally:
            await api.stop()


async def test_a_failed_check_says_where_in_one_sentence(
    xdg: Path, dovecot: Dovecot, user: User
) -> None:
    api = MailApi(Engine(pop3_config(dovecot, user, port=1)))
    async with api.subscribe() as events:
        api.start()
        try:
            offline = await events.wait_for(ConnectionChanged, DEADLINE, state=ConnState.OFFLINE)
            assert f"{dovecot.host}:1" in (offline.reason or "")
            error = await events.wait_for(SyncError, DEADLINE, account="home")
            assert error.message == offline.reason
            assert local_of(api).is_synced  # the local mailbox works without the server
        finally:
            await api.stop()


def test_kittiwake_sync_downloads_pop3_mail(tmp_path: Path, dovecot: Dovecot, user: User) -> None:
    deliver(dovecot, user, ["one", "two", "three", "four", "five"])
    config = tmp_path / "config.toml"
    config.write_text(
        f'[accounts.home]\nemail = "{user.email}"\n[accounts.home.pop3]\n'
        f'host = "{dovecot.host}"\nport = {dovecot.ports.pop3s}\nuser = "{user.login}"\n'
        f'password_env = "KW_TEST_PASSWORD"\nca_file = "{dovecot.ca_file}"\ntimeout = 5\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "KITTIWAKE"))}
    env.update(
        HOME=str(tmp_path),
        XDG_CACHE_HOME=str(tmp_path / "cache"),
        XDG_STATE_HOME=str(tmp_path / "state"),
        XDG_DATA_HOME=str(tmp_path / "data"),
        KW_TEST_PASSWORD=user.password,
    )

    def sync() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "kittiwake.cli.main", "--config", str(config), "sync"],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            check=False,
        )

    done = sync()
    assert done.returncode == 0, done.stderr
    assert "home: 5 folders, 5 messages (5 fetched)" in done.stdout
    maildir = Maildir(tmp_path / "data/kittiwake/mail/home")
    assert len(maildir.messages(INBOX)) == 5
    assert (tmp_path / "data/kittiwake/pop3/home.sqlite3").is_file()
    again = sync()
    assert again.returncode == 0 and "5 messages (0 fetched)" in again.stdout

    env["KW_TEST_PASSWORD"] = "wrong"
    failed = sync()
    assert failed.returncode != 0
    assert f"{dovecot.host}:{dovecot.ports.pop3s}" in failed.stderr
    assert failed.stderr.strip().count("\n") == 0  # one sentence


async def test_deliver_to_fills_a_folder_of_an_imap_account(
    xdg: Path, dovecot: Dovecot, user: User, user2: User
) -> None:
    deliver(dovecot, user, ["fetched 1", "fetched 2"])
    data: dict[str, Any] = {
        "accounts": {
            "work": {
                "email": user2.email,
                "imap": {
                    "host": dovecot.host,
                    "port": dovecot.ports.imaps,
                    "user": user2.login,
                    "password": user2.password,
                    "ca_file": str(dovecot.ca_file),
                    "timeout": 5,
                },
            },
            "home": {
                "email": user.email,
                "pop3": {
                    "host": dovecot.host,
                    "port": dovecot.ports.pop3s,
                    "user": user.login,
                    "password": user.password,
                    "ca_file": str(dovecot.ca_file),
                    "timeout": 5,
                    "check_every": "1h",
                    "deliver_to": "work/Fetched",
                },
            },
        }
    }
    config = config_from_dict(data)
    api = MailApi(Engine(config))
    api.start()
    try:
        await api.engine.imap["work"].wait_synced(DEADLINE)
        await api.check_now("home")
        rows = api.summaries("work", "Fetched", api.message_index("work", "Fetched"))
        assert sorted(s.envelope.subject for s in rows.values()) == ["fetched 1", "fetched 2"]
        assert "Fetched" in {f.name for f in api.folders("work")}
        assert not api.message_index("home", INBOX)  # not in the local Maildir
    finally:
        await api.stop()
