"""Talking to the authorization server's token and device endpoints (RFC 6749 section 4.1.3
and 6, RFC 8628), with httpx. Every failure is one sentence; a refresh token the server no
longer accepts is ``SignInRequired``, which means: ask the user, never retry in a loop."""

from __future__ import annotations

import ssl
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kittiwake.core.config import OAuth2Config
from kittiwake.core.errors import KittiwakeError, SignInRequired
from kittiwake.core.logsetup import register_secret

if TYPE_CHECKING:
    import httpx


class OAuth2Error(KittiwakeError):
    """The sign-in server refused or could not be reached (one sentence); ``code`` is its
    OAuth2 error code ("invalid_grant", "authorization_pending", ...) when it gave one."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Tokens:
    access_token: str
    expires_at: float
    """Monotonic-independent wall-clock seconds (time.time())."""
    refresh_token: str | None
    scope: str = ""

    def __repr__(self) -> str:
        return f"Tokens(expires_at={self.expires_at:.0f}, scope={self.scope!r})"


@dataclass(frozen=True, slots=True)
class DeviceStart:
    device_code: str
    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    expires_in: int
    interval: int


def http_client(cfg: OAuth2Config, timeout: float = 30.0) -> httpx.AsyncClient:
    import httpx  # here: importing httpx loads rich (its command line), kept out of core's imports

    context = ssl.create_default_context()
    if cfg.ca_file:
        context.load_verify_locations(cafile=cfg.ca_file)
    return httpx.AsyncClient(verify=context, timeout=timeout, follow_redirects=False)


def _client_fields(cfg: OAuth2Config) -> dict[str, str]:
    fields = {"client_id": cfg.client_id}
    if cfg.client_secret:
        fields["client_secret"] = cfg.client_secret
    return fields


async def post_form(cfg: OAuth2Config, url: str, data: dict[str, str]) -> dict[str, Any]:
    """POST ``data`` (plus the client's id) and return the JSON answer, or raise with the
    server's ``error`` and ``error_description`` in plain words."""
    import httpx

    where = httpx.URL(url).host
    try:
        async with http_client(cfg) as client:
            answer = await client.post(url, data={**_client_fields(cfg), **data})
    except httpx.HTTPError as exc:
        raise OAuth2Error(f"the sign-in server {where} could not be reached ({exc})") from None
    try:
        body: dict[str, Any] = answer.json()
    except ValueError:
        raise OAuth2Error(
            f"the sign-in server {where} answered HTTP {answer.status_code} without JSON"
        ) from None
    if answer.status_code >= 400 or "error" in body:
        error = str(body.get("error", f"HTTP {answer.status_code}"))
        described = str(body.get("error_description") or "").strip()
        sentence = f"{where} refused: {error}" + (f" ({described})" if described else "")
        if error == "invalid_grant":
            raise SignInRequired(sentence, code=error)
        raise OAuth2Error(sentence, code=error)
    return body


def tokens_from(body: dict[str, Any], previous_refresh: str | None, now: float) -> Tokens:
    access = body.get("access_token")
    if not isinstance(access, str) or not access:
        raise OAuth2Error("the sign-in server's answer holds no access token")
    register_secret(access)
    refresh = body.get("refresh_token")
    if isinstance(refresh, str) and refresh:
        register_secret(refresh)
    else:
        refresh = previous_refresh  # a server may keep the old one valid
    expires = body.get("expires_in")
    lifetime = float(expires) if isinstance(expires, int | float | str) and str(expires) else 3600
    return Tokens(access, now + lifetime, refresh, str(body.get("scope", "")))


async def exchange_code(
    cfg: OAuth2Config, token_url: str, code: str, verifier: str, redirect_uri: str
) -> Tokens:
    body = await post_form(
        cfg,
        token_url,
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        },
    )
    return tokens_from(body, None, time.time())


async def refresh(
    cfg: OAuth2Config,
    token_url: str,
    refresh_token: str,
    scopes: tuple[str, ...],
    now: float | None = None,
) -> Tokens:
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    if scopes:
        data["scope"] = " ".join(scopes)
    body = await post_form(cfg, token_url, data)
    return tokens_from(body, refresh_token, time.time() if now is None else now)


async def start_device(cfg: OAuth2Config, device_url: str, scopes: tuple[str, ...]) -> DeviceStart:
    body = await post_form(cfg, device_url, {"scope": " ".join(scopes)})
    try:
        return DeviceStart(
            str(body["device_code"]),
            str(body["user_code"]),
            str(body.get("verification_uri") or body["verification_url"]),
            body.get("verification_uri_complete"),
            int(body.get("expires_in", 900)),
            int(body.get("interval", 5)),
        )
    except (KeyError, ValueError, TypeError):
        raise OAuth2Error("the sign-in server's device answer is incomplete") from None


async def poll_device(cfg: OAuth2Config, token_url: str, device: DeviceStart) -> Tokens | None:
    """One poll: the tokens, or None while the user has not finished on the other device.
    ``slow_down`` is the caller's to honour through ``DeviceStart.interval``."""
    try:
        body = await post_form(
            cfg,
            token_url,
            {
                "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
                "device_code": device.device_code,
            },
        )
    except OAuth2Error as exc:
        if exc.code in ("authorization_pending", "slow_down"):
            return None
        if exc.code == "expired_token":
            raise SignInRequired(
                "the code expired before it was entered; start again", code=exc.code
            ) from None
        raise
    return tokens_from(body, None, time.time())
