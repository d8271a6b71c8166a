"""From an email address to candidate server settings: every source at once, results as they
come, within a soft and a hard deadline.

Sources, in the order their proposals are preferred: the bundled provider table (instant,
offline), the provider's own autoconfig document over HTTPS, DNS (the MX host's registrable
domain looked up in the table, which finds Google Workspace and Microsoft 365 custom domains;
RFC 6186/8314 SRV records), and, only when none of them proposed anything, guessed host names.
Everything here is a proposal: ``core/setup/confirm.py`` probes each over verified TLS before it
is offered to the user.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from publicsuffixlist import PublicSuffixList

from kittiwake.core.setup.autoconfig import (
    MAX_DOCUMENT,
    AutoconfigError,
    Protocol,
    ProviderSettings,
    Security,
    ServerSetting,
    parse_autoconfig,
)
from kittiwake.core.setup.dns import Dns
from kittiwake.core.setup.fetch import FetchError, https_get
from kittiwake.core.setup.providers import provider_for_domain

SOFT_DEADLINE = 6.0
HARD_DEADLINE = 12.0

#: Source kinds, most trusted first: a candidate's rank when choosing among working ones.
RANKS = {"table": 0, "autoconfig": 1, "mx": 2, "srv": 3, "guess": 4}

STANDARD_PORTS: dict[tuple[Protocol, Security], int] = {
    ("imap", "tls"): 993,
    ("imap", "starttls"): 143,
    ("pop3", "tls"): 995,
    ("pop3", "starttls"): 110,
    ("smtp", "tls"): 465,
    ("smtp", "starttls"): 587,
}

_SRV: tuple[tuple[str, Protocol, Security], ...] = (
    ("_imaps._tcp", "imap", "tls"),
    ("_imap._tcp", "imap", "starttls"),
    ("_pop3s._tcp", "pop3", "tls"),
    ("_pop3._tcp", "pop3", "starttls"),
    ("_submissions._tcp", "smtp", "tls"),
    ("_submission._tcp", "smtp", "starttls"),
)


@dataclass(frozen=True, slots=True)
class Finding:
    """What one source said: settings (possibly none) or why it had nothing."""

    kind: str
    """"table", "autoconfig", "mx", "srv" or "guess" (see ``RANKS``)."""
    source: str
    """Where it came from, for the user: "provider table (gmail.com)", an URL, a DNS name."""
    settings: tuple[ServerSetting, ...] = ()
    provider: ProviderSettings | None = None
    error: str | None = None
    seconds: float = 0.0

    @property
    def rank(self) -> int:
        return RANKS[self.kind]


@dataclass
class Discovery:
    """Where discovery looks: the resolver, the trust anchors for HTTPS, and (for tests) the
    HTTPS port of autoconfig servers."""

    dns: Dns = field(default_factory=Dns)
    context: ssl.SSLContext = field(default_factory=ssl.create_default_context)
    https_port: int | None = None
    guess_ports: dict[tuple[Protocol, Security], int] = field(
        default_factory=lambda: dict(STANDARD_PORTS)
    )
    """The ports guessed host names are tried on (the standard ones; tests serve elsewhere)."""
    soft_deadline: float = SOFT_DEADLINE
    hard_deadline: float = HARD_DEADLINE

    async def run(self, email: str) -> AsyncIterator[Finding]:
        """Findings as each source answers. Guesses come only if no other source proposed a
        receiving server by the time they all answered (or the soft deadline passed); nothing
        comes after the hard deadline."""
        domain = email.rpartition("@")[2].strip().rstrip(".").lower()
        started = time.monotonic()
        sources: list[Callable[[], Awaitable[Finding | list[Finding]]]] = [
            lambda: self._table(domain),
            lambda: self._autoconfig(f"https://autoconfig.{domain}/mail/config-v1.1.xml"),
            lambda: self._autoconfig(
                f"https://{domain}/.well-known/autoconfig/mail/config-v1.1.xml"
            ),
            lambda: self._mx(domain),
            lambda: self._srv(domain),
        ]
        pending = {asyncio.ensure_future(source()) for source in sources}
        incoming = False
        try:
            while pending:
                elapsed = time.monotonic() - started
                budget = (self.soft_deadline if incoming else self.hard_deadline) - elapsed
                if budget <= 0:
                    break
                done, pending = await asyncio.wait(
                    pending, timeout=budget, return_when=asyncio.FIRST_COMPLETED
                )
                for task in done:
                    result = task.result()
                    for finding in result if isinstance(result, list) else [result]:
                        finding = _timed(finding, started)
                        incoming |= any(s.protocol != "smtp" for s in finding.settings)
                        yield finding
        finally:
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if not incoming and time.monotonic() - started < self.hard_deadline:
            yield _timed(self._guesses(domain), started)

    # -- sources ---------------------------------------------------------------------------

    async def _table(self, domain: str) -> Finding:
        provider = provider_for_domain(domain)
        if provider is None:
            return Finding("table", "provider table", error=f"{domain} is not in the table")
        return _from_provider("table", f"provider table ({domain})", provider)

    async def _autoconfig(self, url: str) -> Finding:
        try:
            body = await https_get(
                url, dns=self.dns, context=self.context, limit=MAX_DOCUMENT, port=self.https_port
            )
            provider = parse_autoconfig(body)
        except (FetchError, AutoconfigError) as exc:
            return Finding("autoconfig", url, error=str(exc))
        return _from_provider("autoconfig", url, provider)

    async def _mx(self, domain: str) -> Finding:
        hosts = await self.dns.mx(domain)
        if not hosts:
            return Finding("mx", f"MX of {domain}", error=f"{domain} has no MX record")
        host = hosts[0]
        for candidate in _mx_domains(host):
            if candidate == domain:
                continue
            provider = provider_for_domain(candidate)
            if provider is not None:
                return _from_provider(
                    "mx", f"MX {host} ({candidate} in the provider table)", provider
                )
        return Finding("mx", f"MX {host}", error=f"{host} belongs to no known provider")

    async def _srv(self, domain: str) -> list[Finding]:
        async def one(prefix: str, protocol: Protocol, security: Security) -> Finding:
            name = f"{prefix}.{domain}"
            records = await self.dns.srv(name)
            if not records:
                return Finding("srv", f"SRV {name}", error="no record")
            settings = tuple(
                ServerSetting(protocol, r.target, r.port, security) for r in records[:3]
            )
            return Finding("srv", f"SRV {name}", settings)

        found = await asyncio.gather(*(one(*spec) for spec in _SRV))
        useful = [f for f in found if f.settings]
        return useful or [Finding("srv", f"SRV records of {domain}", error="none")]

    def _guesses(self, domain: str) -> Finding:
        hosts: dict[Protocol, tuple[str, ...]] = {
            "imap": (f"imap.{domain}", f"mail.{domain}", domain),
            "pop3": (f"pop.{domain}", f"pop3.{domain}", f"mail.{domain}", domain),
            "smtp": (f"smtp.{domain}", f"mail.{domain}", domain),
        }
        settings = [
            ServerSetting(protocol, host, self.guess_ports[(protocol, security)], security)
            for protocol, names in hosts.items()
            for host in names
            for security in ("tls", "starttls")
        ]  # implicit TLS first, as RFC 8314 prefers
        return Finding("guess", f"guessed host names at {domain}", tuple(settings))


def _timed(finding: Finding, started: float) -> Finding:
    return Finding(
        finding.kind,
        finding.source,
        finding.settings,
        finding.provider,
        finding.error,
        time.monotonic() - started,
    )


def _from_provider(kind: str, source: str, provider: ProviderSettings) -> Finding:
    return Finding(kind, source, provider.incoming + provider.outgoing, provider)


_PSL: PublicSuffixList | None = None


def _mx_domains(host: str) -> list[str]:
    """The MX host's registrable domain and its next sub-domain (which tells Microsoft 365's
    ``mail.protection.outlook.com`` from Outlook.com), most specific first."""
    global _PSL
    if _PSL is None:
        _PSL = PublicSuffixList()
    registrable = _PSL.privatesuffix(host)
    if registrable is None:
        return []
    labels = host.split(".")
    base = registrable.count(".") + 1
    out = [registrable]
    if len(labels) > base + 1:
        out.insert(0, ".".join(labels[-(base + 1) :]))
    return out
