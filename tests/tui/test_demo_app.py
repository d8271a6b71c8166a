"""``kittiwake --demo`` as a newcomer meets it: the app on the embedded demo servers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from harness.ui import synced, until

from kittiwake.core.api import MailApi
from kittiwake.core.engine import Engine
from kittiwake.demo import DemoServers
from kittiwake.tui.app import KittiwakeApp
from kittiwake.tui.screens.mailbox import MailboxScreen
from kittiwake.tui.screens.reader import ReaderScreen
from kittiwake.tui.widgets.message_list import MessageList


async def test_demo_opens_on_a_full_inbox_and_reads_mail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with DemoServers(inbox=400) as demo:
        for key, value in demo.xdg_environment().items():
            monkeypatch.setenv(key, value)
        home = os.path.expanduser("~")
        assert not any(v.startswith(home + "/.") for v in demo.xdg_environment().values())
        config = demo.config()
        app = KittiwakeApp(config, MailApi(Engine(config, cache_dir=demo.cache_dir)))
        async with app.run_test(size=(100, 30)) as pilot:
            await synced(app, timeout=60)
            screen = app.screen
            assert isinstance(screen, MailboxScreen)
            messages = screen.query_one(MessageList)
            await until(pilot, lambda: len(messages.index) == 400, timeout=10)
            roles = {f.role for f in app.api.folders("demo") if f.role}
            assert len(roles) >= 6
            await pilot.press("enter")
            await until(
                pilot,
                lambda: isinstance(app.screen, ReaderScreen) and app.screen.parsed is not None,
                timeout=10,
            )
            body = str(app.screen.query_one("#body").render())
            assert body.strip()
