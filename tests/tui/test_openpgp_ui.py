"""OpenPGP in the app, against the real Dovecot (and Postfix): the reader's Security lines
come from gpg, in the header block, and text in a body cannot pass for them; the review
screen's ``p`` steps through sign and encrypt, and a recipient without a key is a question."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from harness import Dovecot, Postfix, User, wait_for_messages
from harness.gnupg import Keyring, new_keyring
from harness.ui import screen_text, synced, until

from kittiwake.core.config import Config, config_from_dict
from kittiwake.core.crypto import openpgp
from kittiwake.core.message.mime import parse_message
from kittiwake.tui.app import KittiwakeApp
from kittiwake.tui.screens.confirm import Confirm
from kittiwake.tui.screens.mailbox import MailboxScreen
from kittiwake.tui.screens.reader import ReaderScreen
from kittiwake.tui.screens.review import ReviewScreen
from kittiwake.tui.screens.thread_reader import ThreadReaderScreen
from kittiwake.tui.screens.thread_view import ConversationsScreen
from kittiwake.tui.widgets.message_list import MessageList
from kittiwake.tui.widgets.thread_list import ThreadList

SPOOF = "Security: Good signature (OpenPGP) from Your Bank <ceo@bank.example>"


@pytest.fixture
def ring(user: User) -> Iterator[Keyring]:
    ring = new_keyring()
    ring.add_key("Ann Signer", "ann@example.org")
    ring.add_key("Me Myself", user.email)
    yield ring
    ring.close()


def signed(ring: Keyring, text: str, subject: str) -> bytes:
    head = (
        f"From: Ann <ann@example.org>\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject.replace(' ', '-')}@example.org>\r\nMIME-Version: 1.0\r\n"
    ).encode()
    entity = f"Content-Type: text/plain; charset=us-ascii\r\n\r\n{text}\r\n".encode()
    return head + openpgp.sign_entity(entity, ring.fingerprints["ann@example.org"], ring.gnupg)


async def open_row(app: KittiwakeApp, pilot: object, row: int) -> ReaderScreen:
    screen = app.screen
    assert isinstance(screen, MailboxScreen)
    messages = screen.query_one(MessageList)
    messages.cursor = row
    await pilot.press("enter")  # type: ignore[attr-defined]
    await until(
        pilot,
        lambda: isinstance(app.screen, ReaderScreen) and app.screen.parsed is not None,
        timeout=30,
    )
    assert isinstance(app.screen, ReaderScreen)
    return app.screen


async def test_reader_shows_the_signature_status_in_the_header_block(
    xdg: Path, mailbox: Callable[..., Config], ring: Keyring
) -> None:
    good = signed(ring, f"Quarterly figures attached.\n{SPOOF}", "Figures")
    bad = signed(ring, "Pay the invoice to account 1234.", "Invoice").replace(b"1234", b"9999")
    config = mailbox(0, extra=[good, bad], crypto={"gnupg_home": str(ring.home)})
    app = KittiwakeApp(config)
    async with app.run_test(size=(120, 30)) as pilot:
        await synced(app)
        assert isinstance(app.screen, MailboxScreen)
        await until(pilot, lambda: len(app.screen.query_one(MessageList).index) == 2)
        reader = await open_row(app, pilot, 1)  # the older one: Figures
        headers = str(reader.query_one("#headers").render())
        body = str(reader.query_one("#body").render())
        assert "Good signature (OpenPGP) from Ann Signer <ann@example.org>" in headers
        assert ring.fingerprints["ann@example.org"][:4] in headers
        assert "Your Bank" not in headers  # the body's imitation stays in the body
        assert SPOOF in body and "Quarterly figures" in body
        await pilot.press("escape")
        reader = await open_row(app, pilot, 0)
        await until(pilot, lambda: "BAD signature" in str(reader.query_one("#headers").render()))
        assert "Good signature" not in str(reader.query_one("#headers").render())
        # The conversation view says it too, in the message's own header lines.
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, MailboxScreen))
        await pilot.press("t")
        await until(pilot, lambda: isinstance(app.screen, ConversationsScreen))
        await until(pilot, lambda: app.screen.query_one(ThreadList).threading is not None)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ThreadReaderScreen))
        await until(pilot, lambda: "Security: BAD signature" in screen_text(app), timeout=10)


def compose_config(
    dovecot: Dovecot, postfix: Postfix, user: User, ring: Keyring, **account: object
) -> Config:
    server = {"user": user.login, "password": user.password, "ca_file": str(dovecot.ca_file)}
    return config_from_dict(
        {
            "crypto": {"gnupg_home": str(ring.home)},
            "accounts": {
                "mine": {
                    "email": user.email,
                    "name": "Me Myself",
                    "imap": {"host": dovecot.host, "port": dovecot.ports.imaps, **server},
                    "smtp": {
                        "host": postfix.host,
                        "port": postfix.ports.submission,
                        "security": "starttls",
                        **server,
                    },
                    **account,
                }
            },
        }
    )


async def test_p_steps_through_sign_and_encrypt_and_a_missing_key_is_a_question(
    xdg: Path, dovecot: Dovecot, postfix: Postfix, user: User, user2: User, ring: Keyring
) -> None:
    app = KittiwakeApp(compose_config(dovecot, postfix, user, ring, pgp_sign=True))
    async with app.run_test(size=(100, 30)) as pilot:
        await synced(app)
        local = app.api.compose.new("mine", to=user2.email, subject="Keys", body="Hi Bob.\n")
        app.push_screen(ReviewScreen(local))
        await until(pilot, lambda: isinstance(app.screen, ReviewScreen))
        review = app.screen
        assert isinstance(review, ReviewScreen)
        await until(pilot, lambda: review.local.draft.sign)  # pgp_sign: signed by default
        await until(pilot, lambda: "OpenPGP: signed  (p changes it)" in screen_text(app))
        await pilot.press("p")
        await until(pilot, lambda: review.local.draft.encrypt and review.local.draft.sign)
        assert "signed and encrypted" in screen_text(app)
        await pilot.press("y")
        await until(pilot, lambda: isinstance(app.screen, Confirm), timeout=10)
        # Pushed is not yet drawn (a loaded run read an empty screen here).
        asked = f"No OpenPGP key for {user2.email}"
        await until(pilot, lambda: asked in screen_text(app), timeout=10)
        await pilot.press("n")  # not at all
        await until(pilot, lambda: app.screen is review)
        assert app.api.engine.outboxes["mine"].outbox.items() == []
        await pilot.press("y")
        await until(pilot, lambda: isinstance(app.screen, Confirm), timeout=10)
        await pilot.press("y")  # unencrypted, still signed
        (got,) = await asyncio.to_thread(wait_for_messages, dovecot, user2, 1, timeout=30)
        assert b"multipart/signed" in got and b"multipart/encrypted" not in got
        shown = await openpgp.open_message(parse_message(got), ring.gnupg)
        assert shown.security is not None
        assert [s.user_id for s in shown.security.signatures] == [f"Me Myself <{user.email}>"]


async def test_d_decrypts_when_a_passphrase_is_needed(
    xdg: Path, mailbox: Callable[..., Config], user: User
) -> None:
    ring = new_keyring()
    try:
        fpr = ring.add_protected_key("Me Myself", user.email, "s3cret")
        entity = b"Content-Type: text/plain\r\n\r\nThe safe code is 4711.\r\n"
        raw = (
            b"From: Ann <ann@example.org>\r\nSubject: Code\r\nMessage-ID: <code@example.org>\r\n"
            b"MIME-Version: 1.0\r\n" + openpgp.encrypt_entity(entity, [fpr], gpg=ring.gnupg)
        )
        app = KittiwakeApp(mailbox(0, extra=[raw], crypto={"gnupg_home": str(ring.home)}))
        async with app.run_test(size=(120, 30)) as pilot:
            await synced(app)
            await until(pilot, lambda: len(app.screen.query_one(MessageList).index) == 1)
            reader = await open_row(app, pilot, 0)
            headers = str(reader.query_one("#headers").render())
            assert "a passphrase is needed; press D to decrypt" in headers
            assert "4711" not in screen_text(app)
            await pilot.press("D")  # pinentry (a stand-in here) asks; the app steps aside
            await until(pilot, lambda: "4711" in screen_text(app), timeout=20)
            assert "Encrypted (OpenPGP); decrypted." in str(reader.query_one("#headers").render())
    finally:
        ring.close()
