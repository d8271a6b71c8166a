"""Setup end to end, from an address to a config that works: discovery through a private DNS
server, probes and logins against the real Dovecot and Postfix, the password stored in a real
store and read back, the account appended to a config that keeps the user's text."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import Dovecot, Postfix, User
from harness.dns import DnsServer

from kittiwake.cli.setup import run_setup
from kittiwake.core.config import load_config
from kittiwake.core.secretstore import StoreKind
from kittiwake.core.setup.discover import Discovery
from kittiwake.core.setup.dns import Dns
from kittiwake.core.setup.login import check_login
from kittiwake.core.setup.probe import tls_context
from kittiwake.core.setup.service import SetupService

EXISTING = """# my accounts
[ui]
theme = "kittiwake-light"   # keep this comment
"""


@pytest.fixture
def dns_server(tmp_path: Path, dovecot: Dovecot, postfix: Postfix) -> Iterator[DnsServer]:
    # The targets are the servers' address written as a name, so that the written config
    # also works for the app, which resolves through the system (not this DNS server).
    with DnsServer(
        tmp_path,
        srv=[
            ("_imaps._tcp.example.test", dovecot.host, dovecot.ports.imaps),
            ("_pop3s._tcp.example.test", dovecot.host, dovecot.ports.pop3s),
            ("_submission._tcp.example.test", postfix.host, postfix.ports.submission),
        ],
    ) as server:
        yield server


@pytest.fixture
def service(
    tmp_path: Path, dns_server: DnsServer, dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch
) -> SetupService:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    config = tmp_path / "config" / "config.toml"
    config.parent.mkdir()
    config.write_text(EXISTING)
    return SetupService(
        config,
        Discovery(
            dns=Dns("127.0.0.1", dns_server.port, timeout=2),
            context=tls_context(dovecot.ca_file),
            soft_deadline=3,
            hard_deadline=6,
        ),
        ca_file=dovecot.ca_file,
        stores=[StoreKind.FILE],
    )


async def test_setup_from_an_address_writes_an_account_that_logs_in(
    service: SetupService, user: User, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(user.password + "\n"))
    out = io.StringIO()
    code = await run_setup(
        service,
        user.email,
        name="Ann Example",
        password_stdin=True,
        yes=True,
        send_test=True,
        out=out,
    )
    said = out.getvalue()
    assert code == 0, said
    assert "found   SRV _imaps._tcp.example.test" in said
    assert "Both IMAP and POP3 work" in said  # the choice is explained where it is made
    assert "ok      logged in to IMAP at 127.0.0.2:" in said
    assert "ok      logged in to SMTP at 127.0.0.2:" in said and "nothing sent" in said
    assert user.password not in said
    assert "ok      the test message arrived in INBOX after" in said and "(IDLE)" in said

    text = service.config_path.read_text()
    assert text.startswith(EXISTING)  # the user's text, byte for byte
    assert "# from: found by SRV _imaps._tcp.example.test" in text
    assert user.password not in text
    config = load_config(service.config_path)
    (key,) = config.accounts
    account = config.accounts[key]
    assert account.email == user.email and account.name == "Ann Example"
    assert account.imap is not None and account.imap.host == "127.0.0.2"
    assert account.imap.password_file is not None
    secret = Path(account.imap.password_file)
    assert secret.stat().st_mode & 0o077 == 0 and secret.read_text().strip() == user.password
    assert account.smtp is not None and account.smtp.security == "starttls"
    assert (await check_login(account, "imap")).ok
    assert (await check_login(account, "smtp")).ok


async def test_a_wrong_password_writes_nothing(service: SetupService, user: User) -> None:
    before = service.config_path.read_bytes()
    out = io.StringIO()
    code = await run_setup(
        service,
        user.email,
        receive="imap",
        password_command="printf wrong-password",
        yes=True,
        out=out,
    )
    assert code == 1
    assert "sign-in did not work; nothing was written" in out.getvalue()
    assert service.config_path.read_bytes() == before


async def test_a_password_command_is_written_as_given_and_nothing_stored(
    service: SetupService, user: User, tmp_path: Path
) -> None:
    secret_file = tmp_path / "pw"
    secret_file.write_text(user.password + "\n")
    out = io.StringIO()
    code = await run_setup(
        service,
        user.email,
        receive="pop3",
        password_command=f"cat {secret_file}",
        yes=True,
        out=out,
    )
    assert code == 0, out.getvalue()
    config = load_config(service.config_path)
    account = next(iter(config.accounts.values()))
    assert account.pop3 is not None and account.pop3.password_command == f"cat {secret_file}"
    assert not (tmp_path / "data" / "kittiwake" / "secrets").exists()
    assert (await check_login(account, "pop3")).ok
    trip = await service.send_test(user.email)  # POP3 has no push: the maildrop is polled
    assert trip.ok and trip.detail.startswith("the test message arrived after"), trip.detail


async def test_an_offline_machine_is_told_so_in_one_sentence(service: SetupService) -> None:
    """gmail.com is in the bundled table (found with no network), but its servers cannot be
    reached from here: one sentence says so and what to do; nothing is written."""
    before = service.config_path.read_bytes()
    out = io.StringIO()
    code = await run_setup(service, "someone@gmail.com", password_command="true", yes=True, out=out)
    said = out.getvalue()
    assert code == 1
    assert "found   provider table (gmail.com)" in said
    last = said.strip().splitlines()[-1]
    assert last.startswith("kittiwake: None of the servers for someone@gmail.com could be reached")
    assert "Check the network connection" in last
    assert service.config_path.read_bytes() == before
