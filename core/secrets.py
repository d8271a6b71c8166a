"""Passwords and tokens: fetched on demand, never printed, never cached on disk."""

from __future__ import annotations

import os
import shlex
import stat
import subprocess

from kittiwake.core.config import KeyringEntry, ServerConfig
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
    if server.password_file is not None:
        return read_password_file(server.password_file, f"{at}.password_file")
    if server.password_keyring is not None:
        return read_keyring(server.password_keyring, f"{at}.password_keyring")
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
        f"{at}: no password: set password_command, password_file, password_keyring, "
        "password_env or oauth2_token_command"
    )


_MAX_PASSWORD_FILE = 64 * 1024


def read_password_file(path: str, at: str) -> Secret:
    """The first line of ``path``, which must be readable by its owner only.

    The mode is checked on the open file (no window between checking and reading), and a
    symbolic link is followed as ``cat`` would: it is the target's mode that counts.
    """
    name = os.path.expanduser(path)
    try:
        fd = os.open(name, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise SecretError(f"{at}: {name} does not exist") from None
    except OSError as exc:
        raise SecretError(f"{at}: {name} cannot be read ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise SecretError(f"{at}: {name} is not a regular file")
        if info.st_mode & (stat.S_IRGRP | stat.S_IROTH | stat.S_IWGRP | stat.S_IWOTH):
            raise SecretError(
                f"{at}: {name} can be read or changed by other users, so it is not used; "
                f"run chmod 600 {name}"
            )
        data = f.read(_MAX_PASSWORD_FILE)
    lines = data.decode("utf-8", "replace").splitlines()
    if not lines or not lines[0]:
        raise SecretError(f"{at}: {name} is empty")
    return Secret(lines[0])


def read_keyring(entry: KeyringEntry, at: str) -> Secret:
    """The password the system keyring holds for ``entry``, read in this process (the
    ``keyring`` library is imported only here: it costs ~50 ms)."""
    try:
        import keyring
        import keyring.errors
    except ImportError:
        raise SecretError(
            f"{at}: the keyring library is not installed (pip install keyring)"
        ) from None
    try:
        value = keyring.get_password(entry.service, entry.user)
    except keyring.errors.NoKeyringError:
        raise SecretError(f"{at}: no system keyring works on this machine") from None
    except keyring.errors.KeyringError as exc:
        raise SecretError(f"{at}: the system keyring failed: {str(exc)[:200]}") from None
    first = (value or "").splitlines()[:1]
    if not first or not first[0]:
        raise SecretError(
            f"{at}: the system keyring has no password for user {entry.user!r} "
            f"of service {entry.service!r}"
        )
    return Secret(first[0])


def oauth2_token_for(server: ServerConfig, at: str) -> Secret | None:
    if server.oauth2_token_command is None:
        return None
    return run_secret_command(server.oauth2_token_command, f"{at}.oauth2_token_command")
