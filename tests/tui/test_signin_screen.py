"""OAuth2 in the app: an account that was never signed in says so in the status bar, ctrl+l
opens the sign-in, a person signs in in a browser (following the redirect to the loopback
listener), and the account connects and shows its mail; against the Authlib authorization
server and a Dovecot that checks every token with it."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import Dovecot, TestCA, imap_device
from harness.oauth import CLIENT_ID, OAuthServer, browser_sign_in
from harness.ui import until

from kittiwake.core.config import config_from_dict
from kittiwake.tui.app import KittiwakeApp
from kittiwake.tui.screens.signin import SignInScreen
from kittiwake.tui.widgets.message_list import MessageList
from kittiwake.tui.widgets.status_bar import StatusBar


@pytest.fixture
def oauth(
    tmp_path: Path,
    tls_ca: TestCA,
    dovecot_factory: Callable[..., Dovecot],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[OAuthServer, Dovecot]]:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("PASSWORD_STORE_DIR", str(tmp_path / "no-pass"))
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with OAuthServer(tls_ca, tmp_path, {}) as auth:
        yield auth, dovecot_factory(oauth2_introspection=auth.introspection_url)


async def test_ctrl_l_signs_in_and_the_mailbox_fills(oauth: tuple[OAuthServer, Dovecot]) -> None:
    auth, server = oauth
    user = server.add_user("oauth")
    auth.users[user.login] = user.password
    device = imap_device(server, user)
    device.append("INBOX", "", None, b"Subject: Signed in at last\r\nFrom: a@b.c\r\n\r\nhi\r\n")
    device.logout()
    config = config_from_dict(
        {
            "accounts": {
                "me": {
                    "email": user.login,
                    "imap": {
                        "host": server.host,
                        "port": server.ports.imaps,
                        "user": user.login,
                        "auth": "oauth2",
                        "ca_file": str(server.ca_file),
                        "timeout": 10,
                    },
                    "oauth2": {
                        "client_id": CLIENT_ID,
                        "authorize_url": auth.authorize_url,
                        "token_url": auth.token_url,
                        "scopes": ["mail", "offline_access"],
                        "ca_file": str(server.ca_file),
                    },
                }
            }
        }
    )
    app = KittiwakeApp(config)
    async with app.run_test(size=(100, 30)) as pilot:
        bar = app.screen.query_one(StatusBar)
        await until(pilot, lambda: "sign-in needed: press ctrl+l" in str(bar.render()), 20)
        await pilot.press("ctrl+l")
        await until(pilot, lambda: isinstance(app.screen, SignInScreen), 5)
        screen = app.screen
        assert isinstance(screen, SignInScreen)
        await until(pilot, lambda: screen.prompt is not None, 10)
        assert screen.prompt is not None
        shown = str(screen.query_one("#said").render())
        assert "ssh -L" in shown and re.search(r"https://\S+/authorize", shown)
        thread = threading.Thread(
            target=browser_sign_in,
            args=(auth, screen.prompt.url, user.login, user.password),
        )
        thread.start()
        await asyncio.to_thread(thread.join)
        await until(pilot, lambda: not isinstance(app.screen, SignInScreen), 10)
        messages = app.screen.query_one(MessageList)
        await until(pilot, lambda: len(messages.index) == 1, 20)
        # The first page may be drawn before the sync ends (it does not wait for the watch).
        await until(pilot, lambda: "online" in str(bar.render()), 10)


async def test_a_revoked_sign_in_says_so_once_and_waits_for_the_user(
    oauth: tuple[OAuthServer, Dovecot], proxy_factory: Callable[[str, int], Any]
) -> None:
    """The user revokes Kittiwake's access on the provider's security page; the link then
    drops: the account does not loop on reconnects, the status bar asks for a sign-in."""
    from harness.oauth import sign_in_by_code

    from kittiwake.core.oauth2.endpoint import tokens_from
    from kittiwake.core.oauth2.tokens import token_source

    auth, server = oauth
    user = server.add_user("revoked")
    auth.users[user.login] = user.password
    proxy = proxy_factory(server.host, server.ports.imaps)
    config = config_from_dict(
        {
            "accounts": {
                "me": {
                    "email": user.login,
                    "imap": {
                        "host": server.host,
                        "port": proxy.port,
                        "user": user.login,
                        "auth": "oauth2",
                        "ca_file": str(server.ca_file),
                        "timeout": 10,
                    },
                    "oauth2": {
                        "client_id": CLIENT_ID,
                        "authorize_url": auth.authorize_url,
                        "token_url": auth.token_url,
                        "scopes": ["mail", "offline_access"],
                        "ca_file": str(server.ca_file),
                    },
                }
            }
        }
    )
    import time

    signed = sign_in_by_code(auth, user.login, user.password)
    await token_source(config.accounts["me"]).signed_in(tokens_from(signed, None, time.time()))
    app = KittiwakeApp(config)
    async with app.run_test(size=(100, 30)) as pilot:
        bar = app.screen.query_one(StatusBar)
        await until(pilot, lambda: "online" in str(bar.render()), 20)
        auth.revoke_all(user.login)
        connections = proxy.connection_count
        proxy.kill_connections()
        await until(pilot, lambda: "sign-in needed: press ctrl+l" in str(bar.render()), 20)
        imap = app.api.engine.imap["me"]
        assert imap.sign_in_needed is not None and "kittiwake login me" in imap.sign_in_needed
        settled = proxy.connection_count
        assert settled - connections <= 3  # one attempt (command + watch), not a loop
        await pilot.press("ctrl+l")
        await until(pilot, lambda: isinstance(app.screen, SignInScreen), 5)
