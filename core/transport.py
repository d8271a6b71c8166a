"""Opening a client connection with implicit TLS or in the clear, shared by IMAP and POP3
(SMTP goes through aiosmtplib). Errors are left to the caller, which names its server."""

from __future__ import annotations

import asyncio
import os
import ssl
from collections.abc import Callable

from kittiwake.core.config import ca_file_problem
from kittiwake.core.errors import ConfigError


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
