"""The app beside a `kittiwake sync` run on the same cache: it shows what the cache holds,
whoever wrote it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from harness import Dovecot, User
from harness.ui import synced, until

from kittiwake.core.config import Config, config_from_dict
from kittiwake.tui.app import KittiwakeApp
from kittiwake.tui.screens.mailbox import MailboxScreen
from kittiwake.tui.widgets.folder_tree import FolderTree
from kittiwake.tui.widgets.message_list import MessageList


def _gated_config(dovecot: Dovecot, user: User, gate: Path) -> Config:
    """The app's password comes from a command that waits for ``gate/go``: the app has
    mounted on an empty cache and not yet reached the server."""
    script = (
        "import pathlib, time\n"
        f"while not pathlib.Path({str(gate / 'go')!r}).exists():\n"
        "    time.sleep(0.02)\n"
        f"print({user.password!r})\n"
    )
    imap = {
        "host": dovecot.host,
        "port": dovecot.ports.imaps,
        "user": user.login,
        "password_command": [sys.executable, "-c", script],
        "ca_file": str(dovecot.ca_file),
        "timeout": 5,
    }
    return config_from_dict({"accounts": {"mine": {"email": user.email, "imap": imap}}})


def _sync_in_another_process(dovecot: Dovecot, user: User, where: Path) -> None:
    """`kittiwake sync` as a user runs it, on the same cache (the XDG dirs of this test)."""
    config = where / "sync.toml"
    config.write_text(
        f'[accounts.mine]\nemail = "{user.email}"\n[accounts.mine.imap]\n'
        f'host = "{dovecot.host}"\nport = {dovecot.ports.imaps}\nuser = "{user.login}"\n'
        f'password_env = "KW_TEST_PASSWORD"\nca_file = "{dovecot.ca_file}"\ntimeout = 5\n'
    )
    config.chmod(0o600)
    done = subprocess.run(
        [sys.executable, "-m", "kittiwake.cli.main", "--config", str(config), "sync"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "KW_TEST_PASSWORD": user.password},
    )
    assert done.returncode == 0, done.stderr
    assert "mine: 7 folders, 21 messages (21 fetched)" in done.stdout, done.stdout


async def test_the_app_shows_what_a_concurrent_sync_stored(
    xdg: Path, mailbox: Callable[..., Config], dovecot: Dovecot, user: User
) -> None:
    """The sync filled the cache, the app found it "up to date" and published nothing:
    "INBOX · 0 messages" and no folders, even after ctrl+r, until restarted."""
    mailbox(20)
    gate = xdg / "gate"
    gate.mkdir()
    app = KittiwakeApp(_gated_config(dovecot, user, gate))
    async with app.run_test(size=(120, 30)) as pilot:
        screen = app.screen
        assert isinstance(screen, MailboxScreen)
        status = screen.query_one("#status")
        await until(pilot, lambda: "waiting for password_command" in str(status.render()))
        assert len(screen.query_one(MessageList).index) == 0
        await asyncio.to_thread(_sync_in_another_process, dovecot, user, xdg)
        (gate / "go").touch()
        await synced(app)
        messages = screen.query_one(MessageList)
        await until(pilot, lambda: len(messages.index) == 20)
        assert "Message 20" in messages.render_line(0).text
        refs = screen.query_one(FolderTree).folder_refs()
        assert {"INBOX", "Work"} <= {r.folder for r in refs}
        await until(pilot, lambda: "20 messages" in str(status.render()))
