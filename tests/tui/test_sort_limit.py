"""Sorting, limiting and "mark all read" in the message list, against the real Dovecot: each
order matches a sort of the cache's rows, is remembered for the folder, and after ``l`` the
triage keys act only on what is shown."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from harness import Dovecot, User
from harness.clients import imap_device
from harness.ui import message, synced, until
from rich.cells import cell_len
from textual.widgets import Input

from kittiwake.core.config import Config
from kittiwake.core.imap import client as imap_client
from kittiwake.core.models import FLAGGED, SEEN
from kittiwake.core.search.order import ALL_ORDERS, SortOrder
from kittiwake.tui.app import KittiwakeApp
from kittiwake.tui.screens.mailbox import MailboxScreen
from kittiwake.tui.screens.pickers import Picker
from kittiwake.tui.screens.prompt import Prompt
from kittiwake.tui.widgets.message_list import MessageList

SUBJECTS = ["Re: banana", "apple", "Cherry pie", "Fwd: apple cake", "date", "Elder"]


def the_list(app: KittiwakeApp) -> MessageList:
    return next(s for s in app.screen_stack if isinstance(s, MailboxScreen)).query_one(MessageList)


def expected(app: KittiwakeApp, order: SortOrder) -> list[int]:
    """The same order, computed here from the cache's summaries with plain Python sorts."""
    api = app.api
    uids = api.engine.stores["mine"].cache.uids("INBOX")
    rows = list(api.summaries("mine", "INBOX", uids).values())
    newest = sorted(rows, key=lambda s: (s.envelope.date, s.uid), reverse=True)

    def subject(s):  # type: ignore[no-untyped-def]
        text = s.envelope.subject
        while text[:4].lower() in ("re: ", "fwd:"):
            text = text.split(":", 1)[1].strip()
        return text.casefold()

    keys = {
        "date": lambda s: (s.envelope.date, s.uid),
        "arrival": lambda s: s.uid,
        "sender": lambda s: (s.envelope.from_[0].name or s.envelope.from_[0].addr).casefold(),
        "subject": subject,
        "size": lambda s: s.size,
    }
    if order.key == "unread":
        base = newest if order.descending else newest[::-1]
        return [s.uid for s in sorted(base, key=lambda s: SEEN in s.flags)]
    if order.key in ("date", "arrival"):
        return [s.uid for s in sorted(rows, key=keys[order.key], reverse=order.descending)]
    return [s.uid for s in sorted(newest, key=keys[order.key], reverse=order.descending)]


def fill(dovecot: Dovecot, user: User) -> None:
    device = imap_device(dovecot, user)
    for n, subject in enumerate(SUBJECTS * 3, start=1):
        flags = "(\\Seen)" if n % 4 else ""
        device.append("INBOX", flags, None, message(n, subject, attach=n % 5 == 0))
    device.logout()


async def test_every_order_matches_the_cache_and_is_remembered(
    xdg: Path, mailbox: Callable[..., Config], dovecot: Dovecot, user: User
) -> None:
    config = mailbox(0)
    fill(dovecot, user)
    app = KittiwakeApp(config)
    async with app.run_test(size=(100, 30)) as pilot:
        await synced(app)
        messages = the_list(app)
        await until(pilot, lambda: len(messages.index) == 18)
        for order in ALL_ORDERS:
            app.screen.action_sort(order.code)  # the palette's commands call this
            await pilot.pause()
            assert list(messages.index) == expected(app, order), order
        # O opens the picker; choosing "Sender, A to Z" sorts by it.
        await pilot.press("O")
        await until(pilot, lambda: isinstance(app.screen, Picker) and bool(app.screen.query(Input)))
        app.screen.query_one(Input).value = "Sender, A to Z"
        await pilot.press("enter")
        await until(pilot, lambda: messages.order == SortOrder("sender", False))
        assert list(messages.index) == expected(app, SortOrder("sender", False))
        assert "sorted: Sender, A to Z" in str(app.screen.query_one("#status").render())
    # A new run shows INBOX in the order chosen.
    app = KittiwakeApp(config)
    async with app.run_test(size=(100, 30)) as pilot:
        messages = the_list(app)
        await until(pilot, lambda: len(messages.index) == 18)
        assert messages.order == SortOrder("sender", False)
        assert list(messages.index) == expected(app, SortOrder("sender", False))


async def test_limit_then_triage_acts_only_on_shown_messages(
    xdg: Path, mailbox: Callable[..., Config], dovecot: Dovecot, user: User
) -> None:
    config = mailbox(0)
    fill(dovecot, user)
    app = KittiwakeApp(config)
    async with app.run_test(size=(100, 30)) as pilot:
        await synced(app)
        messages = the_list(app)
        await until(pilot, lambda: len(messages.index) == 18)
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, Prompt) and bool(app.screen.query(Input)))
        app.screen.query_one(Input).value = "subject:apple"
        await pilot.press("enter")
        await until(pilot, lambda: len(messages.index) == 6)
        apples = set(messages.index)
        rows = app.api.summaries("mine", "INBOX", list(apples))
        assert all("apple" in s.envelope.subject for s in rows.values())
        # Select all, flag: only the six shown are flagged; M marks only them read.
        await pilot.press("asterisk", "s")
        await pilot.press("M")
        await app.api.engine.imap["mine"].flush_actions()
        everything = app.api.summaries("mine", "INBOX", app.api.message_index("mine", "INBOX"))
        flagged = {u for u, s in everything.items() if FLAGGED in s.flags}
        unread = {u for u, s in everything.items() if SEEN not in s.flags}
        assert flagged == apples
        assert unread and not unread & apples
        # An empty limit shows all again.
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, Prompt) and bool(app.screen.query(Input)))
        app.screen.query_one(Input).value = ""
        await pilot.press("enter")
        await until(pilot, lambda: len(messages.index) == 18)
    # The server has it too.
    device = imap_device(dovecot, user)
    device.select("INBOX", readonly=True)
    _, data = device.uid("SEARCH", "FLAGGED")
    device.logout()
    assert {int(u) for u in data[0].split()} == apples


async def test_a_limit_first_indexes_what_the_first_sync_left_unindexed(
    xdg: Path,
    mailbox: Callable[..., Config],
    dovecot: Dovecot,
    user: User,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A folder nobody looked at during the first sync comes in bulk, and the decode pass
    leaves its search index to the first search: a limit there builds it first (in batches,
    the list answering keys between them), then shows exactly the matches."""
    monkeypatch.setattr(imap_client, "LAZY_MIN", 5)  # bulk batches from 5 messages on
    config = mailbox(0)
    device = imap_device(dovecot, user)
    device.create("Lists")
    device.subscribe("Lists")
    for n, subject in enumerate(SUBJECTS * 2, start=1):
        device.append("Lists", "", None, message(n, subject))
    device.logout()
    app = KittiwakeApp(config)
    async with app.run_test(size=(100, 30)) as pilot:
        await synced(app)
        account = app.api.engine.imap["mine"]
        await account.wait_decoded(15)
        assert account.cache.deferred("Lists") == 12
        screen = next(s for s in app.screen_stack if isinstance(s, MailboxScreen))
        screen.show_folder("mine", "Lists")
        messages = the_list(app)
        await until(pilot, lambda: messages.folder == "Lists" and len(messages.index) == 12)
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, Prompt) and bool(app.screen.query(Input)))
        app.screen.query_one(Input).value = "subject:apple"
        await pilot.press("enter")
        await until(pilot, lambda: len(messages.index) == 4)
        rows = app.api.summaries("mine", "Lists", list(messages.index))
        assert all("apple" in s.envelope.subject for s in rows.values())
        assert account.cache.deferred("Lists") == 0
        told = [n.message for n in app._notifications]
        assert "Indexing 12 messages for the search…" in told


async def test_palette_sorts_and_offers_the_tools(
    xdg: Path, mailbox: Callable[..., Config]
) -> None:
    from textual.command import CommandList

    app = KittiwakeApp(mailbox(4, pipe={"am": {"command": "git am -3 [x]"}}))
    async with app.run_test(size=(100, 30)) as pilot:
        await synced(app)
        messages = the_list(app)
        await until(pilot, lambda: len(messages.index) == 4)

        def first_offer(words: str) -> bool:
            lists = app.screen.query(CommandList)
            if not lists or lists.first().option_count == 0:
                return False
            return words in str(lists.first().get_option_at_index(0).prompt)

        await pilot.press("ctrl+p", *"pipe: am")
        await until(pilot, lambda: first_offer("Pipe: am"))
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, MailboxScreen))
        await pilot.press("ctrl+p", *"sort: size, smallest")
        await until(pilot, lambda: first_offer("Size, smallest first"))
        await pilot.press("enter")
        await until(pilot, lambda: messages.order == SortOrder("size", False))
        assert list(messages.index) == expected(app, SortOrder("size", False))


async def test_at_80_columns_the_status_line_keeps_the_limit_and_the_sort(
    xdg: Path, mailbox: Callable[..., Config], dovecot: Dovecot, user: User
) -> None:
    """What changes what the list shows (a limit, a sort order, a selection) must be read
    at 80x24; the account, the unread count and "online" give way first."""
    config = mailbox(0)
    fill(dovecot, user)
    app = KittiwakeApp(config)
    async with app.run_test(size=(80, 24)) as pilot:
        await synced(app)
        messages = the_list(app)
        await until(pilot, lambda: len(messages.index) == 18)
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, Prompt) and bool(app.screen.query(Input)))
        app.screen.query_one(Input).value = "subject:apple OR subject:cherry"
        await pilot.press("enter")
        await until(pilot, lambda: len(messages.index) == 9)
        app.screen.action_sort(SortOrder("arrival", False).code)
        await pilot.press("asterisk")
        status = app.screen.query_one("#status")

        def line() -> str:
            return str(status.render())

        await until(pilot, lambda: "9 selected" in line())
        text = line()
        assert text.startswith("INBOX · ") and cell_len(text) <= 78, text
        assert "limit: subject:apple OR subjec… (9)" in text, text
        assert "sort: arrival ↑" in text, text
        # Wider, everything is said in full.
        await pilot.resize_terminal(160, 30)
        await until(pilot, lambda: "sorted: Arrival, first arrived first" in line())
        assert line() == (
            "mine · INBOX · 18 messages · 4 unread · limit: subject:apple OR subject:cherry"
            " (9 shown) · sorted: Arrival, first arrived first · 9 selected · online"
        )
