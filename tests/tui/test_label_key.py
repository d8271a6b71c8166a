"""The label key (``L``) is Gmail's: offered on the help screen only where the server has
labels (``X-GM-EXT-1``), against Dovecot and the Gmail profile (harness/gmail.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from harness import TestCA
from harness.clients import imap_device
from harness.gmail import GmailProfile
from harness.ui import message, synced, until

from kittiwake.core.config import Config, config_from_dict
from kittiwake.tui.app import KittiwakeApp
from kittiwake.tui.screens.help import HelpScreen
from kittiwake.tui.screens.mailbox import MailboxScreen
from kittiwake.tui.screens.prompt import Prompt
from kittiwake.tui.screens.reader import ReaderScreen


@pytest.fixture
def gmail(tls_ca: TestCA) -> Iterator[GmailProfile]:
    profile = GmailProfile(tls_ca)
    profile.start()
    yield profile
    profile.stop()


def _gmail_config(gmail: GmailProfile) -> Config:
    device = imap_device(gmail, gmail.user)  # type: ignore[arg-type]
    for n in range(1, 4):
        device.append("INBOX", "", None, message(n))
    device.logout()
    imap = {
        "host": gmail.host,
        "port": gmail.ports.imaps,
        "user": gmail.user.login,
        "password": gmail.user.password,
        "ca_file": str(gmail.ca_file),
        "timeout": 5,
    }
    return config_from_dict({"accounts": {"mine": {"email": gmail.user.email, "imap": imap}}})


async def _help_ids(app: KittiwakeApp, pilot: object) -> set[str]:
    back = app.screen
    await pilot.press("question_mark")  # type: ignore[attr-defined]
    await until(pilot, lambda: isinstance(app.screen, HelpScreen))
    screen = app.screen
    assert isinstance(screen, HelpScreen)
    ids = {row[2] for row in screen.rows}
    await pilot.press("escape")  # type: ignore[attr-defined]
    await until(pilot, lambda: app.screen is back)
    return ids


async def test_no_label_key_where_the_server_has_no_labels(
    xdg: Path, mailbox: Callable[..., Config]
) -> None:
    app = KittiwakeApp(mailbox(3))
    async with app.run_test(size=(100, 30)) as pilot:
        await synced(app)
        assert not app.api.has_labels("mine")
        ids = await _help_ids(app, pilot)
        assert "triage.flag" in ids and "triage.label" not in ids
        await pilot.press("L")  # not bound here: no prompt, no notice about labels
        await pilot.pause(0.1)
        assert isinstance(app.screen, MailboxScreen) and not app._notifications
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ReaderScreen))
        ids = await _help_ids(app, pilot)
        assert "triage.archive" in ids and "triage.label" not in ids


async def test_the_label_key_on_gmail(xdg: Path, gmail: GmailProfile) -> None:
    app = KittiwakeApp(_gmail_config(gmail))
    async with app.run_test(size=(100, 30)) as pilot:
        await synced(app)
        assert app.api.has_labels("mine")
        assert "triage.label" in await _help_ids(app, pilot)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ReaderScreen))
        assert "triage.label" in await _help_ids(app, pilot)
        await pilot.press("L")
        await until(pilot, lambda: isinstance(app.screen, Prompt))
