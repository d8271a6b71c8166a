"""A message whose FETCH data the server sent unreadable (per-message isolation: shown from
its raw headers) is marked ``?`` in the list, explained on the help screen, and the reader
says why. A plain-text private Dovecot behind the fault proxy breaks that one response."""

from __future__ import annotations

import imaplib
from collections.abc import Callable
from pathlib import Path

from harness import Dovecot, TcpProxy
from harness.ui import message, synced, until

from kittiwake.core.config import config_from_dict
from kittiwake.tui.app import KittiwakeApp
from kittiwake.tui.screens.help import HelpScreen
from kittiwake.tui.screens.mailbox import MailboxScreen
from kittiwake.tui.screens.reader import DEGRADED, ReaderScreen
from kittiwake.tui.widgets.message_list import MARKS_HELP, MessageList

# Dovecot's first line of message 2's summary, made to open lists it never closes (the rest
# of the response, a References literal and ")", follows it as the server sent it).
BROKEN = b'* 2 FETCH (UID 2 FLAGS (\\Seen) ENVELOPE ("broken" (NIL {2}\r\n'


async def test_the_degraded_message_is_marked_and_explained(
    xdg: Path,
    dovecot_factory: Callable[..., Dovecot],
    proxy_factory: Callable[[str, int], TcpProxy],
) -> None:
    plain = dovecot_factory(tls=False)
    user = plain.add_user("mo")
    device = imaplib.IMAP4(plain.host, plain.ports.imap)
    device.login(user.login, user.password)
    for n in range(1, 4):
        device.append("INBOX", "(\\Seen)", None, message(n))
    device.logout()
    proxy = proxy_factory(plain.host, plain.ports.imap)
    fired = proxy.rewrite_line(b"* 2 FETCH (UID 2 ", BROKEN)
    imap = {
        "host": proxy.host,
        "port": proxy.port,
        "security": "none",
        "user": user.login,
        "password": user.password,
        "timeout": 5,
    }
    config = config_from_dict({"accounts": {"mine": {"email": user.email, "imap": imap}}})
    app = KittiwakeApp(config)
    async with app.run_test(size=(100, 30)) as pilot:
        await synced(app)
        assert fired.is_set()
        screen = app.screen
        assert isinstance(screen, MailboxScreen)
        messages = screen.query_one(MessageList)
        await until(pilot, lambda: len(messages.index) == 3)
        rows = {n: messages.render_line(row).text for row, n in enumerate((3, 2, 1))}
        assert f"Message {2}" in rows[2] and rows[2][3] == "?"
        assert rows[1][3] == " " and rows[3][3] == " "
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        assert isinstance(app.screen, HelpScreen) and MARKS_HELP in app.screen.notes
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is screen)
        await pilot.press("j", "enter")  # the second row: message 2
        await until(pilot, lambda: isinstance(app.screen, ReaderScreen))
        reader = app.screen
        assert isinstance(reader, ReaderScreen) and reader.uid == 2
        headers = reader.query_one("#headers")
        await until(pilot, lambda: "this is message 2." in str(reader.query_one("#body").render()))
        assert f"Note: {DEGRADED}" in str(headers.render())
        await pilot.press("J")  # message 1: no note
        await until(pilot, lambda: reader.uid == 1)
        await until(pilot, lambda: "this is message 1." in str(reader.query_one("#body").render()))
        assert "Note:" not in str(headers.render())
