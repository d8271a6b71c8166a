"""The main screen: folder sidebar, message list, status bar, each following the engine's
events that it shows (``tui/events.py``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import ClassVar

from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widgets import Tree

from kittiwake.core.errors import KittiwakeError
from kittiwake.core.models import SEEN, FolderRole
from kittiwake.core.sanitize import clean_line
from kittiwake.core.search.order import ALL_ORDERS, SortOrder
from kittiwake.tui.context import AppContext, app_context
from kittiwake.tui.screens.confirm import Confirm
from kittiwake.tui.screens.prompt import Prompt
from kittiwake.tui.tools import EXPORT_BINDING, PIPE_BINDING
from kittiwake.tui.triage import TRIAGE_BUT_UNDO, Targets, TriageCommands, plural, triage_bindings
from kittiwake.tui.widgets.folder_tree import FolderRef, FolderTree
from kittiwake.tui.widgets.footer import KeyFooter
from kittiwake.tui.widgets.message_list import MessageList
from kittiwake.tui.widgets.status_bar import StatusBar

NARROW = 100  # below this many columns the sidebar folds away


class MailboxScreen(TriageCommands):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("J", "next_folder", "Next folder", id="mailbox.next_folder", show=False),
        Binding("K", "previous_folder", "Prev folder", id="mailbox.previous_folder", show=False),
        Binding("o", "go_folder", "Go to folder", id="mailbox.go_folder", show=False),
        Binding("b", "toggle_sidebar", "Sidebar", id="mailbox.toggle_sidebar", show=False),
        Binding("tab", "switch_pane", "Pane", id="mailbox.switch_pane", show=False),
        *triage_bindings(shown=("flag", "archive", "delete"), only=TRIAGE_BUT_UNDO),
        Binding("x", "select", "Select", id="triage.select", show=False),
        Binding("X", "select_thread", "Select thread", id="triage.select_thread", show=False),
        Binding("asterisk", "select_all", "Select all", id="triage.select_all", show=False),
        Binding("escape", "clear_selection", "Clear selection", id="triage.clear", show=False),
        *triage_bindings(shown=("undo",), only=("undo",)),
        Binding("ctrl+r", "check_now", "Check for new mail", id="mailbox.refresh", show=False),
        Binding(
            "ctrl+d", "diagnose", "Why is it offline? (doctor)", id="mailbox.diagnose", show=False
        ),
        Binding("ctrl+l", "sign_in", "Sign in (OAuth2)", id="mailbox.sign_in", show=False),
        Binding("c", "compose", "Compose", id="compose.new"),
        Binding("r", "reply", "Reply", id="compose.reply"),
        Binding("R", "reply(True)", "Reply all", id="compose.reply_all", show=False),
        Binding("f", "forward", "Forward", id="compose.forward", show=False),
        Binding(
            "F", "forward(True)", "Forward attached", id="compose.forward_attached", show=False
        ),
        Binding("slash", "search", "Search", id="mailbox.search"),
        PIPE_BINDING,
        EXPORT_BINDING,
        Binding("t", "threads", "Threads", id="mailbox.threads"),
        Binding("O", "sort", "Sort by…", id="mailbox.sort", show=False),
        Binding("l", "limit", "Limit to matching messages", id="mailbox.limit", show=False),
        Binding("M", "mark_all_read", "Mark all read", id="mailbox.mark_all_read", show=False),
        Binding("?", "help", "Help", id="app.help"),
        Binding("q", "quit", "Quit", id="app.quit", show=False),
    ]

    DEFAULT_CSS = """
    MailboxScreen FolderTree {
        width: 28;
        dock: left;
        border-right: vkey $panel-lighten-2;
    }
    MailboxScreen.-narrow FolderTree {
        display: none;
    }
    MailboxScreen.-narrow.-sidebar FolderTree {
        display: block;
        width: 24;
    }
    MailboxScreen.-wide.-no-sidebar FolderTree {
        display: none;
    }
    """

    def __init__(self) -> None:
        super().__init__()
        self.account: str | None = None
        self.folder: str | None = None
        # Classed before its first styling: classed at its mount, the whole screen (each row's
        # component styles too) was styled a second time before the first frame.
        self._apply_width(self.app.size.width, update=False)

    @property
    def kw(self) -> AppContext:
        return app_context(self)

    def compose(self) -> ComposeResult:
        messages = MessageList(self.kw.api, id="messages")
        with Horizontal():
            yield FolderTree(id="folders")
            yield messages
        yield StatusBar(messages, id="status")
        yield KeyFooter()

    def on_mount(self) -> None:
        self._apply_width(self.app.size.width)
        tree = self.query_one(FolderTree)
        for info in self.kw.api.accounts():
            tree.set_account(info.key, info.name or info.email, self.kw.api.folders(info.key))
        first = self.kw.api.accounts()
        if first:
            self.show_folder(first[0].key, self._inbox_of(first[0].key))
        messages = self.query_one(MessageList)
        messages.focus()
        if messages.row_count:
            # A warm start: the cached rows are drawn first, then the engine connects. Its
            # TLS context alone (the system trust store) costs ~35 ms of CPU, and the
            # resync's replies would compete with the first frame for the event loop.
            self.call_after_refresh(self.kw.start_engine)
        else:  # nothing cached: what the first screen waits for is the server's newest page
            self.kw.start_engine()

    def _inbox_of(self, account: str) -> str:
        for f in self.kw.api.folders(account):
            if f.role is FolderRole.INBOX:
                return f.name
        return "INBOX"

    # -- layout ---------------------------------------------------------------------------

    def on_resize(self) -> None:
        self._apply_width(self.app.size.width)

    def _apply_width(self, width: int, update: bool = True) -> None:
        self.set_class(width < NARROW, "-narrow", update=update)
        self.set_class(width >= NARROW, "-wide", update=update)

    def action_toggle_sidebar(self) -> None:
        if self.has_class("-narrow"):
            self.toggle_class("-sidebar")
            if self.has_class("-sidebar"):
                self.query_one(FolderTree).focus()
            else:
                self.query_one(MessageList).focus()
        else:
            self.toggle_class("-no-sidebar")

    def action_switch_pane(self) -> None:
        tree, messages = self.query_one(FolderTree), self.query_one(MessageList)
        if messages.has_focus and tree.display:
            tree.focus()
        else:
            messages.focus()

    # -- folders --------------------------------------------------------------------------

    def show_folder(self, account: str, folder: str) -> None:
        self.account, self.folder = account, folder
        role = next((f.role for f in self.kw.api.folders(account) if f.name == folder), None)
        self.query_one(MessageList).show_folder(
            account, folder, show_recipients=role in (FolderRole.SENT, FolderRole.DRAFTS)
        )
        self.query_one(FolderTree).select_folder(account, folder, move_only=True)
        self._refresh_status()
        self.run_worker(self.kw.api.open_folder(account, folder), group="open", exclusive=True)

    @on(Tree.NodeSelected, "#folders")
    def _folder_chosen(self, event: Tree.NodeSelected[FolderRef]) -> None:
        ref = event.node.data
        if ref is not None and ref.folder is not None and ref.selectable:
            self.show_folder(ref.account, ref.folder)
            if self.has_class("-narrow"):
                self.remove_class("-sidebar")
            self.query_one(MessageList).focus()

    def _step_folder(self, step: int) -> None:
        refs = self.query_one(FolderTree).folder_refs()
        if not refs:
            return
        current = next(
            (i for i, r in enumerate(refs) if (r.account, r.folder) == (self.account, self.folder)),
            -1,
        )
        target = refs[(current + step) % len(refs)]
        if target.folder is not None:
            self.show_folder(target.account, target.folder)

    def action_next_folder(self) -> None:
        self._step_folder(1)

    def action_previous_folder(self) -> None:
        self._step_folder(-1)

    def action_go_folder(self) -> None:
        from kittiwake.tui.screens.folder_picker import FolderPicker

        refs = self.query_one(FolderTree).folder_refs()

        def chosen(ref: FolderRef | None) -> None:
            if ref is not None and ref.folder is not None:
                self.show_folder(ref.account, ref.folder)

        self.app.push_screen(FolderPicker(refs), chosen)

    def action_help(self) -> None:
        self.kw.action_help()

    async def action_quit(self) -> None:
        await self.app.action_quit()

    # -- triage (the keys and actions: tui/triage.py) ------------------------------------

    def _list(self) -> MessageList:
        return self.query_one(MessageList)

    def _triage_account(self) -> str | None:
        return self.account

    def _targets(self) -> list[Targets]:
        """The selection, or the row under the cursor, with the UIDVALIDITY the list was
        read under."""
        uids = self._list().targets()
        if not uids or self.folder is None:
            return []
        return [Targets(self.folder, self._list().uidvalidity, uids)]

    def _after_submit(self) -> None:
        self._list().clear_selection()

    def _folder_refs(self, account: str) -> list[FolderRef]:
        return [r for r in self.query_one(FolderTree).folder_refs() if r.account == account]

    def action_select(self) -> None:
        messages = self._list()
        uid = messages.current_uid
        if uid is not None:
            messages.toggle_selected(uid)
            messages.action_cursor_down()
        self._refresh_status()

    def action_select_thread(self) -> None:
        messages = self._list()
        uid = messages.current_uid
        if uid is None or self.account is None or self.folder is None:
            return
        thread = self.kw.api.conversation(self.account, self.folder, uid)
        messages.selected |= set(thread)
        messages.refresh()
        self._refresh_status()

    def action_select_all(self) -> None:
        self._list().select_all()
        self._refresh_status()

    def action_clear_selection(self) -> None:
        self._list().clear_selection()
        self._refresh_status()

    def action_create_folder(self) -> None:
        account = self.account
        if account is None:
            return

        def named(name: str | None) -> None:
            if name:
                self._create_then(
                    account,
                    name,
                    lambda: self.notify(f"Created {clean_line(name)}"),
                    for_move=False,
                )

        self.app.push_screen(Prompt("Name of the new folder:"), named)

    def action_rename_folder(self) -> None:
        account, folder = self.account, self.folder
        if account is None or folder is None:
            return

        def named(name: str | None) -> None:
            if name and name != folder:
                self._folder_op(
                    self.kw.api.rename_folder(account, folder, name),
                    f"Renamed {clean_line(folder)} to {clean_line(name)}",
                    then=lambda: self.show_folder(account, name),
                )

        self.app.push_screen(Prompt(f"New name for {clean_line(folder)}:", folder), named)

    def action_delete_folder(self) -> None:
        account, folder = self.account, self.folder
        if account is None or folder is None:
            return
        if any(f.name == folder and f.role is not None for f in self.kw.api.folders(account)):
            self.notify(
                f"{clean_line(folder)} is a special folder; it is not deleted.", severity="warning"
            )
            return
        total, _ = self.kw.api.counts(account, folder)

        def answer(yes: bool | None) -> None:
            if yes:
                self._folder_op(
                    self.kw.api.delete_folder(account, folder),
                    f"Deleted the folder {clean_line(folder)}",
                    then=lambda: self.show_folder(account, self._inbox_of(account)),
                )

        self.app.push_screen(
            Confirm(
                f"Delete the folder {clean_line(folder)} and the {plural(total)} in it?"
                " This cannot be undone."
            ),
            answer,
        )

    def _folder_op(self, op: Awaitable[None], done: str, then: Callable[[], None]) -> None:
        async def run() -> None:
            try:
                await op
            except KittiwakeError as exc:
                self.notify(exc.message, severity="error")
                return
            self.notify(done)
            then()

        self.run_worker(run(), group="folder-op")

    # -- compose and send -----------------------------------------------------------------

    def action_compose(self) -> None:
        from kittiwake.tui.screens.compose import compose_new

        compose_new(self.app, self.account)

    def _current(self) -> tuple[str, str, int] | None:
        uid = self._list().current_uid
        if self.account is None or self.folder is None or uid is None:
            return None
        return self.account, self.folder, uid

    def action_reply(self, all: bool = False) -> None:
        from kittiwake.tui.screens.compose import compose_reply

        if (here := self._current()) is not None:
            compose_reply(self.app, *here, all=all)

    def action_forward(self, attached: bool = False) -> None:
        from kittiwake.tui.screens.compose import compose_forward

        if (here := self._current()) is not None:
            compose_forward(self.app, *here, attached=attached)

    def _in_drafts(self) -> bool:
        return self.account is not None and self.folder == self.kw.api.role_folder(
            self.account, FolderRole.DRAFTS
        )

    # -- checking for mail (ctrl+r: POP3 downloads now, IMAP resyncs the folder) -----------

    def action_diagnose(self) -> None:
        """The doctor's checks for the account on screen (why it is offline)."""
        if self.account is None:
            return
        from kittiwake.tui.screens.doctor import DoctorScreen

        self.app.push_screen(DoctorScreen(self.account, self.kw.api.diagnose(self.account)))

    def action_sign_in(self, account: str | None = None, with_code: bool = False) -> None:
        """OAuth2 sign-in for ``account`` (the one on screen by default)."""
        account = account or self.account
        if account is None:
            return
        api = self.kw.api
        if not api.can_sign_in(account):
            self.notify(f"{account} signs in with a password (see kittiwake doctor)")
            return
        from kittiwake.tui.screens.signin import SignInScreen

        def done(said: str | None) -> None:
            if said:
                self.notify(said)

        self.app.push_screen(SignInScreen(api, account, with_code=with_code), done)

    def on_click(self, event: events.Click) -> None:
        if isinstance(event.widget, StatusBar):
            self.action_diagnose()

    def action_check_now(self) -> None:
        if self.account is None:
            return
        self.notify("Checking for new mail…", timeout=2)
        check = self.kw.api.check_now(self.account, self.folder)
        self.run_worker(check, group="check", exclusive=True)

    # -- search and threads (screens in search.py, thread_view.py) -------------------------

    def action_search(self) -> None:
        from kittiwake.tui.screens.search import open_search

        open_search(self, self.kw.api, self.account, self.folder)

    def action_threads(self) -> None:
        from kittiwake.tui.screens.thread_view import ConversationsScreen

        if self.account is not None and self.folder is not None:
            self.app.push_screen(ConversationsScreen(self.account, self.folder))

    # -- sorting and limiting (the order is remembered per folder: core/search/order.py) ----

    def action_sort(self, code: str | None = None) -> None:
        """Sort the list: by ``code`` ("sender-asc"), or as chosen in a picker."""
        messages = self._list()
        if code is not None:
            if (order := SortOrder.from_code(code)) is not None:
                messages.set_order(order)
                self._refresh_status()
            return
        from kittiwake.tui.screens.pickers import Picker

        items = [
            (f"{o.describe()}{'  (now)' if o == messages.order else ''}", o.code)
            for o in ALL_ORDERS
        ]

        def chosen(picked: str | None) -> None:
            if picked is not None:
                self.action_sort(picked)

        self.app.push_screen(Picker("Sort by…", items), chosen)

    def action_limit(self) -> None:
        """mutt's limit: only the messages matching a search query, every key working on
        them; an empty answer shows all again."""
        messages = self._list()

        def answered(query: str | None) -> None:
            if query and (problem := self.kw.api.check_query(query)):
                self.notify(clean_line(problem), severity="error")
                return
            if query and messages.folder is not None:
                self.run_worker(limit_to(query), group="limit", exclusive=True)
                return
            apply(query)

        async def limit_to(query: str) -> None:
            # After a first sync the search index waits for the first search: built here in
            # batches, the list still answering keys, not in one long step inside the limit.
            told = False

            def indexing(done: int, total: int) -> None:
                nonlocal told
                if not told:
                    told = True
                    self.notify(f"Indexing {total:,} messages for the search…", timeout=3)

            shown = (messages.account, messages.folder)
            assert shown[0] is not None and shown[1] is not None
            await self.kw.api.prepare_search(shown[0], shown[1], indexing)
            if (messages.account, messages.folder) == shown:  # not another folder by now
                apply(query)

        def apply(query: str | None) -> None:
            messages.set_limit(query)
            self._refresh_status()
            if query and not messages.row_count:
                self.notify("No message matches; l then enter shows all again.", timeout=5)

        ask = Prompt("Show only messages matching (empty: all):", messages.limit or "")
        self.app.push_screen(ask, answered)

    def action_export_folder(self) -> None:
        """Every message shown (the folder, or what a limit shows) to a file."""
        from kittiwake.tui.tools import ask_export

        messages = self._list()
        if self.folder is not None and messages.index:
            aim = [Targets(self.folder, messages.uidvalidity, tuple(messages.index))]
            ask_export(self, self.account, aim)

    def action_import(self) -> None:
        from kittiwake.tui.tools import ask_import

        ask_import(self, self.account, self.folder)

    def action_unlimit(self) -> None:
        self._list().set_limit(None)
        self._refresh_status()

    def action_mark_all_read(self) -> None:
        """Every unread message shown (the whole folder, or what a limit shows) marked read,
        journaled like any flag change, one undo step."""
        messages = self._list()
        if self.account is None or self.folder is None:
            return
        shown = set(messages.index)
        unread = tuple(u for u in self.kw.api.unseen_uids(self.account, self.folder) if u in shown)
        if not unread:
            self.notify("Nothing unread here.", timeout=3)
            return
        aim = [Targets(self.folder, messages.uidvalidity, unread)]
        self._submit(
            self._actions("flags", aim, add=(SEEN,)), f"Marked read: {plural(len(unread))}"
        )

    # -- reading --------------------------------------------------------------------------

    @on(MessageList.Opened)
    def _open(self, event: MessageList.Opened) -> None:
        from kittiwake.tui.screens.reader import ReaderScreen

        if self.account is None or self.folder is None:
            return
        if self._in_drafts() and (here := self._current()) is not None:
            from kittiwake.tui.screens.compose import compose_reopen

            compose_reopen(self.app, *here)  # a draft opens in the composer
            return
        self.app.push_screen(ReaderScreen(self.account, self.folder, self.query_one(MessageList)))

    @on(MessageList.Highlighted)
    def _highlighted(self, event: MessageList.Highlighted) -> None:
        # After the moved cursor is on screen: the line rarely changes, the key shows sooner.
        self.call_after_refresh(self._refresh_status)

    # -- live changes (the widgets follow the engine's events themselves) -----------------

    @on(FolderTree.Changed)
    def _folders_changed(self, event: FolderTree.Changed) -> None:
        if self.folder is None:  # the first folder list of an account that had none cached
            self.show_folder(event.account, self._inbox_of(event.account))

    @on(MessageList.Reloaded)
    def _reloaded(self, event: MessageList.Reloaded) -> None:
        self._refresh_status()

    def _refresh_status(self) -> None:
        self.query_one(StatusBar).refresh_status()
