"""Autocrypt on the review screen: a recipient whose key and "mutual" came in an Autocrypt
header makes the message start out encrypted, and the screen says why."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import Dovecot, Postfix, User
from harness.gnupg import Keyring, new_keyring
from harness.ui import screen_text, synced, until

from kittiwake.core.config import config_from_dict
from kittiwake.core.crypto import autocrypt
from kittiwake.tui.app import KittiwakeApp
from kittiwake.tui.screens.review import ReviewScreen


@pytest.fixture
def peers(user: User, user2: User) -> Iterator[tuple[Keyring, Path]]:
    """My keyring (my key only) and a peer store that learnt user2's key, mutual."""
    mine, theirs = new_keyring(), new_keyring()
    mine.add_key("Me Myself", user.email)
    theirs.add_key("Bob", user2.email)
    root = Path(tempfile.mkdtemp(prefix="kwac-", dir="/tmp"))
    data = autocrypt.own_keydata(user2.email, theirs.gnupg)
    assert data is not None
    store = autocrypt.PeerStore(root)
    store.update(user2.email, time.time(), autocrypt.Header(user2.email, data, "mutual"))
    theirs.close()
    yield mine, root
    subprocess.run(
        ["gpgconf", "--homedir", str(root / "gnupg"), "--kill", "all"],
        capture_output=True,
        check=False,
    )
    shutil.rmtree(root, ignore_errors=True)
    mine.close()


async def test_a_mutual_peer_makes_the_message_start_encrypted(
    xdg: Path,
    dovecot: Dovecot,
    postfix: Postfix,
    user: User,
    user2: User,
    peers: tuple[Keyring, Path],
) -> None:
    ring, root = peers
    server = {"user": user.login, "password": user.password, "ca_file": str(dovecot.ca_file)}
    config = config_from_dict(
        {
            "crypto": {"gnupg_home": str(ring.home), "autocrypt_dir": str(root)},
            "accounts": {
                "mine": {
                    "email": user.email,
                    "autocrypt": True,
                    "autocrypt_prefer_encrypt": "mutual",
                    "imap": {"host": dovecot.host, "port": dovecot.ports.imaps, **server},
                    "smtp": {"host": postfix.host, "port": postfix.ports.submission,
                             "security": "starttls", **server},
                }
            },
        }
    )  # fmt: skip
    app = KittiwakeApp(config)
    async with app.run_test(size=(140, 30)) as pilot:
        await synced(app)
        local = app.api.compose.new("mine", to=user2.email, subject="Hi", body="Hi Bob.\n")
        app.push_screen(ReviewScreen(local))
        await until(pilot, lambda: isinstance(app.screen, ReviewScreen))
        review = app.screen
        assert isinstance(review, ReviewScreen)
        await until(pilot, lambda: review.local.draft.encrypt, timeout=10)
        await until(pilot, lambda: "every recipient asks for encryption" in screen_text(app))
        assert "OpenPGP: encrypted  (p changes it)" in screen_text(app)
