"""``kittiwake login ACCOUNT [--device]``: sign in to an OAuth2 account from the shell.

On a desktop the browser opens by itself. Over SSH the browser runs on the user's own machine:
the command prints the ``ssh -L`` line that carries the browser's redirect back here, and also
reads the address the browser ended on when it is pasted (when no tunnel is possible).
``--device`` shows a code to type on any device instead, where the provider allows it.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import TextIO

from kittiwake.core.config import Account, Config
from kittiwake.core.errors import ConfigError, KittiwakeError
from kittiwake.core.oauth2.endpoint import DeviceStart
from kittiwake.core.oauth2.flow import (
    BrowserPrompt,
    LoopbackReceiver,
    open_browser,
    sign_in_with_browser,
    sign_in_with_device,
)
from kittiwake.core.oauth2.tokens import protocols_of, token_source
from kittiwake.core.sanitize import clean_line
from kittiwake.core.setup.login import check_login


def oauth2_account(config: Config, name: str) -> Account:
    account = config.accounts.get(name)
    if account is None:
        raise ConfigError(
            f"there is no account named {name!r} (accounts: {', '.join(config.accounts)})"
        )
    if account.oauth2 is None or not protocols_of(account):
        raise ConfigError(
            f"accounts.{name}: signs in with a password; kittiwake login is for accounts with "
            f'an [accounts.{name}.oauth2] section and auth = "oauth2"'
        )
    return account


def browser_prompt(
    say: Callable[..., None], stdin: TextIO
) -> Callable[[BrowserPrompt, LoopbackReceiver], Awaitable[None]]:
    """How the command line shows a browser sign-in: the address (a browser opens on a
    desktop), the ssh -L line, and a pasted address read from ``stdin`` meanwhile."""

    async def show(prompt: BrowserPrompt, receiver: LoopbackReceiver) -> None:
        opened = await asyncio.to_thread(open_browser, prompt.url)
        say("Open this address in a browser and sign in:" if not opened else "A browser opened:")
        say()
        say(f"  {prompt.url}")
        say()
        say("On another machine (over SSH), connect this port to it first:")
        say(f"  {prompt.ssh_hint}")
        say("or, after signing in, paste here the address the browser ended on:")
        loop = asyncio.get_running_loop()

        def offer(line: str) -> None:
            if not receiver.paste(line) and line.strip():
                say(
                    "That is not the address the browser ended on (it starts with "
                    f"http://127.0.0.1:{prompt.port}/); paste it again:"
                )

        def read_pasted() -> None:  # a daemon thread: it must never hold up the exit
            for line in stdin:
                loop.call_soon_threadsafe(offer, line)

        threading.Thread(target=read_pasted, name="paste", daemon=True).start()

    return show


async def run_login(
    config: Config,
    name: str,
    *,
    device: bool = False,
    port: int = 0,
    stdin: TextIO = sys.stdin,
    out: TextIO = sys.stdout,
) -> int:
    """0 once signed in and the servers accept the token; 1 with one sentence otherwise."""
    account = oauth2_account(config, name)
    assert account.oauth2 is not None
    source = token_source(account)

    def say(line: str = "") -> None:
        print(line, file=out, flush=True)

    show_browser = browser_prompt(say, stdin)

    def show_device(start: DeviceStart) -> None:
        say(f"On any device, open {start.verification_uri} and enter the code:")
        say()
        say(f"  {start.user_code}")
        say()
        say(f"(the code is valid for {start.expires_in // 60} minutes; waiting …)")

    try:
        if device:
            tokens = await sign_in_with_device(account.oauth2, source.endpoints, show_device)
        else:
            tokens = await sign_in_with_browser(
                account.oauth2, source.endpoints, show_browser, port=port, login_hint=account.email
            )
        where = await source.signed_in(tokens)
    except KittiwakeError as exc:
        say(f"kittiwake: {exc.message}")
        return 1
    say(f"Signed in. The sign-in is kept {where} (never in the config).")
    failed = 0
    for protocol in protocols_of(account):
        result = await check_login(account, protocol)  # type: ignore[arg-type]
        say(f"  {'ok  ' if result.ok else 'fail'}    {clean_line(result.detail)}")
        failed += not result.ok
    return 0 if not failed else 1
