"""The triage keys, once, for every screen that shows messages: the message list, the reader,
search results, conversations and the conversation reader.

A screen says what the user sees (``_targets``: ``Targets``, one per folder, each with the
folder's UIDVALIDITY when its messages were shown, taken when the key is pressed) and puts
``triage_bindings(...)`` in its own ``BINDINGS`` (its footer shows the keys it chooses; the
ids are ``triage.*`` everywhere, so one ``[keys]`` remapping holds in every screen).
``TriageCommands`` does the rest: flag, read/unread, archive, delete (to Trash; in Trash, for
good after asking, never undoable), junk (``$Junk`` and the move as one undo step), move,
copy, Gmail labels (``+Work -Travel``) and undo. An action on messages of several folders is
one journaled action per folder, submitted together (``MailApi.act_many``): one key press, one
undo step.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from textual import on
from textual.binding import Binding, BindingType
from textual.events import Mount
from textual.screen import Screen

from kittiwake.core.errors import KittiwakeError
from kittiwake.core.journal import Action, ActionRefused
from kittiwake.core.models import FLAGGED, JUNK, SEEN, FolderInfo, FolderRole
from kittiwake.core.sanitize import clean_line
from kittiwake.tui.context import app_context
from kittiwake.tui.widgets.folder_tree import FolderRef, folder_order

if TYPE_CHECKING:
    from kittiwake.core.api import Hit


@dataclass(frozen=True)
class Targets:
    """The messages a key acts on, as the user saw them: their folder, its UIDVALIDITY when
    they were shown, and their UIDs."""

    folder: str
    uidvalidity: int | None
    uids: tuple[int, ...]


def plural(n: int, word: str = "message") -> str:
    return f"{n:,} {word}{'s' if n != 1 else ''}"


def targets_of(hits: Iterable[Hit], validity: Callable[[str], int | None]) -> list[Targets]:
    """``hits`` grouped by folder (in the order they come), each with ``validity(folder)``."""
    by_folder: dict[str, list[int]] = {}
    for hit in hits:
        by_folder.setdefault(hit.folder, []).append(hit.uid)
    return [Targets(f, validity(f), tuple(uids)) for f, uids in by_folder.items()]


#: (id, key, action, description): the triage keys, in footer order.
TRIAGE_KEYS: list[tuple[str, str, str, str]] = [
    ("flag", "s", "flag", "Flag"),
    ("read", "u", "toggle_read", "Read/unread"),
    ("archive", "e", "archive", "Archive"),
    ("delete", "d", "delete", "Delete"),
    ("move", "m", "move", "Move"),
    ("copy", "y", "copy", "Copy"),
    ("junk", "exclamation_mark", "junk", "Junk"),
    ("label", "L", "label", "Label"),
    ("undo", "z", "undo", "Undo"),
]

TRIAGE_BUT_UNDO = tuple(name for name, *_ in TRIAGE_KEYS if name != "undo")


def triage_bindings(
    shown: Iterable[str] = (),
    labels: dict[str, str] | None = None,
    only: Iterable[str] | None = None,
) -> list[BindingType]:
    """The ``triage.*`` bindings for a screen's own ``BINDINGS``: ``shown`` (names such as
    "flag") in its footer, ``labels`` renaming some, ``only`` a subset (all by default)."""
    show, names = set(shown), set(only) if only is not None else None
    return [
        Binding(key, action, (labels or {}).get(name, text), id=f"triage.{name}", show=name in show)
        for name, key, action, text in TRIAGE_KEYS
        if names is None or name in names
    ]


def parse_label_edit(text: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``+Travel -Work "Big Project"`` -> (("Travel", "Big Project"), ("Work",)): a bare
    name adds; quotes keep spaces in a name."""
    add: list[str] = []
    remove: list[str] = []
    for match in re.finditer(r'([+-]?)(?:"([^"]*)"|(\S+))', text):
        sign, quoted, bare = match.groups()
        name = (quoted if quoted is not None else bare).strip()
        if name:
            (remove if sign == "-" else add).append(name)
    return tuple(add), tuple(remove)


def tree_order(account: str, folders: list[FolderInfo]) -> list[FolderRef]:
    """The selectable folders of ``account`` as the sidebar lists them (children under their
    parent), for the folder pickers."""
    children: dict[str | None, list[FolderInfo]] = {}
    placed: set[str] = set()
    for info in folder_order(folders):
        parent = None
        if info.delimiter and info.role is None and info.delimiter in info.name:
            name = info.name.rsplit(info.delimiter, 1)[0]
            parent = name if name in placed else None
        children.setdefault(parent, []).append(info)
        placed.add(info.name)
    out: list[FolderRef] = []
    stack = list(reversed(children.get(None, [])))
    while stack:
        info = stack.pop()
        if info.selectable:
            out.append(FolderRef(account, info.name, info.selectable))
        stack.extend(reversed(children.get(info.name, [])))
    return out


class TriageCommands(Screen[None]):
    """The triage actions of a screen; the screen says what they act on (``_targets``) and,
    through the hooks, what it does around them."""

    def _triage_account(self) -> str | None:
        """The account the keys act in."""
        raise NotImplementedError

    def _targets(self) -> list[Targets]:
        """What a key acts on, taken when it is pressed (a picker or a question answered
        later acts on these, not on whatever the cursor is on by then)."""
        raise NotImplementedError

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The label key exists only where labels do (Gmail): elsewhere it is neither in
        the help screen nor in the palette."""
        if action == "label":
            account = self._triage_account()
            return account is not None and app_context(self).api.has_labels(account)
        return True

    def _relocation_targets(self) -> list[Targets]:
        """What archive, delete, junk and move act on (flags and copy act on ``_targets``)."""
        return self._targets()

    def _after_submit(self) -> None:
        """An action was submitted (lists clear their selection)."""

    def _refused(self, exc: ActionRefused) -> None:
        """Nothing was done: every message named is gone (moved, deleted, folder recreated)."""
        self.notify(clean_line(exc.message), severity="warning")

    def _no_archive(self, account: str, aim: list[Targets]) -> bool | None:
        """The account has no Archive folder: offer to create one (answered later: None)."""

        api = app_context(self).api
        # The configured name if it does not exist yet, else "Archive" where the server
        # allows new folders (under INBOX. on Courier and Cyrus).
        name = api.config.accounts[account].archive_folder or api.new_folder_name(
            account, "Archive"
        )

        def answer(yes: bool | None) -> None:
            if yes:
                self._create_then(account, name, lambda: self._move_to(name, aim, "Archived"))

        from kittiwake.tui.screens.confirm import Confirm

        self.app.push_screen(
            Confirm(f"This account has no Archive folder. Create one called “{clean_line(name)}”?"),
            answer,
        )
        return None

    # -- submitting --------------------------------------------------------------------------

    def _submit(
        self,
        actions: list[Action],
        done: str,
        *,
        undoable: bool = True,
        counted: str | None = None,
    ) -> bool | None:
        """Submit ``actions`` as one step; False (and the reason shown) when their messages
        are all gone, None when there was nothing to do. ``done`` ends with what it was done
        to; what is said to be left out counts the actions of kind ``counted`` (the last
        action's by default)."""
        account = self._triage_account()
        if account is None or not actions:
            return None
        try:
            acted = app_context(self).api.act_many(account, actions, undoable=undoable)
        except ActionRefused as exc:
            self._refused(exc)
            return False
        self._after_submit()
        kind = counted or actions[-1].kind
        asked = sum(len(a.uids) for a in actions if a.kind == kind)
        kept = sum(len(a.uids) for a in acted if a.kind == kind)
        if done and (missing := asked - kept) > 0:
            done += f" ({plural(missing)} gone meanwhile left out)"
        if done:
            self.notify(f"{done} (z to undo)" if undoable else done, timeout=3)
        return True

    @staticmethod
    def _actions(
        kind: Literal["flags", "move", "copy", "expunge", "labels"],
        aim: list[Targets],
        *,
        add: tuple[str, ...] = (),
        remove: tuple[str, ...] = (),
        dest: str | None = None,
    ) -> list[Action]:
        return [
            Action(
                kind=kind,
                folder=t.folder,
                uidvalidity=t.uidvalidity,
                uids=t.uids,
                add=add,
                remove=remove,
                dest=dest,
            )
            for t in aim
            if t.uids and not (kind in ("move", "copy") and t.folder == dest)
        ]

    # -- the keys ----------------------------------------------------------------------------

    def _flag_toggle(self, flag: str, on_word: str, off_word: str) -> bool | None:
        account, aim = self._triage_account(), self._targets()
        if account is None or not aim:
            return None
        api = app_context(self).api
        rows = [
            row
            for t in aim
            for row in api.summaries(account, t.folder, list(t.uids)).values()
            if row.uid in t.uids
        ]
        everyone_has = all(flag in row.flags for row in rows)
        add, remove = ((), (flag,)) if everyone_has else ((flag,), ())
        word = off_word if everyone_has else on_word
        count = sum(len(t.uids) for t in aim)
        return self._submit(
            self._actions("flags", aim, add=add, remove=remove), f"{word} {plural(count)}"
        )

    def action_flag(self) -> bool | None:
        return self._flag_toggle(FLAGGED, "Flagged", "Unflagged")

    def action_toggle_read(self) -> bool | None:
        return self._flag_toggle(SEEN, "Marked read:", "Marked unread:")

    def _move_to(
        self,
        dest: str,
        aim: list[Targets],
        verb: str = "Moved",
        kind: Literal["move", "copy"] = "move",
    ) -> bool | None:
        actions = self._actions(kind, aim, dest=dest)
        count = sum(len(a.uids) for a in actions)
        return self._submit(actions, f"{verb} {plural(count)} to {clean_line(dest)}")

    def action_archive(self) -> bool | None:
        account, aim = self._triage_account(), self._relocation_targets()
        if account is None or not aim:
            return None
        api = app_context(self).api
        dest = api.archive_folder(account)
        if dest is None:
            return self._no_archive(account, aim)
        if dest == api.role_folder(account, FolderRole.ALL):
            # Gmail: archive takes the Inbox label off. From the inbox that is the move to
            # All Mail; from a label's folder (search results, a conversation) the message
            # stays where it is shown, as in Gmail's web interface.
            inbox = api.role_folder(account, FolderRole.INBOX) or "INBOX"
            here = [t for t in aim if t.folder == inbox]
            others = [t for t in aim if t.folder not in (inbox, dest)]
            actions = self._actions("move", here, dest=dest) + self._actions(
                "labels", others, remove=("\\Inbox",)
            )
            count = sum(len(a.uids) for a in actions)
            return self._submit(actions, f"Archived {plural(count)}")
        return self._move_to(dest, aim, "Archived")

    def action_delete(self) -> bool | None:
        """To Trash; what is in Trash already (or everything, without a Trash) is deleted
        for good after asking, and that is never on the undo stack."""
        account, aim = self._triage_account(), self._relocation_targets()
        if account is None or not aim:
            return None
        trash = app_context(self).api.role_folder(account, FolderRole.TRASH)
        in_trash = [t for t in aim if trash is None or t.folder == trash]
        elsewhere = [t for t in aim if t not in in_trash]
        moved: bool | None = None
        if elsewhere and trash is not None:
            moved = self._move_to(trash, elsewhere)
        if not in_trash:
            return moved
        count = plural(sum(len(t.uids) for t in in_trash))

        def answer(yes: bool | None) -> None:
            if yes:
                self._submit(
                    self._actions("expunge", in_trash),
                    f"Deleted {count} for good",
                    undoable=False,
                )

        from kittiwake.tui.screens.confirm import Confirm

        self.app.push_screen(Confirm(f"Delete {count} for good? This cannot be undone."), answer)
        return moved

    def action_label(self) -> bool | None:
        """Gmail labels: ``+Travel -Work`` (a bare name adds); one journaled action per
        folder, undoable, sent now or on reconnect."""
        account, aim = self._triage_account(), self._targets()
        if account is None or not aim:
            return None
        api = app_context(self).api
        first = aim[0]
        if not first.uids or api.labels(account, first.folder, first.uids[0]) is None:
            self.notify("Labels are Gmail's; this account has none.", severity="warning")
            return None
        shown = api.labels(account, first.folder, first.uids[0]) or ()
        now = " ".join(x for x in shown if not x.startswith("\\"))

        def named(text: str | None) -> None:
            add, remove = parse_label_edit(text or "")
            if not add and not remove:
                return
            actions = [
                Action(
                    kind="labels",
                    folder=t.folder,
                    uidvalidity=t.uidvalidity,
                    uids=t.uids,
                    add=add,
                    remove=remove,
                )
                for t in aim
                if t.uids
            ]
            count = sum(len(a.uids) for a in actions)
            self._submit(actions, f"Labels changed on {plural(count)}")

        from kittiwake.tui.screens.prompt import Prompt

        hint = f" (now: {clean_line(now)})" if now else ""
        self.app.push_screen(Prompt(f"Labels, +add -remove{hint}:"), named)
        return None

    def action_junk(self) -> bool | None:
        """``$Junk`` and the move to Junk, one step: ``z`` takes both back."""
        account, aim = self._triage_account(), self._relocation_targets()
        if account is None or not aim:
            return None
        junk = app_context(self).api.role_folder(account, FolderRole.JUNK)
        if junk is None:
            self.notify("This account has no Junk folder.", severity="warning")
            return None
        count = sum(len(t.uids) for t in aim)
        actions = [  # per folder: the flag, then the move (none for what is in Junk already)
            a
            for t in aim
            for a in (
                *self._actions("flags", [t], add=(JUNK,)),
                *self._actions("move", [t], dest=junk),
            )
        ]
        return self._submit(actions, f"Marked as junk: {plural(count)}", counted="flags")

    def _folder_refs(self, account: str) -> list[FolderRef]:
        return tree_order(account, app_context(self).api.folders(account))

    def _create_then(
        self, account: str, name: str, then: Callable[[], object], *, for_move: bool = True
    ) -> None:
        """Create ``name``, then ``then()``. For a move or copy into it the creation is
        journaled ahead of the move (it waits with it while offline)."""
        api = app_context(self).api
        create_folder = api.create_folder_for_move if for_move else api.create_folder

        async def create() -> None:
            try:
                await create_folder(account, name)
            except KittiwakeError as exc:
                self.notify(exc.message, severity="error")
                return
            then()

        self.run_worker(create(), group="create-folder")

    def _pick_folder(self, title: str, then: Callable[[str], object]) -> None:
        from kittiwake.tui.screens.folder_picker import FolderPicker

        account = self._triage_account()
        if account is None:
            return

        def chosen(ref: FolderRef | None) -> None:
            if ref is None or ref.folder is None:
                return
            name = ref.folder
            if ref.create:
                self._create_then(account, name, lambda: then(name))
            else:
                then(name)

        refs = self._folder_refs(account)
        self.app.push_screen(FolderPicker(refs, title, create_in=account), chosen)

    def action_move(self) -> None:
        if aim := self._relocation_targets():
            self._pick_folder("Move to…", lambda dest: self._move_to(dest, aim))

    def action_copy(self) -> None:
        if aim := self._targets():
            self._pick_folder("Copy to…", lambda dest: self._move_to(dest, aim, "Copied", "copy"))

    def action_undo(self) -> None:
        self.notify(app_context(self).api.undo(self._triage_account()), timeout=3)

    # -- the user's programs (tui/tools.py): what a key acts on, piped ---------------------

    @on(Mount)
    def _bind_named_pipes(self) -> None:
        from kittiwake.tui.tools import named_pipe_bindings

        named_pipe_bindings(self)

    def action_pipe(self) -> None:
        from kittiwake.tui.tools import ask_pipe

        ask_pipe(self, self._triage_account(), self._targets())

    def action_export(self) -> None:
        from kittiwake.tui.tools import ask_export

        ask_export(self, self._triage_account(), self._targets())

    def action_pipe_named(self, name: str) -> None:
        from kittiwake.tui.tools import pipe_targets

        entry = app_context(self).config.tools.pipe.get(name)
        if entry is not None:
            pipe_targets(self, self._triage_account(), self._targets(), entry.command)
