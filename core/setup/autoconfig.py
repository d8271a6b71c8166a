"""The ``config-v1.1.xml`` autoconfig format (Thunderbird's ISP database and providers' own
documents) read into typed server settings.

A provider's document comes from the network, so it is untrusted: it is parsed without DTDs or
entities (defusedxml), its size is capped, and every value is checked before it is used. A
document only ever proposes settings; nothing is trusted until a verified TLS connection to the
host confirms it (``core/setup/probe.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Literal
from xml.etree.ElementTree import Element

from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException

Security = Literal["tls", "starttls", "none"]  # as in core/config.py; this module stands alone
Protocol = Literal["imap", "pop3", "smtp"]

#: How a security mode is named to the user (setup's screen and command print candidates).
SECURITY_LABELS: dict[str, str] = {"tls": "TLS", "starttls": "STARTTLS", "none": "plain"}

MAX_DOCUMENT = 256 * 1024
"""Real documents are 1-10 KB; anything far larger is not an autoconfig document."""

_SOCKET_TYPES: dict[str, Security] = {
    "ssl": "tls",
    "tls": "tls",  # some files say TLS where implicit TLS is meant (port 993/465/995)
    "starttls": "starttls",
    "plain": "none",
}
_AUTH = {
    "password-cleartext": "password",
    "plain": "password",
    "password-encrypted": "cram-md5",
    "secure": "cram-md5",
    "oauth2": "oauth2",
    "none": "none",
    "client-ip-address": "none",
    "gssapi": "gssapi",
    "ntlm": "ntlm",
}
_HOST = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9_]"
                   r"([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?\.?$")  # fmt: skip
_USERNAME_FORMS = {
    "%EMAILADDRESS%": "address",
    "%EMAILADDRESS": "address",  # a known typo in the database (office365.com.xml)
    "%EMAILLOCALPART%": "localpart",
    "%EMAILLOCALPART%.%EMAILDOMAIN%": "localpart.domain",
}


class AutoconfigError(ValueError):
    """The document is not a usable autoconfig document (one sentence in ``args[0]``)."""


@dataclass(frozen=True, slots=True)
class ServerSetting:
    """One way to reach one server, as a source proposes it."""

    protocol: Protocol
    host: str
    port: int
    security: Security
    username: str = "address"
    """How the login name is formed: "address", "localpart", "localpart.domain", or a
    literal name."""
    auth: tuple[str, ...] = ("password",)
    """Mechanisms the source lists, in its order ("password", "oauth2", "cram-md5", ...)."""

    def for_address(self, email: str) -> ServerSetting:
        """This setting with the address's domain put in where the source left a template
        (``mail.%EMAILDOMAIN%``)."""
        domain = email.rpartition("@")[2].lower()
        if "%EMAILDOMAIN%" not in self.host:
            return self
        return replace(self, host=self.host.replace("%EMAILDOMAIN%", domain))

    def login_for(self, email: str) -> str:
        local, _, domain = email.partition("@")
        if self.username == "address":
            return email
        if self.username == "localpart":
            return local
        if self.username == "localpart.domain":
            return f"{local}.{domain}"
        return self.username


@dataclass(frozen=True, slots=True)
class OAuth2Endpoints:
    issuer: str
    scope: str
    auth_url: str
    token_url: str


@dataclass(frozen=True, slots=True)
class ProviderSettings:
    """What one source knows of a provider: its servers in preference order, and facts."""

    id: str
    domains: tuple[str, ...]
    incoming: tuple[ServerSetting, ...]
    outgoing: tuple[ServerSetting, ...]
    oauth2: OAuth2Endpoints | None = None
    enable_url: str | None = None
    """A page where the user must first switch IMAP/POP3 access on."""
    documentation: tuple[str, ...] = field(default=())


def parse_autoconfig(data: bytes) -> ProviderSettings:
    """The provider described by a ``config-v1.1.xml`` document; ``AutoconfigError`` when the
    document is malformed, hostile, or describes no server Kittiwake can use."""
    if len(data) > MAX_DOCUMENT:
        raise AutoconfigError(f"the document is {len(data):,} bytes, too large to be autoconfig")
    try:
        root = ElementTree.fromstring(data, forbid_dtd=True)
    except DefusedXmlException:
        raise AutoconfigError("the document declares a DTD or entities, which is refused") from None
    except ElementTree.ParseError as exc:
        raise AutoconfigError(f"the document is not well-formed XML ({exc})") from None
    if root.tag != "clientConfig":
        raise AutoconfigError(f"the document's root is <{root.tag}>, not <clientConfig>")
    provider = root.find("emailProvider")
    if provider is None:
        raise AutoconfigError("the document has no <emailProvider>")
    incoming = tuple(
        s
        for e in provider.findall("incomingServer")
        if (s := _server(e, e.get("type", ""))) is not None
    )
    outgoing = tuple(
        s
        for e in provider.findall("outgoingServer")
        if (s := _server(e, e.get("type", ""))) is not None
    )
    if not incoming and not outgoing:
        raise AutoconfigError("the document names no IMAP, POP3 or SMTP server")
    domains = tuple(
        d for e in provider.findall("domain") if (d := _text(e).lower()) and _HOST.match(d)
    )
    return ProviderSettings(
        id=provider.get("id", "") or (domains[0] if domains else ""),
        domains=domains,
        incoming=incoming,
        outgoing=outgoing,
        oauth2=_oauth2(root.find("oAuth2")),
        enable_url=_url(root.find("enable"), "visiturl")
        or _url(provider.find("enable"), "visiturl"),
        documentation=tuple(
            u for e in provider.findall("documentation") if (u := _url(e, "url")) is not None
        ),
    )


def _text(element: Element | None) -> str:
    if element is None or element.text is None:
        return ""
    return element.text.strip()


def _url(element: Element | None, attribute: str) -> str | None:
    if element is None:
        return None
    value = (element.get(attribute) or "").strip()
    return value if value.startswith(("https://", "http://")) and len(value) < 2048 else None


def _server(element: Element, kind: str) -> ServerSetting | None:
    """One server entry, or None when it is one Kittiwake cannot use (an unknown type, a
    malformed host or port): a bad entry never hides the good ones."""
    protocol = kind.lower()
    if protocol not in ("imap", "pop3", "smtp"):
        return None
    host = _text(element.find("hostname")).lower().replace("%emaildomain%", "%EMAILDOMAIN%")
    if not _HOST.match(host.replace("%EMAILDOMAIN%", "example.org")):
        return None
    try:
        port = int(_text(element.find("port")))
    except ValueError:
        return None
    if not 0 < port < 65536:
        return None
    security = _SOCKET_TYPES.get(_text(element.find("socketType")).lower())
    if security is None:
        return None
    raw_user = _text(element.find("username"))
    username = _USERNAME_FORMS.get(raw_user, raw_user) or "address"
    auth = tuple(
        dict.fromkeys(
            _AUTH[a] for e in element.findall("authentication") if (a := _text(e).lower()) in _AUTH
        )
    )
    return ServerSetting(
        protocol=protocol,  # type: ignore[arg-type]  # checked above
        host=host.rstrip("."),
        port=port,
        security=security,
        username=username,
        auth=auth or ("password",),
    )


def _oauth2(element: Element | None) -> OAuth2Endpoints | None:
    if element is None:
        return None
    values = [_text(element.find(n)) for n in ("issuer", "scope", "authURL", "tokenURL")]
    if not all(values) or not all(v.startswith("https://") for v in values[2:]):
        return None
    return OAuth2Endpoints(*values)
