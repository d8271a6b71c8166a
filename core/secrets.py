"""Passwords and tokens: fetched on demand, never printed, never cached on disk."""

from __future__ import annotations

import os
import shlex
import subprocess

from kittiwake.core.config import ServerConfig
from kittiwake.core.errors import SecretError
from kittiwake.core.logsetup import register_secret


class Secret:
    """A string that will not show itself in reprs, f-strings, logs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        register_secret(value)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def run_secret_command(command: str | list[str], at: str, timeout: float = 60.0) -> Secret:
    """Run ``command`` without a shell and take the first line of its output."""
    argv = shlex.split(command) if isinstance(command, str) else list(command)
    if not argv:
        raise SecretError(f"{at}: the command is empty")
    try:
        proc = subprocess.run(
            argv, capture_output=True, timeout=timeout, check=False, stdin=subprocess.DEVNULL
        )
    except FileNotFoundError:
        raise SecretError(f"{at}: command not found: {argv[0]}") from None
    except subprocess.TimeoutExpired:
        raise SecretError(f"{at}: {argv[0]} did not finish within {timeout:.0f} s") from None
    except OSError as exc:
        raise SecretError(f"{at}: cannot run {argv[0]}: {exc.strerror}") from None
    if proc.returncode != 0:
        detail = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        reason = f": {detail[0][:200]}" if detail else ""
        raise SecretError(f"{at}: {argv[0]} failed with exit status {proc.returncode}{reason}")
    lines = proc.stdout.decode("utf-8", "replace").splitlines()
    if not lines or not lines[0]:
        raise SecretError(f"{at}: {argv[0]} printed nothing")
    return Secret(lines[0])


def password_for(server: ServerConfig, at: str) -> Secret:
    """The password for ``server`` (``at`` names its config section, e.g. accounts.work.imap)."""
    if server.password_command is not None:
        return run_secret_command(server.password_command, f"{at}.password_command")
    if server.password_env is not None:
        value = os.environ.get(server.password_env)
        if not value:
            raise SecretError(
                f"{at}.password_env: the environment variable {server.password_env} is not set"
            )
        return Secret(value)
    if server.password is not None:
        return Secret(server.password)
    raise SecretError(
        f"{at}: no password: set password_command, password_env or oauth2_token_command"
    )


def oauth2_token_for(server: ServerConfig, at: str) -> Secret | None:
    if server.oauth2_token_command is None:
        return None
    return run_secret_command(server.oauth2_token_command, f"{at}.oauth2_token_command")
