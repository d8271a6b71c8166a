"""Passwords and tokens: fetched on demand, never printed, never cached on disk."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import stat
import subprocess

from kittiwake.core.config import Account, KeyringEntry, ServerConfig
from kittiwake.core.errors import SecretError
from kittiwake.core.logsetup import register_secret

#: Seconds a password or token command may take (a password manager may ask for a passphrase).
COMMAND_TIMEOUT = 60.0


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
    """Run ``command`` without a shell and take the first line of its output (blocking: for
    threads and scripts; the engine uses ``secret_from_command``)."""
    argv = _argv(command, at)
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
    return _first_line(argv, at, proc.returncode, proc.stdout, proc.stderr)


async def secret_from_command(
    command: str | list[str], at: str, timeout: float = COMMAND_TIMEOUT
) -> Secret:
    """``run_secret_command`` off the event loop: a password manager waiting for its
    passphrase must not freeze the app. The command runs in a session of its own, and is
    killed with everything it started when it times out or the caller is cancelled (the
    user quits: quitting never waits for it)."""
    argv = _argv(command, at)
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
    except FileNotFoundError:
        raise SecretError(f"{at}: command not found: {argv[0]}") from None
    except OSError as exc:
        raise SecretError(f"{at}: cannot run {argv[0]}: {exc.strerror}") from None
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        await _kill(proc)
        raise SecretError(f"{at}: {argv[0]} did not finish within {timeout:.0f} s") from None
    except BaseException:
        await _kill(proc)
        raise
    return _first_line(argv, at, proc.returncode or 0, out, err)


async def _kill(proc: asyncio.subprocess.Process) -> None:
    """Kill the command's whole session (a script's children too) and reap it."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(Exception):
        await asyncio.shield(asyncio.wait_for(proc.wait(), 5))


def _argv(command: str | list[str], at: str) -> list[str]:
    import shlex  # a password command: run when the account connects

    argv = shlex.split(command) if isinstance(command, str) else list(command)
    if not argv:
        raise SecretError(f"{at}: the command is empty")
    return argv


def _first_line(argv: list[str], at: str, status: int, out: bytes, err: bytes) -> Secret:
    if status != 0:
        detail = err.decode("utf-8", "replace").strip().splitlines()
        reason = f": {detail[0][:200]}" if detail else ""
        raise SecretError(f"{at}: {argv[0]} failed with exit status {status}{reason}")
    lines = out.decode("utf-8", "replace").splitlines()
    if not lines or not lines[0]:
        raise SecretError(f"{at}: {argv[0]} printed nothing")
    return Secret(lines[0])


def command_key(server: ServerConfig) -> str | None:
    """The key of the command the credentials come from (what the user may be waiting on)."""
    if server.oauth2_token_command is not None:
        return "oauth2_token_command"
    if server.password_command is not None:
        return "password_command"
    return None


async def credentials(
    server: ServerConfig, at: str, account: Account | None = None
) -> tuple[bool, Secret]:
    """(True, an OAuth2 token) or (False, the password), commands run off the event loop.
    ``auth = "oauth2"`` takes the account's token (refreshed when due; ``SignInRequired``
    when the user must sign in)."""
    if server.auth == "oauth2":
        if account is None or account.oauth2 is None:
            raise SecretError(f'{at}.auth: "oauth2" needs the account\'s [oauth2] section')
        from kittiwake.core.oauth2.tokens import token_source

        return True, await token_source(account).access_token()
    if server.oauth2_token_command is not None:
        token = await secret_from_command(server.oauth2_token_command, f"{at}.oauth2_token_command")
        return True, token
    if server.password_command is not None:
        return False, await secret_from_command(server.password_command, f"{at}.password_command")
    # A keyring may wait for its unlock dialog, a password file sit on a slow disk: a thread.
    return False, await asyncio.to_thread(password_for, server, at)


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
