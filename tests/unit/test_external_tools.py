"""The pieces behind ``|`` and ``v``: mbox streams, the pipe runner, the viewer's argv, the
``[pipe]`` and ``[open]`` tables."""

from __future__ import annotations

import io
import mailbox
from pathlib import Path

import pytest

from kittiwake.core.config import config_from_dict
from kittiwake.core.errors import ConfigError
from kittiwake.core.external.opener import PrivateFiles, viewer_for
from kittiwake.core.external.pipe import PipeHistory, run_pipe
from kittiwake.core.message.mbox import mbox_stream, split_mbox

ACCOUNT = {"me": {"email": "me@example.org", "imap": {"host": "h", "user": "u", "password": "p"}}}

ONE = (
    b"From: a@example.org\r\nDate: Tue, 04 Mar 2025 10:00:00 +0000\r\nSubject: one\r\n\r\n"
    b"From the start\r\n>From quoted already\r\nbody\r\n"
)
TWO = b"From: b@example.org\r\nSubject: two\r\n\r\nsecond\r\n"


def test_mbox_stream_round_trips_and_reads_in_python(tmp_path: Path) -> None:
    data = mbox_stream([ONE, TWO])
    assert data.startswith(b"From MAILER-DAEMON Tue Mar 04 10:00:00 2025\n")
    assert b"\n>From the start\n>>From quoted already\n" in data
    assert list(split_mbox(data)) == [ONE, TWO]
    path = tmp_path / "x.mbox"
    path.write_bytes(data)
    box = mailbox.mbox(path)
    assert [m["Subject"] for m in box] == ["one", "two"]
    box.close()


def test_run_pipe_feeds_stdin_and_keeps_the_last_line(tmp_path: Path) -> None:
    echo = io.BytesIO()
    result = run_pipe("wc -c; echo last >&2; exit 4", b"x" * 100_000, echo)
    assert result.status == 4 and result.last_line == "last"
    assert echo.getvalue().split()[0] == b"100000"
    # A command that reads nothing does not make the pipe fail.
    assert run_pipe("true", b"y" * 1_000_000).status == 0


def test_history_keeps_distinct_lines_newest_last(tmp_path: Path) -> None:
    history = PipeHistory(tmp_path / "h" / "pipe-history")
    for line in ("git am", "less", "git am", "bad\nline"):
        history.add(line)
    assert history.load() == ["less", "git am"]


def test_viewer_argv_takes_the_path_as_one_element(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = PrivateFiles()
    path = files.write("$(touch pwned); rm -rf ~.pdf", b"%PDF")
    assert path.read_bytes() == b"%PDF"
    config = config_from_dict(
        {"accounts": ACCOUNT, "open": {"image/*": "feh", "application/pdf": "zathura --fork %s"}}
    )
    rules = config.tools.open
    viewer = viewer_for(rules, "application/PDF; name=x", path)
    assert viewer is not None and viewer.argv == ["zathura", "--fork", str(path)]
    viewer = viewer_for(rules, "image/png", path)
    assert viewer is not None and viewer.argv == ["feh", str(path)]
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert viewer_for(rules, "text/html", path) is None  # no display: the caller saves it
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.setenv("BROWSER", "firefox --new-tab:w3m")
    viewer = viewer_for(rules, "text/html", path)
    assert viewer is not None and viewer.argv == ["firefox", "--new-tab", str(path)]
    assert (path.parent.parent.stat().st_mode & 0o777) == 0o700
    files.clear()
    assert not path.exists()


def test_pipe_and_open_tables_are_checked() -> None:
    config = config_from_dict(
        {"accounts": ACCOUNT, "pipe": {"am": {"command": "git am -3", "key": "A"}, "l": "less"}}
    )
    assert config.tools.pipe["am"].key == "A" and config.tools.pipe["l"].command == "less"
    with pytest.raises(ConfigError, match=r"pipe\.am: unknown key 'keys'"):
        config_from_dict({"accounts": ACCOUNT, "pipe": {"am": {"command": "x", "keys": "A"}}})
    with pytest.raises(ConfigError, match="expected a type"):
        config_from_dict({"accounts": ACCOUNT, "open": {"pdf": "zathura"}})
