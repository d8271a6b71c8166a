"""Logging in with a configured account exactly as the app will (same connection code, same
secrets), and explaining a refusal with what is known of the provider.

Setup runs this before it writes anything; ``kittiwake doctor`` runs it after the probes. IMAP
and POP3 log in and out; SMTP says EHLO and AUTH, and nothing is sent.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from kittiwake.core.config import Account
from kittiwake.core.errors import AuthFailed, KittiwakeError, SecretError
from kittiwake.core.imap.connection import ImapConnection
from kittiwake.core.imap.session import imap_session as open_imap_session
from kittiwake.core.pop3.client import Pop3AuthFailed, Pop3Client
from kittiwake.core.setup.known import provider_hint
from kittiwake.core.smtp.client import SmtpAccountError, SmtpSession
from kittiwake.core.transport import Credential, credential, sign_in, tls_context

Which = Literal["imap", "pop3", "smtp"]


@dataclass(frozen=True, slots=True)
class LoginResult:
    which: Which
    ok: bool
    detail: str
    """One sentence: who was logged in where, or the server's refusal in its own words."""
    hint: str = ""
    """What to do about a refusal, from what is known of the provider."""
    auth_refused: bool = False
    """The server refused the credentials (not the network, not TLS)."""
    seconds: float = 0.0


#: Servers delay a refused login (Dovecot by 2 s, more after repeated failures; big providers
#: longer), so a check waits at least this long for the answer to its login.
LOGIN_PATIENCE = 30.0


async def check_login(account: Account, which: Which) -> LoginResult:
    """Log in to ``account``'s ``which`` server and out again; never raises for a refusal."""
    started = time.monotonic()
    refused = False
    try:
        if which == "imap":
            detail = await _imap(account)
        elif which == "pop3":
            detail = await _pop3(account)
        else:
            detail = await _smtp(account)
        ok = True
    except (AuthFailed, Pop3AuthFailed) as exc:
        # [UNAVAILABLE] and the like: the server's passing state, not the password
        ok, refused, detail = False, not getattr(exc, "temporary", False), exc.message
    except SmtpAccountError as exc:
        ok, detail = False, exc.message
        refused = getattr(exc, "code", None) in (535, 534, 530, 454)
    except SecretError as exc:
        ok, detail = False, exc.message
    except KittiwakeError as exc:
        ok, detail = False, exc.message
    except (OSError, TimeoutError) as exc:
        ok, detail = False, f"{_where(account, which)}: {exc.strerror or exc}"
    hint = ""
    if refused:
        hint = provider_hint(account.email, detail) or (
            "check the user name and password; some providers need an app password for mail "
            "programs, or IMAP/POP3 switched on in their web settings"
        )
    return LoginResult(which, ok, detail, hint, refused, time.monotonic() - started)


def _where(account: Account, which: Which) -> str:
    server = getattr(account, which)
    return f"{server.host}:{server.port}" if server is not None else which


async def imap_session(
    account: Account, on_untagged: Callable[[bytes], None] | None = None
) -> ImapConnection:
    """A logged-in IMAP connection for ``account``, as the app makes it; the caller closes."""
    cfg = account.imap
    assert cfg is not None
    return await open_imap_session(
        account, timeout=max(cfg.timeout, LOGIN_PATIENCE), on_untagged=on_untagged
    )


async def _imap(account: Account) -> str:
    cfg = account.imap
    assert cfg is not None
    conn = await imap_session(account)
    try:
        with contextlib.suppress(Exception):
            await conn.logout(timeout=5)
    finally:
        with contextlib.suppress(Exception):
            await conn.close()
    return f"logged in to IMAP at {cfg.host}:{cfg.port} as {cfg.user or account.email}"


async def pop3_session(account: Account) -> Pop3Client:
    """A logged-in POP3 client for ``account``; the caller quits and closes."""
    cfg = account.pop3
    assert cfg is not None
    at = f"accounts.{account.key}.pop3"
    context = tls_context(cfg, at)
    first = await credential(cfg, at, account)  # before connecting: it may take long
    client = Pop3Client(timeout=max(cfg.timeout, LOGIN_PATIENCE))
    await client.connect(cfg.host, cfg.port or 995, cfg.security, context)

    async def login(c: Credential) -> None:
        if c.oauth2:
            await client.login_oauth2(c.user, c.secret)
        else:
            await client.login(c.user, c.secret)

    try:
        await sign_in(cfg, at, account, login, Pop3AuthFailed, first=first)
    except BaseException:
        with contextlib.suppress(Exception):
            await client.close()
        raise
    return client


async def _pop3(account: Account) -> str:
    cfg = account.pop3
    assert cfg is not None
    client = await pop3_session(account)
    try:
        with contextlib.suppress(Exception):
            await client.quit()
    finally:
        with contextlib.suppress(Exception):
            await client.close()
    return f"logged in to POP3 at {cfg.host}:{cfg.port} as {cfg.user or account.email}"


async def _smtp(account: Account) -> str:
    cfg = account.smtp
    assert cfg is not None
    async with SmtpSession(account, timeout=max(cfg.timeout, LOGIN_PATIENCE)):
        pass
    user = cfg.user or account.email
    return f"logged in to SMTP at {cfg.host}:{cfg.port} as {user} (nothing sent)"
