"""Setup stores the password where it works here and reads it back as the config will.

Every store is the real thing: files on disk, ``pass`` with a throwaway GPG key in a private
GNUPGHOME, the keyring library with keyrings.alt's file backend; the headless keyring is the
state keyring really reaches without a desktop session.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import tomli_w

from kittiwake.core.config import load_config
from kittiwake.core.errors import SecretError
from kittiwake.core.logsetup import setup_logging
from kittiwake.core.secrets import password_for
from kittiwake.core.secretstore import (
    SecretRef,
    StoreKind,
    available_stores,
    probe_stores,
    secret_file_path,
    store_first_working,
    store_secret,
)


def unique_secret() -> str:
    # unique per test: the log mask is process-wide, a value seen by another test is masked too
    return f"pw {uuid.uuid4().hex[:12]} \"q\" 'x' \\ é"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    monkeypatch.setenv("PASSWORD_STORE_DIR", str(home / "no-password-store"))
    return home


def load_with(tmp_path: Path, ref: SecretRef, server: str = "imap.example.org") -> str:
    """Write a config whose imap section holds ``ref.config``, load it as Kittiwake does, and
    return the password read through it."""
    path = tmp_path / "config.toml"
    doc = {"accounts": {"work": {"email": "a@example.org", "imap": {"host": server, **ref.config}}}}
    path.write_text(tomli_w.dumps(doc))
    path.chmod(0o600)
    imap = load_config(path).accounts["work"].imap
    assert imap is not None
    return password_for(imap, "accounts.work.imap").reveal()


# --- the file store ---------------------------------------------------------------------------


async def test_file_store_private_atomic_and_read_back(home: Path, tmp_path: Path) -> None:
    secret = unique_secret()
    ref = await store_secret(StoreKind.FILE, "work", "IMAP.Example.org", secret)
    path = home / ".local/share/kittiwake/secrets/work@imap.example.org"
    assert ref.kind is StoreKind.FILE
    assert ref.config == {"password_file": "~/.local/share/kittiwake/secrets/work@imap.example.org"}
    assert secret not in repr(ref) and secret not in ref.where
    assert path.read_text() == secret + "\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for directory in (path.parent, path.parent.parent):  # secrets/ and kittiwake/: created 0700
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert load_with(tmp_path, ref) == secret

    # replaced by a rename (a new inode), no temporary file left behind
    inode = path.stat().st_ino
    second = unique_secret()
    await store_secret(StoreKind.FILE, "work", "imap.example.org", second)
    assert path.stat().st_ino != inode and path.read_text() == second + "\n"
    assert sorted(p.name for p in path.parent.iterdir()) == ["work@imap.example.org"]


async def test_file_store_crash_before_rename_keeps_the_old_secret(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = unique_secret()
    await store_secret(StoreKind.FILE, "work", "imap.example.org", old)
    path = secret_file_path("work", "imap.example.org")

    def crash(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(SecretError, match=r"cannot be written \(No space left on device\)"):
        await store_secret(StoreKind.FILE, "work", "imap.example.org", unique_secret())
    monkeypatch.undo()
    assert path.read_text() == old + "\n"
    assert [p.name for p in path.parent.iterdir()] == [path.name]


async def test_file_store_tightens_a_loose_directory(home: Path) -> None:
    directory = home / ".local/share/kittiwake/secrets"
    directory.mkdir(parents=True)
    directory.chmod(0o755)
    await store_secret(StoreKind.FILE, "work", "imap.example.org", unique_secret())
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700


async def test_hostile_names_stay_inside_the_secrets_directory(home: Path) -> None:
    ref = await store_secret(StoreKind.FILE, "work", "../../../etc/passwd", unique_secret())
    assert ref.config["password_file"].startswith("~/.local/share/kittiwake/secrets/work@")
    assert "/" not in ref.config["password_file"].rsplit("secrets/", 1)[1]
    with pytest.raises(ValueError, match="not a valid account name"):
        await store_secret(StoreKind.FILE, "../x", "imap.example.org", unique_secret())
    with pytest.raises(ValueError, match="not a server name"):
        await store_secret(StoreKind.FILE, "work", "..", unique_secret())
    # two accounts whose names run together never share a file
    assert secret_file_path("a-b", "c.org") != secret_file_path("a", "b-c.org")


async def test_passwords_no_store_can_give_back_are_refused(home: Path) -> None:
    for bad, reason in (("", "is empty"), ("two\nlines", "line break"), ("cr\rx", "line break")):
        with pytest.raises(SecretError, match=reason):
            await store_secret(StoreKind.FILE, "work", "imap.example.org", bad)
    assert not (home / ".local/share/kittiwake/secrets").exists()


async def test_the_secret_never_reaches_the_log(home: Path, tmp_path: Path) -> None:
    secret = unique_secret()
    log_file = tmp_path / "k.log"
    setup_logging(log_file)
    try:
        # pass is not set up here: the store fails before anything reads the secret back,
        # yet a library that logs what it was given is masked: store_secret registered it first
        with pytest.raises(SecretError, match="pass"):
            await store_secret(StoreKind.PASS, "work", "imap.example.org", secret)
        logging.getLogger("some.library").info("sending %s", secret)
        ref = await store_secret(StoreKind.FILE, "work", "imap.example.org", secret)
    finally:
        logging.getLogger().handlers.clear()
    text = log_file.read_text()
    assert "stored the password for work/imap.example.org" in text and ref.where in text
    assert "sending ********" in text
    assert secret not in text


async def test_inline_only_when_asked(home: Path, tmp_path: Path) -> None:
    secret = unique_secret()
    assert StoreKind.INLINE not in available_stores()
    ref = await store_secret(StoreKind.INLINE, "work", "imap.example.org", secret)
    assert ref.config == {"password": secret} and secret not in repr(ref)
    assert load_with(tmp_path, ref) == secret


# --- pass, with a real GPG key ------------------------------------------------------------------


@pytest.fixture
def password_store(home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An initialised pass store encrypting to a throwaway key without passphrase."""
    missing = [tool for tool in ("pass", "gpg", "gpgconf") if shutil.which(tool) is None]
    if missing:
        pytest.fail(
            f"needs {', '.join(missing)}: apt-get install -y pass gnupg (scripts/test does)"
        )
    # GnuPG's agent socket lives in GNUPGHOME: keep the path short (sockaddr_un is 108 bytes)
    gnupghome = Path(tempfile.mkdtemp(prefix="kwgpg-", dir="/tmp"))
    gnupghome.chmod(0o700)
    store = home / ".password-store"
    monkeypatch.setenv("GNUPGHOME", str(gnupghome))
    monkeypatch.setenv("PASSWORD_STORE_DIR", str(store))
    env = dict(os.environ)
    try:
        keygen = ["--quick-gen-key", "test@example.test", "default", "default", "never"]
        subprocess.run(
            ["gpg", "--batch", "--passphrase", "", *keygen],
            env=env,
            check=True,
            capture_output=True,
            timeout=60,
        )
        subprocess.run(
            ["pass", "init", "test@example.test"], env=env, check=True, capture_output=True
        )
        yield store
    finally:
        subprocess.run(["gpgconf", "--kill", "all"], env=env, check=False, capture_output=True)
        shutil.rmtree(gnupghome, ignore_errors=True)


async def test_pass_store_encrypts_and_reads_back(password_store: Path, tmp_path: Path) -> None:
    assert StoreKind.PASS in available_stores()
    secret = unique_secret()
    ref = await store_secret(StoreKind.PASS, "work", "imap.example.org", secret)
    name = "kittiwake/work/imap.example.org"
    assert ref.config == {"password_command": ["pass", "show", name]}  # argv: no shell
    assert ref.where == f"in pass as {name}"
    encrypted = (password_store / f"{name}.gpg").read_bytes()
    assert secret.encode() not in encrypted
    assert load_with(tmp_path, ref) == secret


def test_pass_needs_an_initialised_store(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    status = {s.kind: s for s in probe_stores()}[StoreKind.PASS]
    if shutil.which("pass") is not None:
        assert not status.available and ".gpg-id is missing" in status.reason
    monkeypatch.setenv("PATH", str(home))  # no pass on PATH
    status = {s.kind: s for s in probe_stores()}[StoreKind.PASS]
    assert not status.available and status.reason == "pass is not installed"


async def test_a_failing_store_falls_back_to_the_next(home: Path, tmp_path: Path) -> None:
    # pass chosen although it is not initialised here: insert fails, the file store is used
    secret = unique_secret()
    ref, failures = await store_first_working(
        "work", "imap.example.org", secret, [StoreKind.PASS, StoreKind.FILE]
    )
    assert ref.kind is StoreKind.FILE and len(failures) == 1
    assert failures[0].startswith(("pass insert failed", "pass is not installed"))
    assert secret not in failures[0]
    assert load_with(tmp_path, ref) == secret


# --- the system keyring -------------------------------------------------------------------------


async def test_keyring_store_with_a_real_file_backend(
    home: Path, tmp_path: Path, plaintext_keyring: Path
) -> None:
    status = {s.kind: s for s in probe_stores()}[StoreKind.KEYRING]
    assert status.available and "as configured" in status.reason
    assert available_stores()[0] is StoreKind.KEYRING
    secret = unique_secret()
    ref = await store_secret(StoreKind.KEYRING, "work", "imap.example.org", secret)
    assert ref.config == {
        "password_keyring": {"service": "kittiwake", "user": "work/imap.example.org"}
    }
    assert plaintext_keyring.is_file() and "work/imap.example.org" in ref.where
    assert load_with(tmp_path, ref) == secret


def test_headless_keyring_is_not_offered(home: Path, headless_keyring: None) -> None:
    status = {s.kind: s for s in probe_stores()}[StoreKind.KEYRING]
    assert not status.available and "no system keyring works here" in status.reason
    assert available_stores()[-1] is StoreKind.FILE
    assert StoreKind.KEYRING not in available_stores()


async def test_keyring_without_backend_is_detected_and_skipped(
    home: Path, tmp_path: Path, fail_keyring: None
) -> None:
    status = {s.kind: s for s in probe_stores()}[StoreKind.KEYRING]
    assert not status.available and "stores nothing" in status.reason
    assert StoreKind.KEYRING not in available_stores()
    with pytest.raises(SecretError, match="no system keyring works on this machine"):
        await store_secret(StoreKind.KEYRING, "work", "imap.example.org", unique_secret())
    ref, failures = await store_first_working(
        "work", "imap.example.org", "s3cret-x", [StoreKind.KEYRING, StoreKind.FILE]
    )
    assert ref.kind is StoreKind.FILE and failures == ["no system keyring works on this machine"]


async def test_a_store_that_silently_drops_the_password_is_caught_by_the_read_back(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # keyring's null backend accepts every password and keeps none: only reading back tells
    import keyring.core

    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.null.Keyring")
    keyring.core.init_backend()
    try:
        assert StoreKind.KEYRING not in available_stores()
        with pytest.raises(SecretError) as info:
            await store_secret(StoreKind.KEYRING, "work", "imap.example.org", unique_secret())
    finally:
        monkeypatch.undo()
        keyring.core.init_backend()
    assert info.value.message.startswith("the password stored in the system keyring")
    assert "cannot be read back: password_keyring: the system keyring has no password" in (
        info.value.message
    )
