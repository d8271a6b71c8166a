"""DNS for discovery: MX and SRV records, and host addresses.

Answers are hints, never trust: a host named by DNS is used only once a TLS connection verified
for that host name confirms it. By default the system's resolver configuration is used; a
nameserver can be named instead (tests point it at a private dnsmasq on loopback).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.resolver


@dataclass(frozen=True, slots=True)
class SrvRecord:
    priority: int
    weight: int
    port: int
    target: str


class Dns:
    def __init__(self, nameserver: str | None = None, port: int = 53, timeout: float = 5.0) -> None:
        self.nameserver = nameserver
        if nameserver is None:
            self._resolver = dns.asyncresolver.Resolver()
        else:
            self._resolver = dns.asyncresolver.Resolver(configure=False)
            self._resolver.nameservers = [nameserver]
            self._resolver.port = port
        self._resolver.lifetime = timeout

    async def _query(self, name: str, kind: str) -> dns.resolver.Answer | None:
        try:
            return await self._resolver.resolve(name, kind, search=False)
        except (dns.exception.DNSException, OSError):
            return None

    async def mx(self, domain: str) -> list[str]:
        """Mail exchangers of ``domain``, most preferred first ("." null MX left out)."""
        answer = await self._query(domain, "MX")
        if answer is None:
            return []
        records = sorted(answer, key=lambda r: r.preference)
        hosts = [str(r.exchange).rstrip(".").lower() for r in records]
        return [h for h in hosts if h]

    async def srv(self, name: str) -> list[SrvRecord]:
        """RFC 2782 records for ``name``, lowest priority first then highest weight; a target
        of "." (RFC 6186: no such service here) yields nothing."""
        answer = await self._query(name, "SRV")
        if answer is None:
            return []
        records = [
            SrvRecord(r.priority, r.weight, r.port, str(r.target).rstrip(".").lower())
            for r in answer
        ]
        records = [r for r in records if r.target and 0 < r.port < 65536]
        return sorted(records, key=lambda r: (r.priority, -r.weight))

    async def addresses(self, host: str) -> list[str]:
        """Addresses to connect to for ``host``: from the named nameserver, else the system's
        resolver (which also reads /etc/hosts). An address literal is its own answer."""
        try:
            return [str(ipaddress.ip_address(host))]
        except ValueError:
            pass
        if self.nameserver is None:
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(
                    host, None, type=socket.SOCK_STREAM
                )
            except (socket.gaierror, UnicodeError):
                return []
            return list(dict.fromkeys(str(info[4][0]) for info in infos))
        found: list[str] = []
        for kind in ("A", "AAAA"):
            answer = await self._query(host, kind)
            if answer is not None:
                found += [r.address for r in answer]
        return found
