"""Secrets come from a command (no shell), a variable or the file, and never show themselves."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest

from kittiwake.core.config import KeyringEntry, ServerConfig, load_config
from kittiwake.core.errors import ConfigError, SecretError
from kittiwake.core.logsetup import setup_logging
from kittiwake.core.secrets import Secret, credentials, password_for, secret_from_command


def test_password_command_runs_without_a_shell(tmp_path: Path) -> None:
    marker = tmp_path / "touched"
    cmd = [sys.executable, "-c", "print('hunter2-from-cmd'); print('second line')"]
    secret = password_for(ServerConfig(host="h", password_command=cmd), "accounts.a.imap")
    assert secret.reveal() == "hunter2-from-cmd"
    # Shell syntax is passed through literally, never interpreted.
    text = f"{sys.executable} -c \"print('x')\" ; touch {marker}"
    password_for(ServerConfig(host="h", password_command=text), "accounts.a.imap")
    assert not marker.exists()


def test_failing_command_names_the_key() -> None:
    cmd = [sys.executable, "-c", "import sys; sys.stderr.write('no such entry\\n'); sys.exit(3)"]
    with pytest.raises(SecretError) as info:
        password_for(ServerConfig(host="h", password_command=cmd), "accounts.a.imap")
    assert info.value.message.startswith("accounts.a.imap.password_command: ")
    assert "exit status 3" in info.value.message and "no such entry" in info.value.message
    with pytest.raises(SecretError, match="command not found"):
        password_for(ServerConfig(host="h", password_command="/no/such/bin"), "x")


def test_password_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KW_TEST_PW", "from-env-123")
    assert password_for(ServerConfig(host="h", password_env="KW_TEST_PW"), "x").reveal() == (
        "from-env-123"
    )
    monkeypatch.delenv("KW_TEST_PW")
    with pytest.raises(SecretError, match="KW_TEST_PW is not set"):
        password_for(ServerConfig(host="h", password_env="KW_TEST_PW"), "x")


def test_secret_never_shows_itself(tmp_path: Path) -> None:
    secret = Secret("s3cr3t-value-xyz")
    assert "s3cr3t" not in repr(secret) and "s3cr3t" not in f"{secret}"
    log_file = tmp_path / "k.log"
    setup_logging(log_file)
    try:
        logging.getLogger("test").info("LOGIN alice %s", "s3cr3t-value-xyz")
        try:
            raise RuntimeError("auth with s3cr3t-value-xyz failed")
        except RuntimeError:
            logging.getLogger("test").exception("boom")
    finally:
        logging.getLogger().handlers.clear()
    text = log_file.read_text()
    assert "LOGIN alice ********" in text
    assert "boom" in text and "s3cr3t-value-xyz" not in text


# --- password_file and password_keyring -----------------------------------------------------


def _config_with(tmp_path: Path, line: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        '[accounts.work]\nemail = "a@example.org"\n'
        f'[accounts.work.imap]\nhost = "imap.example.org"\n{line}\n'
    )
    path.chmod(0o600)
    return path


def test_password_file_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    secret_file = tmp_path / "pw"
    secret_file.write_text("file-secret-42\nsecond line\n")
    secret_file.chmod(0o600)
    config = load_config(_config_with(tmp_path, 'password_file = "~/pw"'))
    imap = config.accounts["work"].imap
    assert imap is not None and imap.password_file == str(secret_file)  # ~ expanded
    assert password_for(imap, "accounts.work.imap").reveal() == "file-secret-42"


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620])
def test_password_file_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    secret_file = tmp_path / "pw"
    secret_file.write_text("file-secret-42\n")
    secret_file.chmod(mode)
    with pytest.raises(SecretError) as info:
        password_for(ServerConfig(host="h", password_file=str(secret_file)), "accounts.w.imap")
    message = info.value.message
    assert message.startswith(f"accounts.w.imap.password_file: {secret_file} ")
    assert f"chmod 600 {secret_file}" in message and "file-secret-42" not in message
    assert ". " not in message and not message.endswith(".")  # one sentence


def test_password_file_missing_or_empty(tmp_path: Path) -> None:
    with pytest.raises(SecretError, match=r"password_file: .*/nope does not exist"):
        password_for(ServerConfig(host="h", password_file=str(tmp_path / "nope")), "x")
    empty = tmp_path / "empty"
    empty.write_text("")
    empty.chmod(0o600)
    with pytest.raises(SecretError, match="is empty"):
        password_for(ServerConfig(host="h", password_file=str(empty)), "x")


def test_password_file_must_be_absolute_and_alone(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"imap.password_file: 'pw' must be an absolute path"):
        load_config(_config_with(tmp_path, 'password_file = "pw"'))
    with pytest.raises(ConfigError, match="set only one of password_command, password_file"):
        load_config(_config_with(tmp_path, 'password_file = "/pw"\npassword_command = "x"'))


def test_password_keyring_end_to_end(tmp_path: Path, plaintext_keyring: Path) -> None:
    import keyring

    keyring.set_password("kittiwake-test", "work/imap.example.org", "ring-secret-7")
    config = load_config(
        _config_with(
            tmp_path,
            'password_keyring = { service = "kittiwake-test", user = "work/imap.example.org" }',
        )
    )
    imap = config.accounts["work"].imap
    assert imap is not None
    assert password_for(imap, "accounts.work.imap").reveal() == "ring-secret-7"
    missing = msgspec.structs.replace(
        imap, password_keyring=KeyringEntry(service="kittiwake-test", user="nobody")
    )
    with pytest.raises(SecretError, match="has no password for user 'nobody'"):
        password_for(missing, "accounts.work.imap")


def test_password_keyring_without_a_keyring(fail_keyring: None) -> None:
    entry = KeyringEntry(service="kittiwake", user="w/h")
    with pytest.raises(SecretError, match=r"^x.password_keyring: no system keyring works"):
        password_for(ServerConfig(host="h", password_keyring=entry), "x")


def _waiting_command(tmp_path: Path, then: str = "") -> list[str]:
    """A password command that notes its pid, then waits for a file "go" (a password manager
    waiting for its passphrase), then prints ``then``."""
    script = (
        "import os, pathlib, sys, time\n"
        f"d = pathlib.Path({str(tmp_path)!r})\n"
        "(d / 'pid').write_text(str(os.getpid()))\n"
        "while not (d / 'go').exists():\n"
        "    time.sleep(0.02)\n"
        f"print({then!r})\n"
    )
    return [sys.executable, "-c", script]


async def _until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_a_slow_command_leaves_the_event_loop_free(tmp_path: Path) -> None:
    """It ran with subprocess.run on the event loop: the app froze while it waited."""
    server = ServerConfig(host="h", password_command=_waiting_command(tmp_path, "pw-42"))
    task = asyncio.create_task(credentials(server, "accounts.a.imap"))
    ticks = 0
    while not (tmp_path / "pid").exists():  # the loop keeps turning while the command runs
        ticks += 1
        await asyncio.sleep(0.01)
        assert ticks < 1000
    (tmp_path / "go").touch()
    is_token, secret = await asyncio.wait_for(task, 10)
    assert not is_token and secret.reveal() == "pw-42"


async def test_a_cancelled_command_is_killed_at_once(tmp_path: Path) -> None:
    server = ServerConfig(host="h", oauth2_token_command=_waiting_command(tmp_path))
    task = asyncio.create_task(credentials(server, "accounts.a.imap"))
    await _until(lambda: (tmp_path / "pid").exists() and bool((tmp_path / "pid").read_text()))
    pid = int((tmp_path / "pid").read_text())
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)
    assert not _alive(pid)


async def test_a_command_that_takes_too_long_is_killed_and_named(tmp_path: Path) -> None:
    cmd = _waiting_command(tmp_path)
    with pytest.raises(SecretError) as info:
        await secret_from_command(cmd, "accounts.a.imap.password_command", timeout=0.5)
    assert info.value.message.startswith(
        f"accounts.a.imap.password_command: {sys.executable} did not finish within"
    )
    assert not _alive(int((tmp_path / "pid").read_text()))
