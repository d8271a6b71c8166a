"""A message that may have been delivered (an earlier run was killed after the final dot) is
shown, not sent again by itself, and the user decides from the palette."""

from __future__ import annotations

from dataclasses import replace
from email.message import EmailMessage
from pathlib import Path

from harness import Dovecot, Postfix, User, wait_for_messages
from harness.ui import synced, until
from textual.command import CommandPalette
from textual.widgets import OptionList

from kittiwake.core.config import Config, config_from_dict
from kittiwake.core.smtp.outbox import ItemState, Outbox
from kittiwake.tui.app import KittiwakeApp
from kittiwake.tui.screens.confirm import Confirm
from kittiwake.tui.widgets.status_bar import StatusBar


def config_for(dovecot: Dovecot, postfix: Postfix, user: User) -> Config:
    server = {"user": user.login, "password": user.password, "ca_file": str(dovecot.ca_file)}
    return config_from_dict(
        {
            "accounts": {
                "mine": {
                    "email": user.email,
                    "imap": {"host": dovecot.host, "port": dovecot.ports.imaps, **server},
                    "smtp": {
                        "host": postfix.host,
                        "port": postfix.ports.submission,
                        "security": "starttls",
                        **server,
                    },
                }
            }
        }
    )


def left_sending(user: User, to: User) -> str:
    """What a run killed between the final dot and the server's reply leaves in the outbox."""
    msg = EmailMessage()
    msg["From"] = user.email
    msg["To"] = to.email
    msg["Subject"] = "Did it [b]go?"
    msg["Message-ID"] = "<maybe@example.test>"
    msg.set_content("hello\n")
    outbox = Outbox("mine")
    item = outbox.enqueue(
        msg.as_bytes(), user.email, [to.email], message_id="<maybe@example.test>", save_sent=False
    )
    outbox.save(replace(item, sending=True))
    return item.id


async def test_may_have_been_delivered_is_shown_and_sent_again_only_when_asked(
    xdg: Path, dovecot: Dovecot, postfix: Postfix, user: User, user2: User
) -> None:
    left_sending(user, user2)
    app = KittiwakeApp(config_for(dovecot, postfix, user))
    async with app.run_test(size=(100, 30), notifications=True) as pilot:
        await synced(app)
        await until(
            pilot,
            lambda: app.api.outbox_status().describe() == "1 may have been delivered",
            timeout=15,
        )
        bar = app.screen.query_one(StatusBar)
        await until(pilot, lambda: "1 may have been delivered" in str(bar.render()))
        (item,) = app.api.engine.outboxes["mine"].outbox.items()
        assert item.state is ItemState.UNCERTAIN  # kept, not sent again by itself

        def hits() -> list[str]:
            palette = app.screen
            if not isinstance(palette, CommandPalette):
                return []
            options = palette.query_one(OptionList)
            return [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]

        await pilot.press("ctrl+p", *"outbox")
        await until(pilot, lambda: len([h for h in hits() if "Outbox:" in h]) == 2)
        assert any(
            "send again message that may have been delivered “Did it (b)go?”" in h for h in hits()
        )
        await pilot.press("ctrl+u", *"outbox send again")
        await until(pilot, lambda: bool(hits()) and "send again" in hits()[0])
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, Confirm))
        await pilot.press("y")
        await until(pilot, lambda: app.api.engine.outboxes["mine"].outbox.items() == [], timeout=30)
        (got,) = wait_for_messages(dovecot, user2, 1, timeout=30)
        assert b"<maybe@example.test>" in got
        await until(pilot, lambda: app.api.outbox_status().describe() == "")
