"""A throwaway certificate authority, so every test verifies TLS for real.

Clients get ``ca_file`` as their trust anchor (the ``ca_file`` account setting) and never disable
verification. The server certificate names localhost, 127.0.0.1 and ``SERVER_HOST`` (127.0.0.2, where
the servers actually listen; see ``harness.common``).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import trustme

from .common import SERVER_HOST


@dataclass(frozen=True)
class TestCA:
    """PEM files of the test CA and of the one server certificate all test servers share."""

    __test__ = False  # not a pytest test class, despite the name

    ca_file: Path
    """The CA certificate: what a client puts in its config as ``ca_file``."""
    cert_file: Path
    """Server certificate chain (leaf first)."""
    key_file: Path
    """Server private key (mode 0600; the daemons read it as root before dropping privileges)."""

    authority: trustme.CA | None = field(default=None, compare=False, repr=False)
    """The CA itself, to issue other certificates (``issue``)."""

    def issue(
        self,
        directory: Path,
        *names: str,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
    ) -> tuple[Path, Path]:
        """A server certificate from this CA for ``names`` (e.g. another host name, or one
        that has expired), written into ``directory``: (chain file, key file)."""
        assert self.authority is not None
        leaf = self.authority.issue_cert(*names, not_before=not_before, not_after=not_after)
        stem = "-".join(names) or "cert"
        chain, key = directory / f"{stem}-chain.pem", directory / f"{stem}.key"
        chain.write_bytes(b"".join(pem.bytes() for pem in leaf.cert_chain_pems))
        key.touch(mode=0o600)
        leaf.private_key_pem.write_to_path(str(key))
        chain.chmod(0o644)
        return chain, key

    def client_context(self) -> ssl.SSLContext:
        """A client-side context that trusts only this CA and checks host names."""
        return ssl.create_default_context(cafile=str(self.ca_file))


def make_test_ca(directory: Path) -> TestCA:
    """Create a fresh CA and a server certificate, and write them as PEM files into ``directory``."""
    ca = trustme.CA(organization_name="Kittiwake test CA")
    # *.example.test: names that the private DNS server (harness.dns) points at SERVER_HOST
    server = ca.issue_cert("localhost", "127.0.0.1", SERVER_HOST, "example.test", "*.example.test")
    paths = TestCA(
        ca_file=directory / "ca.pem",
        cert_file=directory / "server-chain.pem",
        key_file=directory / "server.key",
        authority=ca,
    )
    ca.cert_pem.write_to_path(str(paths.ca_file))
    paths.cert_file.write_bytes(b"".join(pem.bytes() for pem in server.cert_chain_pems))
    paths.key_file.touch(mode=0o600)
    server.private_key_pem.write_to_path(str(paths.key_file))
    paths.key_file.chmod(0o600)
    for public in (paths.ca_file, paths.cert_file):
        public.chmod(0o644)
    return paths
