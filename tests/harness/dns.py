"""A private DNS server (dnsmasq) on loopback that answers MX, SRV and A records for tests.

Discovery is pointed at it (``Dns(nameserver=..., port=...)``); it forwards nothing, so no query
ever leaves the machine. Every name under ``example.test`` resolves to ``SERVER_HOST``, where the
private mail servers listen with certificates that name ``*.example.test``.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from types import TracebackType

import dns.resolver

from .clients import wait_for
from .common import SERVER_HOST, ServerError, pick_free_ports

DNS_HOST = "127.0.0.1"


class DnsServer:
    def __init__(
        self,
        workdir: Path,
        *,
        mx: dict[str, str] | None = None,
        srv: list[tuple[str, str, int]] | None = None,
    ) -> None:
        """``mx``: domain -> exchanger; ``srv``: (name, target, port)."""
        self.workdir = workdir
        self.mx = mx or {}
        self.srv = srv or []
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> DnsServer:
        binary = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
        self.port = pick_free_ports(1, DNS_HOST)[0]
        args = [
            binary,
            "--keep-in-foreground",
            "--no-resolv",
            "--no-hosts",
            "--no-poll",
            f"--port={self.port}",
            f"--listen-address={DNS_HOST}",
            "--bind-interfaces",
            "--user=root",
            f"--pid-file={self.workdir / 'dnsmasq.pid'}",
            "--log-queries",
            f"--log-facility={self.workdir / 'dnsmasq.log'}",
            f"--address=/example.test/{SERVER_HOST}",
        ]
        args += [f"--mx-host={domain},{host},10" for domain, host in self.mx.items()]
        args += [f"--srv-host={name},{target},{port},0,1" for name, target, port in self.srv]
        self._proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [DNS_HOST]
        resolver.port = self.port
        resolver.lifetime = 1

        def answers() -> bool:
            if self._proc is not None and self._proc.poll() is not None:
                err = self._proc.stderr.read().decode() if self._proc.stderr else ""
                raise ServerError(f"dnsmasq exited: {err.strip()}")
            try:
                return bool(resolver.resolve("ready.example.test", "A"))
            except dns.exception.DNSException:
                return False

        wait_for(answers, timeout=10, message="dnsmasq answering")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
