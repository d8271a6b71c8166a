"""The outbox in ``kittiwake sync`` and across lost replies, against the real Postfix and Dovecot.

* A fresh cache does not mean "no Sent folder": the Sent copy is filed on the first run.
* Messages that need the user (refused for good, or may have been delivered) are printed, one
  line each, and the exit status says so.
* A message whose final dot reached the server but whose reply did not (connection cut, app
  killed) is marked "may have been delivered" and not sent again by itself.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

from harness import (
    Dovecot,
    Postfix,
    TcpProxy,
    User,
    imap_device,
    imap_fetch_all,
    wait_for,
    wait_for_messages,
)

from kittiwake.core.compose.status import OutboxStatus
from kittiwake.core.config import config_from_dict
from kittiwake.core.events import DeliveryUncertain, Event, OutboxChanged
from kittiwake.core.smtp.outbox import Backoff, ItemState, Outbox, OutboxRunner

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
        [sys.executable, "-m", "kittiwake.cli.main", "--config", str(cfg), "sync"],
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


def test_sync_names_a_refused_message_and_exits_non_zero_each_time(
    tmp_path: Path,
    postfix_factory: Callable[..., Postfix],
    dovecot: Dovecot,
    user: User,
) -> None:
    mta = postfix_factory(extra_main_cf=REFUSING)
    queue(outbox_of(tmp_path), user, "nobody@example.test", "typo in the address")
    cfg = write_config(tmp_path, dovecot, user, mta)

    for _ in range(2):  # refused now, and still waiting for the user on the next run
        done = kittiwake_sync(cfg, tmp_path)
        assert done.returncode == 1, done.stderr
        (line,) = done.stderr.strip().splitlines()
        assert line.startswith("kittiwake: me: not sent, refused by the server:")
        assert "“typo in the address” to nobody@example.test" in line
        assert "550 5.1.1" in line and "Mailbox nobody is unknown here" in line
        assert done.stdout.strip().splitlines()[-1].startswith("done in ")
    (kept,) = outbox_of(tmp_path).items()
    assert kept.state is ItemState.FAILED


def test_a_message_whose_reply_was_lost_is_not_sent_again_by_the_next_sync(
    tmp_path: Path,
    postfix_factory: Callable[..., Postfix],
    dovecot: Dovecot,
    user: User,
    user2: User,
    proxy_factory: Callable[[str, int], TcpProxy],
) -> None:
    """The app is killed after the final dot, while Postfix holds its reply."""
    mta = postfix_factory(extra_main_cf=HOLD_REPLY)
    proxy = proxy_factory(mta.host, mta.ports.plain)
    mid = queue(outbox_of(tmp_path), user, user2.email, "killed while sending")
    cfg = write_config(tmp_path, dovecot, user, mta, via=proxy)
    first = subprocess.Popen(
        [sys.executable, "-m", "kittiwake.cli.main", "--config", str(cfg), "sync"],
        env=sync_env(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: proxy.client_bytes().endswith(b"\r\n.\r\n"), 30, message="the final dot")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    wait_for_messages(dovecot, user2, 1, timeout=30)  # Postfix did deliver it
    wait_for(lambda: submissions(mta, mid) == 1, 10, message="maillog")

    again = kittiwake_sync(cfg, tmp_path)

    assert again.returncode == 1, again.stderr
    (line,) = again.stderr.strip().splitlines()
    assert line.startswith("kittiwake: me: may have been delivered:")
    assert f"“killed while sending” to {user2.email}" in line
    assert submissions(mta, mid) == 1  # not sent again
    (kept,) = outbox_of(tmp_path).items()
    assert kept.state is ItemState.UNCERTAIN


async def test_a_cut_reply_marks_it_may_have_been_delivered_and_the_user_decides(
    tmp_path: Path,
    postfix: Postfix,
    dovecot: Dovecot,
    user: User,
    user2: User,
    proxy_factory: Callable[[str, int], TcpProxy],
) -> None:
    """The connection is cut after Postfix accepted the message, inside its 250 line."""
    proxy = proxy_factory(postfix.host, postfix.ports.plain)  # plain: the proxy sees the 250
    config = config_from_dict(
        {
            "accounts": {
                "me": {
                    "email": user.email,
                    "imap": {"host": dovecot.host, "user": user.login, "password": "unused"},
                    "smtp": {
                        "host": proxy.host,
                        "port": proxy.port,
                        "security": "none",
                        "user": user.login,
                        "password": user.password,
                        "timeout": 10,
                    },
                }
            }
        }
    )
    events: list[Event] = []
    outbox = Outbox("me", tmp_path)
    runner = OutboxRunner(config.accounts["me"], outbox, backoff=FAST, publish=events.append)
    mid = queue(outbox, user, user2.email, "cut after the dot")
    proxy.cut_after(b"Ok: queued", "server")

    (outcome,) = await runner.flush(force=True)

    assert outcome.status == "uncertain"
    assert "may have been delivered" in outcome.message
    (item,) = outbox.items()
    assert item.state is ItemState.UNCERTAIN and not item.sending
    assert any(isinstance(e, DeliveryUncertain) and e.message_id == mid for e in events)
    changed = [e for e in events if isinstance(e, OutboxChanged)]
    assert changed[-1].uncertain == 1 and changed[-1].queued == 0
    assert OutboxStatus(uncertain=1).describe() == "1 may have been delivered"
    await asyncio.to_thread(wait_for_messages, dovecot, user2, 1, timeout=30)
    assert await runner.flush(force=True) == []  # not sent again by itself
    await asyncio.to_thread(wait_for, lambda: submissions(postfix, mid) == 1, 10, message="maillog")
    # The user says it did not arrive: it goes again, once.
    assert outbox.retry(item.id) is not None
    (again,) = await runner.flush(force=True)
    assert again.status == "accepted"
    await asyncio.to_thread(wait_for, lambda: submissions(postfix, mid) == 2, 10, message="maillog")
