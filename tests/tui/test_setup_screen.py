"""The setup screen driven as a new user drives it: type the address and name, watch the
findings and checks arrive, choose IMAP, type the password, test, save; then the config loads
and the mailbox opens on it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import Dovecot, Postfix, User
from harness.dns import DnsServer
from harness.ui import synced, until
from textual.widgets import Button

from kittiwake.core.config import load_config
from kittiwake.core.secretstore import StoreKind
from kittiwake.core.setup.discover import Discovery
from kittiwake.core.setup.dns import Dns
from kittiwake.core.setup.probe import tls_context
from kittiwake.core.setup.service import SetupService
from kittiwake.tui.app import KittiwakeApp
from kittiwake.tui.screens.mailbox import MailboxScreen
from kittiwake.tui.screens.setup import SetupScreen
from kittiwake.tui.setup_app import SetupApp
from kittiwake.tui.widgets.message_list import MessageList


@pytest.fixture
def service(
    tmp_path: Path,
    dovecot: Dovecot,
    postfix: Postfix,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[SetupService]:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    with DnsServer(
        tmp_path,
        srv=[
            ("_imaps._tcp.example.test", dovecot.host, dovecot.ports.imaps),
            ("_pop3s._tcp.example.test", dovecot.host, dovecot.ports.pop3s),
            ("_submission._tcp.example.test", postfix.host, postfix.ports.submission),
        ],
    ) as dns_server:
        yield SetupService(
            tmp_path / "config" / "config.toml",
            Discovery(
                dns=Dns("127.0.0.1", dns_server.port, timeout=2),
                context=tls_context(dovecot.ca_file),
                soft_deadline=3,
                hard_deadline=6,
            ),
            ca_file=dovecot.ca_file,
            stores=[StoreKind.FILE],
        )


def shown(app: SetupApp, selector: str) -> str:
    return str(app.screen.query_one(selector).render())


async def test_from_an_address_to_the_mailbox(
    service: SetupService, dovecot: Dovecot, user: User
) -> None:
    from harness import imap_device

    device = imap_device(dovecot, user)
    device.append("INBOX", "", None, b"Subject: Welcome aboard\r\nFrom: a@b.c\r\n\r\nhi\r\n")
    device.logout()
    app = SetupApp(service)
    async with app.run_test(size=(80, 24)) as pilot:
        assert isinstance(app.screen, SetupScreen)
        assert app.screen.query_one("#email").has_focus
        for ch in user.email:
            await pilot.press(ch if ch != "@" else "at")
        await pilot.press("enter")  # on to the name
        await pilot.press(*"Ann", "enter")
        await until(pilot, lambda: "Found working servers" in shown(app, "#status"), timeout=20)
        assert "SRV _imaps._tcp.example.test" in shown(app, "#findings")
        assert "✓  IMAP" in shown(app, "#probes") and "✓  SMTP" in shown(app, "#probes")
        assert "Both IMAP and POP3 work" in shown(app, "#explain")
        screen = app.screen
        assert isinstance(screen, SetupScreen) and screen.receive == "imap"
        assert app.screen.query_one("#password").has_focus  # after the advice, if any
        await pilot.press("w", "r", "o", "n", "g", "enter")
        await until(pilot, lambda: "did not work" in shown(app, "#status"), timeout=30)
        assert "app password" in shown(app, "#logins")
        assert app.screen.query_one("#save").disabled
        password = app.screen.query_one("#password")
        password.value = user.password  # type: ignore[attr-defined]
        app.screen.query_one("#test", Button).press()
        await until(pilot, lambda: "Everything works" in shown(app, "#status"), timeout=30)
        assert "logged in to IMAP" in shown(app, "#logins")
        app.screen.query_one("#roundtrip", Button).press()
        await until(pilot, lambda: "arrived in INBOX" in shown(app, "#status"), timeout=60)
        assert "(IDLE)" in shown(app, "#status")
        assert app.screen.query_one("#save", Button).has_focus
        await pilot.press("enter")
        await until(pilot, lambda: app.return_value is not None, timeout=10)
    assert app.return_value is not None and "Saved account" in app.return_value
    config = load_config(service.config_path)
    assert service.config_path.stat().st_mode & 0o777 == 0o600
    mail = KittiwakeApp(config)
    async with mail.run_test(size=(80, 24)) as pilot:
        await synced(mail, timeout=20)
        assert isinstance(mail.screen, MailboxScreen)
        messages = mail.screen.query_one(MessageList)
        await until(pilot, lambda: len(messages.index) == 2, timeout=10)  # + the test message
