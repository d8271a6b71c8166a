"""Setup as a service for the setup screen and ``kittiwake setup``: find, test, save.

The password typed once is used for every server of the account (providers use one password
for IMAP or POP3 and SMTP); it is tested in memory, then stored where this machine can read it
back (``core/secretstore.py``), and the config only says how to read it.
"""

from __future__ import annotations

import asyncio
import tomllib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kittiwake.core.config import Account, OAuth2Config, load_config
from kittiwake.core.oauth2.endpoint import OAuth2Error
from kittiwake.core.oauth2.flow import BrowserPrompt, LoopbackReceiver, sign_in_with_browser
from kittiwake.core.oauth2.tokens import token_source
from kittiwake.core.secretstore import StoreKind, store_first_working
from kittiwake.core.setup.configwrite import append_account, suggest_account_name
from kittiwake.core.setup.confirm import Candidate
from kittiwake.core.setup.discover import Discovery, Finding
from kittiwake.core.setup.flow import (
    Proposal,
    Receive,
    account_block,
    account_for_test,
    find_settings,
    oauth2_section,
)
from kittiwake.core.setup.login import LoginResult, check_login
from kittiwake.core.setup.roundtrip import RoundTrip, send_to_self


@dataclass
class SetupService:
    config_path: Path
    discovery: Discovery = field(default_factory=Discovery)
    ca_file: Path | None = None
    """An extra trust anchor for the servers (a private CA), written into the config."""
    stores: list[StoreKind] | None = None
    """Where passwords may go, in order (default: every store that works here)."""
    account_name: str | None = None
    saved_key: str | None = None
    """The name the last saved account was given."""

    async def find(
        self,
        email: str,
        on_finding: Callable[[Finding], None] | None = None,
        on_candidate: Callable[[Candidate], None] | None = None,
    ) -> Proposal:
        return await find_settings(
            email,
            self.discovery,
            ca_file=self.ca_file,
            on_finding=on_finding,
            on_candidate=on_candidate,
        )

    def _key(self, email: str) -> str:
        if self.account_name:
            return self.account_name
        existing: list[str] = []
        try:
            data = tomllib.loads(self.config_path.read_text(encoding="utf-8"))
            accounts = data.get("accounts", {})
            existing = list(accounts) if isinstance(accounts, dict) else []
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            pass  # no file yet, or one that append_account will name the fault of
        return suggest_account_name(email, existing)

    async def test_login(
        self, proposal: Proposal, receive: Receive, name: str, password: str
    ) -> list[LoginResult]:
        """Log in to the chosen servers with ``password`` (held in memory only)."""
        block, _ = account_block(proposal, receive, name=name, secret={"password": password})
        account = account_for_test("setup", block)
        which: list[Any] = [receive, "smtp"] if "smtp" in block else [receive]
        return list(await asyncio.gather(*(check_login(account, w) for w in which)))

    async def save(self, proposal: Proposal, receive: Receive, name: str, password: str) -> str:
        """Store the password, append the account to the config, and say where both went."""
        key = self._key(proposal.email)
        receiving = proposal.best(receive)
        assert receiving is not None
        ref, _failures = await store_first_working(
            key, receiving.setting.host, password, self.stores
        )
        block, sources = account_block(proposal, receive, name=name, secret=ref.config)
        for protocol in (receive, "smtp"):
            for secret_key in ref.config:
                sources[f"{protocol}.{secret_key}"] = _STORED[ref.kind]
        append_account(self.config_path, key, block, sources, heading=_heading(proposal))
        self.saved_key = key
        return f"Saved account {key} in {self.config_path}; the password is {ref.where}."

    async def send_test_unsaved(
        self, proposal: Proposal, receive: Receive, name: str, password: str
    ) -> RoundTrip:
        """The round trip with the settings and password still in memory (before saving)."""
        block, _ = account_block(proposal, receive, name=name, secret={"password": password})
        return await send_to_self(account_for_test("setup", block))

    async def send_test(self, email: str) -> RoundTrip:
        """The saved account (found by its address) sends itself a message and waits."""
        config = load_config(self.config_path)
        account = config.accounts.get(self.saved_key or "") or next(
            (a for a in config.accounts.values() if a.email.lower() == email.lower()), None
        )
        if account is None:
            return RoundTrip(False, f"no account for {email} in {self.config_path}")
        return await send_to_self(account)

    async def sign_in_oauth2(
        self,
        proposal: Proposal,
        receive: Receive,
        name: str,
        client_id: str,
        client_secret: str | None,
        show: Callable[[BrowserPrompt, LoopbackReceiver], Awaitable[None] | None],
    ) -> tuple[dict[str, Any], list[LoginResult]]:
        """Sign in with OAuth2 in a browser for the account about to be saved (the refresh
        token is stored under its name), then log in to its servers with the token. The
        block to save comes back with the login results."""
        oauth2 = oauth2_section(proposal, client_id, client_secret)
        if oauth2 is None:
            raise OAuth2Error(
                f"nothing says where {proposal.email} signs in with OAuth2 (no provider preset "
                "and no endpoints in its autoconfig); use a password, or add an [oauth2] "
                "section by hand"
            )
        key = self._key(proposal.email)
        block, _ = account_block(proposal, receive, name=name, secret={"auth": "oauth2"})
        block["oauth2"] = oauth2
        account = account_for_test(key, block)
        source = token_source(account)
        tokens = await sign_in_with_browser(
            oauth2_config(account), source.endpoints, show, login_hint=proposal.email
        )
        await source.signed_in(tokens)
        which: list[Any] = [receive, "smtp"] if "smtp" in block else [receive]
        results = list(await asyncio.gather(*(check_login(account, w) for w in which)))
        return block, results

    def save_oauth2(self, proposal: Proposal, block: dict[str, Any]) -> str:
        """Append the block of a completed OAuth2 sign-in (no secret in it)."""
        key = self._key(proposal.email)
        _, sources = account_block(proposal, "imap" if "imap" in block else "pop3", secret={})
        sources["oauth2"] = "signed in by kittiwake setup; the sign-in is kept outside the config"
        append_account(self.config_path, key, block, sources, heading=_heading(proposal))
        self.saved_key = key
        return f"Saved account {key} in {self.config_path}; it signs in with OAuth2."

    def save_with_command(
        self, proposal: Proposal, receive: Receive, name: str, command: str
    ) -> str:
        """Append the account with the user's own ``password_command`` (nothing stored)."""
        key = self._key(proposal.email)
        block, sources = account_block(
            proposal, receive, name=name, secret={"password_command": command}
        )
        append_account(self.config_path, key, block, sources, heading=_heading(proposal))
        self.saved_key = key
        return f"Saved account {key} in {self.config_path}; the password comes from {command}."


def oauth2_config(account: Account) -> OAuth2Config:
    assert account.oauth2 is not None
    return account.oauth2


_STORED = {
    StoreKind.KEYRING: "the password, stored by kittiwake setup in the system keyring",
    StoreKind.PASS: "the password, stored by kittiwake setup in pass",
    StoreKind.FILE: "the password, stored by kittiwake setup in a file only you can read",
    StoreKind.INLINE: "the password itself, as you asked",
}


def _heading(proposal: Proposal) -> str:
    return f"{proposal.email}: added by kittiwake setup"
