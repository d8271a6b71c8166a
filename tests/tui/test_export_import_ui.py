"""``E`` exports the selection to an mbox file; "Import into this folder" brings it into
another folder once, also when repeated (the real Dovecot, the app's keys)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from harness import Dovecot, User
from harness.clients import imap_device, imap_fetch_all
from harness.ui import synced, until
from textual.widgets import Input

from kittiwake.core.config import Config
from kittiwake.tui.app import KittiwakeApp
from kittiwake.tui.screens.compose import PathPrompt
from kittiwake.tui.screens.mailbox import MailboxScreen
from kittiwake.tui.widgets.message_list import MessageList


def folder_bytes(dovecot: Dovecot, user: User, folder: str) -> list[bytes]:
    device = imap_device(dovecot, user)
    try:
        return imap_fetch_all(device, folder)
    finally:
        device.logout()


async def test_export_selection_then_import_twice(
    xdg: Path, mailbox: Callable[..., Config], dovecot: Dovecot, user: User
) -> None:
    app = KittiwakeApp(mailbox(6))
    said: list[str] = []
    original = app.notify

    def notify(message: str, **kw: object) -> None:
        said.append(message)
        original(message, **kw)  # type: ignore[arg-type]

    app.notify = notify  # type: ignore[method-assign]
    box = xdg / "three.mbox"
    async with app.run_test(size=(100, 30)) as pilot:
        await synced(app)
        screen = app.screen
        assert isinstance(screen, MailboxScreen)
        messages = screen.query_one(MessageList)
        await until(pilot, lambda: len(messages.index) == 6)
        chosen = set(messages.index[:3])
        await pilot.press("x", "x", "x", "E")
        await until(
            pilot, lambda: isinstance(app.screen, PathPrompt) and bool(app.screen.query(Input))
        )
        app.screen.query_one(Input).value = str(box)
        await pilot.press("enter")
        await until(pilot, lambda: any("Exported 3" in s for s in said), timeout=10)
        for round in (1, 2):
            screen.show_folder("mine", "Work")
            screen.action_import()  # the palette's "Import into this folder"
            await until(
                pilot, lambda: isinstance(app.screen, PathPrompt) and bool(app.screen.query(Input))
            )
            app.screen.query_one(Input).value = str(box)
            await pilot.press("enter")
            await until(pilot, lambda: any("Imported" in s for s in said[-3:]), timeout=15)
            assert said[-1] == (
                "Imported 3 messages into Work"
                if round == 1
                else "Imported 0 messages into Work; 3 already there"
            )
    inbox = folder_bytes(dovecot, user, "INBOX")
    work = folder_bytes(dovecot, user, "Work")
    assert len(work) == 4  # the one it had, and the three once
    device = imap_device(dovecot, user)
    device.select("INBOX", readonly=True)
    uids = sorted(chosen)
    _, data = device.uid("FETCH", ",".join(map(str, uids)), "(BODY.PEEK[])")
    device.logout()
    exported = [item[1] for item in data if isinstance(item, tuple)]
    assert all(raw in work for raw in exported) and all(raw in inbox for raw in exported)
