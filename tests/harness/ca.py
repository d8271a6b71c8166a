"""A throwaway certificate authority, so every test verifies TLS for real.

Clients get ``ca_file`` as their trust anchor (the ``ca_file`` account setting) and never disable
verification. The server certificate names localhost, 127.0.0.1 and ``SERVER_HOST`` (127.0.0.2, where
the servers actually listen; see ``harness.common``).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
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

    def client_context(self) -> ssl.SSLContext:
        """A client-side context that trusts only this CA and checks host names."""
        return ssl.create_default_context(cafile=str(self.ca_file))


def make_test_ca(directory: Path) -> TestCA:
    """Create a fresh CA and a server certificate, and write them as PEM files into ``directory``."""
    ca = trustme.CA(organization_name="Kittiwake test CA")
    server = ca.issue_cert("localhost", "127.0.0.1", SERVER_HOST)
    paths = TestCA(
        ca_file=directory / "ca.pem",
        cert_file=directory / "server-chain.pem",
        key_file=directory / "server.key",
    )
    ca.cert_pem.write_to_path(str(paths.ca_file))
    paths.cert_file.write_bytes(b"".join(pem.bytes() for pem in server.cert_chain_pems))
    paths.key_file.touch(mode=0o600)
    server.private_key_pem.write_to_path(str(paths.key_file))
    paths.key_file.chmod(0o600)
    for public in (paths.ca_file, paths.cert_file):
        public.chmod(0o644)
    return paths
