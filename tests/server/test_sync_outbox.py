"""The outbox in ``kittiwake sync``, against the real Postfix and Dovecot.

* A fresh cache does not mean "no Sent folder": the Sent copy is filed on the first run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from email.message import EmailMessage
from pathlib import Path

from harness import (
    Dovecot,
    Postfix,
    TcpProxy,
    User,
    imap_device,
    imap_fetch_all,
    wait_for_messages,
)

from kittiwake.core.smtp.outbox import Backoff, Outbox

FAST = Backoff(first=0.2, factor=1.5, maximum=1.0, jitter=0.0)
HOLD_REPLY = "smtpd_end_of_data_restrictions = sleep 3"
"""Postfix waits 3 s after the final dot before it answers: the window SMTP cannot close."""
REFUSING = (
    "smtpd_recipient_restrictions = check_recipient_access inline:{ "
    "{ nobody@example.test = 550 5.1.1 Mailbox nobody is unknown here } }, permit"
)


def write_config(
    tmp_path: Path,
    dovecot: Dovecot,
    user: User,
    mta: Postfix,
    via: TcpProxy | None = None,
) -> Path:
    """IMAP to Dovecot; SMTP to Postfix's submission port, or through ``via`` (a proxy in
    front of its plain port, so the proxy sees the final dot)."""
    smtp = f'host = "{mta.host}"\nport = {mta.ports.submission}\nsecurity = "starttls"\n'
    if via is not None:
        smtp = f'host = "{via.host}"\nport = {via.port}\nsecurity = "none"\n'
    path = tmp_path / "config.toml"
    path.write_text(
        f'[accounts.me]\nemail = "{user.email}"\n'
        f'[accounts.me.imap]\nhost = "{dovecot.host}"\nport = {dovecot.ports.imaps}\n'
        f'user = "{user.login}"\npassword = "{user.password}"\nca_file = "{dovecot.ca_file}"\n'
        f"[accounts.me.smtp]\n{smtp}"
        f'user = "{user.login}"\npassword = "{user.password}"\n'
        f'ca_file = "{dovecot.ca_file}"\ntimeout = 10\n'
    )
    path.chmod(0o600)
    return path


def sync_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "KITTIWAKE"))}
    env.update(
        HOME=str(tmp_path),
        XDG_CACHE_HOME=str(tmp_path / "cache"),
        XDG_STATE_HOME=str(tmp_path / "state"),
        XDG_DATA_HOME=str(tmp_path / "data"),
    )
    return env


def outbox_of(tmp_path: Path) -> Outbox:
    """The outbox ``kittiwake`` run with ``sync_env`` uses."""
    return Outbox("me", tmp_path / "data" / "kittiwake" / "outbox")


def queue(outbox: Outbox, sender: User, to: str, subject: str) -> str:
    """A message put in the outbox as the app does it (``kittiwake send`` with the server down,
    or an app quit before sending); returns its Message-ID."""
    mid = f"<{uuid.uuid4().hex}@example.test>"
    msg = EmailMessage()
    msg["From"] = sender.email
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = mid
    msg.set_content("hello\n")
    outbox.enqueue(msg.as_bytes(), sender.email, [to], message_id=mid, save_sent=True)
    return mid


def kittiwake_sync(cfg: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kittiwake.tui.main", "--config", str(cfg), "sync"],
        capture_output=True,
        text=True,
        timeout=90,
        env=sync_env(tmp_path),
        check=False,
    )


def submissions(mta: Postfix, message_id: str) -> int:
    """How many times Postfix received the message (cleanup logs each one once)."""
    return mta.maillog.read_text(errors="replace").count(f"message-id={message_id}")


def test_first_sync_on_a_fresh_cache_files_the_sent_copy(
    tmp_path: Path, postfix: Postfix, dovecot: Dovecot, user: User, user2: User
) -> None:
    device = imap_device(dovecot, user)
    try:  # Sent exists on the server (as it does once anything was filed there)
        device.append("Sent", "(\\Seen)", None, b"Subject: sent before\r\n\r\nhi\r\n")
    finally:
        device.logout()
    mid = queue(outbox_of(tmp_path), user, user2.email, "queued before any sync")
    cfg = write_config(tmp_path, dovecot, user, postfix)

    done = kittiwake_sync(cfg, tmp_path)

    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    wait_for_messages(dovecot, user2, 1, timeout=30)
    device = imap_device(dovecot, user)
    try:
        sent = imap_fetch_all(device, "Sent")
    finally:
        device.logout()
    assert len(sent) == 2 and mid.encode() in sent[1]  # filed now, not at the next run
    assert outbox_of(tmp_path).items() == []
    log = (tmp_path / "state" / "kittiwake" / "kittiwake.log").read_text()
    assert "creating Sent" not in log
