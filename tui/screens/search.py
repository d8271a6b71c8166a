"""``/``: the search prompt and the results view.

The prompt checks the query as it is submitted: a malformed one keeps the prompt open with
the parser's sentence under it (and a notification), never an empty list that pretends
nothing matched. ``tab`` in the prompt switches between the folder and every folder of the
account. Results from the cache show at once; the server's additions are appended while the
title says "searching server…". Every triage key works on the results
(``ResultsScreen``); ``escape`` returns to the folder.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from kittiwake.core.api import MailApi
from kittiwake.core.errors import KittiwakeError
from kittiwake.core.sanitize import clean_line
from kittiwake.tui.screens.search_triage import ResultsScreen, plural
from kittiwake.tui.widgets.thread_list import ThreadList

#: The query language in brief, for the prompt and the help screen.
QUERY_HELP = """\
Search: words match sender, recipients, subject and (cached, or on the server) body;
unquoted words match word beginnings, "quoted phrases" whole words.
  from:ann  to:bob  cc:carol  subject:invoice  body:iban   one part only
  is:unread is:read is:flagged is:answered is:draft   has:attachment
  before:2026-03-01  after:2026-01-31  on:2026-02-14   larger:1M  smaller:20K
  -word or NOT word leaves out;  a OR b either;  (a b) OR c groups
In the prompt, tab switches between this folder and all folders."""


class SearchPrompt(ModalScreen[tuple[str, bool] | None]):
    """Ask for a query; answers (query, all folders) once the query parses."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="search.cancel"),
        Binding(
            "tab", "toggle_scope", "This folder / all folders", id="search.scope", priority=True
        ),
    ]

    DEFAULT_CSS = """
    SearchPrompt {
        align: center top;
    }
    SearchPrompt > Vertical {
        margin-top: 2;
        width: 90%;
        max-width: 90;
        height: auto;
        background: $surface;
        border: tall $accent;
        padding: 0 1;
    }
    SearchPrompt #search-error {
        color: $error;
        height: auto;
    }
    SearchPrompt #search-hint {
        color: $text-muted;
    }
    """

    def __init__(
        self, api: MailApi, folder: str | None, value: str = "", everywhere: bool = False
    ) -> None:
        super().__init__()
        self.api = api
        self.folder = folder
        self.value = value
        self.everywhere = everywhere or folder is None

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(id="search-scope")
            yield Input(
                value=self.value, placeholder="from:ann invoice is:unread", id="search-query"
            )
            yield Static(id="search-error")
            yield Static(
                Text(
                    "enter search · tab this folder/all folders · escape cancel · "
                    "from: to: subject: body: is:unread has:attachment before: after: OR -word"
                ),
                id="search-hint",
            )

    def on_mount(self) -> None:
        self._show_scope()
        self.query_one(Input).focus()

    def _show_scope(self) -> None:
        where = "all folders" if self.everywhere else clean_line(self.folder or "")
        self.query_one("#search-scope", Static).update(Text(f"Search {where}:", style="bold"))

    def action_toggle_scope(self) -> None:
        if self.folder is not None:
            self.everywhere = not self.everywhere
            self._show_scope()

    @on(Input.Changed, "#search-query")
    def _edited(self) -> None:
        self.query_one("#search-error", Static).update("")

    @on(Input.Submitted, "#search-query")
    def _submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if not text:
            self.dismiss(None)
            return
        problem = self.api.check_query(text)
        if problem is not None:
            self.query_one("#search-error", Static).update(Text(problem))
            self.notify(problem, severity="error", timeout=6)
            return
        self.dismiss((text, self.everywhere))

    def action_cancel(self) -> None:
        self.dismiss(None)


class SearchScreen(ResultsScreen):
    """The messages matching a query, in one folder or all of them, newest first."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "refine", "New search", id="search.refine"),
    ]

    def __init__(self, account: str, folder: str | None, query: str) -> None:
        super().__init__(account)
        self.folder = folder
        self.query_text = query
        self.from_server = 0
        self.server_state = ""

    def on_mount(self) -> None:
        super().on_mount()
        self.run_search()

    def run_search(self) -> None:
        self.from_server = 0
        self.server_state = "searching…"
        self._update_title()
        self.search_worker()

    @work(exclusive=True, group="search", exit_on_error=False)
    async def search_worker(self) -> None:
        """The cache's answer (off the event loop), shown; then the server's, appended."""
        api = self.kw.api
        results = self.results()
        try:
            hits = await api.search_local(
                self.account, self.folder, self.query_text, self._indexing
            )
        except KittiwakeError as exc:  # the prompt checked the query: a cache problem
            self.notify(exc.message, severity="error")
            hits = []
        results.always_show_folder = self.folder is None  # say where each hit lives
        results.show_hits(self.account, hits)
        if not api.searches_server(self.account):
            self.server_state = ""
            self._update_title()
            return
        self.server_state = "searching server…"
        self._update_title()
        try:
            extra = await api.search_server(self.account, self.folder, self.query_text, hits)
        except KittiwakeError as exc:
            self.server_state = f"server not searched: {clean_line(exc.message)}"
            self._update_title()
            return
        results.append_hits(extra)
        self.from_server = len(extra)
        self.server_state = ""
        self._update_title()

    def _indexing(self, done: int, total: int) -> None:
        """The first search after a first sync indexes what the decode pass left: say so."""
        self.server_state = f"indexing {done:,} of {total:,}…"
        self._update_title()

    def after_change(self) -> None:
        self._update_title()

    def _update_title(self) -> None:
        where = "all folders" if self.folder is None else clean_line(self.folder)
        count = len([h for h in self.results().hits if h is not None])
        parts = [f"Search {clean_line(self.query_text)}", where, plural(count, "result")]
        if self.from_server:
            parts[-1] += f" ({self.from_server:,} from the server)"
        if self.server_state:
            parts.append(self.server_state)
        self.set_title(" · ".join(parts))

    def action_refine(self) -> None:
        def answer(result: tuple[str, bool] | None) -> None:
            if result is None:
                return
            self.query_text, everywhere = result
            if everywhere:
                self.folder = None
            elif self.home_folder is not None:
                self.folder = self.home_folder
            self.run_search()

        prompt = SearchPrompt(
            self.kw.api, self.home_folder, self.query_text, everywhere=self.folder is None
        )
        self.app.push_screen(prompt, answer)

    home_folder: str | None = None
    """The folder the search was started from (``tab`` in the prompt returns to it)."""

    @on(ThreadList.OpenedHit)
    def _open(self, event: ThreadList.OpenedHit) -> None:
        from kittiwake.tui.screens.thread_reader import ResultReaderScreen

        self.app.push_screen(
            ResultReaderScreen(self.account, [event.hit], event.hit, self.results())
        )


def open_search(app_screen: object, api: MailApi, account: str | None, folder: str | None) -> None:
    """From the mailbox: the prompt, then the results."""
    from textual.screen import Screen

    assert isinstance(app_screen, Screen)
    if account is None:
        return

    def answer(result: tuple[str, bool] | None) -> None:
        if result is None:
            return
        query, everywhere = result
        screen = SearchScreen(account, None if everywhere else folder, query)
        screen.home_folder = folder
        app_screen.app.push_screen(screen)

    app_screen.app.push_screen(SearchPrompt(api, folder), answer)
