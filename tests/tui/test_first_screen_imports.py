"""The first screen loads only what it needs: start-up time is mostly imports (issue 19).

HTML conversion, MIME parsing and building, search, threads, compose, the outbox, OAuth2,
setup and the doctor load when first used, and the bulk path's grammars are compiled then
(``core/imap/lazy.py``). The app runs in a fresh interpreter (this one has
imported everything already), syncs a real mailbox until the list shows it, and reports which
modules it loaded; then the reader is opened, to show the check can see a module arrive.
A warm start (cached rows drawn before the engine connects) does not load the IMAP protocol
either (the parser, the connection and client, aioimaplib, the raw rows' decoder), nor the
compose service, nor SMTP for an account that sends (aiosmtplib, the email package): only its
outbox runner."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from harness import Dovecot, Postfix, User

from kittiwake.core.config import Config

#: Module prefixes the first screen must not load.
HEAVY = (
    "lxml",
    "inscriptis",
    "aiosmtplib",
    "importlib.metadata",
    "email.parser",
    "email.policy",
    "kittiwake.core.message.html",
    "kittiwake.core.message.mime",
    "kittiwake.core.compose.mime",
    "kittiwake.core.compose.reply",
    "kittiwake.core.search.query",
    "kittiwake.core.search.service",
    "kittiwake.core.search.threads",
    "kittiwake.core.imap.search",
    "kittiwake.core.setup",
    "kittiwake.core.oauth2",
    "kittiwake.core.smtp.outbox",
    "kittiwake.core.smtp.client",
    "kittiwake.core.pop3",
    "kittiwake.core.local",
    "kittiwake.tui.screens.compose",
    "kittiwake.tui.screens.review",
    "kittiwake.tui.screens.reader",
    "kittiwake.tui.screens.search",
    "kittiwake.tui.screens.search_triage",
    "kittiwake.tui.screens.thread_view",
    "kittiwake.tui.screens.thread_reader",
    "kittiwake.tui.screens.setup",
    "kittiwake.tui.screens.doctor",
    "kittiwake.tui.screens.signin",
    "kittiwake.tui.screens.help",
)

#: What both children start with: the app's imports, and which of ``HEAVY`` are loaded.
PRELUDE = """
import asyncio, json, sys
from pathlib import Path
from kittiwake.core.config import load_config
from kittiwake.tui.app import KittiwakeApp
from kittiwake.tui.widgets.message_list import MessageList

HEAVY = tuple(json.loads(sys.argv[2]))

def loaded():
    return sorted(m for m in sys.modules if any(m == h or m.startswith(h + ".") for h in HEAVY))
"""

CHILD = (
    PRELUDE
    + """
async def main():
    app = KittiwakeApp(load_config(Path(sys.argv[1])))
    async with app.run_test(size=(100, 30)) as pilot:
        messages = app.screen.query_one(MessageList)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while len(messages.index) < 12 or not app.api.synced("mine"):
            assert loop.time() < deadline, "the list was not drawn in time"
            await pilot.pause(0.02)
        await pilot.pause()
        first = loaded()
        from kittiwake.core.imap import lazy
        grammars = lazy._compiled.cache_info().currsize
        await pilot.press("enter")
        while "kittiwake.tui.screens.reader" not in sys.modules:
            assert loop.time() < deadline, "the reader did not open in time"
            await pilot.pause(0.02)
        print(json.dumps({"first": first, "after_reader": loaded(), "grammars": grammars}))

asyncio.run(main())
"""
)


def write_config(path: Path, dovecot: Dovecot, user: User, postfix: Postfix | None = None) -> None:
    login = f'user = "{user.login}"\npassword = "{user.password}"\n'
    text = (
        f'[accounts.mine]\nemail = "{user.email}"\n[accounts.mine.imap]\n'
        f'host = "{dovecot.host}"\nport = {dovecot.ports.imaps}\n{login}'
        f'ca_file = "{dovecot.ca_file}"\n'
    )
    if postfix is not None:
        text += (
            f'[accounts.mine.smtp]\nhost = "{postfix.host}"\nport = {postfix.ports.submission}\n'
            f'security = "starttls"\n{login}ca_file = "{dovecot.ca_file}"\n'
        )
    path.write_text(text)
    path.chmod(0o600)


def test_first_screen_loads_no_heavy_module(
    xdg: Path, mailbox: Callable[..., Config], dovecot: Dovecot, user: User
) -> None:
    mailbox(count=12)
    config = xdg / "config.toml"
    write_config(config, dovecot, user)
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(config), json.dumps(HEAVY)],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["first"] == [], f"the first screen loaded: {report['first']}"
    # The bulk path's grammars (~45 ms to compile) wait for a bulk fetch; 12 messages are none.
    assert report["grammars"] == 0
    # The check sees a module that does arrive: opening a message loads the reader and MIME.
    assert "kittiwake.tui.screens.reader" in report["after_reader"]
    assert "kittiwake.core.message.mime" in report["after_reader"]


#: What a warm start's first screen does without: the IMAP protocol (~30 ms of imports) loads
#: when the engine connects, right after that screen is drawn (``core/imap/account.py``), and
#: the compose service (drafts, the address book, OpenPGP) with the engine's first event.
WARM = (
    "kittiwake.core.compose.service",
    "kittiwake.core.compose.draft",
    "kittiwake.core.compose.drafts",
    "kittiwake.core.compose.addressbook",
    "kittiwake.core.crypto",
    # Smaller, loaded where used (date and address fallbacks, HTML bodies, the pipe, digests
    # for HTML text and secrets, importlib.resources' zip reader, Rich's emoji table).
    "email.utils",
    "html",
    "hashlib",
    "zipfile",
    "rich._emoji_codes",
    "kittiwake.core.external.pipe",
    "kittiwake.core.message.mbox",
    "aioimaplib",
    "kittiwake.core.imap.parser",
    "kittiwake.core.imap.protocol",
    "kittiwake.core.imap.connection",
    "kittiwake.core.imap.client",
    "kittiwake.core.imap.session",
    "kittiwake.core.imap.salvage",
    "kittiwake.core.imap.decode",
    "kittiwake.core.imap.rawdecode",
    "kittiwake.core.imap.lazy",
    "kittiwake.core.imap.gmail",
    "kittiwake.core.imap.deliver",
)

WARM_CHILD = (
    PRELUDE
    + """
at_engine = []
start_engine = KittiwakeApp.start_engine

def noted(self):
    if not at_engine:  # what the first screen loaded, up to its frame
        at_engine.append((loaded(), "kittiwake.core.smtp.outbox" in sys.modules))
    start_engine(self)

KittiwakeApp.start_engine = noted

async def main():
    app = KittiwakeApp(load_config(Path(sys.argv[1])))
    async with app.run_test(size=(100, 30)) as pilot:
        messages = app.screen.query_one(MessageList)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        warm = messages.row_count  # the cached rows, before anything came from the server
        while len(messages.index) < 12 or not app.api.synced("mine"):
            assert loop.time() < deadline, "the list was not drawn in time"
            await pilot.pause(0.02)
        await pilot.pause()
        first, runner = at_engine[0] if at_engine else (None, None)
        print(json.dumps({"warm": warm, "first": first, "runner": runner, "synced": loaded()}))

asyncio.run(main())
"""
)


def test_warm_first_screen_loads_no_imap_protocol(
    xdg: Path, mailbox: Callable[..., Config], dovecot: Dovecot, user: User, postfix: Postfix
) -> None:
    mailbox(count=12)
    config = xdg / "config.toml"
    write_config(config, dovecot, user, postfix)
    # An account with [smtp] has its outbox runner from the start (the status bar reads the
    # outbox); SMTP itself (aiosmtplib, the email package) loads with a first message.
    heavy = json.dumps([h for h in HEAVY if h != "kittiwake.core.smtp.outbox"] + list(WARM))

    def run(child: str) -> dict[str, object]:
        out = subprocess.run(
            [sys.executable, "-c", child, str(config), heavy],
            capture_output=True,
            text=True,
            timeout=90,
        )
        assert out.returncode == 0, out.stderr[-3000:]
        report: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
        return report

    run(CHILD)  # a first (cold) start fills the cache and quits
    report = run(WARM_CHILD)
    assert report["warm"] == 12, "the second start did not draw the cached rows first"
    assert report["first"] == [], f"the warm first screen loaded: {report['first']}"
    # The check sees the protocol arrive: the engine connected and synced after that frame.
    synced = report["synced"]
    assert isinstance(synced, list)
    assert "kittiwake.core.imap.parser" in synced
    assert "kittiwake.core.imap.client" in synced
    assert report["runner"] is True, "the account's outbox runner was not made at start"
