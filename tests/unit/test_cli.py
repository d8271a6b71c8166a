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
        [sys.executable, "-m", "kittiwake.tui.main", *args],
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
