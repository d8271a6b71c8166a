"""What search results and conversations have in common: a ``ThreadList`` of messages from
several folders, the triage keys acting on them, and live updates.

The mailbox's triage acts on UIDs of the one folder it shows; here the targets are
(folder, UID) pairs, so each action is submitted once per folder (the journal's actions
name one folder each); they are submitted together (``MailApi.act_many``), so one key press
is one undo step. Keys and their ids are the mailbox's (``triage.flag`` ...), so a remapping
in ``[keys]`` holds everywhere. ``TriageScreen`` has the keys; ``ResultsScreen`` (search
results, conversations) and the thread reader say what they act on.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar, Literal

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen

from kittiwake.core.api import Hit
from kittiwake.core.errors import KittiwakeError
from kittiwake.core.events import (
    Event,
    FlagsChanged,
    FolderReset,
    MessagesAdded,
    MessagesExpunged,
)
from kittiwake.core.journal import Action, ActionRefused
from kittiwake.core.models import FLAGGED, JUNK, SEEN, FolderRole, MessageSummary
from kittiwake.core.sanitize import clean_line
from kittiwake.tui.widgets.folder_tree import FolderRef, folder_order
from kittiwake.tui.widgets.footer import KeyFooter
from kittiwake.tui.widgets.plain import PlainBar
from kittiwake.tui.widgets.thread_list import ThreadList

if TYPE_CHECKING:
    from kittiwake.tui.app import KittiwakeApp


class TitleBar(PlainBar):
    DEFAULT_CSS = """
    TitleBar {
        height: 1;
        background: $panel;
        color: $foreground;
        padding: 0 1;
    }
    """


def plural(n: int, word: str = "message") -> str:
    return f"{n:,} {word}{'s' if n != 1 else ''}"


class TriageScreen(Screen[None]):
    """The mailbox's triage keys on (folder, UID) targets from anywhere in one account.

    A subclass says what the keys act on (``_targets``); an action on messages of several
    folders is one journaled action per folder, submitted together as one undo step
    (``MailApi.act_many``)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "flag", "Flag", id="triage.flag"),
        Binding("u", "toggle_read", "Read/unread", id="triage.read", show=False),
        Binding("e", "archive", "Archive", id="triage.archive"),
        Binding("d", "delete", "Delete", id="triage.delete"),
        Binding("m", "move", "Move", id="triage.move"),
        Binding("y", "copy", "Copy", id="triage.copy", show=False),
        Binding("exclamation_mark", "junk", "Junk", id="triage.junk", show=False),
        Binding("z", "undo", "Undo", id="triage.undo"),
    ]

    def __init__(self, account: str) -> None:
        super().__init__()
        self.account = account

    @property
    def kw(self) -> KittiwakeApp:
        return self.app  # type: ignore[return-value]

    def _targets(self) -> list[Hit]:
        """What a triage key acts on."""
        raise NotImplementedError

    def _relocation_targets(self) -> list[Hit]:
        """What archive, delete, junk and move act on (flags act on ``_targets``)."""
        return self._targets()

    def _summary(self, hit: Hit) -> MessageSummary | None:
        return self.kw.api.summary_of(self.account, hit)

    def _validity(self, folder: str) -> int | None:
        """``folder``'s UIDVALIDITY when its messages here were shown (actions name it)."""
        return self.kw.api.uidvalidity(self.account, folder)

    def _after_submit(self) -> None:
        """An action was submitted (the results clear their selection)."""

    # -- triage -----------------------------------------------------------------------------

    def _submit(
        self,
        kind: Literal["flags", "move", "copy", "expunge"],
        hits: list[Hit],
        done: str,
        *,
        add: tuple[str, ...] = (),
        remove: tuple[str, ...] = (),
        dest: str | None = None,
        undoable: bool = True,
    ) -> None:
        by_folder: dict[str, list[int]] = defaultdict(list)
        for hit in hits:
            by_folder[hit.folder].append(hit.uid)
        actions = [
            Action(
                kind=kind,
                folder=folder,
                uidvalidity=self._validity(folder),
                uids=tuple(uids),
                add=add,
                remove=remove,
                dest=dest,
            )
            for folder, uids in by_folder.items()
            if not (kind in ("move", "copy") and folder == dest)
        ]
        try:
            acted = self.kw.api.act_many(self.account, actions, undoable=undoable)
        except ActionRefused as exc:
            self.notify(clean_line(exc.message), severity="warning")
            return
        self._after_submit()
        asked, kept = (sum(len(a.uids) for a in parts) for parts in (actions, acted))
        if done and (missing := asked - kept) > 0:
            done += f" ({plural(missing)} gone meanwhile left out)"
        if done:
            self.notify(f"{done} (z to undo)" if undoable else done, timeout=3)

    def _flag_toggle(self, flag: str, on_word: str, off_word: str) -> None:
        hits = self._targets()
        if not hits:
            return
        everyone_has = all(flag in s.flags for h in hits if (s := self._summary(h)) is not None)
        add, remove = ((), (flag,)) if everyone_has else ((flag,), ())
        word = off_word if everyone_has else on_word
        self._submit("flags", hits, f"{word} {plural(len(hits))}", add=add, remove=remove)

    def action_flag(self) -> None:
        self._flag_toggle(FLAGGED, "Flagged", "Unflagged")

    def action_toggle_read(self) -> None:
        self._flag_toggle(SEEN, "Marked read:", "Marked unread:")

    def _move_to(
        self,
        dest: str,
        verb: str = "Moved",
        kind: Literal["move", "copy"] = "move",
        hits: list[Hit] | None = None,
    ) -> None:
        """``hits``: taken when the key was pressed (a picker answers later)."""
        if hits is None:
            hits = self._relocation_targets() if kind == "move" else self._targets()
        if hits:
            self._submit(kind, hits, f"{verb} {plural(len(hits))} to {clean_line(dest)}", dest=dest)

    def action_archive(self) -> None:
        dest = self.kw.api.archive_folder(self.account)
        if dest is None:
            self.notify(
                "This account has no Archive folder; create one from the folder list first.",
                severity="warning",
            )
            return
        self._move_to(dest, "Archived")

    def action_delete(self) -> None:
        hits = self._relocation_targets()
        if not hits:
            return
        trash = self.kw.api.role_folder(self.account, FolderRole.TRASH)
        in_trash = [h for h in hits if trash is None or h.folder == trash]
        elsewhere = [h for h in hits if h not in in_trash]
        if elsewhere and trash is not None:
            self._submit("move", elsewhere, f"Moved {plural(len(elsewhere))} to Trash", dest=trash)
        if not in_trash:
            return
        from kittiwake.tui.screens.confirm import Confirm

        def answer(yes: bool | None) -> None:
            if yes:
                self._submit(
                    "expunge", in_trash, f"Deleted {plural(len(in_trash))} for good", undoable=False
                )

        self.app.push_screen(
            Confirm(f"Delete {plural(len(in_trash))} for good? This cannot be undone."), answer
        )

    def action_junk(self) -> None:
        junk = self.kw.api.role_folder(self.account, FolderRole.JUNK)
        if junk is None:
            self.notify("This account has no Junk folder.", severity="warning")
            return
        hits = self._relocation_targets()
        if hits:
            self._submit("flags", hits, "", add=(JUNK,), undoable=False)
            self._submit("move", hits, f"Marked as junk: {plural(len(hits))}", dest=junk)

    def _pick_folder(self, title: str, then: Callable[[str], None]) -> None:
        from kittiwake.tui.screens.folder_picker import FolderPicker

        account = self.account
        refs = [
            FolderRef(account, f.name)
            for f in folder_order(self.kw.api.folders(account))
            if f.selectable
        ]

        def chosen(ref: FolderRef | None) -> None:
            if ref is None or ref.folder is None:
                return
            name = ref.folder
            if not ref.create:
                then(name)
                return

            async def create() -> None:
                try:
                    await self.kw.api.create_folder_for_move(account, name)
                except KittiwakeError as exc:
                    self.notify(exc.message, severity="error")
                    return
                then(name)

            self.run_worker(create(), group="create-folder")

        self.app.push_screen(FolderPicker(refs, title, create_in=account), chosen)

    def action_move(self) -> None:
        if hits := self._relocation_targets():
            self._pick_folder("Move to…", lambda dest: self._move_to(dest, hits=hits))

    def action_copy(self) -> None:
        if hits := self._targets():
            self._pick_folder(
                "Copy to…", lambda dest: self._move_to(dest, "Copied", "copy", hits=hits)
            )

    def action_undo(self) -> None:
        self.notify(self.kw.api.undo(self.account), timeout=3)


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
        self.follow_events()

    def results(self) -> ThreadList:
        return self.query_one(ThreadList)

    def set_title(self, text: str) -> None:
        self.title_text = text
        self.query_one(TitleBar).update(text)

    # -- live events ------------------------------------------------------------------------

    @work(exclusive=True, group="results-events", exit_on_error=False)
    async def follow_events(self) -> None:
        async with self.kw.api.subscribe() as events:
            async for event in events:
                if event.account == self.account:
                    self.on_engine_event(event)

    def on_engine_event(self, event: Event) -> None:
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

    def _targets(self) -> list[Hit]:
        return self.results().hit_targets()

    def _summary(self, hit: Hit) -> MessageSummary | None:
        return self.results().summary_of(hit)

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
