"""Secrets come from a command (no shell), a variable or the file, and never show themselves."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

from kittiwake.core.config import ServerConfig
from kittiwake.core.errors import SecretError
from kittiwake.core.logsetup import setup_logging
from kittiwake.core.secrets import Secret, password_for


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
