"""The setup flow shared by ``kittiwake setup`` and the setup screen: discover, confirm,
choose, and turn the choice into a config block and a testable ``Account``.

Nothing here asks the user anything or prints: the caller is told what happens through
callbacks (a finding arrived, a candidate was probed) and decides what to show.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from kittiwake.core.config import Account, config_from_dict
from kittiwake.core.setup.autoconfig import ProviderSettings
from kittiwake.core.setup.confirm import Candidate, best, confirm
from kittiwake.core.setup.discover import Discovery, Finding
from kittiwake.core.setup.known import SignInRule, rule_for

Receive = Literal["imap", "pop3"]

IMAP_OR_POP3 = (
    "Both IMAP and POP3 work. With IMAP the server keeps the master copy and every device "
    "(phone, laptop, web mail) is a live window on it: read, flag or delete here and it shows "
    "everywhere. With POP3 this machine downloads the mail and then holds the master copy; "
    "the server may keep a copy for some days. IMAP is the default."
)


@dataclass
class Proposal:
    """What setup found for an address: the best working server per protocol, and the
    evidence (every finding and every probed candidate) to show the user."""

    email: str
    findings: list[Finding] = field(default_factory=list)
    candidates: list[Candidate] = field(default_factory=list)
    ca_file: Path | None = None

    def best(self, protocol: Literal["imap", "pop3", "smtp"]) -> Candidate | None:
        return best(self.candidates, protocol)

    @property
    def provider(self) -> ProviderSettings | None:
        for finding in sorted(self.findings, key=lambda f: f.rank):
            if finding.provider is not None:
                return finding.provider
        return None

    @property
    def sign_in(self) -> SignInRule | None:
        """The provider's known sign-in rule, by the address's domain or the provider the
        table, autoconfig or MX found (a Google Workspace domain is Google's)."""
        rule = rule_for(self.email)
        if rule is None and self.provider is not None:
            for domain in self.provider.domains:
                rule = rule_for(domain)
                if rule is not None:
                    break
        return rule

    def missing(self) -> str | None:
        """One sentence when no usable pair of servers was found: what and what to do."""
        if self.receive_choices and self.best("smtp") is not None:
            return None
        what = "to receive mail (IMAP or POP3)" if not self.receive_choices else "to send mail"
        if not self.candidates:
            return (
                f"No server {what} was found for {self.email}. Check the address; if it is "
                "right, your provider's help pages name the servers: add them to the config "
                "by hand (see the README's Configuration section)."
            )
        unreachable = [c for c in self.candidates if c.result.stage in ("dns", "tcp")]
        if len(unreachable) == len(self.candidates):
            example = self.candidates[0].result.detail
            return (
                f"None of the servers for {self.email} could be reached from this machine "
                f"({example}). Check the network connection, then press enter in the address "
                "field to try again."
            )
        return (
            f"No working server {what} was found for {self.email}: the candidates above "
            "failed as shown. If the address is right, add the servers your provider names to "
            "the config by hand (see the README's Configuration section)."
        )

    @property
    def receive_choices(self) -> list[Receive]:
        return [p for p in ("imap", "pop3") if self.best(p) is not None]


async def find_settings(
    email: str,
    discovery: Discovery,
    *,
    ca_file: Path | None = None,
    on_finding: Callable[[Finding], None] | None = None,
    on_candidate: Callable[[Candidate], None] | None = None,
    probe_timeout: float = 8.0,
) -> Proposal:
    proposal = Proposal(email, ca_file=ca_file)
    async for finding in discovery.run(email):
        proposal.findings.append(finding)
        if on_finding is not None:
            on_finding(finding)
    async for candidate in confirm(
        proposal.findings,
        dns=discovery.dns,
        ca_file=ca_file,
        timeout=probe_timeout,
        email=email,
    ):
        proposal.candidates.append(candidate)
        if on_candidate is not None:
            on_candidate(candidate)
    return proposal


def account_block(
    proposal: Proposal,
    receive: Receive,
    *,
    name: str = "",
    secret: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, str]]:
    """The ``[accounts.NAME]`` table for the chosen servers and, per dotted key, where its
    setting came from (for the comments in config.toml). ``secret`` holds how each server
    gets its password (e.g. ``{"password_command": [...]}``), never decided here."""
    email = proposal.email
    block: dict[str, Any] = {"email": email}
    if name:
        block["name"] = name
    sources: dict[str, str] = {}
    for protocol in (receive, "smtp"):
        candidate = proposal.best(protocol)
        if candidate is None:
            continue
        s = candidate.setting
        table: dict[str, Any] = {"host": s.host, "port": s.port, "security": s.security}
        login = s.login_for(email)
        if login != email:
            table["user"] = login
        table.update(secret)
        if proposal.ca_file is not None:
            table["ca_file"] = str(proposal.ca_file)
        block[protocol] = table
        sources[protocol] = f"found by {candidate.sources}; checked over TLS by kittiwake setup"
    return block, sources


def oauth2_section(
    proposal: Proposal, client_id: str, client_secret: str | None = None
) -> dict[str, Any] | None:
    """The ``[accounts.NAME.oauth2]`` table for this address: a preset for Microsoft and
    Google, else the endpoints the provider's autoconfig or table entry names; None when
    nothing says where to sign in."""
    rule = proposal.sign_in
    table: dict[str, Any] = {"client_id": client_id}
    if client_secret:
        table["client_secret"] = client_secret
    if rule is not None and rule.name in ("Microsoft", "Google"):
        table["provider"] = rule.name.lower()
        return table
    provider = proposal.provider
    if provider is None or provider.oauth2 is None:
        return None
    table.update(
        authorize_url=provider.oauth2.auth_url,
        token_url=provider.oauth2.token_url,
        scopes=provider.oauth2.scope.split(),
    )
    if proposal.ca_file is not None:
        table["ca_file"] = str(proposal.ca_file)
    return table


def account_for_test(key: str, block: dict[str, Any]) -> Account:
    """The block as the app would load it, to log in with before anything is written."""
    return config_from_dict({"accounts": {key: block}}).accounts[key]
