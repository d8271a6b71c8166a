"""What every protocol wing does the same way before it speaks its protocol: the TLS context
(system trust store plus the account's ``ca_file``, never unverified), the connection (implicit
TLS or in the clear, for IMAP and POP3; SMTP goes through aiosmtplib) and the credentials with
the login sequence around them (OAuth2 tokens refreshed once after a refusal). One copy here,
so IMAP, POP3, SMTP and the setup's login check cannot drift apart. Errors are left to the
caller, which names its server."""

from __future__ import annotations

import asyncio
import os
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from kittiwake.core.config import Account, ServerConfig, ca_file_problem
from kittiwake.core.errors import ConfigError
from kittiwake.core.secrets import Secret, credentials

T = TypeVar("T")


async def open_transport(
    factory: Callable[[], asyncio.Protocol],
    host: str,
    port: int,
    *,
    tls: ssl.SSLContext | None,
    server_hostname: str,
    timeout: float,
) -> bool:
    """Connect ``factory()``'s protocol to host:port, through TLS when ``tls`` is given
    (certificate and host name verified by the context); True if TLS is on."""
    loop = asyncio.get_running_loop()
    if tls is None:
        await loop.create_connection(factory, host, port)
        return False
    await loop.create_connection(
        factory, host, port, ssl=tls, server_hostname=server_hostname, ssl_handshake_timeout=timeout
    )
    return True


def describe_ssl_error(exc: ssl.SSLError) -> str:
    """The part of an SSL error a user can act on (the verification message, not the stack)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verification failed: {exc.verify_message or exc.reason}"
    return str(exc.reason or exc)


_SSL_CONTEXTS: dict[tuple[str | None, int, int], ssl.SSLContext] = {}


def make_ssl_context(ca_file: str | None) -> ssl.SSLContext:
    """System trust store plus the account's own CA: verification is never switched off.

    Loading the system trust store takes 15-20 ms, so contexts are kept per CA file (and
    rebuilt when that file changes); a context can be shared by any number of connections.
    """
    try:
        stat = os.stat(ca_file) if ca_file else None
    except OSError:
        stat = None  # load_verify_locations raises the error the user should see
    key = (ca_file or None, stat.st_mtime_ns if stat else 0, stat.st_size if stat else 0)
    ctx = _SSL_CONTEXTS.get(key)
    if ctx is None:
        ctx = ssl.create_default_context()
        if ca_file:
            ctx.load_verify_locations(cafile=ca_file)
        if ca_file is None or stat is not None:
            _SSL_CONTEXTS[key] = ctx
    return ctx


def tls_context_for(ca_file: str | None, at: str) -> ssl.SSLContext:
    """``make_ssl_context``, with a ``ca_file`` that broke after the config was read (moved,
    replaced) reported as the config mistake it is: one sentence naming the key
    (``at`` is the section, e.g. accounts.work.imap), never an OSError or SSLError."""
    try:
        return make_ssl_context(ca_file)
    except (OSError, ssl.SSLError) as exc:
        problem = (ca_file_problem(ca_file) if ca_file else None) or f"{ca_file}: {exc}"
        raise ConfigError(f"{at}.ca_file: {problem}") from None


def tls_context(server: ServerConfig, at: str) -> ssl.SSLContext | None:
    """The context for ``server`` (``at`` names its section, e.g. accounts.work.imap), or None
    when its ``security`` is "none": the one place that decides whether TLS is used at all."""
    if server.security == "none":
        return None
    return tls_context_for(server.ca_file, at)


@dataclass(frozen=True)
class Credential:
    """Who logs in and with what: a password, or an OAuth2 access token (``oauth2``)."""

    user: str
    secret: Secret
    oauth2: bool


async def credential(server: ServerConfig, at: str, account: Account) -> Credential:
    """The credential of ``server`` now. Commands, keyrings and password files are read off
    the event loop (a password manager may wait for its passphrase); ``auth = "oauth2"``
    takes the account's token, refreshed when due (``SignInRequired`` when the user must
    sign in)."""
    oauth2, secret = await credentials(server, at, account)
    return Credential(server.user or account.email, secret, oauth2)


async def sign_in(
    server: ServerConfig,
    at: str,
    account: Account,
    login: Callable[[Credential], Awaitable[T]],
    refused: type[Exception] | tuple[type[Exception], ...],
    *,
    first: Credential | None = None,
    source: Callable[[], Awaitable[Credential]] | None = None,
    forget: Callable[[], None] | None = None,
) -> T:
    """``login`` with ``first``, the credential fetched before connecting (a password manager
    may take longer than a server waits for a login), else with one from ``source`` (which
    may cache it; ``forget`` drops that cache; default: ``credential``).

    The server may refuse an access token the account thinks is fresh (revoked, or expired
    early): with ``auth = "oauth2"`` the token is refreshed once and tried once more, because
    a second refusal would only repeat itself; a refused refresh raises ``SignInRequired``.
    Any other refusal (``refused``) is the caller's to report."""

    async def fresh() -> Credential:
        return await credential(server, at, account)

    get = source or fresh
    if first is None:
        first = await get()
    try:
        return await login(first)
    except refused:
        if not (first.oauth2 and server.auth == "oauth2"):
            raise
    from kittiwake.core.oauth2.tokens import token_source

    token_source(account).invalidate()
    if forget is not None:
        forget()
    return await login(await get())
