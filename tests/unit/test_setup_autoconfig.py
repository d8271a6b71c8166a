"""The autoconfig document reader (untrusted network input) and the bundled provider table."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kittiwake.core.setup.autoconfig import (
    MAX_DOCUMENT,
    AutoconfigError,
    ServerSetting,
    parse_autoconfig,
)
from kittiwake.core.setup.providers import known_domains, provider_for_domain

REPO = Path(__file__).resolve().parents[2]

DOCUMENT = b"""<?xml version="1.0" encoding="UTF-8"?>
<clientConfig version="1.1">
  <emailProvider id="example.net">
    <domain>example.net</domain>
    <domain>Example.ORG</domain>
    <domain>not a domain</domain>
    <displayName>Example</displayName>
    <incomingServer type="imap">
      <hostname>imap.%EMAILDOMAIN%</hostname>
      <port>993</port>
      <socketType>TLS</socketType>
      <username>%EMAILADDRESS</username>
      <authentication>OAuth2</authentication>
      <authentication>password-cleartext</authentication>
    </incomingServer>
    <incomingServer type="imap">
      <hostname>bad host;rm -rf</hostname>
      <port>993</port>
      <socketType>SSL</socketType>
    </incomingServer>
    <incomingServer type="exchange">
      <hostname>ews.example.net</hostname>
      <port>443</port>
      <socketType>SSL</socketType>
    </incomingServer>
    <incomingServer type="pop3">
      <hostname>pop.example.net</hostname>
      <port>99999</port>
      <socketType>SSL</socketType>
    </incomingServer>
    <incomingServer type="pop3">
      <hostname>pop.example.net</hostname>
      <port>110</port>
      <socketType>STARTTLS</socketType>
      <username>%EMAILLOCALPART%</username>
    </incomingServer>
    <outgoingServer type="smtp">
      <hostname>smtp.example.net</hostname>
      <port>587</port>
      <socketType>STARTTLS</socketType>
      <username>%EMAILLOCALPART%.%EMAILDOMAIN%</username>
      <authentication>password-encrypted</authentication>
    </outgoingServer>
    <documentation url="https://example.net/help"><descr>Help</descr></documentation>
    <documentation url="javascript:alert(1)"><descr>Bad</descr></documentation>
  </emailProvider>
  <oAuth2>
    <issuer>login.example.net</issuer>
    <scope>mail</scope>
    <authURL>https://login.example.net/auth</authURL>
    <tokenURL>https://login.example.net/token</tokenURL>
  </oAuth2>
  <enable visiturl="https://example.net/settings"><instruction>Enable IMAP</instruction></enable>
</clientConfig>
"""


def test_a_document_becomes_settings_and_bad_entries_never_hide_good_ones() -> None:
    p = parse_autoconfig(DOCUMENT)
    assert p.id == "example.net"
    assert p.domains == ("example.net", "example.org")
    assert [(s.protocol, s.host, s.port, s.security) for s in p.incoming] == [
        ("imap", "imap.%EMAILDOMAIN%", 993, "tls"),
        ("pop3", "pop.example.net", 110, "starttls"),
    ]
    imap, pop3 = p.incoming
    assert imap.auth == ("oauth2", "password")
    assert imap.for_address("ann@Example.ORG").host == "imap.example.org"
    assert imap.login_for("ann@example.org") == "ann@example.org"  # the %EMAILADDRESS typo
    assert pop3.login_for("ann@example.org") == "ann"
    (smtp,) = p.outgoing
    assert smtp.login_for("ann@example.org") == "ann.example.org"
    assert smtp.auth == ("cram-md5",)
    assert p.oauth2 is not None and p.oauth2.token_url == "https://login.example.net/token"
    assert p.enable_url == "https://example.net/settings"
    assert p.documentation == ("https://example.net/help",)


@pytest.mark.parametrize(
    ("document", "said"),
    [
        (b"not xml at all", "not well-formed"),
        (b"<html><body>404</body></html>", "not <clientConfig>"),
        (b"<clientConfig/>", "no <emailProvider>"),
        (b"<clientConfig><emailProvider id='x'/></clientConfig>", "names no IMAP"),
        (
            b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 '
            b'"&lol;&lol;&lol;&lol;">]><clientConfig>&lol2;</clientConfig>',
            "DTD",
        ),
        (
            b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
            b"<clientConfig>&e;</clientConfig>",
            "DTD",
        ),
        (b"<clientConfig>" + b" " * MAX_DOCUMENT + b"</clientConfig>", "too large"),
    ],
)
def test_hostile_or_wrong_documents_are_refused_in_one_sentence(document: bytes, said: str) -> None:
    with pytest.raises(AutoconfigError) as caught:
        parse_autoconfig(document)
    assert said in str(caught.value)
    assert "\n" not in str(caught.value)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_only_ever_raise_autoconfig_error(data: bytes) -> None:
    with contextlib.suppress(AutoconfigError):
        parse_autoconfig(data)


_FIELD = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40
)


@settings(max_examples=300, deadline=None)
@given(host=_FIELD, port=_FIELD, socket=_FIELD, user=_FIELD, kind=_FIELD)
def test_hostile_server_fields_yield_only_valid_settings(
    host: str, port: str, socket: str, user: str, kind: str
) -> None:
    from xml.sax.saxutils import escape, quoteattr

    body = (
        f"<clientConfig><emailProvider id='x'><incomingServer type={quoteattr(kind)}>"
        f"<hostname>{escape(host)}</hostname><port>{escape(port)}</port>"
        f"<socketType>{escape(socket)}</socketType><username>{escape(user)}</username>"
        f"</incomingServer><outgoingServer type='smtp'><hostname>smtp.x.org</hostname>"
        f"<port>465</port><socketType>SSL</socketType></outgoingServer>"
        f"</emailProvider></clientConfig>"
    ).encode()
    try:
        p = parse_autoconfig(body)
    except AutoconfigError:
        return  # e.g. a control character XML itself refuses
    for s in p.incoming:
        assert isinstance(s, ServerSetting)
        assert 0 < s.port < 65536 and s.security in ("tls", "starttls", "none")
        assert all(c.isalnum() or c in ".-_%" for c in s.host)


def test_the_bundled_table_answers_offline_for_the_big_providers() -> None:
    assert known_domains() > 900
    gmail = provider_for_domain("GMAIL.COM.")
    assert gmail is not None
    assert (gmail.incoming[0].host, gmail.incoming[0].port, gmail.incoming[0].security) == (
        "imap.gmail.com",
        993,
        "tls",
    )
    assert gmail.oauth2 is not None
    icloud = provider_for_domain("icloud.com")
    assert icloud is not None and icloud.incoming[0].login_for("me@icloud.com") == "me"
    assert icloud.outgoing[0].login_for("me@icloud.com") == "me@icloud.com"
    outlook = provider_for_domain("outlook.com")
    assert outlook is not None and outlook.incoming[0].host.endswith("office365.com")
    assert provider_for_domain("no-such-provider.example") is None


def test_the_bundled_table_is_what_the_script_compiles_from_the_snapshot(tmp_path: Path) -> None:
    """The shipped table is reproducible from ../shared/data/ispdb (always beside the checkout
    here and in CI) and carries facts only: no descriptions or instructions."""
    snapshot = REPO.parent / "shared" / "data" / "ispdb" / "ispdb"
    assert snapshot.is_dir(), f"the ISP database snapshot is missing at {snapshot}"
    shipped = (REPO / "core" / "setup" / "providers.json").read_bytes()
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "build-provider-table"),
            str(snapshot),
            "--out",
            str(tmp_path / "providers.json"),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "963 domains" in done.stdout
    rebuilt = (tmp_path / "providers.json").read_bytes()
    assert rebuilt == shipped
    table = json.loads(shipped)
    facts = {"id", "domains", "incoming", "outgoing", "oauth2", "enable_url", "documentation"}
    assert all(set(p) == facts for p in table["providers"])
    assert "You need to enable" not in shipped.decode()  # the database's prose stays out
