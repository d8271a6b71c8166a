"""The Textual application: themes, keymap, command palette, and the engine's lifetime."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import events
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.dom import DOMNode
from textual.driver import Driver
from textual.markup import escape
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.theme import Theme

from kittiwake.core.api import MailApi
from kittiwake.core.config import Config
from kittiwake.core.events import (
    DeliveryUncertain,
    DraftsRecovered,
    MessagesAdded,
    MessageSent,
    SendFailed,
    SyncError,
)
from kittiwake.core.models import SEEN, FolderRole, MessageSummary
from kittiwake.core.sanitize import clean_line
from kittiwake.core.search.order import ALL_ORDERS
from kittiwake.tui.context import AppContext
from kittiwake.tui.events import EngineEvent, EngineEvents, follow
from kittiwake.tui.keymap import binding_ids, check_keymap
from kittiwake.tui.screens.mailbox import MailboxScreen
from kittiwake.tui.themes import (
    completed_theme,
    load_themes,
    pick_theme,
    register_themes,
)
from kittiwake.tui.tools import private_files
from kittiwake.tui.triage import TriageCommands
from kittiwake.tui.type_ahead import KeyGate
from kittiwake.tui.widgets.plain import highlight

if TYPE_CHECKING:
    from kittiwake.core.compose.draft import Draft
    from kittiwake.tui.screens.review import ReviewScreen


log = logging.getLogger(__name__)

#: New mail arriving within this many seconds makes one notice.
NEW_MAIL_COALESCE = 0.5
_NO_MARKUP = str.maketrans("[]\\", "()/")
"""Palette titles are markup: brackets in a subject become parentheses."""

#: The events the app tells the user about, whatever screen is on top (``on_engine_event``).
TOLD = (MessagesAdded, SyncError, SendFailed, DeliveryUncertain, DraftsRecovered, MessageSent)


def keymap_classes() -> list[type[DOMNode]]:
    """Every class whose bindings the user may remap through [keys]. A function, not a
    constant: it imports every screen, which a start without [keys] does not need."""
    from kittiwake.tui.screens.compose import BuiltinEditor, NewMessagePrompt, PathPrompt
    from kittiwake.tui.screens.confirm import Confirm
    from kittiwake.tui.screens.doctor import DoctorScreen
    from kittiwake.tui.screens.help import HelpScreen
    from kittiwake.tui.screens.pickers import Picker
    from kittiwake.tui.screens.prompt import Prompt
    from kittiwake.tui.screens.reader import ReaderScreen
    from kittiwake.tui.screens.review import ReviewScreen
    from kittiwake.tui.screens.search import SearchPrompt, SearchScreen
    from kittiwake.tui.screens.search_triage import ResultsScreen
    from kittiwake.tui.screens.signin import SignInScreen
    from kittiwake.tui.screens.thread_reader import ResultReaderScreen, ThreadReaderScreen
    from kittiwake.tui.screens.thread_view import ConversationsScreen
    from kittiwake.tui.tools import PipePrompt
    from kittiwake.tui.widgets.address_input import PathInput
    from kittiwake.tui.widgets.folder_tree import FolderTree
    from kittiwake.tui.widgets.message_list import MessageList
    from kittiwake.tui.widgets.thread_list import ThreadList

    return [
        MailboxScreen,
        ReaderScreen,
        MessageList,
        FolderTree,
        Picker,
        HelpScreen,
        DoctorScreen,
        SignInScreen,
        ReviewScreen,
        BuiltinEditor,
        NewMessagePrompt,
        PathPrompt,
        PathInput,
        Confirm,
        Prompt,
        ResultsScreen,
        SearchScreen,
        SearchPrompt,
        ConversationsScreen,
        ThreadList,
        ThreadReaderScreen,
        PipePrompt,
        ResultReaderScreen,
    ]


class FolderCommands(Provider):
    """The command palette offers every folder by fuzzy name."""

    def _folders(self) -> list[tuple[str, str, str]]:
        app = self.app
        assert isinstance(app, KittiwakeApp)
        out = []
        for account in app.api.accounts():
            for folder in app.api.folders(account.key):
                if folder.selectable:
                    out.append((account.key, folder.name, f"Go to {account.key}/{folder.name}"))
        return out

    async def discover(self) -> Hits:
        for account, folder, label in self._folders():
            yield DiscoveryHit(Text(clean_line(label)), partial(self._go, account, folder))

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for account, folder, label in self._folders():
            score = matcher.match(label)
            if score > 0:
                yield Hit(
                    score, highlight(matcher, clean_line(label)), partial(self._go, account, folder)
                )

    def _go(self, account: str, folder: str) -> None:
        app = self.app
        assert isinstance(app, KittiwakeApp)
        while not isinstance(app.screen, MailboxScreen) and len(app.screen_stack) > 1:
            app.pop_screen()
        screen = app.screen
        if isinstance(screen, MailboxScreen):
            screen.show_folder(account, folder)


class KittiwakeApp(App[None]):
    TITLE = "Kittiwake"
    COMMANDS: ClassVar = App.COMMANDS | {FolderCommands}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+p", "command_palette", "Commands", id="app.command_palette", show=False),
    ]

    def __init__(self, config: Config, api: MailApi | None = None) -> None:
        super().__init__()
        self.config = config
        self.api = api or MailApi.from_config(config)
        self.startup_warnings: list[str] = list(self.api.notices)
        #: Compose and send: the review screens open now (saved to Drafts when the app
        #: quits), and a message to compose at start (``kittiwake 'mailto:...'``).
        self.open_drafts: set[ReviewScreen] = set()
        self.mailto: Draft | None = None
        self._fresh_mail: list[MessageSummary] = []
        self._engine_started = False
        self.engine_events = EngineEvents()
        self.key_gate = KeyGate(self)
        self._setup_theme()
        # Without [keys] nothing is checked, so no screen is imported for it.
        known = binding_ids([*keymap_classes(), type(self)]) if config.keys else set()
        keymap, warnings = check_keymap(config.keys, known, str(config.path or "config"))
        self.startup_warnings += warnings
        self.set_keymap(keymap)

    def get_driver_class(self) -> type[Driver]:
        """Textual's Linux driver writing small frames at once (``tui/driver.py``)."""
        driver = super().get_driver_class()
        if driver.__name__ == "LinuxDriver" and driver.__module__ == "textual.drivers.linux_driver":
            from kittiwake.tui.driver import FrameDriver

            return FrameDriver
        return driver

    def _setup_theme(self) -> None:
        themes, warnings = load_themes()
        self.startup_warnings += warnings
        register_themes(self, themes)
        warning = pick_theme(self, self.config.ui.theme, themes)
        if warning:
            self.startup_warnings.append(warning)

    def get_theme(self, theme_name: str) -> Theme | None:
        return completed_theme(self, super().get_theme(theme_name))

    def on_mount(self) -> None:
        accounts = self.api.accounts()
        if not accounts or not self.api.folders(accounts[0].key):
            # A cold start (nothing cached): the connection starts now, while the first
            # screen is built. Otherwise the first screen starts it once its cached rows are
            # on screen (``MailboxScreen.on_mount``).
            self.start_engine()
        self.engine_events.start(self, self.api.subscribe())
        follow(self, *TOLD)
        self.push_screen(MailboxScreen())
        if self.mailto is not None:
            from kittiwake.tui.screens.compose import compose_prepared

            compose_prepared(self, None, self.mailto)
        for warning in self.startup_warnings:
            self.notify(warning, severity="warning", timeout=10)

    def start_engine(self) -> None:
        """Connect and sync every account (once; later calls do nothing)."""
        if not self._engine_started:
            self._engine_started = True
            self.api.start()

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.Key) and not event.is_forwarded:
            self.api.user_input()  # background work waits while keys are drawn
            if not self.key_gate.admit(event):  # typed ahead: after the keys before it
                return
            await super().on_event(event)
            self.key_gate.sent(event, (self.focused or self.screen) if event.is_forwarded else None)
            return
        await super().on_event(event)

    async def on_unmount(self) -> None:
        private_files.clear()  # the files handed to other programs (tui/tools.py)
        for review in list(self.open_drafts):  # quit mid-compose: the draft goes to Drafts
            await review.save_on_quit()
        await self.api.stop()

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Help", "Show every key of this screen", self.action_help)
        from kittiwake.tui.screens.thread_view import ConversationsScreen

        if isinstance(screen, ConversationsScreen):
            for order in ALL_ORDERS:
                yield SystemCommand(
                    f"Sort: {order.describe()}",
                    "Sort the conversations (remembered for the folder, as its list)",
                    partial(screen.action_sort, order.code),
                )
        if isinstance(screen, MailboxScreen):
            yield SystemCommand("Create folder", "Create a new folder", screen.action_create_folder)
            yield SystemCommand(
                "Rename folder", "Rename the folder you are in", screen.action_rename_folder
            )
            yield SystemCommand(
                "Delete folder", "Delete the folder you are in", screen.action_delete_folder
            )
            for order in ALL_ORDERS:  # sorting and limiting
                yield SystemCommand(
                    f"Sort: {order.describe()}",
                    "Sort this folder's list (remembered for the folder)",
                    partial(screen.action_sort, order.code),
                )
            yield SystemCommand(
                "Limit: show only messages matching a search", "mutt's l", screen.action_limit
            )
            yield SystemCommand("Limit: show all messages", "Undo the limit", screen.action_unlimit)
            yield SystemCommand(
                "Mark all read", "Every unread message shown here", screen.action_mark_all_read
            )
            yield SystemCommand(
                "Export this folder",
                "Every message shown, to an mbox file or .eml files",
                screen.action_export_folder,
            )
            yield SystemCommand(
                "Import into this folder",
                "An mbox file or a Maildir; messages already there are skipped",
                screen.action_import,
            )
            for account in self.api.accounts():
                if self.api.can_sign_in(account.key):
                    yield SystemCommand(
                        f"Sign in: {account.key}",
                        "OAuth2 sign-in in a browser (works over SSH too)",
                        partial(screen.action_sign_in, account.key),
                    )
                    if self.api.can_sign_in_with_code(account.key):
                        yield SystemCommand(
                            f"Sign in with a code: {account.key}",
                            "Type a code on any device (phone, another computer)",
                            partial(screen.action_sign_in, account.key, True),
                        )
            from kittiwake.tui.screens.compose import (
                compose_refused,
                delete_refused,
                delete_uncertain,
                resend_uncertain,
            )

            for item in self.api.compose.refused_items():  # compose and send
                # Titles are markup too, matched as typed: no brackets from the message.
                label = clean_line(item.describe()).translate(_NO_MARKUP)
                words = escape(clean_line(f"{item.account}: {item.words}"))
                yield SystemCommand(
                    f"Outbox: edit refused message {label}",
                    words,
                    partial(compose_refused, self, item.account, item.item_id),
                )
                yield SystemCommand(
                    f"Outbox: delete refused message {label}",
                    words,
                    partial(delete_refused, self, item.account, item.item_id, label),
                )
            for item in self.api.compose.uncertain_items():
                label = clean_line(item.describe()).translate(_NO_MARKUP)
                words = escape(clean_line(f"{item.account}: {item.words}"))
                yield SystemCommand(
                    f"Outbox: send again message that may have been delivered {label}",
                    words,
                    partial(resend_uncertain, self, item.account, item.item_id, label),
                )
                yield SystemCommand(
                    f"Outbox: delete message that may have been delivered {label}",
                    words,
                    partial(delete_uncertain, self, item.account, item.item_id, label),
                )

        if isinstance(screen, TriageCommands):  # the user's programs (tui/tools.py)
            yield SystemCommand(
                "Export to a file",
                "The selection or the message: an mbox file or .eml files",
                screen.action_export,
            )
            yield SystemCommand(
                "Pipe to a command",
                "The selection or the message, on its stdin",
                screen.action_pipe,
            )
            for name, entry in self.config.tools.pipe.items():
                yield SystemCommand(
                    f"Pipe: {clean_line(name)}".translate(_NO_MARKUP),
                    escape(clean_line(entry.command)),
                    partial(screen.action_pipe_named, name),
                )
        open_part = getattr(screen, "action_open_part", None)  # the readers (not loaded at start)
        if open_part is not None:
            yield SystemCommand(
                "Open with another program",
                "An attachment or the HTML part (the open table of the config, else xdg-open)",
                open_part,
            )

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        """Every notice is plain text, whatever the caller asked: they quote subjects,
        senders, folder names, file names and server words, and one "[/b]" in a subject
        must not crash the app (Textual renders notices as markup by default)."""
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=False)

    def _handle_exception(self, error: Exception) -> None:
        """A crash inside a widget goes to the log file first (Textual only prints it). A
        cache failing under the app (damaged while it runs) ends it with one sentence naming
        the file, not a traceback: the next start sets the file aside and rebuilds it."""
        log.error("unexpected error in the UI", exc_info=error)
        failure = _database_error(error)
        if failure is not None:
            if self.return_code is None:  # others that read the file after it: one sentence
                message = Text(f"kittiwake: {self.api.cache_failure(failure)}")
                self.exit(return_code=1, message=message)
            return
        super()._handle_exception(error)

    def action_help(self) -> None:
        from kittiwake.tui.screens.help import COMPOSE_HELP, HelpScreen, binding_rows
        from kittiwake.tui.screens.reader import ReaderScreen
        from kittiwake.tui.screens.review import ReviewScreen
        from kittiwake.tui.screens.search import QUERY_HELP, SearchScreen
        from kittiwake.tui.screens.thread_reader import ResultReaderScreen, ThreadReaderScreen
        from kittiwake.tui.screens.thread_view import ConversationsScreen
        from kittiwake.tui.widgets.message_list import MARKS_HELP

        screen = self.screen
        title = {
            MailboxScreen: "Keys: message list",
            ReaderScreen: "Keys: reading a message",
            ReviewScreen: "Keys: reviewing a message before sending",
        }.get(type(screen), "Keys")
        title = {
            SearchScreen: "Keys: search results",
            ConversationsScreen: "Keys: conversations",
            ThreadReaderScreen: "Keys: reading a conversation",
            ResultReaderScreen: "Keys: reading a search result",
        }.get(type(screen), title)
        notes = QUERY_HELP if isinstance(screen, MailboxScreen | SearchScreen) else ""
        if isinstance(screen, MailboxScreen | SearchScreen | ConversationsScreen):
            notes = f"{MARKS_HELP}\n\n{notes}" if notes else MARKS_HELP
        notes = COMPOSE_HELP if isinstance(screen, ReviewScreen) else notes
        self.push_screen(HelpScreen(binding_rows(screen), title, notes))

    def on_engine_event(self, message: EngineEvent) -> None:
        """What the engine says to the user, whatever screen is on top: new mail, and how
        sending and syncing went."""
        match message.event:
            case MessagesAdded() as added:
                self.new_mail(added)
            case SyncError(message=said):
                self.notify(clean_line(said), severity="warning")
            case SendFailed(message=said):
                self.notify(
                    f"Not sent: {clean_line(said)}. It is kept in the outbox; "
                    "ctrl+p Outbox to edit or delete it.",
                    severity="error",
                    timeout=15,
                )
            case DeliveryUncertain(message=said):
                self.notify(
                    f"May have been delivered: {clean_line(said)}. It is kept in the outbox "
                    "and not sent again; ctrl+p Outbox to send it again or delete it.",
                    severity="warning",
                    timeout=15,
                )
            case DraftsRecovered(folder=folder, subjects=subjects):
                listed = ", ".join(subjects[:3]) + (" …" if len(subjects) > 3 else "")
                said = f"Recovered {len(subjects)} unsaved draft(s) into {folder}: {listed}"
                self.notify(clean_line(said), timeout=15)
            case MessageSent(refused=refused):
                words = "; ".join(f"{r}: {w}" for r, w in refused)
                self.notify(
                    clean_line(f"Message sent; refused: {words}" if refused else "Message sent"),
                    severity="warning" if refused else "information",
                )

    def new_mail(self, event: MessagesAdded) -> None:
        """Tell the user about mail that arrives in an inbox after the first sync."""
        if not self.api.synced(event.account):
            return
        roles = self.api.folder_roles(event.account)  # not folders(): no counts on this path
        inboxes = {name for name, role in roles.items() if role is FolderRole.INBOX}
        # New means unread and just arrived: a message moved back by undo, or read elsewhere,
        # keeps its old INTERNALDATE or its \\Seen flag, and is not announced.
        recent = datetime.now(UTC) - timedelta(minutes=10)
        fresh = [
            s
            for s in event.summaries
            if SEEN not in s.flags
            and (s.internal_date is None or s.internal_date >= recent)
            and not self.api.moved_by_user(s.envelope.message_id)
        ]
        if event.folder not in inboxes or not fresh:
            return
        # A download or a sync brings mail in batches: one notice for the whole burst.
        if not self._fresh_mail:
            self.set_timer(NEW_MAIL_COALESCE, self._announce_new_mail)
        self._fresh_mail.extend(fresh)

    def _announce_new_mail(self) -> None:
        fresh, self._fresh_mail = self._fresh_mail, []
        if not fresh:
            return
        first = max(
            fresh, key=lambda s: (s.internal_date.timestamp() if s.internal_date else 0.0, s.uid)
        )
        envelope = first.envelope
        who = envelope.from_[0].name or envelope.from_[0].addr if envelope.from_ else "someone"
        more = f" (+{len(fresh) - 1} more)" if len(fresh) > 1 else ""
        self.notify(f"{clean_line(who)}: {clean_line(envelope.subject)}{more}", title="New mail")
        if self.config.ui.bell:
            self.bell()


def _database_error(error: BaseException) -> sqlite3.DatabaseError | None:
    """The SQLite error behind ``error`` (a worker's failure wraps it), if any."""
    seen: BaseException | None = error
    for _ in range(5):
        if seen is None:
            return None
        if isinstance(seen, sqlite3.DatabaseError):
            return seen
        seen = getattr(seen, "error", None) or seen.__cause__ or seen.__context__
    return None


def _context(app: KittiwakeApp) -> AppContext:
    """The app is what screens and widgets see of it (``tui/context.py``): checked by mypy."""
    return app
