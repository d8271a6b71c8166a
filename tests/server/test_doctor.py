"""``kittiwake doctor`` as a user runs it, against the real servers and deliberately broken
instances of them: each fault gets its own one-line diagnosis and the exit status says it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from harness import Dovecot, Postfix, TestCA, User


def config(
    tmp_path: Path,
    imap: dict[str, object],
    smtp: dict[str, object] | None = None,
    email: str = "me@example.test",
) -> Path:
    def table(name: str, values: dict[str, object]) -> str:
        lines = [f"[accounts.me.{name}]"]
        for key, value in values.items():
            lines.append(
                f'{key} = "{value}"' if isinstance(value, str | Path) else f"{key} = {value}"
            )
        return "\n".join(lines) + "\n"

    text = f'[accounts.me]\nemail = "{email}"\n' + table("imap", imap)
    if smtp is not None:
        text += table("smtp", smtp)
    path = tmp_path / "config.toml"
    path.write_text(text)
    path.chmod(0o600)
    return path


def doctor(
    tmp_path: Path, cfg: Path, password: str, *extra: str
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "KITTIWAKE"))}
    env.update(HOME=str(tmp_path), XDG_STATE_HOME=str(tmp_path / "state"), KW_PASSWORD=password)
    return subprocess.run(
        [sys.executable, "-m", "kittiwake.cli.main", "--config", str(cfg), "doctor", *extra],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def imap_settings(server: Dovecot, user: User, **over: object) -> dict[str, object]:
    return {
        "host": server.host,
        "port": server.ports.imaps if server.tls else server.ports.imap,
        "security": "tls",
        "user": user.login,
        "password_env": "KW_PASSWORD",
        "ca_file": server.ca_file,
        "timeout": 15,
        **over,
    }


def failing_line(out: str) -> str:
    lines = [line for line in out.splitlines() if "  FAIL  " in line]
    assert len(lines) == 1, out
    return lines[0]


def test_everything_works(tmp_path: Path, dovecot: Dovecot, postfix: Postfix, user: User) -> None:
    smtp = {
        "host": postfix.host,
        "port": postfix.ports.submission,
        "security": "starttls",
        "user": user.login,
        "password_env": "KW_PASSWORD",
        "ca_file": postfix.ca_file,
        "timeout": 15,
    }
    done = doctor(
        tmp_path,
        config(tmp_path, imap_settings(dovecot, user), smtp, email=user.email),
        user.password,
        "--send-test",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    for expected in (
        "me  imap  ok    DNS",
        "me  imap  ok    TLS           ",
        "Kittiwake will use: IDLE",
        f"me  imap  ok    login         logged in to IMAP at {dovecot.host}:{dovecot.ports.imaps}",
        "me  smtp  ok    STARTTLS",
        "me  smtp  ok    login",
        "me  mail  ok    round trip    the test message arrived in INBOX after",
        "everything works",
    ):
        assert expected in out, out
    assert user.password not in out + done.stderr


def test_tls_on_the_starttls_port(tmp_path: Path, dovecot: Dovecot, user: User) -> None:
    cfg = config(tmp_path, imap_settings(dovecot, user, port=dovecot.ports.imap))
    done = doctor(tmp_path, cfg, user.password)
    assert done.returncode == 1
    line = failing_line(done.stdout)
    assert "TLS handshake failed" in line
    assert 'in the clear first: use security = "starttls"' in done.stdout


def test_wrong_password(tmp_path: Path, dovecot: Dovecot, user: User) -> None:
    done = doctor(tmp_path, config(tmp_path, imap_settings(dovecot, user)), "wrong-password")
    assert done.returncode == 1
    assert "login" in failing_line(done.stdout)
    assert "fix: check the user name and password" in done.stdout
    assert "wrong-password" not in done.stdout + done.stderr


def test_unreachable_port(tmp_path: Path, dovecot: Dovecot, user: User) -> None:
    with socket.socket() as s:
        s.bind((dovecot.host, 0))
        free = s.getsockname()[1]
    done = doctor(tmp_path, config(tmp_path, imap_settings(dovecot, user, port=free)), "x")
    assert done.returncode == 1
    assert "connection refused (nothing listens" in failing_line(done.stdout)


def test_unknown_host(tmp_path: Path, dovecot: Dovecot, user: User) -> None:
    cfg = config(tmp_path, imap_settings(dovecot, user, host="no-such-host.invalid"))
    done = doctor(tmp_path, cfg, "x")
    assert done.returncode == 1
    assert "DNS" in failing_line(done.stdout) and "no such host" in done.stdout


def test_no_starttls(tmp_path: Path, dovecot_factory: Callable[..., Dovecot], user: User) -> None:
    plain = dovecot_factory(tls=False)
    cfg = config(tmp_path, imap_settings(plain, user, security="starttls", ca_file=plain.ca_file))
    done = doctor(tmp_path, cfg, user.password)
    assert done.returncode == 1
    assert "does not offer STARTTLS" in failing_line(done.stdout)


def test_certificate_for_another_host_and_expired(
    tmp_path: Path, dovecot_factory: Callable[..., Dovecot], tls_ca: TestCA, user: User
) -> None:
    chain, key = tls_ca.issue(tmp_path, "mail.other.example")
    other = dovecot_factory(certificate=(chain, key))
    done = doctor(tmp_path, config(tmp_path, imap_settings(other, user)), user.password)
    assert done.returncode == 1
    assert "certificate is for another host name (mail.other.example)" in failing_line(done.stdout)
    now = datetime.now(UTC)
    chain, key = tls_ca.issue(
        tmp_path,
        "127.0.0.2",
        not_before=now - timedelta(days=90),
        not_after=now - timedelta(days=2),
    )
    expired = dovecot_factory(certificate=(chain, key))
    done = doctor(tmp_path, config(tmp_path, imap_settings(expired, user)), user.password)
    assert done.returncode == 1
    assert "the certificate has expired" in failing_line(done.stdout)
    assert f"to {(now - timedelta(days=2)):%Y-%m-%d}" in done.stdout
