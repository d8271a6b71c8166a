"""The Sent copy of ``kittiwake send``/``sync`` on Courier-IMAP: filed under its namespace
(``INBOX.Sent``; Courier refuses ``CREATE "Sent"``), and a copy the server refuses is said at
every run, with a non-zero exit, never retried in silence."""

from __future__ import annotations

import os
from pathlib import Path

from harness import Dovecot, Postfix, User, imap_device, imap_fetch_all
from harness.courier import Courier
from test_sync_outbox import kittiwake_sync, outbox_of, queue

from kittiwake.core.smtp.outbox import CopyState, ItemState


def write_config(tmp_path: Path, courier: Courier, me: User, mta: Postfix, smtp_user: User) -> Path:
    """IMAP on Courier; SMTP through the test Postfix (its logins are Dovecot's)."""
    path = tmp_path / "config.toml"
    path.write_text(
        f'[accounts.me]\nemail = "{me.email}"\n'
        f'[accounts.me.imap]\nhost = "{courier.host}"\nport = {courier.ports.imaps}\n'
        f'user = "{me.login}"\npassword = "{me.password}"\nca_file = "{courier.ca_file}"\n'
        f'[accounts.me.smtp]\nhost = "{mta.host}"\nport = {mta.ports.submission}\n'
        f'security = "starttls"\nuser = "{smtp_user.login}"\npassword = "{smtp_user.password}"\n'
        f'ca_file = "{mta.ca_file}"\ntimeout = 10\n'
    )
    path.chmod(0o600)
    return path


def test_the_sent_copy_goes_to_inbox_sent_and_a_refused_one_is_reported(
    tmp_path: Path,
    courier: Courier,
    postfix: Postfix,
    dovecot: Dovecot,
    user: User,
) -> None:
    me = courier.add_user("sender")
    cfg = write_config(tmp_path, courier, me, postfix, user)
    queue(outbox_of(tmp_path), me, user.email, "filed under the namespace")
    done = kittiwake_sync(cfg, tmp_path)
    assert done.returncode == 0, done.stderr
    device = imap_device(courier, me)
    try:
        assert len(imap_fetch_all(device, "INBOX.Sent")) == 1
        typ, data = device.list('""', "*")
        assert typ == "OK" and not any(line.endswith(b' "Sent"') for line in data)
    finally:
        device.logout()
    assert outbox_of(tmp_path).items() == []

    # Now the server refuses the copy: the mailbox is over its quota (a Maildir++ quota of
    # ten bytes, which Courier checks on APPEND).
    quota = courier.maildir(me) / "maildirsize"
    quota.write_text("10S\n")
    os.chown(quota, courier.mail_uid, courier.mail_gid)
    try:
        queue(outbox_of(tmp_path), me, user.email, "copy refused")
        for _ in range(2):  # said now, and again at the next run while it is not saved
            done = kittiwake_sync(cfg, tmp_path)
            assert done.returncode == 1, done.stderr
            (line,) = done.stderr.strip().splitlines()
            assert line.startswith("kittiwake: me: sent, but not saved in Sent: “copy refused”")
        (kept,) = outbox_of(tmp_path).items()
        assert kept.state is ItemState.DELIVERED and kept.copy is not CopyState.DONE
    finally:
        quota.unlink()
    done = kittiwake_sync(cfg, tmp_path)
    assert done.returncode == 0, done.stderr
    assert outbox_of(tmp_path).items() == []
