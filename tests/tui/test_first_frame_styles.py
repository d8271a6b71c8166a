"""What the first screen is styled with is set before its first styling (issue 19): the
mailbox's width classes (set at its mount, the whole screen was styled a second time) and the
footer keys' compactness (each key was made compact, then bound to the footer's, restyled
twice). The screen must look as it did: wide or narrow as the terminal, keys compact exactly
when the footer is, and both follow a resize."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from harness.ui import synced, until
from textual.app import App
from textual.dom import DOMNode
from textual.widgets._footer import FooterKey

from kittiwake.core.config import Config
from kittiwake.tui.app import KittiwakeApp
from kittiwake.tui.screens.mailbox import MailboxScreen
from kittiwake.tui.widgets.folder_tree import FolderTree
from kittiwake.tui.widgets.footer import KeyFooter


def looks(app: KittiwakeApp, width: int) -> None:
    screen = app.screen
    assert isinstance(screen, MailboxScreen)
    narrow = width < 100
    assert screen.has_class("-narrow") is narrow and screen.has_class("-wide") is not narrow
    assert screen.query_one(FolderTree).display is not narrow
    footer = screen.query_one(KeyFooter)
    assert footer.compact is narrow
    keys = [k for k in footer.query(FooterKey) if not k.has_class("-command-palette")]
    assert len(keys) > 5
    for key in keys:
        assert key.compact is narrow and key.has_class("-compact") is narrow, key.description


@pytest.mark.parametrize("width", [100, 80])
async def test_the_first_screen_is_styled_for_its_width_and_follows_a_resize(
    xdg: Path, mailbox: Callable[..., Config], width: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = KittiwakeApp(mailbox(3))
    restyled: list[str] = []  # each restyle of a node and all below it, by the node's class
    update_styles = App.update_styles

    def counting(self: App[None], node: DOMNode, animate: bool = True) -> None:
        palette = node.has_class("-command-palette")
        restyled.append(type(node).__name__ + (" (palette)" if palette else ""))
        update_styles(self, node, animate)

    monkeypatch.setattr(App, "update_styles", counting)
    async with app.run_test(size=(width, 30)) as pilot:
        await synced(app)
        await until(pilot, lambda: len(app.screen.query(FooterKey)) > 5)
        looks(app, width)
        # Once when the screen is shown (Textual's own), never again for its width classes;
        # the keys bound to the footer's compactness are not restyled for it (the palette's
        # key, left as Textual makes it, is once each time the footer is made again).
        assert restyled.count("MailboxScreen") == 1, restyled
        assert "FooterKey" not in restyled, restyled
        other = 80 if width >= 100 else 120
        await pilot.resize_terminal(other, 30)
        await until(pilot, lambda: app.size.width == other)
        await pilot.pause()
        await until(pilot, lambda: len(app.screen.query(FooterKey)) > 5)
        looks(app, other)
        await pilot.resize_terminal(width, 30)
        await until(pilot, lambda: app.size.width == width)
        await pilot.pause()
        await until(pilot, lambda: len(app.screen.query(FooterKey)) > 5)
        looks(app, width)
