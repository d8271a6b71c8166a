"""Setup's and doctor's login check, with the connection code the app uses, against the real
Dovecot and Postfix: success, and refusals explained in one sentence."""

from __future__ import annotations

from typing import Any

from harness import Dovecot, Postfix, User

from kittiwake.core.config import Account, config_from_dict
from kittiwake.core.setup.known import provider_hint, rule_for
from kittiwake.core.setup.login import check_login


def account(dovecot: Dovecot, postfix: Postfix, user: User, password: str, **over: Any) -> Account:
    def server(port: int, security: str) -> dict[str, Any]:
        return {
            "host": dovecot.host,
            "port": port,
            "security": security,
            "user": user.login,
            "password": password,
            "ca_file": str(dovecot.ca_file),
            "timeout": 15,  # Dovecot and Postfix delay a refused login by a few seconds
        }

    data = {
        "email": user.email,
        "imap": server(dovecot.ports.imaps, "tls"),
        "smtp": server(postfix.ports.submission, "starttls"),
        **over,
    }
    return config_from_dict({"accounts": {"me": data}}).accounts["me"]


async def test_imap_pop3_and_smtp_logins_succeed_and_send_nothing(
    dovecot: Dovecot, postfix: Postfix, user: User
) -> None:
    good = account(dovecot, postfix, user, user.password)
    imap = await check_login(good, "imap")
    assert imap.ok, imap.detail
    assert (
        imap.detail == f"logged in to IMAP at {dovecot.host}:{dovecot.ports.imaps} as {user.login}"
    )
    smtp = await check_login(good, "smtp")
    assert smtp.ok and "nothing sent" in smtp.detail
    pop = account(
        dovecot,
        postfix,
        user,
        user.password,
        imap=None,
        pop3={
            "host": dovecot.host,
            "port": dovecot.ports.pop3,
            "security": "starttls",
            "user": user.login,
            "password": user.password,
            "ca_file": str(dovecot.ca_file),
            "timeout": 5,
        },
    )
    result = await check_login(pop, "pop3")
    assert result.ok, result.detail


async def test_a_wrong_password_is_a_refusal_with_advice(
    dovecot: Dovecot, postfix: Postfix, user: User
) -> None:
    bad = account(dovecot, postfix, user, "not-the-password")
    imap = await check_login(bad, "imap")
    assert not imap.ok and imap.auth_refused
    assert "not-the-password" not in imap.detail + imap.hint
    assert "app password" in imap.hint
    smtp = await check_login(bad, "smtp")
    assert not smtp.ok and smtp.auth_refused and "refused the login" in smtp.detail


def test_provider_refusals_are_explained() -> None:
    assert "apppasswords" in provider_hint("a@gmail.com", "NO [AUTHENTICATIONFAILED] Invalid")
    assert "OAuth2" in provider_hint(
        "a@contoso.example",
        "535 5.7.139 Authentication unsuccessful, basic authentication is disabled.",
    )
    assert "administrator" in provider_hint(
        "a@x.example", "535 5.7.139 SmtpClientAuthentication is disabled for the Tenant"
    )
    assert provider_hint("a@unknown.example", "NO LOGIN failed.") == ""
    rule = rule_for("someone@iCloud.com")
    assert rule is not None and "app-specific password" in rule.advice
