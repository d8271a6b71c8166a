"""OAuth2 sign-in built in, against a real authorization server (Authlib, on loopback) and a
Dovecot whose oauth2 passdb checks every token with it; Postfix logs in through that Dovecot.
Sign-in by the browser's redirect to the loopback listener, by the address pasted back, by a
device code; tokens refreshed ahead of expiry; a revoked sign-in asks for a new one, once."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import Dovecot, Postfix, TestCA, User
from harness.oauth import CLIENT_ID, OAuthServer, browser_sign_in

from kittiwake.core.config import Account, config_from_dict
from kittiwake.core.errors import SignInRequired
from kittiwake.core.logsetup import setup_logging
from kittiwake.core.oauth2.endpoint import DeviceStart
from kittiwake.core.oauth2.flow import (
    BrowserPrompt,
    LoopbackReceiver,
    sign_in_with_browser,
    sign_in_with_device,
)
from kittiwake.core.oauth2.tokens import TokenSource, reference_path
from kittiwake.core.setup.login import check_login


class Servers:
    def __init__(self, auth: OAuthServer, imap: Dovecot, smtp: Postfix, user: User) -> None:
        self.auth, self.imap, self.smtp, self.user = auth, imap, smtp, user


@pytest.fixture
def servers(
    tmp_path: Path,
    tls_ca: TestCA,
    dovecot_factory: Callable[..., Dovecot],
    postfix_factory: Callable[..., Postfix],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Servers]:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("PASSWORD_STORE_DIR", str(tmp_path / "no-pass"))
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    with OAuthServer(tls_ca, tmp_path, {}) as auth:
        imap = dovecot_factory(oauth2_introspection=auth.introspection_url)
        user = imap.add_user("oauth")
        auth.users[user.login] = user.password
        yield Servers(auth, imap, postfix_factory(dovecot=imap), user)


def account(s: Servers) -> Account:
    def server(port: int, security: str) -> dict[str, Any]:
        return {
            "host": s.imap.host,
            "port": port,
            "security": security,
            "user": s.user.login,
            "auth": "oauth2",
            "ca_file": str(s.imap.ca_file),
            "timeout": 15,
        }

    data = {
        "email": s.user.login,
        "imap": server(s.imap.ports.imaps, "tls"),
        "smtp": server(s.smtp.ports.submission, "starttls"),
        "oauth2": {
            "client_id": CLIENT_ID,
            "authorize_url": s.auth.authorize_url,
            "token_url": s.auth.token_url,
            "device_url": s.auth.device_url,
            "scopes": ["mail", "offline_access"],
            "ca_file": str(s.imap.ca_file),
        },
    }
    return config_from_dict({"accounts": {"me": data}}).accounts["me"]


def in_browser(s: Servers, *, follow: bool = True) -> Callable[..., Any]:
    """``show`` for the sign-in: a person signs in in a browser (in a thread: the browser is
    another program); without ``follow`` they paste the address the browser ended on."""

    async def show(prompt: BrowserPrompt, receiver: LoopbackReceiver) -> None:
        assert prompt.ssh_hint == f"ssh -L {prompt.port}:127.0.0.1:{prompt.port} THIS-MACHINE"
        landed: list[str] = []
        thread = threading.Thread(
            target=lambda: landed.append(
                browser_sign_in(s.auth, prompt.url, s.user.login, s.user.password, follow=follow)
            )
        )
        thread.start()
        await asyncio.to_thread(thread.join)
        if not follow:
            assert receiver.paste("not an address") is False
            assert receiver.paste(landed[0]) is True

    return show


async def test_sign_in_by_browser_then_imap_and_smtp_log_in_with_the_token(
    servers: Servers,
) -> None:
    me = account(servers)
    source = TokenSource(me)
    tokens = await sign_in_with_browser(me.oauth2, source.endpoints, in_browser(servers))  # type: ignore[arg-type]
    where = await source.signed_in(tokens)
    assert where == "in a file only you can read"
    assert tokens.refresh_token is not None
    assert tokens.refresh_token not in reference_path("me").read_text()
    from kittiwake.core.oauth2 import tokens as module

    module._sources["me"] = source
    assert (await check_login(me, "imap")).ok
    assert (await check_login(me, "smtp")).ok


async def test_sign_in_by_pasting_the_address_the_browser_ended_on(servers: Servers) -> None:
    me = account(servers)
    source = TokenSource(me)
    tokens = await sign_in_with_browser(
        me.oauth2,  # type: ignore[arg-type]
        source.endpoints,
        in_browser(servers, follow=False),
    )
    assert servers.auth.live_tokens(servers.user.login)[0].access_token == tokens.access_token


async def test_sign_in_with_a_code_on_another_device(servers: Servers) -> None:
    me = account(servers)
    source = TokenSource(me)
    shown: list[DeviceStart] = []

    def show(device: DeviceStart) -> None:
        shown.append(device)
        servers.auth.approve_device(device.user_code, servers.user.login)  # the phone

    tokens = await sign_in_with_device(me.oauth2, source.endpoints, show)  # type: ignore[arg-type]
    assert shown and shown[0].verification_uri.endswith("/activate")
    assert tokens.refresh_token


async def test_the_access_token_is_refreshed_ahead_of_expiry_and_a_revoked_sign_in_asks_once(
    servers: Servers, tmp_path: Path
) -> None:
    setup_logging(tmp_path / "kittiwake.log")
    me = account(servers)
    clock = [1_000_000.0]
    source = TokenSource(me, now=lambda: clock[0])
    tokens = await sign_in_with_browser(me.oauth2, source.endpoints, in_browser(servers))  # type: ignore[arg-type]
    await source.signed_in(tokens)
    clock[0] = tokens.expires_at  # the hour has passed
    fresh = await source.access_token()
    assert fresh.reveal() != tokens.access_token  # refreshed, and the server knows it
    assert [t.access_token for t in servers.auth.live_tokens(servers.user.login)][-1] == (
        fresh.reveal()
    )
    assert await source.access_token() == fresh  # not refreshed again while fresh
    servers.auth.revoke_all(servers.user.login)
    source.invalidate()  # a server refused the token
    with pytest.raises(SignInRequired) as refused:
        await source.access_token()
    assert "kittiwake login me" in refused.value.message
    log = (tmp_path / "kittiwake.log").read_text()
    for secret in (tokens.access_token, tokens.refresh_token or "", fresh.reveal()):
        assert secret not in log and secret not in refused.value.message


def config_of(s: Servers) -> Any:
    from kittiwake.core.config import Config

    me = account(s)
    return Config(None, {"me": me})


def wait_for_text(out: Any, needle: str) -> str:
    from harness import wait_for

    return str(wait_for(lambda: needle in out.getvalue() and out.getvalue(), timeout=20))


@pytest.mark.parametrize("follow", [True, False], ids=["redirect", "pasted"])
async def test_kittiwake_login_by_browser_or_pasted_address(servers: Servers, follow: bool) -> None:
    import io
    import os
    import re

    from kittiwake.cli.login import run_login
    from kittiwake.core.oauth2 import tokens as module

    module._sources.clear()
    out = io.StringIO()
    read_end, write_end = os.pipe()
    stdin = os.fdopen(read_end, "r")
    paste = os.fdopen(write_end, "w")

    def person() -> None:
        text = wait_for_text(out, "paste here")
        url = re.search(r"https://\S+/authorize\?\S+", text)
        assert url is not None
        landed = browser_sign_in(
            servers.auth, url.group(), servers.user.login, servers.user.password, follow=follow
        )
        if not follow:
            paste.write("something else\n" + landed + "\n")
            paste.flush()

    thread = threading.Thread(target=person)
    thread.start()
    try:
        code = await run_login(config_of(servers), "me", stdin=stdin, out=out)
    finally:
        await asyncio.to_thread(thread.join)
        paste.close()
    said = out.getvalue()
    assert code == 0, said
    assert (
        "ssh -L " in said and "Signed in. The sign-in is kept in a file only you can read" in said
    )
    assert "ok      logged in to IMAP" in said and "ok      logged in to SMTP" in said
    if not follow:
        assert "That is not the address the browser ended on" in said


async def test_kittiwake_login_with_a_device_code(servers: Servers) -> None:
    import io
    import re

    from kittiwake.cli.login import run_login
    from kittiwake.core.oauth2 import tokens as module

    module._sources.clear()
    out = io.StringIO()

    def phone() -> None:
        text = wait_for_text(out, "waiting")
        code = re.search(r"^  (\S+)$", text, re.M)
        assert code is not None
        servers.auth.approve_device(code.group(1), servers.user.login)

    thread = threading.Thread(target=phone)
    thread.start()
    try:
        code = await run_login(config_of(servers), "me", device=True, out=out)
    finally:
        await asyncio.to_thread(thread.join)
    assert code == 0, out.getvalue()
    assert "/activate and enter the code" in out.getvalue()


async def test_doctor_reports_the_sign_in(servers: Servers) -> None:
    from kittiwake.core.oauth2 import tokens as module
    from kittiwake.core.setup.doctor import diagnose

    module._sources.clear()
    me = account(servers)
    checks = [c async for c in diagnose(me)]
    first = checks[0]
    assert (first.server, first.layer, first.ok) == ("oauth2", "sign-in", False)
    assert "not signed in yet" in first.sentence and first.fix == "kittiwake login me"
    source = module.token_source(me)
    await source.signed_in(
        await sign_in_with_browser(me.oauth2, source.endpoints, in_browser(servers))  # type: ignore[arg-type]
    )
    checks = [c async for c in diagnose(me)]
    assert checks[0].ok and "expires in" in checks[0].sentence
    assert all(c.ok for c in checks), [c.sentence for c in checks if not c.ok]
    assert any(c.layer == "login" and "logged in to SMTP" in c.sentence for c in checks)


async def test_a_connection_lost_after_the_token_expired_comes_back_with_a_fresh_one(
    servers: Servers,
    proxy_factory: Callable[[str, int], Any],
    tmp_path: Path,
) -> None:
    """The access token is short-lived (as Microsoft's and Google's: an hour; here seconds):
    the session keeps working, and a reconnect (the link dropped) refreshes it first, so the
    user notices nothing. Afterwards neither the log nor the cache holds a token."""
    from kittiwake.core.api import MailApi
    from kittiwake.core.engine import Engine
    from kittiwake.core.events import ConnectionChanged, ConnState
    from kittiwake.core.imap.account import Tuning
    from kittiwake.core.oauth2 import tokens as module

    setup_logging(tmp_path / "kittiwake.log")
    module._sources.clear()
    servers.auth.access_lifetime = 5  # shorter than the refresh margin: every connect refreshes
    proxy = proxy_factory(servers.imap.host, servers.imap.ports.imaps)
    me = account(servers)
    assert me.imap is not None
    import msgspec

    me = type(me)(**{**me.__dict__, "imap": msgspec.structs.replace(me.imap, port=proxy.port)})
    source = module.token_source(me)
    first = await sign_in_with_browser(me.oauth2, source.endpoints, in_browser(servers))  # type: ignore[arg-type]
    await source.signed_in(first)
    from kittiwake.core.config import Config

    api = MailApi(
        Engine(
            Config(None, {"me": me}), tmp_path / "cache", Tuning(backoff_min=0.05, backoff_max=0.3)
        )
    )
    api.start()
    try:
        account_ = api.engine.imap["me"]
        await account_.wait_synced(20)
        issued = len(servers.auth.tokens)
        events = api.subscribe()  # from now on
        proxy.kill_connections()  # the link drops

        async def online_again() -> None:
            offline = False
            async for event in events:
                if isinstance(event, ConnectionChanged) and event.account == "me":
                    offline |= event.state is not ConnState.ONLINE
                    assert event.state is not ConnState.AUTH_FAILED, event.reason
                    if offline and event.state is ConnState.ONLINE:
                        return

        await asyncio.wait_for(online_again(), 20)
        assert len(servers.auth.tokens) > issued  # refreshed before logging in again
    finally:
        await api.stop()
    secrets_seen = [t.access_token for t in servers.auth.tokens] + [
        t.refresh_token for t in servers.auth.tokens if t.refresh_token
    ]
    files = [tmp_path / "kittiwake.log", *(tmp_path / "cache").rglob("*")]
    for path in files:
        if path.is_file():
            data = path.read_bytes()
            assert not any(s.encode() in data for s in secrets_seen), path


async def test_kittiwake_setup_signs_in_with_oauth2_where_the_provider_says_so(
    servers: Servers, tmp_path: Path, tls_ca: TestCA, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The provider's autoconfig document names its OAuth2 endpoints and says its servers
    take OAuth2: ``kittiwake setup --oauth2-client-id`` signs in in the browser, logs in to
    IMAP and SMTP with the token and writes an account with no secret in it."""
    import io
    import re

    from harness.dns import DnsServer
    from harness.https import HttpsServer

    from kittiwake.cli.setup import run_setup
    from kittiwake.core.config import load_config
    from kittiwake.core.oauth2 import tokens as module
    from kittiwake.core.secretstore import StoreKind
    from kittiwake.core.setup.discover import Discovery
    from kittiwake.core.setup.dns import Dns
    from kittiwake.core.setup.probe import tls_context
    from kittiwake.core.setup.service import SetupService

    module._sources.clear()
    s = servers
    document = f"""<clientConfig version="1.1"><emailProvider id="example.test">
      <domain>example.test</domain>
      <incomingServer type="imap"><hostname>{s.imap.host}</hostname>
        <port>{s.imap.ports.imaps}</port><socketType>SSL</socketType>
        <username>%EMAILADDRESS%</username><authentication>OAuth2</authentication>
      </incomingServer>
      <outgoingServer type="smtp"><hostname>{s.smtp.host}</hostname>
        <port>{s.smtp.ports.submission}</port><socketType>STARTTLS</socketType>
        <username>%EMAILADDRESS%</username><authentication>OAuth2</authentication>
      </outgoingServer></emailProvider>
      <oAuth2><issuer>auth.example.test</issuer><scope>mail offline_access</scope>
        <authURL>{s.auth.authorize_url}</authURL><tokenURL>{s.auth.token_url}</tokenURL>
      </oAuth2></clientConfig>""".encode()
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    out = io.StringIO()
    with (
        DnsServer(tmp_path) as dns_server,
        HttpsServer(
            tls_ca, tmp_path, ["autoconfig.example.test"], {"/mail/config-v1.1.xml": document}
        ) as web,
    ):
        service = SetupService(
            tmp_path / "config.toml",
            Discovery(
                dns=Dns("127.0.0.1", dns_server.port, timeout=2),
                context=tls_context(tls_ca.ca_file),
                https_port=web.port,
                soft_deadline=3,
                hard_deadline=6,
            ),
            ca_file=tls_ca.ca_file,
            stores=[StoreKind.FILE],
        )

        def person() -> None:
            text = wait_for_text(out, "paste here")
            url = re.search(r"https://\S+/authorize\?\S+", text)
            assert url is not None
            browser_sign_in(s.auth, url.group(), s.user.login, s.user.password)

        thread = threading.Thread(target=person)
        thread.start()
        try:
            code = await run_setup(
                service,
                s.user.login,
                receive="imap",
                oauth2_client_id=CLIENT_ID,
                yes=True,
                out=out,
            )
        finally:
            await asyncio.to_thread(thread.join)
    said = out.getvalue()
    assert code == 0, said
    assert "ok      logged in to IMAP" in said and "ok      logged in to SMTP" in said
    assert "it signs in with OAuth2" in said
    text = service.config_path.read_text()
    assert 'auth = "oauth2"' in text and "client_id" in text
    assert not any(t.access_token in text for t in s.auth.tokens)
    config = load_config(service.config_path)
    saved = next(iter(config.accounts.values()))
    assert saved.oauth2 is not None and saved.oauth2.token_url == s.auth.token_url
    module._sources.clear()  # as after a restart: the stored sign-in is found again
    assert (await check_login(saved, "imap")).ok


def test_kittiwake_login_as_a_process_over_ssh_then_doctor_is_happy(
    servers: Servers, tmp_path: Path
) -> None:
    """The user is on another machine: no browser here, so they paste the address their
    browser ended on into the running command; then ``kittiwake doctor`` passes."""
    import os
    import re
    import subprocess
    import sys

    s = servers
    config = tmp_path / "config.toml"
    config.write_text(
        f'[accounts.me]\nemail = "{s.user.login}"\n'
        f'[accounts.me.imap]\nhost = "{s.imap.host}"\nport = {s.imap.ports.imaps}\n'
        f'user = "{s.user.login}"\nauth = "oauth2"\nca_file = "{s.imap.ca_file}"\n'
        f'[accounts.me.smtp]\nhost = "{s.smtp.host}"\nport = {s.smtp.ports.submission}\n'
        f'security = "starttls"\nuser = "{s.user.login}"\nauth = "oauth2"\n'
        f'ca_file = "{s.imap.ca_file}"\ntimeout = 15\n'
        f'[accounts.me.oauth2]\nclient_id = "{CLIENT_ID}"\n'
        f'authorize_url = "{s.auth.authorize_url}"\ntoken_url = "{s.auth.token_url}"\n'
        f'scopes = ["mail", "offline_access"]\nca_file = "{s.imap.ca_file}"\n'
    )
    config.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "KITTIWAKE"))}
    env.update(
        HOME=str(tmp_path),
        XDG_DATA_HOME=str(tmp_path / "data"),
        XDG_STATE_HOME=str(tmp_path / "state"),
        SSH_CONNECTION="192.0.2.1 5000 192.0.2.2 22",  # no browser to open here
    )
    command = [sys.executable, "-m", "kittiwake.cli.main", "--config", str(config)]
    login = subprocess.Popen(
        [*command, "login", "me"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert login.stdout is not None and login.stdin is not None
    seen = ""
    while "paste here" not in seen:
        line = login.stdout.readline()
        assert line, f"the command ended early: {seen}{login.stderr.read() if login.stderr else ''}"
        seen += line
    url = re.search(r"https://\S+/authorize\?\S+", seen)
    assert url is not None and "ssh -L " in seen
    landed = browser_sign_in(s.auth, url.group(), s.user.login, s.user.password, follow=False)
    out, err = login.communicate(landed + "\n", timeout=60)
    assert login.returncode == 0, seen + out + err
    assert "Signed in." in out and "ok      logged in to IMAP" in out
    doctor = subprocess.run(
        [*command, "doctor"], capture_output=True, text=True, env=env, timeout=120
    )
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert "oauth2  ok    sign-in" in doctor.stdout
    log = (tmp_path / "state" / "kittiwake" / "kittiwake.log").read_text()
    assert not any(t.access_token in log for t in s.auth.tokens)


async def test_pop3_logs_in_and_smtp_sends_with_the_token(servers: Servers) -> None:
    """POP3 takes the token too (Dovecot offers OAUTHBEARER/XOAUTH2 there), and a message
    sent with the token's SMTP login arrives."""
    import uuid

    from harness import wait_for_messages

    from kittiwake.core.oauth2 import tokens as module
    from kittiwake.core.smtp.client import SmtpSession

    module._sources.clear()
    s = servers
    me = account(s)
    source = module.token_source(me)
    await source.signed_in(
        await sign_in_with_browser(me.oauth2, source.endpoints, in_browser(s))  # type: ignore[arg-type]
    )
    pop = config_from_dict(
        {
            "accounts": {
                "me": {
                    "email": s.user.login,
                    "pop3": {
                        "host": s.imap.host,
                        "port": s.imap.ports.pop3s,
                        "user": s.user.login,
                        "auth": "oauth2",
                        "ca_file": str(s.imap.ca_file),
                        "timeout": 15,
                    },
                    "oauth2": dict(
                        client_id=CLIENT_ID,
                        authorize_url=s.auth.authorize_url,
                        token_url=s.auth.token_url,
                        scopes=["mail", "offline_access"],
                        ca_file=str(s.imap.ca_file),
                    ),
                }
            }
        }
    ).accounts["me"]
    result = await check_login(pop, "pop3")
    assert result.ok, result.detail
    token = uuid.uuid4().hex
    raw = f"From: {s.user.login}\r\nTo: {s.user.login}\r\nSubject: {token}\r\n\r\nhi\r\n".encode()
    async with SmtpSession(me) as smtp:
        await smtp.submit(s.user.login, [s.user.login], raw)
    arrived = wait_for_messages(s.imap, s.user, 1, timeout=30)
    assert any(token.encode() in m for m in arrived)
