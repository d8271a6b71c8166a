"""Suite-wide fixtures: private Dovecot/Postfix instances and fresh users on them.

The servers start lazily, the first time a test asks for them, so unit and TUI tests pay nothing.
A server that cannot start fails the test with its log tail: these fixtures never skip.
Tests that use them are marked ``servers`` automatically (``-m "not servers"`` deselects them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from harness import Dovecot, Postfix, ServerRoot, TcpProxy, TestCA, User, make_test_ca
from harness.courier import Courier
from harness.cyrus import Cyrus
from harness.exchange import ExchangeProfile
from harness.gmail import GmailProfile

_SERVER_FIXTURES = frozenset(
    {
        "dovecot",
        "postfix",
        "user",
        "user2",
        "dovecot_factory",
        "postfix_factory",
        "cyrus",
        "courier",
        "exchange",
        "gmail",
    }
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.servers)


@pytest.fixture(scope="session")
def server_root() -> Iterator[ServerRoot]:
    """The session's directory for server state (see harness.workdir for why not tmp_path)."""
    root = ServerRoot()
    yield root
    root.cleanup()


@pytest.fixture(scope="session")
def tls_ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    """The throwaway CA (``tls_ca.ca_file`` goes into client configs) and the server cert/key."""
    directory: Path = tmp_path_factory.mktemp("tls")
    return make_test_ca(directory)


@pytest.fixture(scope="session")
def dovecot(server_root: ServerRoot, tls_ca: TestCA) -> Iterator[Dovecot]:
    """The shared Dovecot. Use fresh users (``user``/``user2``/``dovecot.add_user``), and never
    stop it: fault tests get their own instance from ``dovecot_factory``."""
    server = Dovecot(server_root.instance_dir("dovecot"), tls_ca)
    server.start()
    yield server
    server.close()


@pytest.fixture(scope="session")
def cyrus(server_root: ServerRoot, tls_ca: TestCA) -> Iterator[Cyrus]:
    """A shared Cyrus IMAP (harness.cyrus), started on first use; use fresh users."""
    server = Cyrus(server_root.instance_dir("cyrus"), tls_ca)
    server.start()
    yield server
    server.close()


@pytest.fixture(scope="session")
def courier(server_root: ServerRoot, tls_ca: TestCA) -> Iterator[Courier]:
    """A shared Courier-IMAP (harness.courier), started on first use; use fresh users."""
    server = Courier(server_root.instance_dir("courier"), tls_ca)
    server.start()
    yield server
    server.close()


@pytest.fixture(scope="session")
def exchange(dovecot: Dovecot) -> Iterator[ExchangeProfile]:
    """The Exchange profile (harness.exchange) in front of the shared Dovecot; use fresh users.
    Its IDLE cut is Exchange's 30 minutes: tests of the cut make their own profile."""
    profile = ExchangeProfile(dovecot).start()
    yield profile
    profile.stop()


@pytest.fixture
def gmail(tls_ca: TestCA) -> Iterator[GmailProfile]:
    """A Gmail profile (harness.gmail) of its own for this test: one account per instance."""
    profile = GmailProfile(tls_ca)
    profile.start()
    yield profile
    profile.stop()


@pytest.fixture(scope="session")
def postfix(server_root: ServerRoot, tls_ca: TestCA, dovecot: Dovecot) -> Iterator[Postfix]:
    """The shared Postfix, delivering to the shared Dovecot."""
    server = Postfix(server_root.instance_dir("postfix"), tls_ca, dovecot)
    server.start()
    yield server
    server.close()


@pytest.fixture
def user(dovecot: Dovecot) -> User:
    """A brand-new account on the shared Dovecot: an empty mailbox nobody else touches."""
    return dovecot.add_user("alice")


@pytest.fixture
def user2(dovecot: Dovecot) -> User:
    """A second brand-new account on the shared Dovecot."""
    return dovecot.add_user("bob")


@pytest.fixture
def dovecot_factory(server_root: ServerRoot, tls_ca: TestCA) -> Iterator[Callable[..., Dovecot]]:
    """Start a private Dovecot for this test: ``dovecot_factory(tls=False, extra_conf=...)``.

    The instance is started before it is returned and destroyed after the test.
    """
    started: list[Dovecot] = []

    def make(
        *,
        tls: bool = True,
        extra_conf: str = "",
        certificate: tuple[Path, Path] | None = None,
        oauth2_introspection: str | None = None,
    ) -> Dovecot:
        server = Dovecot(
            server_root.instance_dir("dovecot"),
            tls_ca,
            tls=tls,
            extra_conf=extra_conf,
            certificate=certificate,
            oauth2_introspection=oauth2_introspection,
        )
        started.append(server)
        server.start()
        return server

    yield make
    for server in reversed(started):
        server.close()


@pytest.fixture
def postfix_factory(
    server_root: ServerRoot, tls_ca: TestCA, dovecot: Dovecot
) -> Iterator[Callable[..., Postfix]]:
    """Start a private Postfix for this test: ``postfix_factory(dovecot=other, extra_main_cf=...)``.

    Delivers to the shared Dovecot unless given another one. Destroyed after the test.
    """
    started: list[Postfix] = []

    def make(*, dovecot: Dovecot = dovecot, extra_main_cf: str = "") -> Postfix:
        server = Postfix(
            server_root.instance_dir("postfix"), tls_ca, dovecot, extra_main_cf=extra_main_cf
        )
        started.append(server)
        server.start()
        return server

    yield make
    for server in reversed(started):
        server.close()


@pytest.fixture
def proxy_factory() -> Iterator[Callable[[str, int], TcpProxy]]:
    """Start a recording proxy in front of ``(host, port)``; closed after the test.

    ``proxy = proxy_factory(dovecot.host, dovecot.ports.imap)``; point the client at
    ``proxy.host:proxy.port``.
    """
    started: list[TcpProxy] = []

    def make(host: str, port: int) -> TcpProxy:
        proxy = TcpProxy(host, port).start()
        started.append(proxy)
        return proxy

    yield make
    for proxy in started:
        proxy.close()


def pytest_report_header() -> str:
    """Which copy of Kittiwake the suite imports (scripts/test installs the wheel, never -e)."""
    import kittiwake.core

    return f"kittiwake under test: {Path(kittiwake.core.__file__).parent.parent}"
