"""``kittiwake export`` then ``kittiwake import`` into another folder, as a user runs them
(real processes, the real Dovecot): the same messages arrive, once, however often it is run;
a Maildir imports the same way."""

from __future__ import annotations

import mailbox
import subprocess
from email.message import EmailMessage
from pathlib import Path

from harness import Dovecot, User
from harness.clients import imap_device, imap_fetch_all
from test_sync_command import env, kittiwake, write_config


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


def run(tmp_path: Path, user: User, *args: str) -> subprocess.CompletedProcess[str]:
    done = kittiwake(*args, env=env(tmp_path, user))
    assert done.returncode == 0, done.stderr
    return done


def test_export_then_import_gives_the_same_messages_once(
    tmp_path: Path, dovecot: Dovecot, user: User
) -> None:
    device = imap_device(dovecot, user)
    device.create("Copy")
    for n in (1, 2, 3):
        device.append("INBOX", "(\\Seen)" if n == 1 else "", None, sample(n))
    device.append("INBOX", "", None, sample(4, with_id=False))
    device.logout()
    config = str(write_config(tmp_path, dovecot, user))
    box = tmp_path / "out" / "inbox.mbox"
    done = run(
        tmp_path, user, "export", "--config", config, "--account", "me", "--folder", "INBOX", str(box)
    )
    assert "Exported 4 message(s)" in done.stdout
    assert (box.stat().st_mode & 0o777) == 0o600
    parsed = mailbox.mbox(box)
    assert [m["Subject"] for m in parsed] == [f"[PATCH {n}/4] part {n}" for n in (1, 2, 3, 4)]
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
            tmp_path, user, "import", "--config", config, "--account", "me", "--folder", "Copy", str(box)
        )
    assert "Imported 0 messages into Copy; 4 already there" in done.stdout
    assert sorted(folder_bytes(dovecot, user, "Copy")) == sorted(
        folder_bytes(dovecot, user, "INBOX")
    )
    device = imap_device(dovecot, user)
    device.select("Copy", readonly=True)
    _, seen = device.search(None, "SEEN")
    device.logout()
    assert len(seen[0].split()) == 0  # mbox export writes no Status: nothing marked read
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
    for i, f in enumerate(files):
        (maildir / "cur" / f"{i}.host:2,S").write_bytes(f.read_bytes())
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
