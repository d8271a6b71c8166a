"""Opening a client connection with implicit TLS or in the clear, shared by IMAP and POP3
(SMTP goes through aiosmtplib). Errors are left to the caller, which names its server."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable


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
