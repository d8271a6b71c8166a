"""What Kittiwake knows of the big providers' sign-in rules, in its own words: who refuses
normal passwords from mail programs, where their app-password page is, and what their
refusals mean. Used before the user types a password and after a refusal."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SignInRule:
    name: str
    domains: tuple[str, ...]
    advice: str
    """One sentence shown before the password is asked for, and after a refusal."""
    oauth2: bool = False
    """The provider prefers (or requires) OAuth2 sign-in."""


RULES: tuple[SignInRule, ...] = (
    SignInRule(
        "Google",
        ("gmail.com", "googlemail.com", "google.com"),
        "Google does not accept your normal password from mail programs: create an app "
        "password at https://myaccount.google.com/apppasswords (it needs 2-Step "
        "Verification) and use that, or sign in with OAuth2.",
        oauth2=True,
    ),
    SignInRule(
        "Microsoft",
        ("outlook.com", "hotmail.com", "live.com", "msn.com", "office365.com", "outlook.de"),
        "Microsoft has switched off passwords for IMAP, POP3 and SMTP on its mail service: "
        "sign in with OAuth2.",
        oauth2=True,
    ),
    SignInRule(
        "iCloud",
        ("icloud.com", "me.com", "mac.com"),
        "iCloud Mail needs an app-specific password: create one at https://account.apple.com "
        "(Sign-In and Security, App-Specific Passwords).",
    ),
    SignInRule(
        "Yahoo",
        ("yahoo.com", "ymail.com", "rocketmail.com", "yahoo.co.uk", "yahoo.de", "yahoo.fr"),
        "Yahoo Mail needs an app password: create one at https://login.yahoo.com/account/security.",
    ),
    SignInRule(
        "AOL",
        ("aol.com", "aim.com"),
        "AOL Mail needs an app password: create one at https://login.aol.com/account/security.",
    ),
    SignInRule(
        "Fastmail",
        ("fastmail.com", "fastmail.fm", "messagingengine.com"),
        "Fastmail needs an app password for mail programs: create one under Settings, "
        "Privacy & Security, App passwords.",
    ),
    SignInRule(
        "GMX and WEB.DE",
        ("gmx.net", "gmx.de", "gmx.at", "gmx.ch", "gmx.com", "web.de"),
        "GMX and WEB.DE allow mail programs only once POP3/IMAP access is switched on in the "
        "web mail settings (E-Mail, POP3/IMAP).",
    ),
)

# Refusal texts that say more than "wrong password" (seen in users' reports), in order.
_SERVER_TEXTS: tuple[tuple[str, str], ...] = (
    (
        "smtpclientauthentication is disabled",
        "your organisation has switched SMTP AUTH off: an administrator of the Microsoft 365 "
        "tenant must allow it for your mailbox (OAuth2 does not change this).",
    ),
    (
        "basic authentication is disabled",
        "the provider has switched off passwords for mail programs: sign in with OAuth2.",
    ),
    ("5.7.139", "the provider has switched off passwords for mail programs: sign in with OAuth2."),
    (
        "application-specific password required",
        "the provider wants an app password here, not your normal password.",
    ),
    ("webalert", "the provider wants you to sign in once in a web browser first."),
    (
        "log in via your web browser",
        "the provider wants you to sign in once in a web browser first.",
    ),
)


def rule_for(email_or_domain: str) -> SignInRule | None:
    domain = email_or_domain.rpartition("@")[2].strip().rstrip(".").lower()
    for rule in RULES:
        if domain in rule.domains:
            return rule
    return None


def provider_hint(email: str, refusal: str) -> str:
    """What to do about a refused login: the server's words interpreted first, then the
    provider's known rule; empty when nothing specific is known."""
    text = refusal.lower()
    for needle, meaning in _SERVER_TEXTS:
        if needle in text:
            return meaning[:1].upper() + meaning[1:]
    rule = rule_for(email)
    return rule.advice if rule is not None else ""
