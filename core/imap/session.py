"""A logged-in IMAP connection for an account of the config, made one way for every caller:
the app's connections (``ImapAccount``), a one-off delivery connection while the account is
not running, and the setup's login check. TLS and the credentials come from
``core/transport.py``, so a token refused once is refreshed everywhere alike."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable

from kittiwake.core.config import Account
from kittiwake.core.errors import AuthFailed
from kittiwake.core.imap.connection import ImapConnection, LostCallback
from kittiwake.core.imap.protocol import UntaggedCallback
from kittiwake.core.transport import Credential, credential, sign_in, tls_context


async def imap_session(
    account: Account,
    *,
    timeout: float | None = None,
    on_untagged: UntaggedCallback | None = None,
    on_lost: LostCallback | None = None,
    source: Callable[[], Awaitable[Credential]] | None = None,
    forget: Callable[[], None] | None = None,
) -> ImapConnection:
    """Connect to ``account``'s IMAP server and log in; the caller closes. The credential is
    fetched before connecting (a password manager may take long, and the server would time
    the idle connection out); ``source``/``forget`` let the caller cache it (see
    ``transport.sign_in``)."""
    cfg = account.imap
    if cfg is None:
        raise ValueError(f"account {account.key} has no IMAP section")
    at = f"accounts.{account.key}.imap"
    context = tls_context(cfg, at)

    async def fresh() -> Credential:
        return await credential(cfg, at, account)

    get = source or fresh
    first = await get()
    conn = ImapConnection(
        timeout=cfg.timeout if timeout is None else timeout,
        on_untagged=on_untagged,
        on_lost=on_lost,
        disabled=cfg.disable,
    )
    await conn.connect(cfg.host, cfg.port or 993, security=cfg.security, ssl_context=context)

    async def login(c: Credential) -> None:
        if c.oauth2:
            await conn.authenticate_oauth(c.user, c.secret.reveal())
        else:
            await conn.login(c.user, c.secret.reveal())

    try:
        await sign_in(cfg, at, account, login, AuthFailed, first=first, source=get, forget=forget)
    except BaseException:
        with contextlib.suppress(Exception):
            await conn.close()
        raise
    return conn
