"""The command line: version, help, the no-config guidance and config errors, no tracebacks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def run(args: list[str], home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "KITTIWAKE"))}
    environ.update(HOME=str(home), **env)
    return subprocess.run(
        [sys.executable, "-m", "kittiwake.cli.main", *args],
        capture_output=True,
        text=True,
        env=environ,
        timeout=60,
    )


def test_version_and_help(tmp_path: Path) -> None:
    out = run(["--version"], tmp_path)
    assert out.returncode == 0 and out.stdout.startswith("kittiwake ")
    out = run(["--help"], tmp_path)
    assert out.returncode == 0 and "--config" in out.stdout


def test_no_config_explains_how_to_create_one(tmp_path: Path) -> None:
    out = run([], tmp_path, XDG_CONFIG_HOME=str(tmp_path / "cfg"))
    assert out.returncode == 0
    assert str(tmp_path / "cfg" / "kittiwake" / "config.toml") in out.stdout
    assert "[accounts.work.imap]" in out.stdout
    assert out.stderr == ""


@pytest.mark.parametrize("via", ["flag", "env"])
def test_bad_config_is_one_sentence_not_a_traceback(tmp_path: Path, via: str) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[accounts.w]\nemail = "a@b"\n[accounts.w.imap]\nhost = "h"\nport = "x"\n')
    state = tmp_path / "state"
    if via == "flag":
        out = run(["--config", str(cfg)], tmp_path, XDG_STATE_HOME=str(state))
    else:
        out = run([], tmp_path, KITTIWAKE_CONFIG=str(cfg), XDG_STATE_HOME=str(state))
    assert out.returncode == 1
    assert out.stderr.strip() == (
        f"kittiwake: {cfg}: accounts.w.imap.port: expected a whole number, got a string"
    )
    assert "Traceback" not in out.stdout + out.stderr
    assert (state / "kittiwake" / "kittiwake.log").exists()


def test_named_config_that_does_not_exist(tmp_path: Path) -> None:
    out = run(["--config", str(tmp_path / "nope.toml")], tmp_path)
    assert out.returncode == 1 and "nope.toml: no such file" in out.stderr


@pytest.mark.parametrize("cache", ["newer", "not a database"])
def test_the_app_refuses_a_cache_it_must_not_touch_in_one_sentence(
    tmp_path: Path, cache: str
) -> None:
    """The app (not only `kittiwake sync`) stops before its screen opens, file untouched: a
    newer Kittiwake's cache used to be deleted, a garbage one gave "unexpected DatabaseError"."""
    import sqlite3

    from kittiwake.core.cache import SCHEMA_VERSION

    config = tmp_path / "config.toml"
    config.write_text(
        '[accounts.me]\nemail = "me@example.org"\n[accounts.me.imap]\nhost = "127.0.0.1"\n'
        'port = 1\npassword = "x"\n'
    )
    config.chmod(0o600)
    path = tmp_path / "cache" / "kittiwake" / "me.sqlite3"
    path.parent.mkdir(parents=True)
    if cache == "newer":
        db = sqlite3.connect(path)
        db.execute("CREATE TABLE journal(id INTEGER PRIMARY KEY, created REAL, action TEXT)")
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
        db.close()
    else:
        path.write_bytes(b"\xa5" * 8192)
    before = path.read_bytes()
    out = run(["--config", str(config)], tmp_path, XDG_CACHE_HOME=str(tmp_path / "cache"))
    assert out.returncode == 1
    [line] = out.stderr.strip().splitlines()
    assert line.startswith(f"kittiwake: {path}: "), line
    assert ("upgrade Kittiwake" if cache == "newer" else "move it elsewhere") in line
    assert path.read_bytes() == before


@pytest.mark.parametrize("missing", ["pymap", "aiosmtpd"])
def test_the_demo_without_its_servers_says_what_to_install(tmp_path: Path, missing: str) -> None:
    """The servers are the `demo` extra: without them `--demo` says so in one sentence and
    leaves nothing behind (not "the demo servers stopped (exit status 1)" and a temp dir)."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "KITTIWAKE"))}
    temp = tmp_path / "tmp"
    temp.mkdir()
    environ.update(HOME=str(tmp_path / "home"), TMPDIR=str(temp))
    code = (
        "import sys\n"
        f"sys.modules[{missing!r}] = None  # not installed, as without the demo extra\n"
        "from kittiwake.cli.main import main\n"
        "sys.exit(main(['--demo']))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=environ, timeout=60
    )
    assert out.returncode == 1
    assert out.stderr == "kittiwake: the demo needs its servers: pipx install 'kittiwake[demo]'\n"
    assert out.stdout == ""
    assert list(temp.iterdir()) == []  # the demo's temporary home is gone
    assert not (tmp_path / "home").exists()  # and nothing of the user's was written


def test_the_demo_checks_for_exactly_the_packages_of_its_extra() -> None:
    """What the check asks for is what `pip install 'kittiwake[demo]'` installs, and the dev
    install (which has the extra) passes it."""
    import re
    import tomllib

    from kittiwake.demo.servers import SERVER_PACKAGES, check_servers_installed

    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    extra = tomllib.loads(pyproject.read_text())["project"]["optional-dependencies"]["demo"]
    assert set(SERVER_PACKAGES) == {re.split(r"[<>=!~;\[ ]", req)[0] for req in extra}
    check_servers_installed()  # raises ModuleNotFoundError if one is missing


def test_the_app_runs_with_the_collector_on_and_the_loaded_modules_frozen(tmp_path: Path) -> None:
    """The app's modules load with the cyclic collector paused (``run_app``): it must be on
    again when the app runs, with what was loaded frozen out of its scans."""
    config = tmp_path / "config.toml"
    config.write_text(
        '[accounts.me]\nemail = "me@example.org"\n[accounts.me.imap]\nhost = "127.0.0.1"\n'
        'port = 1\npassword = "x"\n'
    )
    config.chmod(0o600)
    probe = (
        "import gc, sys\n"
        "from kittiwake.cli.main import main\n"
        "from kittiwake.tui.app import KittiwakeApp\n"
        "KittiwakeApp.run = lambda self: print(gc.isenabled(), gc.get_freeze_count() > 1000)\n"
        "sys.exit(main(['--config', sys.argv[1]]))\n"
    )
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "KITTIWAKE"))}
    environ.update(HOME=str(tmp_path), XDG_CACHE_HOME=str(tmp_path / "cache"))
    out = subprocess.run(
        [sys.executable, "-c", probe, str(config)],
        capture_output=True,
        text=True,
        env=environ,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "True"]
