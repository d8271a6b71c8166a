"""A POP3 account in the app, against the real Dovecot: its local folders in the sidebar, its
inbox in the list, ctrl+r downloads new mail, the status bar says when the next check is."""

from __future__ import annotations

import smtplib
from pathlib import Path

from harness import Dovecot, User
from harness.ui import message, until

from kittiwake.core.config import Config, config_from_dict
from kittiwake.tui.app import KittiwakeApp
from kittiwake.tui.screens.help import HelpScreen
from kittiwake.tui.screens.mailbox import MailboxScreen
from kittiwake.tui.widgets.folder_tree import FolderTree
from kittiwake.tui.widgets.message_list import MessageList


def deliver(dovecot: Dovecot, user: User, numbers: range) -> None:
    with smtplib.LMTP(dovecot.host, dovecot.ports.lmtp, timeout=60) as lmtp:
        for n in numbers:
            assert not lmtp.sendmail("ann@example.org", [user.email], message(n))


def pop3_config(dovecot: Dovecot, user: User) -> Config:
    return config_from_dict(
        {
            "accounts": {
                "home": {
                    "email": user.email,
                    "name": "Home",
                    "pop3": {
                        "host": dovecot.host,
                        "port": dovecot.ports.pop3s,
                        "user": user.login,
                        "password": user.password,
                        "ca_file": str(dovecot.ca_file),
                        "timeout": 5,
                        "check_every": "10m",
                    },
                }
            }
        }
    )


def tree_labels(app: KittiwakeApp) -> list[str]:
    tree = app.screen.query_one(FolderTree)
    return [str(node.label) for node in tree.root.children[0].children]


async def test_pop3_inbox_in_the_sidebar_and_list_and_ctrl_r_checks(
    xdg: Path, dovecot: Dovecot, user: User
) -> None:
    deliver(dovecot, user, range(1, 6))
    app = KittiwakeApp(pop3_config(dovecot, user))
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.screen
        assert isinstance(screen, MailboxScreen)
        messages = screen.query_one(MessageList)
        await until(pilot, lambda: len(messages.index) == 5, timeout=15)
        assert "Message 5" in messages.render_line(0).text
        # The tree hears the count apart from the list's messages (each node has its queue).
        await until(
            pilot, lambda: tree_labels(app) == ["Inbox (5)", "Drafts", "Sent", "Archive", "Trash"]
        )
        status = screen.query_one("#status")
        await until(
            pilot,
            lambda: (
                str(status.render()).startswith("home · INBOX · 5 messages · 5 unread")
                and "next check in 10 min" in str(status.render())
            ),
        )

        deliver(dovecot, user, range(6, 7))
        await pilot.press("ctrl+r")
        await until(pilot, lambda: len(messages.index) == 6, timeout=15)
        assert "Message 6" in messages.render_line(0).text
        await until(pilot, lambda: tree_labels(app)[0] == "Inbox (6)")

        await pilot.press("enter")  # reading marks it read, in the file name too
        await pilot.press("escape")
        await until(pilot, lambda: tree_labels(app)[0] == "Inbox (5)")
        local = app.api.engine.local["home"]
        await local.flush_actions()
        assert any(m.filename.endswith(":2,S") for m in local.maildir.messages("INBOX"))

        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        assert ("^r", "Check for new mail", "mailbox.refresh") in app.screen.rows
