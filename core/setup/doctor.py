"""``kittiwake doctor``: every server of an account checked layer by layer, one verdict per
check with the fix, so "it does not connect" becomes one sentence a user can act on.

Layers: the config, DNS, TCP, TLS (certificate chain, host name, dates), the TLS mode against
the port, STARTTLS, greeting and capabilities (and which of them Kittiwake will use), then
authentication with the account's own secret. A layer that fails stops that server's checks:
the next layer's verdict would only repeat it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from kittiwake.core.config import Account, ServerConfig
from kittiwake.core.setup.autoconfig import Protocol, ServerSetting
from kittiwake.core.setup.login import check_login
from kittiwake.core.setup.probe import ProbeResult, default_port, probe

_USED: dict[Protocol, tuple[str, ...]] = {
    "imap": ("IDLE", "NOTIFY", "QRESYNC", "CONDSTORE", "MOVE", "UIDPLUS", "SPECIAL-USE", "ESEARCH"),
    "pop3": ("UIDL", "TOP", "SASL", "USER"),
    "smtp": ("SIZE", "8BITMIME", "SMTPUTF8", "PIPELINING"),
}
_LAYER_NAMES = {
    "dns": "DNS",
    "tcp": "TCP",
    "tls": "TLS",
    "greeting": "greeting",
    "starttls": "STARTTLS",
    "capabilities": "capabilities",
}


@dataclass(frozen=True, slots=True)
class Check:
    server: str
    """"imap", "pop3" or "smtp"."""
    layer: str
    ok: bool
    sentence: str
    fix: str = ""
    warning: bool = False
    """Works, but worth knowing (e.g. no encryption by the user's own choice)."""


async def diagnose(account: Account, *, timeout: float = 10.0) -> AsyncIterator[Check]:
    """The checks of every server of ``account``, in order, as they complete."""
    if account.oauth2 is not None:
        yield await _oauth2_check(account)
    protocols: tuple[Protocol, ...] = ("imap", "pop3", "smtp")
    for protocol in protocols:
        server: ServerConfig | None = getattr(account, protocol)
        if server is None:
            continue
        async for check in _diagnose_server(account, protocol, server, timeout):
            yield check


async def _oauth2_check(account: Account) -> Check:
    """The OAuth2 sign-in: stored, and does a refresh give an access token?"""
    from kittiwake.core.errors import KittiwakeError
    from kittiwake.core.oauth2.tokens import token_source

    source = token_source(account)
    try:
        await source.access_token()
    except KittiwakeError as exc:
        return Check("oauth2", "sign-in", False, exc.message, f"kittiwake login {account.key}")
    return Check("oauth2", "sign-in", True, source.state() + " (the refresh works)")


async def _diagnose_server(
    account: Account, protocol: Protocol, server: ServerConfig, timeout: float
) -> AsyncIterator[Check]:
    port = server.port or default_port(protocol, server.security)
    where = f"{server.host}:{port}"
    mode_mistake = _mode_mistake(protocol, server.security, port)
    if mode_mistake:
        yield Check(protocol, "TLS mode", True, mode_mistake, warning=True)
    if server.security == "none":
        yield Check(
            protocol,
            "TLS mode",
            True,
            f'{where}: security = "none": the password and mail cross the network unencrypted',
            'use "tls" or "starttls" unless this server is on this machine',
            warning=True,
        )
    setting = ServerSetting(protocol, server.host, port, server.security)
    ca_file = Path(server.ca_file).expanduser() if server.ca_file else None
    result = await probe(setting, ca_file=ca_file, timeout=min(timeout, server.timeout))
    for check in _probe_checks(protocol, result):
        yield check
    if not result.ok:
        return
    login = await check_login(account, protocol)
    yield Check(protocol, "login", login.ok, login.detail, login.hint)


def _mode_mistake(protocol: Protocol, security: str, port: int) -> str:
    tls_port, starttls_port = default_port(protocol, "tls"), default_port(protocol, "starttls")
    if security == "tls" and port == starttls_port:
        return (
            f'port {port} is the usual STARTTLS port but security = "tls"; if the TLS check '
            f'fails, use security = "starttls" or port {tls_port}'
        )
    if security == "starttls" and port == tls_port:
        return (
            f'port {port} is the usual TLS port but security = "starttls"; if the check '
            f'fails, use security = "tls" or port {starttls_port}'
        )
    return ""


def _probe_checks(protocol: Protocol, result: ProbeResult) -> list[Check]:
    order = ["dns", "tcp", "tls", "greeting", "starttls", "capabilities"]
    reached = order.index(result.stage) if result.stage in order else len(order)
    s = result.setting
    where = result.where
    checks: list[Check] = []
    passed = {
        "dns": f"{s.host} resolves",
        "tcp": f"{where} accepts connections",
        "tls": f"{where}: TLS handshake, certificate valid for {s.host}",
        "greeting": f"{where} greets as {protocol.upper()}: {result.greeting[:60]}",
        "starttls": f"{where} offers STARTTLS; TLS on, certificate valid for {s.host}",
    }
    for layer in order[:reached]:
        if layer == "tls" and s.security != "tls":
            continue  # no TLS, or TLS after STARTTLS (the "starttls" line says it)
        if layer == "starttls" and s.security != "starttls":
            continue
        if layer in passed:
            checks.append(Check(protocol, _LAYER_NAMES[layer], True, passed[layer]))
    if not result.ok:
        fix = result.hint
        if result.certificate is not None and result.stage == "tls":
            cert = result.certificate
            dates = ""
            if cert.not_before and cert.not_after:
                dates = f"; valid {cert.not_before:%Y-%m-%d} to {cert.not_after:%Y-%m-%d}"
            names = ", ".join(cert.names[:4]) or "no names"
            fix = (fix + "; " if fix else "") + f"the certificate names {names}{dates}"
        checks.append(Check(protocol, _LAYER_NAMES[result.stage], False, result.detail, fix))
        return checks
    used = [c for c in _USED[protocol] if any(k.startswith(c) for k in result.capabilities)]
    auth = ", ".join(sorted(result.auth_mechanisms)) or "none advertised"
    checks.append(
        Check(
            protocol,
            "capabilities",
            True,
            f"Kittiwake will use: {', '.join(used) or 'the basics'}; sign-in: {auth}",
        )
    )
    if protocol == "imap" and "IDLE" not in result.capabilities:
        checks.append(
            Check(
                protocol,
                "capabilities",
                True,
                "no IDLE: new mail is noticed by polling (poll_every)",
                warning=True,
            )
        )
    return checks
