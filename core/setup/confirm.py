"""Confirming discovery's proposals: probe each candidate over verified TLS (no credentials),
then choose per protocol the most trusted source's working candidate, implicit TLS first."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path

from kittiwake.core.setup.autoconfig import Protocol, ServerSetting
from kittiwake.core.setup.discover import Finding
from kittiwake.core.setup.dns import Dns
from kittiwake.core.setup.probe import ProbeResult, probe

MAX_PARALLEL = 8
_SECURITY_ORDER = {"tls": 0, "starttls": 1, "none": 2}


@dataclass(frozen=True, slots=True)
class Candidate:
    """A proposed setting, the sources that proposed it (best first), and its probe."""

    setting: ServerSetting
    findings: tuple[Finding, ...]
    result: ProbeResult
    order: int = 0
    """Where its source listed it (a provider's first server is its default)."""

    @property
    def ok(self) -> bool:
        return self.result.ok

    @property
    def rank(self) -> int:
        return min(f.rank for f in self.findings)

    @property
    def sources(self) -> str:
        return ", ".join(dict.fromkeys(f.source for f in self.findings))


def _key(setting: ServerSetting) -> tuple[str, str, int, str]:
    return (setting.protocol, setting.host, setting.port, setting.security)


async def confirm(
    findings: Iterable[Finding],
    *,
    dns: Dns,
    ca_file: Path | None = None,
    timeout: float = 10.0,
    email: str = "",
) -> AsyncIterator[Candidate]:
    """Probe every distinct proposal (at most ``MAX_PARALLEL`` at once); candidates as their
    probes finish. Plain-text candidates are never probed: Kittiwake does not propose
    sending a password unencrypted (a user may still configure ``security = "none"``)."""
    proposals: dict[tuple[str, str, int, str], tuple[ServerSetting, list[Finding], int]] = {}
    for finding in findings:
        for order, raw in enumerate(finding.settings):
            setting = raw.for_address(email) if email else raw
            if setting.security == "none":
                continue
            entry = proposals.setdefault(_key(setting), (setting, [], order))
            entry[1].append(finding)
    gate = asyncio.Semaphore(MAX_PARALLEL)

    async def one(setting: ServerSetting, sources: list[Finding], order: int) -> Candidate:
        ranked = tuple(sorted(sources, key=lambda f: f.rank))
        async with gate:
            address = None
            if dns.nameserver is not None:
                found = await dns.addresses(setting.host)
                address = found[0] if found else None
                if address is None:
                    result = ProbeResult(setting, False, "dns", f"{setting.host}: no such host")
                    return Candidate(setting, ranked, result, order)
            result = await probe(
                setting, ca_file=ca_file, timeout=timeout, diagnose=False, address=address
            )
        return Candidate(setting, ranked, result, order)

    tasks = [asyncio.ensure_future(one(*proposal)) for proposal in proposals.values()]
    try:
        for next_done in asyncio.as_completed(tasks):
            yield await next_done
    finally:
        for task in tasks:
            task.cancel()


def best(candidates: Iterable[Candidate], protocol: Protocol) -> Candidate | None:
    """The working candidate for ``protocol`` from the most trusted source, implicit TLS
    before STARTTLS, then the source's own order."""
    working = [c for c in candidates if c.ok and c.setting.protocol == protocol]
    if not working:
        return None
    return min(working, key=lambda c: (c.rank, _SECURITY_ORDER[c.setting.security], c.order))
