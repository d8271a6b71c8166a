"""Search through ``MailApi`` and ``kittiwake search`` against the real Dovecot: the cache
answers at once, the server completes it (bodies never downloaded, messages never synced,
other folders), and a malformed query is one sentence."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from harness import Dovecot, User
from harness.clients import imap_device

from kittiwake.core.api import MailApi
from kittiwake.core.config import config_from_dict
from kittiwake.core.engine import Engine
from kittiwake.core.events import MessagesAdded
from kittiwake.core.imap.account import ImapAccount
from kittiwake.core.search.query import QueryError
from kittiwake.core.search.service import Hit


def mail(subject: str, body: str, date: str, sender: str = "Zed <zed@example.org>") -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "me@example.test"
    msg["Subject"] = subject
    msg["Date"] = date
    msg["Message-ID"] = f"<{abs(hash((subject, date)))}@example.org>"
    msg.set_content(body)
    return msg.as_bytes()


INBOX = [
    mail("Quarterly numbers", "The secret word is pomegranate.\n", "Thu, 26 Nov 2026 10:00 +0000"),
    mail("Lunch", "Pizza at noon\n", "Fri, 27 Nov 2026 10:00 +0000", "Ann <ann@example.org>"),
    mail("Old news", "Ancient pomegranate\n", "Mon, 02 Jan 2006 10:00 +0000"),
]


def imap_settings(dovecot: Dovecot, user: User) -> dict[str, object]:
    return {
        "host": dovecot.host,
        "port": dovecot.ports.imaps,
        "security": "tls",
        "user": user.login,
        "password": user.password,
        "ca_file": str(dovecot.ca_file),
        "timeout": 5,
    }


@pytest.fixture
async def api(tmp_path: Path, dovecot: Dovecot, user: User) -> AsyncIterator[MailApi]:
    device = imap_device(dovecot, user)
    try:
        for raw in INBOX:
            assert device.append("INBOX", None, None, raw)[0] == "OK"
        assert device.create("Projects")[0] == "OK"
        raw = mail("Pomegranate plans", "planting\n", "Sat, 28 Nov 2026 10:00 +0000")
        assert device.append("Projects", None, None, raw)[0] == "OK"
    finally:
        device.logout()
    config = config_from_dict(
        {"accounts": {"acct": {"email": user.email, "imap": imap_settings(dovecot, user)}}}
    )
    engine = Engine(config, cache_dir=tmp_path / "cache")
    account = engine.stores["acct"]
    assert isinstance(account, ImapAccount)
    await account.connect_once()
    await account.sync_all()  # summaries only: no body is downloaded
    api = MailApi(engine)
    yield api
    await api.stop()


async def test_cache_at_once_then_server_completion(api: MailApi) -> None:
    # No body is cached: the cache cannot know the body word, the server can.
    assert api.search_cached("acct", "INBOX", "pomegranate") == []
    assert await api.search("acct", "INBOX", "pomegranate") == [Hit("INBOX", 1), Hit("INBOX", 3)]
    # Reading a message caches its body, and the cache's index learns its words.
    assert await api.message("acct", "INBOX", 1) is not None
    assert api.search_cached("acct", "INBOX", "pomegranate") == [Hit("INBOX", 1)]
    cached = api.search_cached("acct", "INBOX", "pomegranate")
    assert await api.search_server("acct", "INBOX", "pomegranate", cached) == [Hit("INBOX", 3)]
    # Headers are indexed by the cache as it stores them.
    assert api.search_cached("acct", "INBOX", "from:ann") == [Hit("INBOX", 2)]
    assert await api.search("acct", "INBOX", "from:ann") == [Hit("INBOX", 2)]


async def test_all_folders_and_folder_scope(api: MailApi) -> None:
    everywhere = await api.search("acct", None, "pomegranate")
    assert everywhere == [Hit("Projects", 1), Hit("INBOX", 1), Hit("INBOX", 3)]
    assert api.search_cached("acct", None, "subject:pomegranate") == [Hit("Projects", 1)]
    assert await api.search("acct", "Projects", "subject:quarterly") == []


async def test_messages_never_synced_are_fetched_into_the_cache(
    api: MailApi, dovecot: Dovecot, user: User
) -> None:
    device = imap_device(dovecot, user)
    try:
        raw = mail("Kumquat report", "fresh\n", "Sun, 29 Nov 2026 10:00 +0000")
        assert device.append("INBOX", None, None, raw)[0] == "OK"
    finally:
        device.logout()
    assert api.search_cached("acct", "INBOX", "kumquat") == []  # not synced yet
    async with api.subscribe() as events:
        hits = await api.search("acct", "INBOX", "kumquat")
        assert hits == [Hit("INBOX", 4)]
        added = await asyncio.wait_for(events.__anext__(), 5)
    assert isinstance(added, MessagesAdded) and added.uids == (4,)
    summary = api.summary_of("acct", hits[0])
    assert summary is not None and summary.envelope.subject == "Kumquat report"
    # Now cached (and indexed): the cache alone finds it.
    assert api.search_cached("acct", "INBOX", "kumquat") == [Hit("INBOX", 4)]


async def test_malformed_query_is_one_sentence(api: MailApi) -> None:
    with pytest.raises(QueryError) as caught:
        api.search_cached("acct", "INBOX", "from: (")
    assert caught.value.message.endswith(".") and "\n" not in caught.value.message
    with pytest.raises(QueryError):
        await api.search("acct", None, 'subject:"open')


# -- the command line ---------------------------------------------------------------------


def write_config(tmp_path: Path, dovecot: Dovecot, user: User) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f'[accounts.me]\nemail = "{user.email}"\n[accounts.me.imap]\n'
        f'host = "{dovecot.host}"\nport = {dovecot.ports.imaps}\nuser = "{user.login}"\n'
        f'password_env = "KW_TEST_PASSWORD"\nca_file = "{dovecot.ca_file}"\ntimeout = 5\n'
    )
    path.chmod(0o600)
    return path


def kittiwake(tmp_path: Path, user: User, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "KW_TEST_PASSWORD": user.password,
    }
    return subprocess.run(
        [sys.executable, "-m", "kittiwake.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_search_command_json_lines_and_errors(tmp_path: Path, dovecot: Dovecot, user: User) -> None:
    device = imap_device(dovecot, user)
    try:
        for raw in INBOX:
            assert device.append("INBOX", None, None, raw)[0] == "OK"
    finally:
        device.logout()
    cfg = str(write_config(tmp_path, dovecot, user))
    # Nothing cached yet: every hit comes from the server.
    out = kittiwake(tmp_path, user, "--config", cfg, "search", "--json", "pomegranate")
    assert out.returncode == 0, out.stderr
    found = json.loads(out.stdout)
    assert [(f["account"], f["folder"], f["uid"]) for f in found] == [
        ("me", "INBOX", 1),
        ("me", "INBOX", 3),
    ]
    assert found[0]["from"] == "Zed <zed@example.org>"
    assert found[0]["subject"] == "Quarterly numbers"
    assert found[0]["date"].startswith("2026-11-26T10:00")
    lines = kittiwake(tmp_path, user, "--config", cfg, "search", "--folder", "INBOX", "from:ann")
    assert lines.returncode == 0, lines.stderr
    cells = lines.stdout.strip().split("\t")
    assert cells[1:] == ["Ann <ann@example.org>", "Lunch", "INBOX", "2"]
    bad = kittiwake(tmp_path, user, "--config", cfg, "search", "is:sleepy")
    assert bad.returncode == 1 and bad.stdout == ""
    assert bad.stderr.count("\n") == 1 and bad.stderr.startswith("kittiwake: is:sleepy")
    missing = kittiwake(tmp_path, user, "--config", cfg, "search", "--folder", "Nope", "x")
    assert missing.returncode == 1 and "Nope" in missing.stderr
    # --folder without --account: the accounts that have the folder are searched, the others
    # (a POP3 account with only its local folders here) are passed over.
    with open(cfg, "a") as more:
        more.write(
            f'[accounts.home]\nemail = "{user.email}"\n[accounts.home.pop3]\n'
            f'host = "{dovecot.host}"\nport = {dovecot.ports.pop3s}\nuser = "{user.login}"\n'
            f'password_env = "KW_TEST_PASSWORD"\nca_file = "{dovecot.ca_file}"\n'
        )
    both = kittiwake(tmp_path, user, "--config", cfg, "search", "--folder", "INBOX", "from:ann")
    assert both.returncode == 0, both.stderr
    assert "Lunch" in both.stdout
    # A reader that stops early (`| head`) is not an error: no traceback, exit 0.
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "KW_TEST_PASSWORD": user.password,
    }
    log = tmp_path / "state" / "kittiwake" / "kittiwake.log"
    before = log.read_text() if log.exists() else ""
    proc = subprocess.Popen(
        [sys.executable, "-m", "kittiwake.cli.main", "--config", cfg, "search", "--json", "a"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # closed before the command writes anything
    assert proc.wait(60) == 0
    assert proc.stderr.read() == b""
    proc.stderr.close()
    assert "Traceback" not in log.read_text()[len(before) :]
