"""The pieces behind ``|`` and ``v``: mbox streams, the pipe runner, the viewer's argv, the
``[pipe]`` and ``[open]`` tables."""

from __future__ import annotations

import fcntl
import io
import mailbox
import os
import signal
import struct
import termios
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kittiwake.core.config import config_from_dict
from kittiwake.core.errors import ConfigError
from kittiwake.core.external.opener import PrivateFiles, viewer_for
from kittiwake.core.external.pipe import PipeHistory, PipeResult, run_pipe
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


@pytest.fixture
def screen() -> Iterator[tuple[int, int]]:
    """(a terminal of 30 rows and 100 columns, the end that reads what it shows): the suite
    has no real terminal, so one end of a pty stands for it."""
    other, tty = os.openpty()
    fcntl.ioctl(tty, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    yield tty, other
    os.close(tty)
    os.close(other)


@pytest.fixture
def terminal(screen: tuple[int, int]) -> int:
    return screen[0]


def test_on_a_terminal_stderr_is_the_terminal_itself(screen: tuple[int, int]) -> None:
    """less (590) reads its keys from, and sizes itself by, the terminal of its stderr."""
    tty, shown = screen
    said = run_pipe("echo out; echo err >&2; exit 3", b"", io.BytesIO(), terminal=tty)
    assert said == PipeResult(3, "out")
    assert os.read(shown, 100).replace(b"\r", b"") == b"err\n"


def test_on_a_terminal_the_command_writes_to_a_terminal_of_its_size(terminal: int) -> None:
    echo = io.BytesIO()
    result = run_pipe("test -t 1 && echo tty; stty size <&1", b"", echo, terminal=terminal)
    assert result == PipeResult(0, "30 100")
    assert echo.getvalue() == b"tty\n30 100\n"  # as written: the real terminal adds the \r
    assert run_pipe("test -t 1 && echo tty || echo pipe", b"").last_line == "pipe"


def test_on_a_terminal_the_messages_still_arrive_byte_for_byte(
    tmp_path: Path, terminal: int
) -> None:
    data = bytes(range(256)) * 4096 + b"\r\n\x1b[2J\x04\x03 end"  # 1 MiB, ^D and ^C too
    out = tmp_path / "out"
    result = run_pipe(f"cat > {out}", data, io.BytesIO(), terminal=terminal)
    assert result == PipeResult(0, "")  # nothing written: no line, no Enter to press
    assert out.read_bytes() == data
    counted = run_pipe("wc -c", data, terminal=terminal)
    assert counted.last_line == str(len(data))


def test_the_last_line_is_the_one_a_terminal_shows_without_its_escapes(terminal: int) -> None:
    said = run_pipe(
        r"printf 'one\n\033[1;31mApplying: fix\033[0m 50%%\r\033[2Kdone \033]0;t\007100%%\n\n'",
        b"",
        terminal=terminal,
    )
    assert said.last_line == "done 100%"
    hostile = run_pipe(r"printf 'x\n\033[31mred\033'", b"", terminal=terminal)
    assert hostile.last_line == "red"


def test_a_full_screen_program_leaves_no_line_behind(terminal: int) -> None:
    screen = r"printf 'before\n\033[?1049h\033[Hpage 1\n:\033[?1049l\r\033[K'"
    assert run_pipe(screen, b"", terminal=terminal).last_line == ""
    after = run_pipe(screen + "; echo after", b"", terminal=terminal)
    assert after.last_line == "after"


def test_exit_status_and_a_command_that_stops_reading_early(terminal: int) -> None:
    assert run_pipe("echo no >&2; exit 3", b"") == PipeResult(3, "no")  # no terminal
    assert run_pipe("kill -TERM $$", b"", terminal=terminal).status == -signal.SIGTERM
    head = run_pipe("head -c 5", b"abcdefgh" * 1_000_000, terminal=terminal)
    assert head == PipeResult(0, "abcde")


def test_a_resized_terminal_is_passed_on_to_the_command(terminal: int) -> None:
    """The app's process gets SIGWINCH (the real terminal sends it), copies the new size onto
    the command's pty and tells the command, which asks its pty again."""

    class Watch(io.BytesIO):
        ready = threading.Event()

        def write(self, data: Any) -> int:
            done = super().write(data)
            if b"ready" in self.getvalue():
                self.ready.set()
            return done

    echo = Watch()
    main = threading.main_thread().ident
    assert main is not None and threading.current_thread().ident == main

    def resize() -> None:
        if echo.ready.wait(timeout=20):
            fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
            signal.pthread_kill(main, signal.SIGWINCH)

    resizer = threading.Thread(target=resize)
    resizer.start()
    command = (
        "trap 'stty size <&1; kill $!; exit 0' WINCH; sleep 30 >/dev/null 2>&1 & echo ready; wait"
    )
    result = run_pipe(command, b"", echo, terminal=terminal)
    resizer.join()
    assert result == PipeResult(0, "24 80")
    assert signal.getsignal(signal.SIGWINCH) == signal.SIG_DFL  # put back as it was
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


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
