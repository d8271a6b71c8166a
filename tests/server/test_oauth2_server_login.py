"""XOAUTH2 and OAUTHBEARER logins checked for real: an OAuth2 authorization server on loopback
(Authlib) issues the tokens, Dovecot's oauth2 passdb checks each one against it
(introspection), Postfix authenticates SMTP through Dovecot. Kittiwake's existing
``oauth2_token_command`` path logs in to IMAP and SMTP with them; a revoked token is refused
with the server's words. (The built-in sign-in of the OAuth2 issue builds on this harness.)"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import Dovecot, Postfix, TestCA
from harness.oauth import OAuthServer, sign_in_by_code

from kittiwake.core.config import Account, config_from_dict
from kittiwake.core.setup.login import check_login


@pytest.fixture
def oauth_servers(
    tmp_path: Path,
    tls_ca: TestCA,
    dovecot_factory: Callable[..., Dovecot],
    postfix_factory: Callable[..., Postfix],
) -> Iterator[tuple[OAuthServer, Dovecot, Postfix]]:
    with OAuthServer(tls_ca, tmp_path, {}) as auth:
        imap = dovecot_factory(oauth2_introspection=auth.introspection_url)
        yield auth, imap, postfix_factory(dovecot=imap)


def account(dovecot: Dovecot, postfix: Postfix, login: str, token: str) -> Account:
    def server(port: int, security: str) -> dict[str, Any]:
        return {
            "host": dovecot.host,
            "port": port,
            "security": security,
            "user": login,
            "oauth2_token_command": ["printf", "%s", token],
            "ca_file": str(dovecot.ca_file),
            "timeout": 15,
        }

    data = {
        "email": login,
        "imap": server(dovecot.ports.imaps, "tls"),
        "smtp": server(postfix.ports.submission, "starttls"),
    }
    return config_from_dict({"accounts": {"me": data}}).accounts["me"]


async def test_tokens_from_the_server_log_in_to_imap_and_smtp_and_revoked_ones_do_not(
    oauth_servers: tuple[OAuthServer, Dovecot, Postfix],
) -> None:
    auth, imap, smtp = oauth_servers
    user = imap.add_user("oauth")
    auth.users[user.login] = user.password
    token = sign_in_by_code(auth, user.login, user.password)
    assert token["refresh_token"] and token["token_type"] == "Bearer"
    signed_in = account(imap, smtp, user.login, token["access_token"])
    assert (await check_login(signed_in, "imap")).ok
    assert (await check_login(signed_in, "smtp")).ok
    auth.revoke_all(user.login)
    refused = await check_login(signed_in, "imap")
    assert not refused.ok and refused.auth_refused
    assert token["access_token"] not in refused.detail
    forged = await check_login(account(imap, smtp, user.login, "forged-token"), "imap")
    assert not forged.ok and forged.auth_refused
