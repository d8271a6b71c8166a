"""Throwaway gpgsm homes with a test CA, made by openssl at setup (no network).

The CA and each user's certificate (with emailAddress and an email subjectAltName) are made
by ``openssl ca``, which can backdate a certificate so an expired one can be tested; user keys
go into gpgsm as PKCS#12 without a passphrase. The CA is trusted through ``trustlist.txt``
(``relax``: no CRL distribution point needed) and ``gpgsm.conf`` switches off CRL checks and
dirmngr, so nothing goes to the network. ``new_smime_home(ca=...)`` shares one CA between
homes (two users who trust the same authority); ``ca=None`` gives a home whose CA nobody else
trusts.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from kittiwake.core.crypto.gpg import GnuPG


def _run(argv: list[str], stdin: bytes = b"") -> bytes:
    done = subprocess.run(argv, input=stdin, capture_output=True, timeout=60, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{argv[0]} {argv[1]} failed: {done.stderr.decode(errors='replace')}")
    return done.stdout


_CA_CONF = """[ca]
default_ca = d
[d]
database = {dir}/index.txt
serial = {dir}/serial
new_certs_dir = {dir}
default_md = sha256
policy = p
copy_extensions = none
unique_subject = no
[p]
commonName = supplied
emailAddress = optional
"""


@dataclass
class TestCA:
    """A certificate authority in a temporary directory (openssl's database and files)."""

    dir: Path
    name: str

    @property
    def cert(self) -> Path:
        return self.dir / "ca.pem"

    def _ca(self, csr: Path, out: Path, ext: str, start: str, end: str, *extra: str) -> None:
        extfile = out.with_suffix(".ext")
        extfile.write_text(ext)
        _run(
            [
                "openssl", "ca", "-batch", "-config", str(self.dir / "ca.cnf"),
                "-in", str(csr), "-out", str(out), "-startdate", start, "-enddate", end,
                "-extfile", str(extfile), "-notext", *extra,
            ]
        )  # fmt: skip

    def issue(self, name: str, address: str, *, expired: bool = False) -> tuple[Path, Path]:
        """(certificate, key) for ``name <address>``; ``expired``: valid only in 2020."""
        stem = self.dir / address.replace("@", "_at_")
        key, csr, cert = (
            stem.with_suffix(".key"),
            stem.with_suffix(".csr"),
            stem.with_suffix(".pem"),
        )
        _run(
            [
                "openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                "-out", str(csr), "-subj", f"/CN={name}/emailAddress={address}",
            ]
        )  # fmt: skip
        ext = (
            "basicConstraints = CA:FALSE\n"
            "keyUsage = critical, digitalSignature, keyEncipherment\n"
            "extendedKeyUsage = emailProtection\n"
            f"subjectAltName = email:{address}\n"
        )
        start, end = (
            ("20200101000000Z", "20210101000000Z")
            if expired
            else ("20200101000000Z", "20400101000000Z")
        )
        self._ca(
            csr,
            cert,
            ext,
            start,
            end,
            "-cert",
            str(self.cert),
            "-keyfile",
            str(self.dir / "ca.key"),
        )
        return cert, key

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def new_ca(name: str = "Kittiwake Test CA") -> TestCA:
    tmp = Path(tempfile.mkdtemp(prefix="kwca-", dir="/tmp"))
    (tmp / "index.txt").write_text("")
    # Signers are found by issuer and serial: two test CAs must not issue the same pair.
    (tmp / "serial").write_text(os.urandom(8).hex().upper() + "\n")
    (tmp / "ca.cnf").write_text(_CA_CONF.format(dir=tmp))
    ca = TestCA(tmp, name)
    _run(
        [
            "openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(tmp / "ca.key"),
            "-out", str(tmp / "ca.csr"), "-subj", f"/CN={name}",
        ]
    )  # fmt: skip
    ext = "basicConstraints = critical, CA:TRUE\nkeyUsage = critical, keyCertSign, cRLSign\n"
    ca._ca(
        tmp / "ca.csr", ca.cert, ext, "20190101000000Z", "20450101000000Z",
        "-selfsign", "-keyfile", str(tmp / "ca.key"),
    )  # fmt: skip
    return ca


@dataclass
class SmimeHome:
    """A gpgsm home trusting ``ca``, holding the keys and certificates made with ``add_user``."""

    home: Path
    ca: TestCA
    own_ca: bool = False
    fingerprints: dict[str, str] = field(default_factory=dict)
    """address -> certificate fingerprint of the users made here."""

    @property
    def gnupg(self) -> GnuPG:
        return GnuPG(program="gpgsm", home=str(self.home))

    def _gpgsm(self, *args: str, stdin: bytes = b"") -> bytes:
        return _run(["gpgsm", "--homedir", str(self.home), "--batch", "--no-tty", *args], stdin)

    def add_user(self, name: str, address: str, *, expired: bool = False) -> str:
        """A certificate and secret key for ``name <address>`` from the CA; its fingerprint.

        gpgsm 2.2 now and then (about one key in a hundred) cannot open the PKCS#12 file of
        a key openssl made: that certificate is removed again and a new key is made."""
        for attempt in range(5):
            cert, key = self.ca.issue(name, address, expired=expired)
            fpr = _fingerprint(cert)
            p12 = cert.with_suffix(".p12")
            _run(
                [
                    "openssl", "pkcs12", "-export", "-inkey", str(key), "-in", str(cert),
                    "-passout", "pass:", "-keypbe", "PBE-SHA1-3DES", "-certpbe",
                    "PBE-SHA1-3DES", "-macalg", "sha1", "-out", str(p12),
                ]
            )  # fmt: skip
            try:
                self._gpgsm("--pinentry-mode", "loopback", "--passphrase-fd", "0",
                            "--import", str(p12), stdin=b"\n")  # fmt: skip
                self._gpgsm("--list-secret-keys", fpr)
                break
            except RuntimeError:
                subprocess.run(
                    ["gpgsm", "--homedir", str(self.home), "--batch", "--delete-keys", fpr],
                    capture_output=True,
                    timeout=60,
                    check=False,
                )
                if attempt == 4:
                    raise
        self.fingerprints[address] = fpr
        return fpr

    def import_cert(self, pem: bytes) -> None:
        self._gpgsm("--import", stdin=pem)

    def export(self, address: str) -> bytes:
        return self._gpgsm("--armor", "--export", self.fingerprints[address])

    def fingerprint(self, address: str) -> str:
        out = self._gpgsm("--with-colons", "--list-keys", f"<{address}>").decode()
        for line in out.splitlines():
            if line.startswith("fpr:"):
                return line.split(":")[9]
        raise KeyError(address)

    def close(self) -> None:
        subprocess.run(
            ["gpgconf", "--homedir", str(self.home), "--kill", "all"],
            capture_output=True,
            timeout=30,
            check=False,
        )
        shutil.rmtree(self.home, ignore_errors=True)
        if self.own_ca:
            self.ca.close()


def _fingerprint(cert: Path) -> str:
    """gpgsm's fingerprint of a certificate: the SHA-1 of its DER form."""
    out = _run(["openssl", "x509", "-in", str(cert), "-noout", "-fingerprint", "-sha1"])
    return out.decode().split("=", 1)[1].strip().replace(":", "")


def home_tag() -> str:
    return os.urandom(4).hex()


def new_smime_home(ca: TestCA | None = None) -> SmimeHome:
    """A gpgsm home trusting ``ca`` (a new CA of its own when None)."""
    own = ca is None
    ca = ca or new_ca(f"Stranger CA {home_tag()}")
    home = Path(tempfile.mkdtemp(prefix="kwsm-", dir="/tmp"))
    home.chmod(0o700)
    (home / "gpgsm.conf").write_text("disable-crl-checks\ndisable-dirmngr\n")
    (home / "gpg-agent.conf").write_text("allow-loopback-pinentry\n")
    smime = SmimeHome(home, ca, own_ca=own)
    smime.import_cert(ca.cert.read_bytes())
    ca_fpr = (
        _run(["openssl", "x509", "-in", str(ca.cert), "-noout", "-fingerprint", "-sha1"])
        .decode()
        .split("=", 1)[1]
        .strip()
        .replace(":", "")
    )
    (home / "trustlist.txt").write_text(f"{ca_fpr} S relax\n")
    return smime
