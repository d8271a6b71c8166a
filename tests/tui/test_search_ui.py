"""``/`` as a user drives it, against the real Dovecot: a malformed query is explained in the
prompt, results from the cache and the server show, triage works on them, escape returns."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from harness.ui import synced, until
from textual.widgets import Input, Static

from kittiwake.core.api import Hit
from kittiwake.core.config import Config
from kittiwake.core.models import FLAGGED
from kittiwake.tui.app import KittiwakeApp
from kittiwake.tui.screens.compose import PathPrompt
from kittiwake.tui.screens.help import HelpScreen
from kittiwake.tui.screens.mailbox import MailboxScreen
from kittiwake.tui.screens.search import SearchPrompt, SearchScreen
from kittiwake.tui.screens.thread_reader import ResultReaderScreen
from kittiwake.tui.widgets.thread_list import ThreadList


async def ask(pilot: object, app: KittiwakeApp, query: str, *, everywhere: bool = False) -> None:
    """Type ``query`` into the open search prompt and submit it."""
    prompt = app.screen
    assert isinstance(prompt, SearchPrompt)
    prompt.query_one(Input).value = query
    if everywhere:
        await pilot.press("tab")  # type: ignore[attr-defined]
    await pilot.press("enter")  # type: ignore[attr-defined]


async def test_search_shows_results_triage_and_escape(
    xdg: Path, mailbox: Callable[..., Config]
) -> None:
    app = KittiwakeApp(mailbox(30))
    async with app.run_test(size=(100, 30)) as pilot:
        await synced(app)
        await pilot.press("slash")
        await until(pilot, lambda: isinstance(app.screen, SearchPrompt))
        # A malformed query: the sentence under the prompt, which stays open to be fixed.
        await ask(pilot, app, "from: (")
        prompt = app.screen
        assert isinstance(prompt, SearchPrompt)
        error = str(prompt.query_one("#search-error", Static).render())
        assert error == "from: at column 1 needs a value right after the colon, as in from:ann."
        # No body is cached: the body words are found by the server, and said so.
        await ask(pilot, app, 'body:"this is message 7"')
        await until(pilot, lambda: isinstance(app.screen, SearchScreen))
        screen = app.screen
        assert isinstance(screen, SearchScreen)
        results = screen.query_one(ThreadList)
        await until(pilot, lambda: "(1 from the server)" in screen.title_text)
        assert results.hits == [Hit("INBOX", 7)]
        assert "Message 7" in results.render_line(0).text
        assert screen.title_text.startswith('Search body:"this is message 7" · INBOX · 1 result')
        # A triage key acts on the result, and the row shows it.
        await pilot.press("s")
        api = app.api
        await until(pilot, lambda: FLAGGED in api.summaries("mine", "INBOX", [7])[7].flags)
        await until(pilot, lambda: results.render_line(0).text[1] == "!")
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, MailboxScreen))


async def test_search_all_folders_and_help(xdg: Path, mailbox: Callable[..., Config]) -> None:
    app = KittiwakeApp(mailbox(12))
    async with app.run_test(size=(80, 24)) as pilot:
        await synced(app)
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        shown = " ".join(str(w.render()) for w in app.screen.query(Static))
        assert "is:unread" in shown and "has:attachment" in shown
        await pilot.press("escape")
        await pilot.press("slash")
        await until(pilot, lambda: isinstance(app.screen, SearchPrompt))
        await ask(pilot, app, "work OR subject:message-3", everywhere=True)
        await until(pilot, lambda: isinstance(app.screen, SearchScreen))
        screen = app.screen
        assert isinstance(screen, SearchScreen) and screen.folder is None
        results = screen.query_one(ThreadList)
        await until(pilot, lambda: "searching" not in screen.title_text)
        assert set(results.hits) == {Hit("Work", 1), Hit("INBOX", 3)}
        lines = [results.render_line(n).text for n in range(2)]
        assert any("Work item" in line and "Work" in line.split("Work item")[1] for line in lines)
        # Moving a result out of its folder takes it off the list.
        target = results.current_hit
        assert target is not None
        await pilot.press("d")  # to Trash
        await until(pilot, lambda: target not in results.hits)
        assert len(results.hits) == 1
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, MailboxScreen))


async def test_triage_across_folders_is_one_undo_step(
    xdg: Path, mailbox: Callable[..., Config]
) -> None:
    app = KittiwakeApp(mailbox(12))
    async with app.run_test(size=(100, 30)) as pilot:
        await synced(app)
        api = app.api
        await pilot.press("slash")
        await until(pilot, lambda: isinstance(app.screen, SearchPrompt))
        await ask(pilot, app, "work OR subject:message-3", everywhere=True)
        await until(pilot, lambda: isinstance(app.screen, SearchScreen))
        screen = app.screen
        assert isinstance(screen, SearchScreen)
        results = screen.query_one(ThreadList)
        await until(pilot, lambda: "searching" not in screen.title_text)
        assert set(results.hits) == {Hit("Work", 1), Hit("INBOX", 3)}
        await pilot.press("asterisk", "d")  # both, each from its folder, to Trash
        await until(pilot, lambda: not results.hits)
        assert screen.title_text.startswith("Search work OR subject:message-3 · all folders · 0")
        await until(pilot, lambda: api.counts("mine", "Trash")[0] == 2)  # once moved
        await pilot.press("z")  # one key, one step: both come back
        await until(
            pilot,
            lambda: api.counts("mine", "INBOX")[0] == 12 and api.counts("mine", "Work")[0] == 1,
        )
        assert api.counts("mine", "Trash")[0] == 0
        assert api.undo() == "Nothing to undo"


async def test_a_result_reads_like_the_reader_and_all_folders_say_where(
    xdg: Path, mailbox: Callable[..., Config]
) -> None:
    """A search of every folder names each hit's folder, even when all are in one; ``enter``
    reads the result with the reader's keys (attachments listed, S saves, H headers), and
    J/K go to the next and previous result."""
    app = KittiwakeApp(mailbox(12))
    async with app.run_test(size=(80, 24)) as pilot:
        await synced(app)
        await pilot.press("slash")
        await until(pilot, lambda: isinstance(app.screen, SearchPrompt))
        await ask(pilot, app, "subject:message-10 OR subject:message-7", everywhere=True)
        await until(pilot, lambda: isinstance(app.screen, SearchScreen))
        screen = app.screen
        assert isinstance(screen, SearchScreen)
        results = screen.query_one(ThreadList)
        await until(pilot, lambda: "searching" not in screen.title_text)
        assert results.hits == [Hit("INBOX", 10), Hit("INBOX", 7)]
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ResultReaderScreen))
        reader = app.screen
        assert isinstance(reader, ResultReaderScreen)
        await until(pilot, lambda: len(reader.parts()) == 1)
        part = reader.parts()[0]
        await until(pilot, lambda: "report.pdf" in str(part.render()))
        assert "this is message 10." in str(part.render())
        title = str(reader.query_one("#thread-title").render())
        assert title == "Message 10 · INBOX · result 1 of 2"
        await pilot.press("S")
        await until(pilot, lambda: isinstance(app.screen, PathPrompt))
        await pilot.press("enter")  # the download directory, offered
        downloads = xdg / "downloads"
        await until(pilot, lambda: (downloads / "report.pdf").exists())
        await pilot.press("H")
        await until(pilot, lambda: "Message-ID: <tui10@example.org>" in str(part.render()))
        await pilot.press("J")
        await until(pilot, lambda: reader.hits == [Hit("INBOX", 7)])
        assert results.cursor == 1
        await until(pilot, lambda: "this is message 7." in str(reader.parts()[0].render()))
        await pilot.press("J")  # the last result: it stays
        assert reader.hits == [Hit("INBOX", 7)] and results.cursor == 1
        await pilot.press("K")
        await until(pilot, lambda: reader.hits == [Hit("INBOX", 10)])
        # The help: the reader's keys; no thread to move in or fold, so no n/p/enter.
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        help_screen = app.screen
        assert isinstance(help_screen, HelpScreen)
        assert help_screen.title_text == "Keys: reading a search result"
        rows = {row[2]: row for row in help_screen.rows}
        assert {"compose.reply", "compose.forward", "reader.save", "reader.headers"} <= set(rows)
        assert rows["thread.next_in_list"][:2] == ("J", "Next")
        assert not {"thread.next", "thread.previous", "thread.toggle"} & set(rows)
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is reader)
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is screen)
        # Every hit is in the INBOX, and the results say so (the search spans every folder).
        assert "INBOX" in results.render_line(0).text.split("Message 10")[1]
