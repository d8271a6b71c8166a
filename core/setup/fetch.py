"""Fetching an autoconfig document over HTTPS: one small GET, verified TLS, bounded size.

Written on asyncio streams rather than with an HTTP library because the request must go to the
address discovery's own resolver gave (``core/setup/dns.py``; tests point it at loopback) while
the certificate is verified for the URL's host name, and the document is a few KB with no
cookies, auth or keep-alive. HTTP/1.0 keeps the answer unchunked; plain HTTP is never used.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from urllib.parse import urljoin, urlsplit

from kittiwake.core import __version__
from kittiwake.core.setup.dns import Dns

MAX_REDIRECTS = 3


class FetchError(Exception):
    """One sentence: why the document could not be had."""


async def https_get(
    url: str,
    *,
    dns: Dns,
    context: ssl.SSLContext,
    limit: int,
    timeout: float = 5.0,
    port: int | None = None,
) -> bytes:
    """The body of a 200 answer to GET ``url`` (following up to three HTTPS redirects);
    ``port`` overrides the URL's (tests serve on a free loopback port)."""
    for _ in range(MAX_REDIRECTS + 1):
        status, headers, body = await _get_once(url, dns, context, limit, timeout, port)
        if status in (301, 302, 303, 307, 308) and "location" in headers:
            target = urljoin(url, headers["location"])
            if urlsplit(target).scheme != "https":
                raise FetchError(f"{url} redirects to a plain-HTTP address, which is not followed")
            url = target
            continue
        if status != 200:
            raise FetchError(f"{url} answered HTTP {status}")
        return body
    raise FetchError(f"{url} redirects too often")


async def _get_once(
    url: str, dns: Dns, context: ssl.SSLContext, limit: int, timeout: float, port: int | None
) -> tuple[int, dict[str, str], bytes]:
    parts = urlsplit(url)
    host = parts.hostname
    if parts.scheme != "https" or not host:
        raise FetchError(f"{url} is not an https address")
    addresses = await dns.addresses(host)
    if not addresses:
        raise FetchError(f"{host}: no such host")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    request = (
        f"GET {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: kittiwake/{__version__}\r\n"
        "Accept: application/xml, text/xml\r\nConnection: close\r\n\r\n"
    ).encode("ascii")
    writer: asyncio.StreamWriter | None = None
    try:
        reader, opened = await asyncio.wait_for(
            asyncio.open_connection(
                addresses[0], port or parts.port or 443, ssl=context, server_hostname=host
            ),
            timeout,
        )
        writer = opened
        opened.write(request)
        data = await asyncio.wait_for(reader.read(limit + 16384), timeout)
        while data and len(data) <= limit + 16384:
            more = await asyncio.wait_for(reader.read(65536), timeout)
            if not more:
                break
            data += more
    except ssl.SSLCertVerificationError as exc:
        raise FetchError(f"{host}: certificate refused ({exc.verify_message})") from None
    except ConnectionRefusedError:
        raise FetchError(f"{host}: nothing listens for HTTPS") from None
    except TimeoutError:
        raise FetchError(f"{host}: no answer within {timeout:.0f} s") from None
    except ssl.SSLError as exc:
        raise FetchError(f"{host}: the TLS handshake failed ({exc.reason or exc})") from None
    except OSError as exc:
        raise FetchError(f"{host}: cannot connect ({exc.strerror or exc})") from None
    finally:
        if writer is not None:
            with contextlib.suppress(Exception):
                writer.close()
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        raise FetchError(f"{url}: not an HTTP answer")
    lines = head.decode("iso-8859-1").split("\r\n")
    try:
        status = int(lines[0].split()[1])
    except (IndexError, ValueError):
        raise FetchError(f"{url}: not an HTTP answer") from None
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if len(body) > limit:
        raise FetchError(f"{url}: the document is larger than {limit:,} bytes")
    return status, headers, body
