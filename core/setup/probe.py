"""Probing a mail server without credentials, layer by layer: name, TCP, TLS (certificate
verified for the host name), greeting, STARTTLS, capabilities.

Setup uses it to confirm what discovery proposed (nothing is trusted until a verified TLS
connection answers as the right kind of server); ``kittiwake doctor`` uses the same steps to
say in one sentence which layer fails and what to do about it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from kittiwake.core.setup.autoconfig import Protocol, Security, ServerSetting

Stage = Literal["dns", "tcp", "tls", "greeting", "starttls", "capabilities", "done"]

MAX_LINE = 16 * 1024
_EHLO_NAME = "kittiwake.invalid"
_DEFAULT_PORTS: dict[tuple[Protocol, Security], int] = {
    ("imap", "tls"): 993,
    ("imap", "starttls"): 143,
    ("imap", "none"): 143,
    ("pop3", "tls"): 995,
    ("pop3", "starttls"): 110,
    ("pop3", "none"): 110,
    ("smtp", "tls"): 465,
    ("smtp", "starttls"): 587,
    ("smtp", "none"): 587,
}


def default_port(protocol: Protocol, security: Security) -> int:
    return _DEFAULT_PORTS[(protocol, security)]


@dataclass(frozen=True, slots=True)
class Certificate:
    """What a user needs to know of a server certificate that failed verification."""

    names: tuple[str, ...]
    not_before: datetime | None
    not_after: datetime | None
    issuer: str
    sha256: str


@dataclass(frozen=True, slots=True)
class ProbeResult:
    setting: ServerSetting
    ok: bool
    stage: Stage
    """The layer reached: "done" when everything answered, else the layer that failed."""
    detail: str
    """One sentence: what was found, or what is wrong and what to do."""
    greeting: str = ""
    capabilities: frozenset[str] = frozenset()
    auth_mechanisms: frozenset[str] = frozenset()
    certificate: Certificate | None = None
    seconds: float = 0.0
    hint: str = field(default="")
    """The likely fix, when one is known (a TLS mode for the port, ``ca_file``, ...)."""

    @property
    def where(self) -> str:
        return f"{self.setting.host}:{self.setting.port}"


class _Failed(Exception):
    def __init__(
        self, stage: Stage, detail: str, hint: str = "", cert: Certificate | None = None
    ) -> None:
        super().__init__(detail)
        self.stage = stage
        self.detail = detail
        self.hint = hint
        self.cert = cert
        self.certificate_refused = False


def _refused_certificate(exc: ssl.SSLCertVerificationError, host: str) -> _Failed:
    failed = _Failed("tls", *_certificate_problem(exc, host))
    failed.certificate_refused = True
    return failed


def tls_context(ca_file: Path | None = None) -> ssl.SSLContext:
    """A verifying client context: the system's trust store plus ``ca_file`` when given."""
    context = ssl.create_default_context()
    if ca_file is not None:
        context.load_verify_locations(cafile=str(ca_file))
    return context


async def probe(
    setting: ServerSetting,
    *,
    ca_file: Path | None = None,
    timeout: float = 10.0,
    diagnose: bool = True,
    address: str | None = None,
) -> ProbeResult:
    """Connect to ``setting`` and find out how far it gets, without sending credentials.

    With ``diagnose`` a failure is explained further (a second, unverified look at the
    certificate; the other TLS mode tried on the same port), at the cost of a connection or
    two; setup's quick candidate sweep turns it off. ``address``: connect there instead of
    resolving the host name (which is still the name the certificate must carry)."""
    started = time.monotonic()
    session = _Session(setting, tls_context(ca_file), timeout, address)
    try:
        await session.run()
    except _Failed as failed:
        hint = failed.hint
        cert = failed.cert
        if diagnose and failed.stage in ("tls", "greeting"):
            extra_hint, extra_cert = await _explain(setting, failed, timeout, address)
            hint = hint or extra_hint
            cert = cert or extra_cert
        detail = failed.detail
        if cert is not None and "another host name" in detail:
            named = ", ".join(cert.names[:4]) or "no host name"
            detail = f"{setting.host}: the certificate is for another host name ({named})"
        return ProbeResult(
            setting,
            False,
            failed.stage,
            detail,
            greeting=session.greeting,
            capabilities=session.capabilities,
            certificate=cert,
            seconds=time.monotonic() - started,
            hint=hint,
        )
    finally:
        await session.close()
    return ProbeResult(
        setting,
        True,
        "done",
        session.summary(),
        greeting=session.greeting,
        capabilities=session.capabilities,
        auth_mechanisms=session.auth_mechanisms,
        seconds=time.monotonic() - started,
    )


class _Session:
    """One probing connection: the protocol dialogue up to the capabilities, then a goodbye."""

    def __init__(
        self,
        setting: ServerSetting,
        context: ssl.SSLContext,
        timeout: float,
        address: str | None = None,
    ) -> None:
        self.setting = setting
        self.address = address
        self.context = context
        self.timeout = timeout
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.greeting = ""
        self.capabilities: frozenset[str] = frozenset()
        self.auth_mechanisms: frozenset[str] = frozenset()
        self.encrypted = False

    @property
    def where(self) -> str:
        return f"{self.setting.host}:{self.setting.port}"

    async def run(self) -> None:
        s = self.setting
        await self._connect(tls=s.security == "tls")
        await self._greet()
        await self._capabilities()
        if s.security == "starttls":
            await self._starttls()
            await self._capabilities()
        await self._goodbye()

    def summary(self) -> str:
        mode = {"tls": "TLS", "starttls": "STARTTLS", "none": "no encryption"}[
            self.setting.security
        ]
        kind = self.setting.protocol.upper()
        return (
            f"{kind} server at {self.where} answers ({mode}, certificate verified)"
            if (self.encrypted)
            else f"{kind} server at {self.where} answers without encryption"
        )

    # -- layers ---------------------------------------------------------------------------

    async def _connect(self, *, tls: bool) -> None:
        s = self.setting
        if self.address is None:
            await self._resolve()
        try:
            self.reader, self.writer = await asyncio.wait_for(
                asyncio.open_connection(
                    self.address or s.host,
                    s.port,
                    ssl=self.context if tls else None,
                    server_hostname=s.host if tls else None,
                    limit=MAX_LINE,
                ),
                self.timeout,
            )
        except ssl.SSLCertVerificationError as exc:
            raise _refused_certificate(exc, s.host) from None
        except ssl.SSLError as exc:
            raise _Failed(
                "tls",
                f"{self.where}: the TLS handshake failed ({exc.reason or exc})",
            ) from None
        except TimeoutError:
            raise _Failed(
                "tcp",
                f"{self.where}: no answer within {self.timeout:.0f} s (a firewall may drop it)",
                "check the host and port, and that this network allows the port",
            ) from None
        except ConnectionRefusedError:
            raise _Failed(
                "tcp",
                f"{self.where}: connection refused (nothing listens on port {s.port})",
                "check the port",
            ) from None
        except OSError as exc:
            raise _Failed("tcp", f"{self.where}: cannot connect ({exc.strerror or exc})") from None
        self.encrypted = tls

    async def _resolve(self) -> None:
        s = self.setting
        try:
            infos = await asyncio.wait_for(
                asyncio.get_running_loop().getaddrinfo(s.host, s.port, type=socket.SOCK_STREAM),
                self.timeout,
            )
        except (TimeoutError, socket.gaierror, UnicodeError) as exc:
            reason = (
                "the name server did not answer"
                if isinstance(exc, TimeoutError)
                else ("no such host")
            )
            raise _Failed("dns", f"{s.host}: {reason}", "check the host name") from None
        if not infos:
            raise _Failed("dns", f"{s.host}: no address", "check the host name")

    async def _line(self) -> str:
        assert self.reader is not None
        try:
            raw = await asyncio.wait_for(self.reader.readline(), self.timeout)
        except TimeoutError:
            raise _Failed("greeting", f"{self.where}: the server said nothing") from None
        except (ValueError, asyncio.LimitOverrunError):
            raise _Failed("greeting", f"{self.where}: the server sent an overlong line") from None
        except (ConnectionError, ssl.SSLError, OSError) as exc:
            raise _Failed("greeting", f"{self.where}: the connection broke ({exc})") from None
        if not raw:
            raise _Failed("greeting", f"{self.where}: the server closed the connection")
        return raw.decode("utf-8", "replace").rstrip("\r\n")

    def _send(self, line: str) -> None:
        assert self.writer is not None
        self.writer.write(line.encode("ascii") + b"\r\n")

    async def _greet(self) -> None:
        line = await self._line()
        self.greeting = _printable(line)[:200]
        protocol = self.setting.protocol
        expected = {"imap": ("* OK", "* PREAUTH"), "pop3": ("+OK",), "smtp": ("220",)}[protocol]
        if protocol == "smtp":
            while line.startswith("220-"):
                line = await self._line()
        if not line.upper().startswith(expected) and not self.greeting.upper().startswith(expected):
            raise _Failed(
                "greeting",
                f"{self.where} does not answer as {protocol.upper()} "
                f"(it said {self.greeting[:60]!r})",
                "check the port: it belongs to another service",
            )
        if (
            protocol == "imap"
            and self.greeting.upper().startswith("* PREAUTH")
            and (self.setting.security == "starttls")
        ):
            raise _Failed(
                "starttls",
                f"{self.where} logged in before STARTTLS (PREAUTH): the connection cannot be "
                "encrypted, so Kittiwake will not use it",
            )

    async def _capabilities(self) -> None:
        protocol = self.setting.protocol
        if protocol == "imap":
            self._send("k1 CAPABILITY")
            caps: list[str] = []
            while True:
                line = await self._line()
                if line.upper().startswith("* CAPABILITY "):
                    caps += line[13:].split()
                elif line.startswith("k1 "):
                    break
            self.capabilities = frozenset(c.upper() for c in caps)
            self.auth_mechanisms = frozenset(
                c[5:] for c in self.capabilities if c.startswith("AUTH=")
            )
        elif protocol == "pop3":
            self._send("CAPA")
            first = await self._line()
            caps = []
            if first.startswith("+OK"):
                while (line := await self._line()) != ".":
                    caps.append(line)
            self.capabilities = frozenset(c.upper() for c in caps)
            sasl = next((c for c in self.capabilities if c.startswith("SASL ")), "")
            self.auth_mechanisms = frozenset(sasl.split()[1:]) | (
                {"USER"} if "USER" in self.capabilities else set()
            )
        else:
            self._send(f"EHLO {_EHLO_NAME}")
            caps = []
            while True:
                line = await self._line()
                caps.append(line[4:])
                if not line.startswith("250-"):
                    if not line.startswith("250"):
                        raise _Failed("capabilities", f"{self.where} refused EHLO: {line[:80]}")
                    break
            self.capabilities = frozenset(c.upper() for c in caps[1:])
            auth = next((c for c in self.capabilities if c.startswith("AUTH ")), "")
            self.auth_mechanisms = frozenset(auth.split()[1:])

    async def _starttls(self) -> None:
        protocol = self.setting.protocol
        offered = {"imap": "STARTTLS", "pop3": "STLS", "smtp": "STARTTLS"}[protocol]
        if offered not in self.capabilities:
            raise _Failed(
                "starttls",
                f"{self.where} does not offer {offered}, so the connection cannot be encrypted "
                "on this port",
                'use security = "tls" on the TLS port, or ask the provider',
            )
        command = {"imap": "k2 STARTTLS", "pop3": "STLS", "smtp": "STARTTLS"}[protocol]
        self._send(command)
        line = await self._line()
        ok = {"imap": "k2 OK", "pop3": "+OK", "smtp": "220"}[protocol]
        if not line.upper().startswith(ok.upper()):
            raise _Failed("starttls", f"{self.where} refused {offered}: {_printable(line)[:80]}")
        assert self.reader is not None and self.writer is not None
        if self.reader._buffer:  # type: ignore[attr-defined]  # bytes before the handshake
            raise _Failed(
                "starttls",
                f"{self.where} sent data before the TLS handshake (an injection attempt or a "
                "broken server); Kittiwake will not use it",
            )
        try:
            await asyncio.wait_for(
                self.writer.start_tls(self.context, server_hostname=self.setting.host),
                self.timeout,
            )
        except ssl.SSLCertVerificationError as exc:
            raise _refused_certificate(exc, self.setting.host) from None
        except (ssl.SSLError, TimeoutError, OSError) as exc:
            raise _Failed(
                "tls", f"{self.where}: the TLS handshake after STARTTLS failed ({exc})"
            ) from None
        self.encrypted = True

    async def _goodbye(self) -> None:
        command = {"imap": "k9 LOGOUT", "pop3": "QUIT", "smtp": "QUIT"}[self.setting.protocol]
        with contextlib.suppress(Exception):
            self._send(command)

    async def close(self) -> None:
        if self.writer is None:
            return
        with contextlib.suppress(Exception):
            self.writer.close()
            await asyncio.wait_for(self.writer.wait_closed(), 2)


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else " " for c in text)


def _certificate_problem(exc: ssl.SSLCertVerificationError, host: str) -> tuple[str, str]:
    code = exc.verify_code
    message = exc.verify_message or str(exc.reason)
    if code in (62, 64):  # X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH
        return (
            f"{host}: the certificate is for another host name ({message})",
            "use the host name the certificate names, or ask the provider",
        )
    if code == 10:  # X509_V_ERR_CERT_HAS_EXPIRED
        return (
            f"{host}: the certificate has expired",
            "the server must renew it; if it looks new, check this machine's clock",
        )
    if code == 9:  # X509_V_ERR_CERT_NOT_YET_VALID
        return (
            f"{host}: the certificate is not valid yet",
            "check this machine's clock and time zone",
        )
    if code in (18, 19, 20, 21):  # self-signed, unknown issuer
        return (
            f"{host}: the certificate is signed by an authority this machine does not trust "
            f"({message})",
            "if you trust this server, put its CA certificate in a file and name it in ca_file",
        )
    return f"{host}: the certificate was refused ({message})", ""


async def _explain(
    setting: ServerSetting, failed: _Failed, timeout: float, address: str | None
) -> tuple[str, Certificate | None]:
    """Why a TLS handshake or greeting failed: for a refused certificate, its names and dates
    (read again without verifying it); otherwise whether the port speaks the other TLS mode."""
    unverified = ssl.create_default_context()
    unverified.check_hostname = False
    unverified.verify_mode = ssl.CERT_NONE
    if failed.certificate_refused:
        trial = _Session(setting, unverified, timeout, address)
        try:
            await trial.run()
        except _Failed:
            pass
        finally:
            cert = _peer_certificate(trial.writer)
            await trial.close()
        return "", cert
    other: Security = "none" if setting.security == "tls" else "tls"
    trial = _Session(
        ServerSetting(setting.protocol, setting.host, setting.port, other),
        unverified,
        timeout,
        address,
    )
    try:
        await trial._connect(tls=other == "tls")
        await trial._greet()
    except _Failed:
        return "", None
    finally:
        await trial.close()
    port = setting.port
    if other == "none":
        return (
            f"port {port} speaks {setting.protocol.upper()} in the clear first: use "
            f'security = "starttls", or the TLS port {default_port(setting.protocol, "tls")}',
            None,
        )
    return (
        f'port {port} expects TLS at once: use security = "tls", or the STARTTLS port '
        f"{default_port(setting.protocol, 'starttls')}",
        None,
    )


def _peer_certificate(writer: asyncio.StreamWriter | None) -> Certificate | None:
    if writer is None:
        return None
    ssl_object = writer.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        return None
    return describe_certificate(der)


def describe_certificate(der: bytes) -> Certificate:
    """Names, validity and issuer of a DER certificate (parsed with ``cryptography``)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    cert = x509.load_der_x509_certificate(der)
    names: list[str] = []
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names += [str(n) for n in san.get_values_for_type(x509.DNSName)]
        names += [str(n) for n in san.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        pass
    if not names:
        names += [
            str(a.value) for a in cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        ]
    return Certificate(
        names=tuple(names),
        not_before=cert.not_valid_before_utc.astimezone(UTC),
        not_after=cert.not_valid_after_utc.astimezone(UTC),
        issuer=cert.issuer.rfc4514_string(),
        sha256=cert.fingerprint(hashes.SHA256()).hex(":"),
    )
