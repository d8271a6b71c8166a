"""``kittiwake sync`` as a user runs it: a real process against the real Dovecot."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from harness import Dovecot, User
from harness.clients import imap_device


def write_config(tmp_path: Path, dovecot: Dovecot, user: User, **imap: object) -> Path:
    settings = {
        "host": dovecot.host,
        "port": dovecot.ports.imaps,
        "user": user.login,
        "password_env": "KW_TEST_PASSWORD",
        "ca_file": str(dovecot.ca_file),
        "timeout": 5,
        **imap,
    }
    body = "\n".join(
        f"{k} = {v!r}" if isinstance(v, str) else f"{k} = {v}" for k, v in settings.items()
    ).replace("'", '"')
    path = tmp_path / "config.toml"
    path.write_text(f'[accounts.me]\nemail = "{user.email}"\n[accounts.me.imap]\n{body}\n')
    path.chmod(0o600)
    return path


def env(tmp_path: Path, user: User, password: str | None = None) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "KITTIWAKE"))}
    out.update(
        HOME=str(tmp_path),
        XDG_CACHE_HOME=str(tmp_path / "cache"),
        XDG_STATE_HOME=str(tmp_path / "state"),
        KW_TEST_PASSWORD=password if password is not None else user.password,
    )
    return out


def kittiwake(*args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kittiwake.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=60,
        **kw,  # type: ignore[call-overload]
    )


def test_sync_prints_a_summary_and_fills_the_cache(
    tmp_path: Path, dovecot: Dovecot, user: User
) -> None:
    device = imap_device(dovecot, user)
    for n in range(25):
        device.append("INBOX", "", None, f"Subject: n{n}\r\nFrom: a@b.c\r\n\r\nbody\r\n".encode())
    cfg = write_config(tmp_path, dovecot, user)
    out = kittiwake("--config", str(cfg), "sync", env=env(tmp_path, user))
    assert out.returncode == 0, out.stderr
    assert "me: 6 folders, 25 messages (25 fetched)" in out.stdout
    assert out.stdout.strip().splitlines()[-1].startswith("done in ")
    assert (tmp_path / "cache" / "kittiwake" / "me.sqlite3").exists()
    again = kittiwake("sync", "--config", str(cfg), env=env(tmp_path, user))
    assert again.returncode == 0 and "(0 fetched)" in again.stdout
    log = (tmp_path / "state" / "kittiwake" / "kittiwake.log").read_text()
    assert user.password not in log


def test_sync_failures_are_one_sentence(tmp_path: Path, dovecot: Dovecot, user: User) -> None:
    cfg = write_config(tmp_path, dovecot, user)
    out = kittiwake("--config", str(cfg), "sync", env=env(tmp_path, user, password="wrong-pw"))
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kittiwake: ") and "Traceback" not in out.stderr
    assert "wrong-pw" not in out.stderr + out.stdout
    assert f"{dovecot.host}:{dovecot.ports.imaps}" in lines[0]

    cfg = write_config(tmp_path, dovecot, user, port=1)
    out = kittiwake("--config", str(cfg), "sync", env=env(tmp_path, user))
    assert out.returncode == 1
    assert f"{dovecot.host}:1" in out.stderr and len(out.stderr.strip().splitlines()) == 1

    out = kittiwake("--config", str(cfg), "sync", "--account", "nobody", env=env(tmp_path, user))
    assert out.returncode == 1 and "no account named 'nobody'" in out.stderr


def test_sync_watch_prints_live_changes(tmp_path: Path, dovecot: Dovecot, user: User) -> None:
    device = imap_device(dovecot, user)
    device.append("INBOX", "", None, b"Subject: first\r\nFrom: a@b.c\r\n\r\nbody\r\n")
    cfg = write_config(tmp_path, dovecot, user)
    proc = subprocess.Popen(
        [sys.executable, "-m", "kittiwake.cli.main", "--config", str(cfg), "sync", "--watch"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(tmp_path, user),
    )
    assert proc.stdout is not None
    try:

        def read_until(fragment: str, timeout: float = 10) -> str:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                line = proc.stdout.readline()  # type: ignore[union-attr]
                if fragment in line:
                    return line
                if not line and proc.poll() is not None:
                    break
            raise AssertionError(f"no line with {fragment!r}; stderr: {proc.stderr.read()}")  # type: ignore[union-attr]

        read_until('"INBOX" counts total=1')
        # The engine is watching only once the full sync is done; from here on, live changes.
        device.append(
            "INBOX",
            "",
            None,
            b"Subject: =?utf-8?q?h=C3=A9llo?=\r\nFrom: Ann <ann@x.org>\r\n\r\nhi\r\n",
        )
        line = read_until(" new uid=2")
        assert (
            line.split(" ", 1)[1].strip()
            == 'me "INBOX" new uid=2 from="Ann <ann@x.org>" subject="héllo"'
        )
        device.select("INBOX")
        device.store("1", "+FLAGS", "(\\Flagged)")
        line = read_until(" flags uid=1")
        assert line.rstrip().endswith("flags=(\\Flagged)")
    finally:
        proc.terminate()
        proc.wait(10)


def test_sync_with_a_ca_file_under_the_home_directory(
    tmp_path: Path, dovecot: Dovecot, user: User
) -> None:
    """``ca_file = "~/..."`` passed validation, then TLS opened the literal path: "unexpected
    FileNotFoundError", exit 70."""
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "ca.pem").write_bytes(Path(dovecot.ca_file).read_bytes())
    cfg = write_config(tmp_path, dovecot, user, ca_file="~/certs/ca.pem")
    out = kittiwake("--config", str(cfg), "sync", env=env(tmp_path, user))
    assert out.returncode == 0, out.stderr
    assert "me: 6 folders" in out.stdout


def test_sync_with_a_ca_file_that_is_not_pem_says_which_key(
    tmp_path: Path, dovecot: Dovecot, user: User
) -> None:
    cfg = write_config(tmp_path, dovecot, user, ca_file="/etc/passwd")
    out = kittiwake("--config", str(cfg), "sync", env=env(tmp_path, user))
    assert out.returncode == 1, out.stderr
    assert out.stderr.strip() == (
        f"kittiwake: {cfg}: accounts.me.imap.ca_file: /etc/passwd is not a PEM certificate file"
    )


def _journal_a_flag(cache_file: Path, uid: int) -> None:
    """What the app leaves when it quits offline: an action waiting in the journal."""
    from kittiwake.core.cache import Cache
    from kittiwake.core.journal import Action, Journal

    cache = Cache(cache_file)
    state = cache.folder_state("INBOX")
    assert state is not None
    Journal(cache).add(
        Action(
            kind="flags",
            folder="INBOX",
            uidvalidity=state.uidvalidity,
            uids=(uid,),
            add=("\\Flagged",),
        )
    )
    cache.close()


def _damage(path: Path, how: str) -> None:
    size = path.stat().st_size
    pages = size // 4096
    if how == "truncated":
        os.truncate(path, (pages // 2) * 4096 + 1000)
        return
    with open(path, "r+b") as f:  # garbage over a few pages of the messages and the index
        for page in (pages // 3, pages // 2, 2 * pages // 3):
            f.seek(page * 4096)
            f.write(bytes(range(256)) * 16)


@pytest.mark.parametrize("how", ["truncated", "overwritten"])
def test_sync_on_a_damaged_cache_keeps_the_journal_and_rebuilds(
    tmp_path: Path, dovecot: Dovecot, user: User, how: str
) -> None:
    """It used to stop with "unexpected DatabaseError" (exit 70)."""
    device = imap_device(dovecot, user)
    for n in range(300):
        device.append("INBOX", "", None, f"Subject: n{n}\r\nFrom: a@b.c\r\n\r\nbody\r\n".encode())
    cfg = write_config(tmp_path, dovecot, user)
    assert kittiwake("--config", str(cfg), "sync", env=env(tmp_path, user)).returncode == 0
    cache_file = tmp_path / "cache" / "kittiwake" / "me.sqlite3"
    _journal_a_flag(cache_file, 7)
    _damage(cache_file, how)

    out = kittiwake("--config", str(cfg), "sync", env=env(tmp_path, user))
    assert out.returncode == 0, out.stderr
    [aside] = [p for p in cache_file.parent.iterdir() if ".damaged-" in p.name]
    warning = out.stderr.strip()
    assert "\n" not in warning and "Traceback" not in warning
    assert warning.startswith(f"kittiwake: warning: The cache {cache_file} was damaged (")
    assert aside.name in warning and "the 1 unsent action it held was kept" in warning
    assert "me: 6 folders, 300 messages (300 fetched)" in out.stdout
    device.select("INBOX", readonly=True)
    _, data = device.uid("FETCH", "7", "(FLAGS)")
    assert b"\\Flagged" in data[0]  # the action waiting in the damaged file was sent


def test_sync_on_a_cache_that_is_not_a_database_leaves_it_alone(
    tmp_path: Path, dovecot: Dovecot, user: User
) -> None:
    cfg = write_config(tmp_path, dovecot, user)
    assert kittiwake("--config", str(cfg), "sync", env=env(tmp_path, user)).returncode == 0
    cache_file = tmp_path / "cache" / "kittiwake" / "me.sqlite3"
    with open(cache_file, "r+b") as f:
        f.write(b"\xa5" * 4096)
    damaged = cache_file.read_bytes()
    out = kittiwake("--config", str(cfg), "sync", env=env(tmp_path, user))
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [
        f"kittiwake: {cache_file}: the cache is damaged (file is not a database) and the"
        " actions it holds that were not sent yet cannot be read, so it is left as it is; move"
        " it elsewhere and Kittiwake will rebuild the cache from the server, without those"
        " actions"
    ]
    assert cache_file.read_bytes() == damaged


def test_sync_refuses_a_cache_from_a_newer_kittiwake(
    tmp_path: Path, dovecot: Dovecot, user: User
) -> None:
    import sqlite3

    from kittiwake.core.cache import SCHEMA_VERSION

    cfg = write_config(tmp_path, dovecot, user)
    assert kittiwake("--config", str(cfg), "sync", env=env(tmp_path, user)).returncode == 0
    cache_file = tmp_path / "cache" / "kittiwake" / "me.sqlite3"
    _journal_a_flag(cache_file, 1)
    db = sqlite3.connect(cache_file)
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    db.close()
    out = kittiwake("--config", str(cfg), "sync", env=env(tmp_path, user))
    assert out.returncode == 1
    assert out.stderr.strip() == (
        f"kittiwake: {cache_file}: this cache was written by a newer Kittiwake (cache schema"
        f" {SCHEMA_VERSION + 1}; this version reads up to {SCHEMA_VERSION}), so it is left"
        " untouched; upgrade Kittiwake"
    )
    db = sqlite3.connect(cache_file)
    assert db.execute("SELECT count(*) FROM journal").fetchone()[0] == 1
