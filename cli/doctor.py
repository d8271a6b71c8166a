"""``kittiwake doctor [ACCOUNT]``: every server checked layer by layer, one line per check."""

from __future__ import annotations

import sys
from typing import TextIO

from kittiwake.core.config import Config
from kittiwake.core.errors import ConfigError
from kittiwake.core.sanitize import clean_line
from kittiwake.core.setup.doctor import Check, diagnose
from kittiwake.core.setup.roundtrip import send_to_self


def format_check(account: str, check: Check) -> str:
    verdict = "FAIL" if not check.ok else ("warn" if check.warning else "ok")
    sentence = clean_line(check.sentence)
    line = f"{account}  {check.server:<4}  {verdict:<4}  {check.layer:<12}  {sentence}"
    if check.fix:
        line += f"\n{'':>{len(account) + 14}}  {'':<12}  fix: {clean_line(check.fix)}"
    return line


async def run_doctor(
    config: Config, only: str | None, out: TextIO = sys.stdout, *, send_test: bool = False
) -> int:
    """0 when every check of every (or the named) account passed, else 1. ``send_test``
    also sends a message to each account's own address and waits for it."""
    if only is not None and only not in config.accounts:
        names = ", ".join(config.accounts) or "none"
        raise ConfigError(f"there is no account named {only!r} (accounts: {names})")
    failed = 0
    for name, account in config.accounts.items():
        if only is not None and name != only:
            continue
        account_failed = 0
        async for check in diagnose(account):
            account_failed += not check.ok
            print(format_check(name, check), file=out, flush=True)
        if send_test and not account_failed and account.smtp is not None:
            trip = await send_to_self(account)
            account_failed += not trip.ok
            check = Check("mail", "round trip", trip.ok, trip.detail)
            print(format_check(name, check), file=out, flush=True)
        failed += account_failed
    print("everything works" if not failed else f"{failed} check(s) failed", file=out)
    return 0 if not failed else 1
