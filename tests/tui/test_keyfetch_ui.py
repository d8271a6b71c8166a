"""The reader fetches an unknown signer's key, against the real Dovecot and a real HKP
keyserver (the harness's, on 127.0.0.2) through the reader's own gpg and dirmngr: "unknown
key" becomes "good signature" in the Security line, and a failed fetch is one sentence."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from harness.gnupg import Keyring, new_keyring
from harness.hkp import HkpServer
from harness.ui import synced, until

from kittiwake.core.config import Config
from kittiwake.core.crypto import openpgp
from kittiwake.tui.app import KittiwakeApp
from kittiwake.tui.screens.help import HelpScreen, binding_rows
from kittiwake.tui.screens.mailbox import MailboxScreen
from kittiwake.tui.screens.reader import ReaderScreen
from kittiwake.tui.widgets.message_list import MessageList


@pytest.fixture
def rings() -> Iterator[tuple[Keyring, Keyring]]:
    """Ann's home (she signs) and the reader's, which lacks her key."""
    ann, reader = new_keyring(), new_keyring()
    ann.add_key("Ann Signer", "ann@example.org")
    yield ann, reader
    reader.close()  # gpgconf --kill all: the dirmngr that fetched goes too
    ann.close()


@pytest.fixture
def keyserver() -> Iterator[HkpServer]:
    server = HkpServer()
    yield server
    server.close()


def signed(ann: Keyring, subject: str) -> bytes:
    head = (
        f"From: Ann <ann@example.org>\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject}@example.org>\r\nMIME-Version: 1.0\r\n"
    ).encode()
    entity = b"Content-Type: text/plain; charset=us-ascii\r\n\r\nThe boat leaves at six.\r\n"
    return head + openpgp.sign_entity(entity, ann.fingerprints["ann@example.org"], ann.gnupg)


def fetch_listed(reader: ReaderScreen) -> bool:
    return any(ident == "reader.fetch_key" for _, _, ident in binding_rows(reader))


async def open_only(app: KittiwakeApp, pilot: object) -> ReaderScreen:
    await synced(app)
    assert isinstance(app.screen, MailboxScreen)
    await until(pilot, lambda: len(app.screen.query_one(MessageList).index) == 1)
    await pilot.press("enter")  # type: ignore[attr-defined]
    await until(
        pilot,
        lambda: isinstance(app.screen, ReaderScreen) and app.screen.parsed is not None,
        timeout=30,
    )
    assert isinstance(app.screen, ReaderScreen)
    return app.screen


def headers(reader: ReaderScreen) -> str:
    return str(reader.query_one("#headers").render())


async def test_fetching_the_key_turns_unknown_into_good(
    xdg: Path,
    mailbox: Callable[..., Config],
    rings: tuple[Keyring, Keyring],
    keyserver: HkpServer,
) -> None:
    ann, mine = rings
    fpr = ann.fingerprints["ann@example.org"]
    keyserver.add(fpr, ("ann@example.org",), ann.export("ann@example.org"))
    config = mailbox(
        0,
        extra=[signed(ann, "Boat")],
        crypto={"gnupg_home": str(mine.home), "keyserver": keyserver.url},
    )
    app = KittiwakeApp(config)
    async with app.run_test(size=(140, 30)) as pilot:
        reader = await open_only(app, pilot)
        assert f"unknown key {fpr[-16:]}" in headers(reader)
        assert "can be fetched from a keyserver (press ^k)." in headers(reader)
        assert fetch_listed(reader)  # on the help screen while there is a key to fetch
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is reader)

        await pilot.press("ctrl+k")
        await until(pilot, lambda: "Good signature" in headers(reader), timeout=60)
        assert "Good signature (OpenPGP) from Ann Signer <ann@example.org>" in headers(reader)
        assert "unknown key" not in headers(reader)
        assert keyserver.requests == [("get", f"0x{fpr[-16:]}")]
        assert openpgp.keys_for("ann@example.org", mine.gnupg) == [fpr]  # the user's keyring
        assert not fetch_listed(reader)  # nothing left to fetch: gone from the help screen


async def test_a_failed_fetch_is_one_sentence_and_leaves_the_line(
    xdg: Path,
    mailbox: Callable[..., Config],
    rings: tuple[Keyring, Keyring],
    keyserver: HkpServer,
) -> None:
    ann, mine = rings  # the keyserver has no key at all
    config = mailbox(
        0,
        extra=[signed(ann, "Ferry")],
        crypto={"gnupg_home": str(mine.home), "keyserver": keyserver.url},
    )
    app = KittiwakeApp(config)
    async with app.run_test(size=(140, 30)) as pilot:
        reader = await open_only(app, pilot)
        key_id = ann.fingerprints["ann@example.org"][-16:]
        await pilot.press("ctrl+k")
        wanted = f"The keyserver has no key {key_id}."
        await until(pilot, lambda: any(n.message == wanted for n in app._notifications), timeout=60)
        assert f"unknown key {key_id}" in headers(reader)
        assert fetch_listed(reader)
