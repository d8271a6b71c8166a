"""An account's OAuth2 tokens: the refresh token in the secret store, the access token in
memory, refreshed ahead of its expiry (and once more after a refused login).

Where the refresh token went is remembered in ``$XDG_DATA_HOME/kittiwake/oauth2/ACCOUNT.json``
as a reference only (``{"password_file": ...}``, a keyring entry, a ``pass`` name): the same
keys a config section would use, read back through ``password_for``. No token is ever written
to the config, the cache or the log.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kittiwake.core import paths
from kittiwake.core.config import Account, OAuth2Config, ServerConfig
from kittiwake.core.errors import SecretError, SignInRequired
from kittiwake.core.oauth2.endpoint import Tokens, refresh
from kittiwake.core.oauth2.settings import Endpoints, endpoints
from kittiwake.core.secrets import Secret, password_for

#: Refresh this long before the access token expires (a connection may take that long).
AHEAD = 120.0


def reference_path(account: str) -> Path:
    return paths.data_dir() / "oauth2" / f"{account}.json"


def protocols_of(account: Account) -> tuple[str, ...]:
    return tuple(
        p
        for p in ("imap", "pop3", "smtp")
        if (s := getattr(account, p)) is not None and s.auth == "oauth2"
    )


class TokenSource:
    """One per account, shared by all its connections (see ``token_source``)."""

    def __init__(self, account: Account, now: Callable[[], float] = time.time) -> None:
        assert account.oauth2 is not None
        self.account = account
        self.cfg: OAuth2Config = account.oauth2
        self.endpoints: Endpoints = endpoints(self.cfg, protocols_of(account) or ("imap",))
        self.now = now
        self._tokens: Tokens | None = None
        self._lock = asyncio.Lock()

    @property
    def at(self) -> str:
        return f"accounts.{self.account.key}.oauth2"

    def state(self) -> str:
        """For ``kittiwake doctor``: whether a sign-in is stored and when access expires."""
        if not reference_path(self.account.key).exists():
            return "not signed in: run  kittiwake login " + self.account.key
        if self._tokens is None:
            return "signed in (refresh token stored)"
        left = self._tokens.expires_at - self.now()
        return f"signed in; the access token expires in {max(0, left) / 60:.0f} min"

    async def access_token(self) -> Secret:
        """A fresh access token; ``SignInRequired`` (one sentence) when the user must sign
        in (never stored, or refused by the server): never a loop of retries."""
        async with self._lock:
            tokens = self._tokens
            if tokens is None or tokens.expires_at - self.now() < AHEAD:
                tokens = await self._refresh()
            return Secret(tokens.access_token)

    def invalidate(self) -> None:
        """A server refused the access token: the next ``access_token`` refreshes it."""
        self._tokens = None

    async def _refresh(self) -> Tokens:
        stored = await asyncio.to_thread(self._load_refresh_token)
        try:
            tokens = await refresh(
                self.cfg,
                self.endpoints.token_url,
                stored.reveal(),
                self.endpoints.scopes,
                self.now(),
            )
        except SignInRequired as exc:
            raise SignInRequired(
                f"{self.at}: the sign-in has expired or was revoked ({exc.message}); sign in "
                f"again with  kittiwake login {self.account.key}",
                code=exc.code,
            ) from None
        if tokens.refresh_token and tokens.refresh_token != stored.reveal():
            await self._store_refresh_token(tokens.refresh_token)  # rotated by the server
        self._tokens = tokens
        return tokens

    def _load_refresh_token(self) -> Secret:
        path = reference_path(self.account.key)
        try:
            reference: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SignInRequired(
                f"{self.at}: not signed in yet; run  kittiwake login {self.account.key}"
            ) from None
        except (OSError, ValueError) as exc:
            raise SignInRequired(
                f"{self.at}: {path} cannot be read ({exc}); sign in again with  kittiwake "
                f"login {self.account.key}"
            ) from None
        section = ServerConfig(host="oauth2", **reference)
        try:
            return password_for(section, f"{self.at} (stored sign-in)")
        except SecretError as exc:
            raise SignInRequired(
                f"{exc.message}; sign in again with  kittiwake login {self.account.key}"
            ) from None

    async def _store_refresh_token(self, refresh_token: str) -> None:
        from kittiwake.core.files import atomic_write, make_private_dirs
        from kittiwake.core.secretstore import store_first_working

        ref, _failures = await store_first_working(self.account.key, "oauth2", refresh_token)
        path = reference_path(self.account.key)
        make_private_dirs(path.parent)
        atomic_write(path, json.dumps(ref.config).encode(), 0o600)

    async def signed_in(self, tokens: Tokens) -> str:
        """Keep the tokens of a completed sign-in; returns where the refresh token went."""
        if not tokens.refresh_token:
            raise SignInRequired(
                f"{self.at}: the sign-in server gave no refresh token (is offline_access among "
                "the scopes?)"
            )
        await self._store_refresh_token(tokens.refresh_token)
        lifetime = tokens.expires_at - time.time()  # the flows count on the wall clock
        self._tokens = Tokens(
            tokens.access_token, self.now() + lifetime, tokens.refresh_token, tokens.scope
        )
        from kittiwake.core.secretstore import StoreKind

        stored = json.loads(reference_path(self.account.key).read_text(encoding="utf-8"))
        kind = (
            StoreKind.FILE
            if "password_file" in stored
            else StoreKind.PASS
            if "password_command" in stored
            else StoreKind.KEYRING
        )
        return {
            StoreKind.FILE: "in a file only you can read",
            StoreKind.PASS: "in pass",
            StoreKind.KEYRING: "in the system keyring",
        }[kind]


_sources: dict[str, TokenSource] = {}


def token_source(account: Account) -> TokenSource:
    """The account's one token source (connections share the access token and refreshes)."""
    source = _sources.get(account.key)
    if source is None or source.account != account:
        source = _sources[account.key] = TokenSource(account)
    return source
