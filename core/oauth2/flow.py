"""Signing in: the authorization code grant with PKCE and a loopback redirect (RFC 7636, RFC
8252), or the device authorization grant (RFC 8628).

The loopback flow listens on ``127.0.0.1:PORT`` for the browser's redirect. Over SSH the
browser runs on another machine: the caller shows the ``ssh -L PORT:127.0.0.1:PORT HOST`` line
that makes the redirect reach us, and also accepts the address the browser ended on, pasted
back (``LoopbackReceiver.paste``), for when no tunnel is possible.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode, urlsplit

from kittiwake.core.config import OAuth2Config
from kittiwake.core.oauth2.endpoint import (
    DeviceStart,
    OAuth2Error,
    Tokens,
    exchange_code,
    poll_device,
    start_device,
)
from kittiwake.core.oauth2.settings import Endpoints

_DONE_PAGE = (
    b"<!doctype html><meta charset=utf-8><title>Kittiwake</title>"
    b"<p>Signed in. You can close this window and go back to Kittiwake."
)
_FAILED_PAGE = (
    b"<!doctype html><meta charset=utf-8><title>Kittiwake</title>"
    b"<p>The sign-in did not complete; Kittiwake says why."
)


@dataclass(frozen=True, slots=True)
class BrowserPrompt:
    """What to show the user: the address to open, and how to reach the redirect over SSH."""

    url: str
    port: int

    @property
    def ssh_hint(self) -> str:
        return f"ssh -L {self.port}:127.0.0.1:{self.port} THIS-MACHINE"


def open_browser(url: str) -> bool:
    """Open ``url`` in a browser on this machine when there is one to see: a desktop
    session, not a login over SSH (where the browser is on the user's own machine)."""
    over_ssh = bool(os.environ.get("SSH_CONNECTION") or os.environ.get("SSH_TTY"))
    if over_ssh or not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    import webbrowser

    return webbrowser.open(url)


def pkce_pair() -> tuple[str, str]:
    """(verifier, S256 challenge): RFC 7636 section 4.1 and 4.2."""
    verifier = secrets.token_urlsafe(64)[:96]
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class LoopbackReceiver:
    """A one-request HTTP listener on 127.0.0.1 for the redirect carrying the code."""

    def __init__(self) -> None:
        self._result: asyncio.Future[str] | None = None
        self._server: asyncio.base_events.Server | None = None
        self.port = 0

    async def start(self, port: int = 0) -> int:
        loop = asyncio.get_running_loop()
        self._result = loop.create_future()
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    @property
    def redirect_uri(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 10)
            while (await asyncio.wait_for(reader.readline(), 10)) not in (b"\r\n", b"\n", b""):
                pass
            parts = line.decode("latin-1").split()
            target = parts[1] if len(parts) >= 2 and parts[0] == "GET" else ""
            query = urlsplit(target).query
            accepted = bool(query) and self._offer(query)
            page = _DONE_PAGE if accepted and "code=" in query else _FAILED_PAGE
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
                + f"Content-Length: {len(page)}\r\nConnection: close\r\n\r\n".encode()
                + page
            )
            await writer.drain()
        except (TimeoutError, OSError, UnicodeError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    def _offer(self, query: str) -> bool:
        if self._result is None or self._result.done():
            return False
        fields = parse_qs(query)
        if "code" not in fields and "error" not in fields:
            return False  # a favicon or a probe: keep waiting
        self._result.set_result(query)
        return True

    def paste(self, address: str) -> bool:
        """The address the browser ended on, pasted by the user (no tunnel possible). False
        when it is not one: the caller asks again."""
        address = address.strip()
        parts = urlsplit(address)
        if parts.hostname not in ("127.0.0.1", "localhost") or not parts.query:
            return False
        return self._offer(parts.query)

    async def wait(self) -> str:
        assert self._result is not None
        return await self._result

    def close(self) -> None:
        if self._server is not None:
            self._server.close()


async def sign_in_with_browser(
    cfg: OAuth2Config,
    ep: Endpoints,
    show: Callable[[BrowserPrompt, LoopbackReceiver], Awaitable[None] | None],
    *,
    port: int = 0,
    login_hint: str | None = None,
    timeout: float = 600.0,
) -> Tokens:
    """The authorization code grant: ``show`` presents the prompt (and may open a browser,
    or read a pasted address into the receiver); the tokens once the code arrives."""
    receiver = LoopbackReceiver()
    await receiver.start(port)
    try:
        verifier, challenge = pkce_pair()
        state = secrets.token_urlsafe(24)
        query = {
            "response_type": "code",
            "client_id": cfg.client_id,
            "redirect_uri": receiver.redirect_uri,
            "scope": " ".join(ep.scopes),
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        if login_hint:
            query["login_hint"] = login_hint
        separator = "&" if "?" in ep.authorize_url else "?"
        prompt = BrowserPrompt(f"{ep.authorize_url}{separator}{urlencode(query)}", receiver.port)
        shown = show(prompt, receiver)
        if shown is not None:
            await shown
        try:
            answer = parse_qs(await asyncio.wait_for(receiver.wait(), timeout))
        except TimeoutError:
            raise OAuth2Error(f"no sign-in arrived within {timeout / 60:.0f} minutes") from None
    finally:
        receiver.close()
    if answer.get("state", [""])[0] != state:
        raise OAuth2Error("the sign-in answer does not belong to this sign-in (state differs)")
    if "error" in answer:
        error = answer["error"][0]
        described = answer.get("error_description", [""])[0]
        if error == "access_denied":
            raise OAuth2Error("the sign-in was declined in the browser")
        raise OAuth2Error(f"the sign-in failed: {error}" + (f" ({described})" if described else ""))
    return await exchange_code(
        cfg, ep.token_url, answer["code"][0], verifier, receiver.redirect_uri
    )


async def sign_in_with_device(
    cfg: OAuth2Config,
    ep: Endpoints,
    show: Callable[[DeviceStart], None],
    *,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> Tokens:
    """The device grant: ``show`` tells the user the code and where to type it; polls at
    the server's interval (slower when it says ``slow_down``) until done or expired."""
    if ep.device_url is None:
        raise OAuth2Error(
            "this provider does not offer sign-in with a code on another device; use the "
            "browser sign-in (it works over SSH too)"
        )
    device = await start_device(cfg, ep.device_url, ep.scopes)
    show(device)
    waited = 0.0
    interval = max(1, device.interval)
    while waited < device.expires_in:
        await sleep(interval)  # the protocol's own pacing (RFC 8628 section 3.5)
        waited += interval
        tokens = await poll_device(cfg, ep.token_url, device)
        if tokens is not None:
            return tokens
    raise OAuth2Error("the code expired before the sign-in was finished; start again")
