"""Helpers for TUI tests: generated mail, app configs, and waiting for the screen."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from kittiwake.core.config import Config, config_from_dict

from .dovecot import Dovecot, User

SENDERS = [
    "Ann Lee <ann@example.org>",
    "Jörg Müller <jm@example.de>",
    "Zoë Martin <zoe@example.fr>",
]


def message(
    n: int, subject: str | None = None, *, attach: bool = False, day: int | None = None
) -> bytes:
    msg = EmailMessage()
    msg["From"] = SENDERS[n % len(SENDERS)]
    msg["To"] = "Me <me@example.test>"
    msg["Subject"] = subject if subject is not None else f"Message {n}"
    msg["Message-ID"] = f"<tui{n}@example.org>"
    # Old, distinct, increasing dates: the list shows full dates, stable for snapshots.
    when = datetime(2025, 3, 1, tzinfo=UTC) + timedelta(hours=day * 24 if day is not None else n)
    msg["Date"] = format_datetime(when)
    msg.set_content(
        f"Hello,\n\nthis is message {n}.\n\n> quoted once\n>> quoted twice\n\n"
        f"Details: https://example.org/m/{n}\n-- \nAnn\n"
    )
    if attach:
        msg.add_attachment(
            b"%PDF-1.4 test", maintype="application", subtype="pdf", filename="report.pdf"
        )
    return msg.as_bytes()


def app_config(dovecot: Dovecot, user: User, **extra: Any) -> Config:
    data: dict[str, Any] = {
        "accounts": {
            "mine": {
                "email": user.email,
                "name": "Me",
                "imap": {
                    "host": dovecot.host,
                    "port": dovecot.ports.imaps,
                    "user": user.login,
                    "password": user.password,
                    "ca_file": str(dovecot.ca_file),
                    "timeout": 5,
                },
            }
        },
        **extra,
    }
    return config_from_dict(data)


async def until(pilot: Any, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait until the screen reflects a change (checked after each message-processing pass)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("the screen did not reach the expected state in time")
        await pilot.pause(0.02)


async def synced(app: Any, timeout: float = 15.0) -> None:
    """The engine has finished its first full sync of every account."""
    for account in app.api.engine.imap.values():
        await account.wait_synced(timeout)


def screen_text(app: Any) -> str:
    """What the terminal shows now, as plain text (one line per row)."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


class Terminal:
    """The cells a terminal shows, kept from the frames the app hands it (``App._display``):
    starts as the screen is now, then takes each update as a terminal would. A widget that
    changes without asking for the right rows to be repainted leaves this behind what
    ``expected()`` (the whole screen drawn afresh) shows."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.rows = [self._cells(strip) for strip in app.screen._compositor.render_strips()]
        display = app._display

        def recorded(screen: Any, update: Any) -> None:
            if update is not None and screen is app.screen:
                self._apply(update)
            display(screen, update)

        app._display = recorded

    @staticmethod
    def _cells(segments: Any) -> list[tuple[str, Any]]:
        from rich.cells import cell_len

        cells: list[tuple[str, Any]] = []
        for segment in segments:
            if segment.control:
                continue
            for char in segment.text:
                cells += [(char, segment.style)] + [("", segment.style)] * (cell_len(char) - 1)
        return cells

    def _apply(self, update: Any) -> None:
        from rich.segment import ControlType

        console = self.app.console
        x = y = 0
        for segment in update.__rich_console__(console, console.options):
            if segment.control:
                for code in segment.control:
                    if code[0] == ControlType.CURSOR_MOVE_TO:
                        x, y = code[1], code[2]
                continue
            if segment.text == "\n":
                continue
            cells = self._cells([segment])
            while len(self.rows) <= y:
                self.rows.append([])
            row = self.rows[y]
            row.extend([(" ", None)] * (x + len(cells) - len(row)))
            row[x : x + len(cells)] = cells
            x += len(cells)

    def expected(self) -> list[list[tuple[str, Any]]]:
        """The screen drawn afresh from every widget, as the same cells."""
        for widget in self.app.screen._compositor.visible_widgets:
            widget._styles_cache.clear()  # (Textual's lines kept from earlier frames)
        return [self._cells(strip) for strip in self.app.screen._compositor.render_strips()]

    def shows(self) -> bool:
        """The terminal shows what the app's widgets draw now."""
        return self.rows[: len(self.expected())] == self.expected()

    def text(self, y: int) -> str:
        return "".join(char for char, _ in self.rows[y])
