"""``|`` pipes messages into a command (exact bytes; several as an mbox stream), ``[pipe]``
commands have keys, and ``v`` hands an attachment to the configured program: against the
real Dovecot, through the app's keys."""

from __future__ import annotations

import mailbox as mboxlib
import stat
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from harness import Dovecot, User
from harness.clients import imap_device, imap_fetch_all
from harness.ui import synced, until
from textual.widgets import Input

from kittiwake.core.config import Config
from kittiwake.tui.app import KittiwakeApp
from kittiwake.tui.screens.help import binding_rows
from kittiwake.tui.screens.mailbox import MailboxScreen
from kittiwake.tui.screens.reader import ReaderScreen
from kittiwake.tui.tools import PipePrompt, private_files
from kittiwake.tui.widgets.message_list import MessageList


def server_bytes(dovecot: Dovecot, user: User) -> dict[bytes, bytes]:
    """INBOX as the server holds it, by Message-ID."""
    device = imap_device(dovecot, user)
    try:
        raws = imap_fetch_all(device, "INBOX")
    finally:
        device.logout()
    out = {}
    for raw in raws:
        for line in raw.split(b"\r\n"):
            if line.lower().startswith(b"message-id:"):
                out[line.split(b":", 1)[1].strip()] = raw
    return out


def the_list(app: KittiwakeApp) -> MessageList:
    return next(s for s in app.screen_stack if isinstance(s, MailboxScreen)).query_one(MessageList)


async def type_command(pilot: Any, app: KittiwakeApp, command: str) -> None:
    await pilot.press("|")
    await until(pilot, lambda: isinstance(app.screen, PipePrompt) and bool(app.screen.query(Input)))
    app.screen.query_one(Input).value = command
    await pilot.press("enter")


async def test_pipe_one_then_several_as_mbox(
    xdg: Path, mailbox: Callable[..., Config], dovecot: Dovecot, user: User
) -> None:
    app = KittiwakeApp(mailbox(12))
    one, many = xdg / "one.eml", xdg / "many.mbox"
    held = server_bytes(dovecot, user)
    async with app.run_test(size=(100, 30)) as pilot:
        await synced(app)
        await until(pilot, lambda: len(the_list(app).index) == 12)
        # The message under the cursor (Message 12), exactly as the server holds it.
        await type_command(pilot, app, f"cat > {one}; echo wrote it")
        await until(pilot, lambda: one.exists() and one.stat().st_size > 0)
        await until(pilot, lambda: not isinstance(app.screen, PipePrompt))
        assert one.read_bytes() == held[b"<tui12@example.org>"]
        # Three selected (newest first on screen): an mbox, oldest first.
        await pilot.press("x", "x", "x")
        await type_command(pilot, app, f"cat > {many}")
        await until(pilot, lambda: many.exists() and many.stat().st_size > 0)
        await pilot.pause(0.2)
        box = mboxlib.mbox(many)
        got = [m.as_bytes() for m in box]
        box.close()
        wanted = [held[f"<tui{n}@example.org>".encode()] for n in (10, 11, 12)]
        assert [g.replace(b"\r\n", b"\n") for g in got] == [
            w.replace(b"\r\n", b"\n") for w in wanted
        ]
        # The command typed is remembered: up brings it back.
        await pilot.press("|")
        await until(
            pilot, lambda: isinstance(app.screen, PipePrompt) and bool(app.screen.query(Input))
        )
        await pilot.press("up")
        assert app.screen.query_one(Input).value == f"cat > {many}"
        await pilot.press("up")
        assert app.screen.query_one(Input).value == f"cat > {one}; echo wrote it"
        await pilot.press("escape")
    history = xdg / "state" / "kittiwake" / "pipe-history"
    assert stat.S_IMODE(history.stat().st_mode) == 0o600


async def test_named_pipe_key_and_status_shown(
    xdg: Path, mailbox: Callable[..., Config], dovecot: Dovecot, user: User
) -> None:
    out = xdg / "am.eml"
    config = mailbox(
        5, pipe={"am": {"command": f"cat > {out}; echo patch applied; exit 3", "key": "A"}}
    )
    app = KittiwakeApp(config)
    said: list[str] = []
    original = app.notify

    def notify(message: str, **kw: object) -> None:
        said.append(message)
        original(message, **kw)  # type: ignore[arg-type]

    app.notify = notify  # type: ignore[method-assign]
    async with app.run_test(size=(100, 30)) as pilot:
        await synced(app)
        await until(pilot, lambda: len(the_list(app).index) == 5)
        await pilot.press("j", "enter")  # in the reader too
        await until(
            pilot, lambda: isinstance(app.screen, ReaderScreen) and app.screen.parsed is not None
        )
        rows = binding_rows(app.screen)  # on the help screen, with its id
        assert ("A", f"Pipe: cat > {out}; echo patch applied; exit 3", "pipe.am") in rows
        await pilot.press("A")
        await until(pilot, lambda: any("status 3" in s for s in said), timeout=10)
    assert out.read_bytes() == server_bytes(dovecot, user)[b"<tui4@example.org>"]
    assert any("exited with status 3: patch applied" in s for s in said)


async def test_open_attachment_with_configured_command(
    xdg: Path, mailbox: Callable[..., Config]
) -> None:
    # The "viewer" copies the file it is given and records its argv: one element, the path.
    got, argv_file = xdg / "viewed.bin", xdg / "argv.txt"
    viewer = xdg / "viewer.py"
    viewer.write_text(
        "import shutil, sys\n"
        f"open({str(argv_file)!r}, 'w').write(repr(sys.argv[1:]))\n"
        f"shutil.copy(sys.argv[2], {str(got)!r})\n"
    )
    config = mailbox(
        10,
        open={
            "application/pdf": {"command": f"{sys.executable} {viewer} --file %s", "terminal": True}
        },
    )
    app = KittiwakeApp(config)
    async with app.run_test(size=(100, 30)) as pilot:
        await synced(app)
        await until(pilot, lambda: len(the_list(app).index) == 10)
        await pilot.press("enter")  # message 10 carries report.pdf
        await until(
            pilot, lambda: isinstance(app.screen, ReaderScreen) and app.screen.parsed is not None
        )
        await pilot.press("v")
        await until(pilot, lambda: got.exists(), timeout=10)
        argv = eval(argv_file.read_text())
        assert argv[0] == "--file" and argv[1].endswith("/report.pdf")
        where = Path(argv[1])
        assert stat.S_IMODE(where.parent.parent.stat().st_mode) == 0o700
        await until(pilot, lambda: not where.exists())  # removed once the viewer returned
    assert got.read_bytes() == b"%PDF-1.4 test"


async def test_open_without_display_saves_the_file(
    xdg: Path, mailbox: Callable[..., Config], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    app = KittiwakeApp(mailbox(10))
    async with app.run_test(size=(100, 30)) as pilot:
        await synced(app)
        await until(pilot, lambda: len(the_list(app).index) == 10)
        await pilot.press("enter")
        await until(
            pilot, lambda: isinstance(app.screen, ReaderScreen) and app.screen.parsed is not None
        )
        await pilot.press("v")
        saved = xdg / "downloads" / "report.pdf"
        await until(pilot, lambda: saved.exists())
    assert saved.read_bytes() == b"%PDF-1.4 test"
    assert private_files._dir is None
