"""``kittiwake export`` then ``kittiwake import`` into another folder, as a user runs them
(real processes, the real Dovecot): the same messages arrive, once, however often it is run,
with their flags and INTERNALDATEs (mbox Status lines, Maildir info letters); a Maildir
imports the same way."""

from __future__ import annotations

import imaplib
import mailbox
import re
import subprocess
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from harness import Dovecot, User
from harness.clients import imap_device, imap_fetch_all
from harness.mail import BARE_CAPS
from test_sync_command import env, kittiwake, write_config

from kittiwake.core import transfer
from kittiwake.core.cache import Cache
from kittiwake.core.config import config_from_dict
from kittiwake.core.events import EventBus
from kittiwake.core.imap.account import ImapAccount
from kittiwake.core.imap.client import ImapClient
from kittiwake.core.message.mbox import mbox_entry
from kittiwake.core.models import SEEN


def sample(n: int, *, with_id: bool = True) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Ann <ann@example.org>"
    msg["To"] = "me@example.test"
    msg["Subject"] = f"[PATCH {n}/4] part {n}"
    msg["Date"] = f"Tue, 0{n} Mar 2025 10:00:00 +0000"
    if with_id:
        msg["Message-ID"] = f"<patch{n}@example.org>"
    msg.set_content(f"From the start of line {n}\n>From quoted\nbody {n}\n")
    return msg.as_bytes().replace(b"\n", b"\r\n")


def folder_bytes(dovecot: Dovecot, user: User, folder: str) -> list[bytes]:
    device = imap_device(dovecot, user)
    try:
        return imap_fetch_all(device, folder)
    finally:
        device.logout()


#: The flags each sample is appended with, and the INTERNALDATE (unlike its Date header).
FLAGS = {1: "(\\Seen)", 2: "(\\Answered \\Flagged)", 3: "(\\Draft \\Seen)", 4: "()"}
ARRIVED = {n: f'"1{n}-Apr-2025 08:30:00 +0000"' for n in FLAGS}


def flags_and_dates(dovecot: Dovecot, user: User, folder: str) -> dict[str, tuple[str, str]]:
    """Subject -> (sorted flags, INTERNALDATE) of every message in ``folder``."""
    device = imap_device(dovecot, user)
    try:
        device.select(folder, readonly=True)
        typ, data = device.uid("FETCH", "1:*", "(FLAGS INTERNALDATE BODY.PEEK[HEADER])")
        assert typ == "OK"
    finally:
        device.logout()
    out: dict[str, tuple[str, str]] = {}
    for item in data:
        if not isinstance(item, tuple):
            continue
        meta = item[0].decode()
        flags = re.search(r"FLAGS \(([^)]*)\)", meta)
        date = re.search(r'INTERNALDATE "([^"]+)"', meta)
        subject = re.search(rb"^Subject: ([^\r\n]*)", item[1], re.M)
        assert flags and date and subject, meta
        kept = sorted(f for f in flags.group(1).split() if f != "\\Recent")
        out[subject.group(1).decode()] = (" ".join(kept), date.group(1))
    return out


def run(tmp_path: Path, user: User, *args: str) -> subprocess.CompletedProcess[str]:
    done = kittiwake(*args, env=env(tmp_path, user))
    assert done.returncode == 0, done.stderr
    return done


def test_export_then_import_gives_the_same_messages_once(
    tmp_path: Path, dovecot: Dovecot, user: User
) -> None:
    device = imap_device(dovecot, user)
    device.create("Copy")
    for n in (1, 2, 3, 4):
        when = imaplib.Internaldate2tuple(f"INTERNALDATE {ARRIVED[n]}".encode())
        device.append("INBOX", FLAGS[n], when, sample(n, with_id=n != 4))
    device.logout()
    config = str(write_config(tmp_path, dovecot, user))
    box = tmp_path / "out" / "inbox.mbox"
    done = run(
        tmp_path,
        user,
        "export",
        "--config",
        config,
        "--account",
        "me",
        "--folder",
        "INBOX",
        str(box),
    )
    assert "Exported 4 message(s)" in done.stdout
    assert (box.stat().st_mode & 0o777) == 0o600
    parsed = mailbox.mbox(box)
    assert [m["Subject"] for m in parsed] == [f"[PATCH {n}/4] part {n}" for n in (1, 2, 3, 4)]
    # mutt's Status/X-Status letters (Python's mbox reads them the same way), one of each.
    assert [sorted(m.get_flags()) for m in parsed] == [
        ["O", "R"],
        ["A", "F", "O"],
        ["O", "R", "T"],
        ["O"],
    ]
    assert [len(m.get_all("Status")) for m in parsed] == [1, 1, 1, 1]
    assert [m.get_from().split(" ", 1)[1] for m in parsed][:2] == [
        "Fri Apr 11 08:30:00 2025",
        "Sat Apr 12 08:30:00 2025",
    ]  # the INTERNALDATE, not the Date header
    parsed.close()
    # An existing file is never overwritten.
    again = kittiwake(
        "export",
        "--config",
        config,
        "--account",
        "me",
        "--folder",
        "INBOX",
        str(box),
        env=env(tmp_path, user),
    )
    assert again.returncode == 1 and "exists already" in again.stderr
    for _ in range(2):  # the second run adds nothing
        done = run(
            tmp_path,
            user,
            "import",
            "--config",
            config,
            "--account",
            "me",
            "--folder",
            "Copy",
            str(box),
        )
    assert "Imported 0 messages into Copy; 4 already there" in done.stdout
    assert sorted(folder_bytes(dovecot, user, "Copy")) == sorted(
        folder_bytes(dovecot, user, "INBOX")
    )
    # The flags and INTERNALDATEs came along (and the Status lines were not stored).
    assert flags_and_dates(dovecot, user, "Copy") == flags_and_dates(dovecot, user, "INBOX")
    assert flags_and_dates(dovecot, user, "Copy")["[PATCH 2/4] part 2"][0] == (
        "\\Answered \\Flagged"
    )
    # .eml files, then a Maildir of them, into a third folder: again the same bytes.
    emls = tmp_path / "eml"
    run(
        tmp_path,
        user,
        "export",
        "--config",
        config,
        "--account",
        "me",
        "--folder",
        "INBOX",
        "--eml",
        str(emls),
    )
    files = sorted(emls.iterdir())
    assert len(files) == 4 and files[0].name.startswith("0001 [PATCH 1_4] part 1")
    maildir = tmp_path / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True)
    letters = ["S", "FR", "DS", ""]  # Maildir's info letters for the same flags
    for i, f in enumerate(files):
        (maildir / "cur" / f"{i}.host:2,{letters[i]}").write_bytes(f.read_bytes())
    device = imap_device(dovecot, user)
    device.create("Third")
    device.logout()
    for _ in range(2):
        done = run(
            tmp_path,
            user,
            "import",
            "--config",
            config,
            "--account",
            "me",
            "--folder",
            "Third",
            str(maildir),
        )
    assert "4 already there" in done.stdout
    third = folder_bytes(dovecot, user, "Third")
    assert sorted(third) == sorted(folder_bytes(dovecot, user, "INBOX"))
    flags = {s: f for s, (f, _) in flags_and_dates(dovecot, user, "Third").items()}
    assert flags == {s: f for s, (f, _) in flags_and_dates(dovecot, user, "INBOX").items()}


@pytest.mark.parametrize(
    ("caps", "commands"),
    [
        pytest.param("", 3, id="multiappend"),
        pytest.param(BARE_CAPS, 10, id="one-append-each-without-multiappend"),
    ],
)
async def test_import_goes_in_batches_with_progress_after_each(
    tmp_path: Path,
    dovecot_factory: Callable[..., Dovecot],
    monkeypatch: pytest.MonkeyPatch,
    caps: str,
    commands: int,
) -> None:
    """Ten messages in batches of four: three MULTIAPPEND commands where the server has it
    (one APPEND each elsewhere), progress after each batch, each message once, with its
    flags, also when run again."""
    server = dovecot_factory(extra_conf=caps) if caps else dovecot_factory()
    user = server.add_user("batch")
    box = tmp_path / "ten.mbox"
    box.write_bytes(
        b"".join(
            mbox_entry(sample(n % 4 + 1).replace(b"patch", b"p%d." % n), {SEEN} if n % 2 else ())
            for n in range(10)
        )
    )
    config = config_from_dict(
        {
            "accounts": {
                "acct": {
                    "email": user.email,
                    "imap": {
                        "host": server.host,
                        "port": server.ports.imaps,
                        "user": user.login,
                        "password": user.password,
                        "ca_file": str(server.ca_file),
                        "timeout": 5,
                    },
                }
            }
        }
    )
    account = ImapAccount(config.accounts["acct"], Cache(tmp_path / "c.sqlite3"), EventBus())
    sent: list[str] = []
    run_command = ImapClient.run

    async def counting(self: ImapClient, line: str, *args: Any, **kw: Any) -> Any:
        if line.startswith("APPEND"):
            sent.append(line)
        return await run_command(self, line, *args, **kw)

    monkeypatch.setattr(ImapClient, "run", counting)
    monkeypatch.setattr(transfer, "BATCH_COUNT", 4)
    try:
        account.start()
        await account.wait_synced(10)
        items = transfer.read_source(box)
        seen: list[tuple[int, int]] = []
        result = await transfer.import_messages(
            account, "INBOX", items, lambda done, total: seen.append((done, total))
        )
        assert (result.added, result.skipped) == (10, 0)
        assert seen == [(4, 10), (8, 10), (10, 10)]
        assert len(sent) == commands
        assert account.cache.counts("INBOX") == (10, 5)  # (total, unread): flags came along
        seen.clear()
        again = await transfer.import_messages(
            account, "INBOX", items, lambda done, total: seen.append((done, total))
        )
        assert (again.added, again.skipped) == (0, 10)
        assert seen == [(4, 10), (8, 10), (10, 10)]  # a re-run reports as it goes too
        assert len(folder_bytes(server, user, "INBOX")) == 10
    finally:
        await account.stop()
        account.cache.close()
