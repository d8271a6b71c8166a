"""The conversation view sorts by the folder's sort choice, against the real Dovecot: for
every order, the conversations come in the order a plain sort of the cache's rows gives
(newest message, latest arrival, first message's sender, first subject, total size, any
unread first), each keeping its thread order; ``O`` there is remembered for the folder and
the message list below follows."""

from __future__ import annotations

from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

from harness import Dovecot, User
from harness.clients import imap_device
from harness.ui import synced, until
from textual.widgets import Input

from kittiwake.core.config import Config
from kittiwake.core.message.dates import sort_date
from kittiwake.core.models import SEEN, MessageSummary
from kittiwake.core.search.order import ALL_ORDERS, SortOrder
from kittiwake.tui.app import KittiwakeApp
from kittiwake.tui.screens.mailbox import MailboxScreen
from kittiwake.tui.screens.pickers import Picker
from kittiwake.tui.screens.thread_view import ConversationsScreen
from kittiwake.tui.widgets.message_list import MessageList

#: (n, sender, subject, day, seen, replies to): four conversations that every key orders
#: differently (apple: m1 m5; banana: m2, large; cherry: m3 m4 m6; date: m7).
MAIL = [
    (1, "Zoe", "apple", 1, False, None),
    (2, "Carl", "banana", 3, True, None),
    (3, "Dora", "cherry", 2, True, None),
    (4, "Ann", "Re: cherry", 5, True, 3),
    (5, "Bob", "Re: apple", 7, True, 1),
    (6, "Eve", "Re: cherry", 4, False, 3),
    (7, "Fay", "date", 6, True, None),
]


def fill(dovecot: Dovecot, user: User) -> None:
    device = imap_device(dovecot, user)
    for n, sender, subject, day, seen, parent in MAIL:
        msg = EmailMessage()
        msg["From"] = f"{sender} <{sender.lower()}@example.org>"
        msg["To"] = "Me <me@example.test>"
        msg["Subject"] = subject
        msg["Message-ID"] = f"<conv{n}@example.org>"
        if parent is not None:
            msg["In-Reply-To"] = f"<conv{parent}@example.org>"
            msg["References"] = f"<conv{parent}@example.org>"
        msg["Date"] = f"Sat, 0{day} Mar 2025 10:00:00 +0000"
        msg.set_content(f"message {n}\n" + ("x" * 70 + "\n") * (60 if n == 2 else 1))
        device.append("INBOX", "(\\Seen)" if seen else "", None, msg.as_bytes())
    device.logout()


def shown(screen: ConversationsScreen) -> list[list[int]]:
    """The conversations on screen, each as its UIDs in row order."""
    threading = screen.results().threading
    assert threading is not None
    out = []
    for info in threading.threads:
        rows = threading.keys[info.first_row : info.first_row + info.rows]
        out.append([uid for _, uid in (k for k in rows if k is not None)])
    return out


def expected(app: KittiwakeApp, threads: list[list[int]], order: SortOrder) -> list[list[int]]:
    """The same conversations sorted here, by plain Python over the cache's summaries."""
    rows = app.api.summaries("mine", "INBOX", [u for t in threads for u in t])

    def members(t: list[int]) -> list[MessageSummary]:
        return [rows[u] for u in t]

    def newest(t: list[int]) -> MessageSummary:
        return max(members(t), key=lambda s: (sort_date(s), s.uid))

    def oldest(t: list[int]) -> MessageSummary:
        return min(members(t), key=lambda s: (sort_date(s), s.uid))

    def subject(t: list[int]) -> str:
        return oldest(t).envelope.subject.removeprefix("Re: ").casefold()

    def sender(t: list[int]) -> str:  # the one the conversation's row shows
        first = oldest(t).envelope.from_[0]
        return (first.name or first.addr).casefold()

    keys: dict[str, Callable[[list[int]], object]] = {
        "date": lambda t: sort_date(newest(t)),
        "arrival": lambda t: max(t),
        "sender": sender,
        "subject": subject,
        "size": lambda t: sum(s.size for s in members(t)),
    }
    by_date = sorted(threads, key=keys["date"], reverse=True)
    if order.key == "unread":
        base = by_date if order.descending else by_date[::-1]
        return sorted(base, key=lambda t: all(SEEN in s.flags for s in members(t)))
    return sorted(by_date, key=keys[order.key], reverse=order.descending)


async def test_every_order_sorts_the_conversations_and_is_remembered(
    xdg: Path, mailbox: Callable[..., Config], dovecot: Dovecot, user: User
) -> None:
    config = mailbox(0)
    fill(dovecot, user)
    app = KittiwakeApp(config)
    async with app.run_test(size=(100, 30)) as pilot:
        await synced(app)
        messages = app.screen.query_one(MessageList)
        assert isinstance(app.screen, MailboxScreen)
        await until(pilot, lambda: len(messages.index) == 7)
        await pilot.press("t")
        await until(pilot, lambda: isinstance(app.screen, ConversationsScreen))
        screen = app.screen
        assert isinstance(screen, ConversationsScreen)
        await until(pilot, lambda: screen.results().threading is not None)
        threads = shown(screen)
        assert sorted(map(sorted, threads)) == [[1, 5], [2], [3, 4, 6], [7]]
        assert threads == expected(app, threads, SortOrder())
        seen_orders = set()
        for order in ALL_ORDERS:
            screen.action_sort(order.code)  # the palette's commands call this
            want = expected(app, threads, order)
            await until(pilot, lambda want=want: shown(screen) == want)  # type: ignore[misc]
            assert [3, 6, 4] in shown(screen)  # inside: thread order (replies by date)
            assert app.api.sort_order("mine", "INBOX") == order == messages.order
            seen_orders.add(tuple(tuple(t) for t in want))
        assert len(seen_orders) >= 8  # the mail tells the keys apart
        titles = [c.title for c in app.get_system_commands(screen)]
        assert sum(t.startswith("Sort: ") for t in titles) == 12  # the palette offers each
        # O opens the picker here too; the choice is the folder's.
        await pilot.press("O")
        await until(pilot, lambda: isinstance(app.screen, Picker) and bool(app.screen.query(Input)))
        app.screen.query_one(Input).value = "Sender, A to Z"
        await pilot.press("enter")
        want = expected(app, threads, SortOrder("sender", False))
        await until(pilot, lambda: app.screen is screen and shown(screen) == want)
        assert messages.order == SortOrder("sender", False)
    # A new run opens the conversations in the order chosen.
    app = KittiwakeApp(config)
    async with app.run_test(size=(100, 30)) as pilot:
        await synced(app)
        await pilot.press("t")
        await until(pilot, lambda: isinstance(app.screen, ConversationsScreen))
        screen = app.screen
        assert isinstance(screen, ConversationsScreen)
        await until(pilot, lambda: screen.results().threading is not None)
        assert shown(screen) == want
