"""Signatures, identities, aliases and the address book as a user meets them, against the real
Dovecot and Postfix: a reply from the identity addressed, ``o`` choosing another identity (its
signature follows), completion from a ``query_command`` script and from ``[aliases]``."""

from __future__ import annotations

import asyncio
import sys
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from harness import Dovecot, Postfix, User, imap_device, wait_for_messages
from harness.ui import synced, until

from kittiwake.core.config import Config, config_from_dict
from kittiwake.core.message.mime import parse_message
from kittiwake.core.models import Address
from kittiwake.tui.app import KittiwakeApp
from kittiwake.tui.screens.compose import NewMessagePrompt
from kittiwake.tui.screens.help import HelpScreen
from kittiwake.tui.screens.mailbox import MailboxScreen
from kittiwake.tui.screens.pickers import Picker
from kittiwake.tui.screens.review import ReviewScreen
from kittiwake.tui.widgets.message_list import MessageList

WORK = "work-me@example.test"
HOME_SIG = "Home signature"
WORK_SIG = "Work signature"


def config_for(
    dovecot: Dovecot, postfix: Postfix, user: User, query: Path, crew: list[str], **ui: Any
) -> Config:
    server = {"user": user.login, "password": user.password, "ca_file": str(dovecot.ca_file)}
    account: dict[str, Any] = {
        "email": user.email,
        "name": "Me Home",
        "signature": HOME_SIG,
        "identities": [{"address": WORK, "name": "Me Work", "signature": WORK_SIG}],
        "imap": {"host": dovecot.host, "port": dovecot.ports.imaps, "timeout": 5, **server},
        "smtp": {
            "host": postfix.host,
            "port": postfix.ports.submission,
            "security": "starttls",
            **server,
        },
    }
    return config_from_dict(
        {
            "accounts": {"mine": account},
            "aliases": {"crew": crew},
            "addressbook": {"query_command": [sys.executable, str(query)]},
            "ui": ui,
        }
    )


@pytest.fixture
def query_script(xdg: Path) -> Path:
    """An address book in mutt's protocol: a status line, then address, name, extra."""
    script = xdg / "query.py"
    script.write_text(
        "import sys\n"
        "print('1 entries found')\n"
        "if 'zed'.startswith(sys.argv[1].lower()):\n"
        "    print('zed@example.test\\tZed Zebra\\tfriends')\n"
    )
    return script


@pytest.fixture
def editor(xdg: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in for $EDITOR: writes a first line above what the file holds."""
    script = xdg / "fake-editor"
    script.write_text(
        '#!/bin/sh\nfor last; do :; done\n{ sed -n "1,/^$/p" "$last"; printf "Done.\\n";'
        ' sed "1,/^$/d" "$last"; } > "$last.new" && mv "$last.new" "$last"\n'
    )
    script.chmod(0o755)
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.setenv("EDITOR", str(script))
    return script


def letter_to_work(sender: User) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"Bob Builder <{sender.email}>"
    msg["To"] = f"Me at work <{WORK}>"
    msg["Subject"] = "The report"
    msg["Message-ID"] = "<report@example.test>"
    msg["Date"] = "Thu, 26 Nov 2026 10:00:00 +0000"
    msg.set_content("Is it done?\n")
    return msg.as_bytes()


def put(dovecot: Dovecot, user: User, raw: bytes) -> None:
    device = imap_device(dovecot, user)
    device.append("INBOX", "", None, raw)
    device.logout()


def listed(app: KittiwakeApp) -> bool:
    screen = app.screen
    return (
        isinstance(screen, MailboxScreen) and screen.query_one(MessageList).current_uid is not None
    )


async def test_reply_from_the_work_identity_then_o_switches_identity_and_signature(
    xdg: Path,
    editor: Path,
    query_script: Path,
    dovecot: Dovecot,
    postfix: Postfix,
    user: User,
    user2: User,
) -> None:
    put(dovecot, user, letter_to_work(user2))
    app = KittiwakeApp(config_for(dovecot, postfix, user, query_script, [user2.email]))
    async with app.run_test(size=(100, 30)) as pilot:
        await synced(app)
        await until(pilot, lambda: listed(app))
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, ReviewScreen), timeout=10)
        review = app.screen
        assert isinstance(review, ReviewScreen)
        await until(pilot, lambda: "Done." in review.local.draft.body, timeout=10)
        assert review.local.draft.from_ == Address("Me Work", WORK)
        assert review.local.draft.body.count("-- \n" + WORK_SIG) == 1
        assert "Me Work" in str(review.query_one("#from").render())
        await pilot.press("?")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        assert "identities" in app.screen.notes and "query_command" in app.screen.notes  # type: ignore[attr-defined]
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is review)
        await pilot.press("o")
        await until(pilot, lambda: isinstance(app.screen, Picker))
        await pilot.press(*"Home", "enter")
        await until(pilot, lambda: review.local.draft.from_.addr == user.email)
        body = review.local.draft.body
        assert body.count("-- \n" + HOME_SIG) == 1 and WORK_SIG not in body
        await pilot.press("c", *"crew", "enter")  # an alias: shown expanded once read
        cc = review.query_one("#cc")
        await until(pilot, lambda: cc.value == user2.email)  # type: ignore[attr-defined]
        assert [a.addr for a in review.local.draft.cc] == [user2.email]
        await pilot.press("y")
        await until(pilot, lambda: isinstance(app.screen, MailboxScreen), timeout=10)
        (got,) = await asyncio.to_thread(wait_for_messages, dovecot, user2, 1, timeout=30)
        parsed = parse_message(got)
        assert [(a.name, a.addr) for a in parsed.from_] == [("Me Home", user.email)]
        text = (parsed.text or "").replace("\r\n", "\n")
        assert text.startswith("Done.") and text.count("-- \n" + HOME_SIG) == 1


async def test_completion_from_the_query_command_and_an_alias(
    xdg: Path,
    query_script: Path,
    dovecot: Dovecot,
    postfix: Postfix,
    user: User,
    user2: User,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EDITOR", "/bin/false")  # the config's built-in editor wins
    put(dovecot, user, letter_to_work(user2))
    carol = dovecot.add_user("carol")
    crew = [user2.email, carol.email]
    config = config_for(dovecot, postfix, user, query_script, crew, editor="builtin")
    app = KittiwakeApp(config)
    async with app.run_test(size=(80, 24)) as pilot:
        await synced(app)
        await until(pilot, lambda: listed(app))
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, NewMessagePrompt))
        to = app.screen.query_one("#to")
        await pilot.press("z", "e")
        await until(pilot, lambda: to._suggestion == "Zed Zebra <zed@example.test>")  # type: ignore[attr-defined]
        await pilot.press(*["backspace"] * 2, "c", "r")
        await until(pilot, lambda: to._suggestion == "crew")  # type: ignore[attr-defined]
        await pilot.press("right", "enter", *"Crew", "enter")
        await until(pilot, lambda: isinstance(app.screen, ReviewScreen) or _editor(app), 10)
        await pilot.press(*"Hi all", "ctrl+s")
        await until(pilot, lambda: isinstance(app.screen, ReviewScreen), timeout=10)
        review = app.screen
        assert isinstance(review, ReviewScreen)
        assert [a.addr for a in review.local.draft.to] == [user2.email, carol.email]
        assert review.local.draft.body.count("-- \n" + HOME_SIG) == 1
        await pilot.press("y")
        for person in (user2, carol):
            (got,) = await asyncio.to_thread(wait_for_messages, dovecot, person, 1, timeout=30)
            assert parse_message(got).subject == "Crew"


def _editor(app: KittiwakeApp) -> bool:
    from kittiwake.tui.screens.compose import BuiltinEditor

    return isinstance(app.screen, BuiltinEditor)
