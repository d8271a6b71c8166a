"""Moving to a folder typed as new while offline: the creation and the move wait in the journal
together, survive quitting, and reach the server in order on the next start."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from harness import Dovecot
from harness.clients import imap_device, imap_fetch_all
from harness.ui import app_config, message, synced, until

from kittiwake.core.events import ConnState
from kittiwake.tui.app import KittiwakeApp
from kittiwake.tui.screens.mailbox import MailboxScreen
from kittiwake.tui.widgets.message_list import MessageList


def list_of(app: KittiwakeApp) -> MessageList:
    mailbox = next(s for s in app.screen_stack if isinstance(s, MailboxScreen))
    return mailbox.query_one(MessageList)


@pytest.mark.parametrize("made_elsewhere", [False, True])
async def test_a_move_to_a_new_folder_made_offline_is_kept_and_sent_on_the_next_start(
    xdg: Path, dovecot_factory: Callable[..., Dovecot], made_elsewhere: bool
) -> None:
    server = dovecot_factory()
    user = server.add_user("nia")
    device = imap_device(server, user)
    for n in (1, 2, 3):
        device.append("INBOX", "", None, message(n))
    device.logout()
    config = app_config(server, user)
    app = KittiwakeApp(config)
    async with app.run_test(size=(100, 30)) as pilot:
        await synced(app)
        messages = list_of(app)
        await until(pilot, lambda: len(messages.index) == 3)
        server.stop()
        imap = app.api.engine.imap["mine"]
        await until(pilot, lambda: imap.state is ConnState.OFFLINE)
        await pilot.press("g", "m", *"Projects", "enter")  # Message 3: "Create folder …"
        await until(pilot, lambda: len(messages.index) == 2)
        assert app.api.pending_actions("mine") == 2  # the creation, then the move
    server.start()
    if made_elsewhere:  # another device made it meanwhile: creating it again counts as done
        other = imap_device(server, user)
        other.create("Projects")
        other.logout()
    app = KittiwakeApp(config)
    async with app.run_test(size=(100, 30)) as pilot:
        await synced(app)
        await app.api.engine.imap["mine"].flush_actions()
        assert app.api.pending_actions("mine") == 0
        await until(pilot, lambda: any(f.name == "Projects" for f in app.api.folders("mine")))
    device = imap_device(server, user)
    assert len(imap_fetch_all(device, "Projects")) == 1
    assert len(imap_fetch_all(device, "INBOX")) == 2
