"""``kittiwake setup --email ADDRESS``: the setup flow without the screen, for people who
provision machines (and for anyone who prefers a prompt). Prints what it found, where each
setting came from, and every check; writes the same block the setup screen writes."""

from __future__ import annotations

import getpass
import sys
from collections.abc import Callable
from typing import Literal, TextIO

from kittiwake.cli.login import browser_prompt
from kittiwake.core.errors import ConfigError, KittiwakeError
from kittiwake.core.sanitize import clean_line
from kittiwake.core.secrets import run_secret_command
from kittiwake.core.setup.autoconfig import SECURITY_LABELS
from kittiwake.core.setup.confirm import Candidate
from kittiwake.core.setup.discover import Finding
from kittiwake.core.setup.flow import IMAP_OR_POP3, Proposal, Receive
from kittiwake.core.setup.service import SetupService


async def run_setup(
    service: SetupService,
    email: str,
    *,
    name: str = "",
    receive: Receive | None = None,
    password_command: str | None = None,
    password_stdin: bool = False,
    yes: bool = False,
    send_test: bool = False,
    oauth2_client_id: str | None = None,
    oauth2_client_secret: str | None = None,
    out: TextIO = sys.stdout,
) -> int:
    """0 when the account was written, 1 when something did not work (said in one line)."""

    def say(line: str = "") -> None:
        print(line, file=out, flush=True)

    def found(finding: Finding) -> None:
        if finding.settings:
            servers = ", ".join(
                f"{s.protocol} {s.host}:{s.port} {SECURITY_LABELS[s.security]}"
                for s in finding.settings[:6]
            )
            source = clean_line(finding.source)
            say(f"  found   {source} ({finding.seconds:.1f} s): {clean_line(servers)}")
        else:
            say(f"  nothing {clean_line(finding.source)}: {clean_line(finding.error or '')}")

    def probed(candidate: Candidate) -> None:
        s = candidate.setting
        verdict = "ok  " if candidate.ok else "fail"
        detail = "" if candidate.ok else f": {clean_line(candidate.result.detail)}"
        say(f"  {verdict}    {s.protocol} {s.host}:{s.port} {SECURITY_LABELS[s.security]}{detail}")

    if "@" not in email.strip("@"):
        raise ConfigError(f"{email!r} is not an email address")
    say(f"Looking up the settings for {email} …")
    proposal = await service.find(email, found, probed)
    choices = proposal.receive_choices
    if receive is not None and receive not in choices:
        say(f"kittiwake: no working {receive.upper()} server was found for {email}")
        return 1
    missing = proposal.missing()
    if missing is not None:
        say(f"kittiwake: {missing}")
        return 1
    chosen: Receive = receive or choices[0]
    if receive is None and len(choices) == 2:
        say()
        say(IMAP_OR_POP3)
    say()
    shown: tuple[Receive | Literal["smtp"], ...] = (chosen, "smtp")
    for protocol in shown:
        c = proposal.best(protocol)
        assert c is not None
        s = c.setting
        say(
            f"{protocol.upper():<5} {s.host}:{s.port} {SECURITY_LABELS[s.security]}, "
            f"user {s.login_for(email)}  (from {clean_line(c.sources)})"
        )
    rule = proposal.sign_in
    if rule is not None:
        say()
        say(rule.advice)
    if oauth2_client_id is not None:
        return await _setup_oauth2(
            service, proposal, chosen, name, oauth2_client_id, oauth2_client_secret, yes, say
        )
    if password_command is not None:
        password = run_secret_command(password_command, "--password-command").reveal()
    elif password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = getpass.getpass(f"Password for {email}: ")
    else:
        say("kittiwake: no password: use --password-command CMD or --password-stdin")
        return 1
    say()
    say("Signing in (nothing is sent) …")
    results = await service.test_login(proposal, chosen, name, password)
    for result in results:
        say(f"  {'ok  ' if result.ok else 'fail'}    {clean_line(result.detail)}")
        if result.hint:
            say(f"          {clean_line(result.hint)}")
    if not all(r.ok for r in results):
        say("kittiwake: sign-in did not work; nothing was written")
        return 1
    if not yes:
        if not sys.stdin.isatty():
            say(f"kittiwake: add --yes to write the account to {service.config_path}")
            return 1
        answer = input(f"Write this account to {service.config_path}? [Y/n] ").strip().lower()
        if answer not in ("", "y", "yes"):
            say("Nothing was written.")
            return 1
    if password_command is not None:
        said = service.save_with_command(proposal, chosen, name, password_command)
    else:
        said = await service.save(proposal, chosen, name, password)
    say(said)
    if send_test:
        say("Sending a test message to yourself …")
        trip = await service.send_test(proposal.email)
        say(f"  {'ok  ' if trip.ok else 'fail'}    {clean_line(trip.detail)}")
        return 0 if trip.ok else 1
    return 0


async def _setup_oauth2(
    service: SetupService,
    proposal: Proposal,
    chosen: Receive,
    name: str,
    client_id: str,
    client_secret: str | None,
    yes: bool,
    say: Callable[..., None],
) -> int:
    """The OAuth2 path: sign in in a browser (over SSH too), log in with the token, save."""
    say()
    say("Signing in with OAuth2 (nothing is sent) …")
    try:
        block, results = await service.sign_in_oauth2(
            proposal, chosen, name, client_id, client_secret, browser_prompt(say, sys.stdin)
        )
    except KittiwakeError as exc:
        say(f"kittiwake: {exc.message}; nothing was written")
        return 1
    for result in results:
        say(f"  {'ok  ' if result.ok else 'fail'}    {clean_line(result.detail)}")
        if result.hint:
            say(f"          {clean_line(result.hint)}")
    if not all(r.ok for r in results):
        say("kittiwake: sign-in did not work; nothing was written")
        return 1
    if not yes:
        say(f"kittiwake: add --yes to write the account to {service.config_path}")
        return 1
    say(service.save_oauth2(proposal, block))
    return 0
