"""The app on a damaged cache file: it names the file, keeps the unsent actions, rebuilds the
rest from the server, and a cache failing under it ends it with one sentence, not a traceback."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from harness import Dovecot, User
from harness.clients import imap_device
from harness.ui import synced, until

from kittiwake.core.cache import SCHEMA_VERSION, Cache
from kittiwake.core.config import Config
from kittiwake.core.engine import Engine
from kittiwake.core.journal import Action, Journal
from kittiwake.tui.app import KittiwakeApp
from kittiwake.tui.screens.mailbox import MailboxScreen
from kittiwake.tui.widgets.message_list import MessageList


async def _cache_with_a_pending_flag(config: Config, uid: int) -> Path:
    """A synced cache holding an action the server has not seen (the app quit offline)."""
    engine = Engine(config)
    await engine.sync_once()
    await engine.stop()
    path = engine.imap["mine"].cache.path
    cache = Cache(path)
    state = cache.folder_state("INBOX")
    assert state is not None
    Journal(cache).add(
        Action(
            kind="flags",
            folder="INBOX",
            uidvalidity=state.uidvalidity,
            uids=(uid,),
            add=("\\Flagged",),
        )
    )
    cache.close()
    return path


def _overwrite_pages(path: Path, first: int) -> None:
    """Garbage over every page from ``first`` on (the journal's are the first few)."""
    pages = path.stat().st_size // 4096
    with open(path, "r+b") as f:
        for page in range(first, pages):
            f.seek(page * 4096)
            f.write(bytes(range(256)) * 16)


@pytest.mark.parametrize("how", ["truncated", "overwritten"])
async def test_app_on_a_damaged_cache_says_so_keeps_the_journal_and_rebuilds(
    xdg: Path, mailbox: Callable[..., Config], dovecot: Dovecot, user: User, how: str
) -> None:
    config = mailbox(60)
    path = await _cache_with_a_pending_flag(config, 3)
    if how == "truncated":
        os.truncate(path, path.stat().st_size // 2 + 1000)
    else:
        pages = path.stat().st_size // 4096
        with open(path, "r+b") as f:
            for page in (pages // 3, pages // 2, 2 * pages // 3):
                f.seek(page * 4096)
                f.write(bytes(range(256)) * 16)
    app = KittiwakeApp(config)
    async with app.run_test(size=(120, 30)) as pilot:
        await synced(app)
        messages = app.screen.query_one(MessageList)
        await until(pilot, lambda: len(messages.index) == 60)
        [aside] = [p for p in path.parent.iterdir() if ".damaged-" in p.name]
        [note] = [n for n in app._notifications if "damaged" in n.message]
        assert note.message.startswith(f"The cache {path} was damaged (")
        assert aside.name in note.message and "1 unsent action it held was kept" in note.message
        await app.api.engine.imap["mine"].flush_actions()
    device = imap_device(dovecot, user)
    device.select("INBOX", readonly=True)
    _, data = device.uid("FETCH", "3", "(FLAGS)")
    assert b"\\Flagged" in data[0]


async def test_a_cache_damaged_while_the_app_runs_ends_it_in_one_sentence(
    xdg: Path, mailbox: Callable[..., Config]
) -> None:
    """It used to print a full traceback and exit with status 0."""
    app = KittiwakeApp(mailbox(60))
    async with app.run_test(size=(120, 30)) as pilot:
        await synced(app)
        screen = app.screen
        assert isinstance(screen, MailboxScreen)
        await until(pilot, lambda: len(screen.query_one(MessageList).index) == 60)
        cache = app.api.engine.imap["mine"].cache
        cache.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # every page in the file itself
        _overwrite_pages(cache.path, 16)
        other = sqlite3.connect(cache.path)  # another program commits: what the app had
        other.execute(
            f"PRAGMA user_version={SCHEMA_VERSION}"
        )  # read is read again, from the damaged file
        other.close()
        await pilot.press("J", "K")  # back to INBOX: its list is read from the damaged file
        await until(pilot, lambda: app.return_code == 1)
        [said] = [str(r) for r in app._exit_renderables]
    assert app.return_code == 1
    assert said.startswith(f"kittiwake: {cache.path}: the cache is damaged (")
    assert "start Kittiwake again" in said and "\n" not in said
