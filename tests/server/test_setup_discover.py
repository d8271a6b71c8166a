"""Discovery from an address against real servers on loopback: a private DNS server (dnsmasq)
for MX and SRV, an HTTPS autoconfig server with a certificate from the test CA, and the private
Dovecot and Postfix as the probed servers. The bundled table needs no network at all."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import Dovecot, Postfix, TestCA
from harness.dns import DnsServer
from harness.https import HttpsServer

from kittiwake.core.setup.confirm import Candidate, best, confirm
from kittiwake.core.setup.discover import Discovery, Finding
from kittiwake.core.setup.dns import Dns
from kittiwake.core.setup.probe import tls_context


@pytest.fixture
def dns_server(tmp_path: Path, dovecot: Dovecot, postfix: Postfix) -> Iterator[DnsServer]:
    with DnsServer(
        tmp_path,
        mx={
            "workspace.example.test": "aspmx.l.google.com",
            "m365.example.test": "m365-example-test.mail.protection.outlook.com",
        },
        srv=[
            ("_imaps._tcp.srv.example.test", "imap.example.test", dovecot.ports.imaps),
            ("_imap._tcp.srv.example.test", "imap.example.test", dovecot.ports.imap),
            ("_pop3s._tcp.srv.example.test", ".", 0),
            ("_submission._tcp.srv.example.test", "smtp.example.test", postfix.ports.submission),
        ],
    ) as server:
        yield server


def discovery(dns_server: DnsServer, ca: TestCA, https_port: int | None = None) -> Discovery:
    return Discovery(
        dns=Dns(nameserver="127.0.0.1", port=dns_server.port, timeout=2),
        context=tls_context(ca.ca_file),
        https_port=https_port,
        soft_deadline=3,
        hard_deadline=6,
    )


async def findings(d: Discovery, email: str) -> list[Finding]:
    return [f async for f in d.run(email)]


async def confirmed(d: Discovery, found: list[Finding], ca: TestCA, email: str) -> list[Candidate]:
    return [c async for c in confirm(found, dns=d.dns, ca_file=ca.ca_file, timeout=3, email=email)]


async def test_the_provider_table_answers_offline_at_once() -> None:
    d = Discovery(dns=Dns(nameserver="127.0.0.1", port=9, timeout=0.5), soft_deadline=1)
    found = await findings(d, "someone@gmail.com")
    table = next(f for f in found if f.kind == "table")
    assert table.seconds < 0.5
    assert table.provider is not None and table.provider.id == "googlemail.com"
    assert {s.host for s in table.settings} >= {"imap.gmail.com", "smtp.gmail.com"}
    assert all(f.kind != "guess" for f in found)


async def test_srv_records_find_the_servers_and_probes_confirm_them(
    dns_server: DnsServer, tls_ca: TestCA, dovecot: Dovecot, postfix: Postfix
) -> None:
    d = discovery(dns_server, tls_ca)
    found = await findings(d, "ann@srv.example.test")
    srv = [f for f in found if f.kind == "srv"]
    assert {s.protocol for f in srv for s in f.settings} == {"imap", "smtp"}  # "." = no pop3s
    candidates = await confirmed(d, found, tls_ca, "ann@srv.example.test")
    imap = best(candidates, "imap")
    assert imap is not None and imap.setting.port == dovecot.ports.imaps
    assert imap.setting.security == "tls"  # implicit TLS preferred over STARTTLS
    smtp = best(candidates, "smtp")
    assert smtp is not None and smtp.setting.port == postfix.ports.submission
    assert "SRV _submission._tcp.srv.example.test" in smtp.sources
    assert all(f.kind != "guess" for f in found)


async def test_an_https_autoconfig_document_is_fetched_and_confirmed(
    dns_server: DnsServer, tls_ca: TestCA, dovecot: Dovecot, postfix: Postfix, tmp_path: Path
) -> None:
    document = f"""<clientConfig version="1.1"><emailProvider id="auto.example.test">
      <domain>auto.example.test</domain>
      <incomingServer type="imap"><hostname>imap.example.test</hostname>
        <port>{dovecot.ports.imaps}</port><socketType>SSL</socketType>
        <username>%EMAILLOCALPART%</username></incomingServer>
      <outgoingServer type="smtp"><hostname>smtp.example.test</hostname>
        <port>{postfix.ports.submission}</port><socketType>STARTTLS</socketType>
        <username>%EMAILADDRESS%</username></outgoingServer>
    </emailProvider></clientConfig>""".encode()
    with HttpsServer(
        tls_ca,
        tmp_path,
        ["autoconfig.auto.example.test"],
        {"/mail/config-v1.1.xml": document},
    ) as web:
        d = discovery(dns_server, tls_ca, https_port=web.port)
        found = await findings(d, "ann@auto.example.test")
        assert "autoconfig.auto.example.test/mail/config-v1.1.xml" in web.requests
    auto = [f for f in found if f.kind == "autoconfig" and f.settings]
    assert len(auto) == 1 and auto[0].source.startswith("https://autoconfig.auto.example.test/")
    well_known = next(f for f in found if "well-known" in f.source)
    assert well_known.error is not None  # the domain itself serves no document (a 404/refusal)
    candidates = await confirmed(d, found, tls_ca, "ann@auto.example.test")
    imap = best(candidates, "imap")
    assert imap is not None and imap.setting.login_for("ann@auto.example.test") == "ann"
    assert best(candidates, "smtp") is not None


async def test_an_autoconfig_server_with_a_certificate_for_another_name_is_not_trusted(
    dns_server: DnsServer, tls_ca: TestCA, tmp_path: Path
) -> None:
    with HttpsServer(
        tls_ca, tmp_path, ["elsewhere.invalid"], {"/mail/config-v1.1.xml": b"<clientConfig/>"}
    ) as web:
        d = discovery(dns_server, tls_ca, https_port=web.port)
        found = await findings(d, "ann@badcert.example.test")
    auto = next(f for f in found if f.source.startswith("https://autoconfig."))
    assert not auto.settings and auto.error is not None and "certificate" in auto.error


async def test_mx_finds_google_workspace_and_microsoft_365_custom_domains(
    dns_server: DnsServer, tls_ca: TestCA
) -> None:
    d = discovery(dns_server, tls_ca)
    google = next(f for f in await findings(d, "a@workspace.example.test") if f.kind == "mx")
    assert google.provider is not None and google.provider.id == "googlemail.com"
    assert "aspmx.l.google.com" in google.source
    microsoft = next(f for f in await findings(d, "a@m365.example.test") if f.kind == "mx")
    assert microsoft.provider is not None
    assert microsoft.provider.incoming[0].host == "outlook.office365.com"


async def test_guesses_come_only_when_nothing_else_answered(
    dns_server: DnsServer, tls_ca: TestCA
) -> None:
    d = discovery(dns_server, tls_ca)
    found = await findings(d, "a@nothing.example.test")
    guess = [f for f in found if f.kind == "guess"]
    assert len(guess) == 1
    hosts = {s.host for s in guess[0].settings}
    assert {
        "imap.nothing.example.test",
        "mail.nothing.example.test",
        "smtp.nothing.example.test",
    } <= hosts
    assert {(s.port, s.security) for s in guess[0].settings if s.protocol == "imap"} == {
        (993, "tls"),
        (143, "starttls"),
    }


async def test_a_domain_found_only_by_guessing_is_confirmed(
    dns_server: DnsServer, tls_ca: TestCA, dovecot: Dovecot, postfix: Postfix
) -> None:
    """No table entry, no autoconfig, no MX, no SRV: the usual host names are tried (on the
    standard ports; here the test servers' ports stand for them) and confirmed over TLS."""
    d = discovery(dns_server, tls_ca)
    d.guess_ports = {
        ("imap", "tls"): dovecot.ports.imaps,
        ("imap", "starttls"): dovecot.ports.imap,
        ("pop3", "tls"): dovecot.ports.pop3s,
        ("pop3", "starttls"): dovecot.ports.pop3,
        ("smtp", "tls"): postfix.ports.submissions,
        ("smtp", "starttls"): postfix.ports.submission,
    }
    found = await findings(d, "ann@example.test")
    assert [f.kind for f in found if f.settings] == ["guess"]
    candidates = await confirmed(d, found, tls_ca, "ann@example.test")
    imap, smtp = best(candidates, "imap"), best(candidates, "smtp")
    assert imap is not None and smtp is not None
    assert (imap.setting.host, imap.setting.security) == ("imap.example.test", "tls")
    assert (smtp.setting.host, smtp.setting.security) == ("smtp.example.test", "tls")
    assert "guessed host names at example.test" in imap.sources
