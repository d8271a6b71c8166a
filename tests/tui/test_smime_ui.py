"""S/MIME in the app, against the real Dovecot (and Postfix): the reader's Security lines
come from gpgsm, in the header block (a certificate from an untrusted CA is not "good"), and
an S/MIME account's review screen signs with its certificate."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from harness import Dovecot, Postfix, User, wait_for_messages
from harness.gpgsm import SmimeHome, new_ca, new_smime_home
from harness.ui import screen_text, synced, until

from kittiwake.core.config import Config, config_from_dict
from kittiwake.core.crypto import smime
from kittiwake.core.message.mime import parse_message
from kittiwake.tui.app import KittiwakeApp
from kittiwake.tui.screens.mailbox import MailboxScreen
from kittiwake.tui.screens.reader import ReaderScreen
from kittiwake.tui.screens.review import ReviewScreen
from kittiwake.tui.widgets.message_list import MessageList


@pytest.fixture
def home(user: User) -> Iterator[SmimeHome]:
    """Ann and me from a trusted CA; Mallory (``home.stranger``) from one nobody trusts."""
    ca = new_ca()
    home = new_smime_home(ca)
    home.add_user("Ann Signer", "ann@example.org")
    home.add_user("Me Myself", user.email)
    stranger = new_smime_home()
    stranger.add_user("Mallory \x1b[31mBank", "mallory@example.org")
    home.stranger = stranger  # type: ignore[attr-defined]
    yield home
    stranger.close()
    home.close()
    ca.close()


def signed(home: SmimeHome, address: str, subject: str) -> bytes:
    head = (
        f"From: <{address}>\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject.replace(' ', '-')}@example.org>\r\nMIME-Version: 1.0\r\n"
    ).encode()
    entity = b"Content-Type: text/plain; charset=us-ascii\r\n\r\nFigures attached.\r\n"
    return head + smime.sign_entity(entity, home.fingerprints[address], home.gnupg)


async def test_reader_shows_smime_status_and_an_untrusted_issuer(
    xdg: Path, mailbox: Callable[..., Config], home: SmimeHome
) -> None:
    stranger: SmimeHome = home.stranger  # type: ignore[attr-defined]
    good = signed(home, "ann@example.org", "Figures")
    untrusted = signed(stranger, "mallory@example.org", "Invoice")
    config = mailbox(0, extra=[good, untrusted], crypto={"gnupg_home": str(home.home)})
    app = KittiwakeApp(config)
    async with app.run_test(size=(140, 30)) as pilot:
        await synced(app)
        assert isinstance(app.screen, MailboxScreen)
        await until(pilot, lambda: len(app.screen.query_one(MessageList).index) == 2)
        for row, expected in ((1, "Good signature (S/MIME) from Ann Signer"), (0, "NOT TRUSTED")):
            screen = app.screen
            assert isinstance(screen, MailboxScreen)
            screen.query_one(MessageList).cursor = row
            await pilot.press("enter")
            await until(
                pilot,
                lambda: isinstance(app.screen, ReaderScreen) and app.screen.parsed is not None,
                timeout=30,
            )
            assert isinstance(app.screen, ReaderScreen)
            headers = str(app.screen.query_one("#headers").render())
            assert expected in headers
            assert "\x1b" not in headers  # the subject's escape went through the sanitiser
            await pilot.press("escape")
            await until(pilot, lambda: isinstance(app.screen, MailboxScreen))


def smime_config(
    dovecot: Dovecot, postfix: Postfix, user: User, home: SmimeHome, **account: object
) -> Config:
    server = {"user": user.login, "password": user.password, "ca_file": str(dovecot.ca_file)}
    return config_from_dict(
        {
            "crypto": {"gnupg_home": str(home.home)},
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


async def test_an_smime_account_signs_from_the_review_screen(
    xdg: Path, dovecot: Dovecot, postfix: Postfix, user: User, user2: User, home: SmimeHome
) -> None:
    app = KittiwakeApp(smime_config(dovecot, postfix, user, home, smime_sign=True))
    async with app.run_test(size=(100, 30)) as pilot:
        await synced(app)
        local = app.api.compose.new("mine", to=user2.email, subject="Certs", body="Hi Bob.\n")
        app.push_screen(ReviewScreen(local))
        await until(pilot, lambda: isinstance(app.screen, ReviewScreen))
        review = app.screen
        assert isinstance(review, ReviewScreen)
        await until(pilot, lambda: review.local.draft.sign)
        await until(pilot, lambda: "S/MIME:  signed  (p changes it)" in screen_text(app))
        assert "OpenPGP" not in screen_text(app)
        await pilot.press("y")
        (got,) = await asyncio.to_thread(wait_for_messages, dovecot, user2, 1, timeout=30)
        assert b"application/pkcs7-signature" in got
        shown = await smime.open_message(parse_message(got), home.gnupg)
        assert shown.security is not None
        assert [s.user_id for s in shown.security.signatures] == [f"Me Myself <{user.email}>"]
