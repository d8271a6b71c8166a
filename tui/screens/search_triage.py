"""What search results and conversations have in common: a ``ThreadList`` of messages from
several folders, the triage keys acting on them, and live updates.

The keys are ``tui/triage.py``'s, as in the message list and the reader (ids ``triage.*``,
so a remapping in ``[keys]`` holds everywhere). Here the targets are (folder, UID) pairs,
so each action is submitted once per folder (the journal's actions name one folder each),
together (``MailApi.act_many``): one key press is one undo step. ``TriageScreen`` has the
keys; ``ResultsScreen`` (search results, conversations) and the thread reader say what they
act on.
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType

from kittiwake.core.api import Hit
from kittiwake.core.events import (
    Event,
    FlagsChanged,
    FolderReset,
    MessagesAdded,
    MessagesExpunged,
)
from kittiwake.core.models import FolderRole
from kittiwake.tui.context import AppContext, app_context
from kittiwake.tui.events import EngineEvent, follow
from kittiwake.tui.tools import EXPORT_BINDING, PIPE_BINDING
from kittiwake.tui.triage import Targets, TriageCommands, plural, targets_of, triage_bindings
from kittiwake.tui.widgets.footer import KeyFooter
from kittiwake.tui.widgets.plain import PlainBar
from kittiwake.tui.widgets.thread_list import ThreadList

__all__ = ["ResultsScreen", "TitleBar", "TriageScreen", "plural"]


class TitleBar(PlainBar):
    DEFAULT_CSS = """
    TitleBar {
        height: 1;
        background: $panel;
        color: $foreground;
        padding: 0 1;
    }
    """


class TriageScreen(TriageCommands):
    """The triage keys (``tui/triage.py``) on messages from anywhere in one account; a
    subclass says what they act on (``_targets``)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        *triage_bindings(shown=("flag", "archive", "delete", "move", "undo")),
        PIPE_BINDING,
        EXPORT_BINDING,
    ]

    def __init__(self, account: str) -> None:
        super().__init__()
        self.account = account

    @property
    def kw(self) -> AppContext:
        return app_context(self)

    def _triage_account(self) -> str | None:
        return self.account

    def _validity(self, folder: str) -> int | None:
        """``folder``'s UIDVALIDITY when its messages here were shown (actions name it)."""
        return self.kw.api.uidvalidity(self.account, folder)

    def _hits(self) -> list[Hit]:
        """The messages a key acts on."""
        raise NotImplementedError

    def _targets(self) -> list[Targets]:
        return targets_of(self._hits(), self._validity)

    def _no_archive(self, account: str, aim: list[Targets]) -> bool | None:
        self.notify(
            "This account has no Archive folder; create one from the folder list first.",
            severity="warning",
        )
        return None


class ResultsScreen(TriageScreen):
    """A list of messages from anywhere in one account, with the mailbox's triage keys."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "back", "Back", id="results.back"),
        Binding("x", "select", "Select", id="triage.select", show=False),
        Binding("asterisk", "select_all", "Select all", id="triage.select_all", show=False),
        Binding("?", "help", "Help", id="app.help"),
    ]

    def __init__(self, account: str) -> None:
        super().__init__(account)
        self.title_text = ""

    def compose(self) -> ComposeResult:
        yield TitleBar(id="results-title")
        yield ThreadList(self.kw.api, id="results")
        yield KeyFooter()

    def on_mount(self) -> None:
        api = self.kw.api
        outgoing = (api.role_folder(self.account, r) for r in (FolderRole.SENT, FolderRole.DRAFTS))
        self.results().outgoing_folders = frozenset(f for f in outgoing if f is not None)
        self.results().focus()
        follow(self, FlagsChanged, MessagesExpunged, MessagesAdded, FolderReset)

    def results(self) -> ThreadList:
        return self.query_one(ThreadList)

    def set_title(self, text: str) -> None:
        self.title_text = text
        self.query_one(TitleBar).update(text)

    # -- live events ------------------------------------------------------------------------

    def on_engine_event(self, message: EngineEvent) -> None:
        if message.event.account == self.account:
            self.live_event(message.event)

    def live_event(self, event: Event) -> None:
        """A change in the account: rows change or go (a subclass adds to this, not to the
        message handler, which Textual would call once per class)."""
        results = self.results()
        match event:
            case FlagsChanged(folder=folder, flags=flags):
                results.refresh_hits({Hit(folder, uid) for uid in flags})
                self.after_change()
            case MessagesExpunged(folder=folder, uids=uids):
                results.forget({Hit(folder, uid) for uid in uids})
                self.after_change()
            case MessagesAdded(folder=folder):
                self.messages_added(folder)
            case FolderReset(folder=folder):
                results.forget_folder(folder)  # recreated: the same UIDs are other messages
                self.after_change()

    def messages_added(self, folder: str) -> None:
        """New mail somewhere in the account (conversations rebuild; results do not)."""

    def after_change(self) -> None:
        """Rows went away or flags changed: update the title's counts."""

    # -- navigation -------------------------------------------------------------------------

    def action_back(self) -> None:
        if self.results().clear_selection():
            return
        self.app.pop_screen()

    def action_help(self) -> None:
        self.kw.action_help()

    # -- selection ----------------------------------------------------------------------

    def _hits(self) -> list[Hit]:
        return self.results().hit_targets()

    def _validity(self, folder: str) -> int | None:
        seen = self.results().validity
        return seen[folder] if folder in seen else super()._validity(folder)

    def _after_submit(self) -> None:
        self.results().clear_selection()

    def action_select(self) -> None:
        results = self.results()
        results.toggle_chosen()
        results.action_cursor_down()

    def action_select_all(self) -> None:
        self.results().select_all()
