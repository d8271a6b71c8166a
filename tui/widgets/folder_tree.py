"""The sidebar: accounts and their folders as a tree, special folders first, unread counts.
It follows the folder lists and counts live."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from kittiwake.core.events import FolderCountsChanged, FolderListChanged
from kittiwake.core.models import FolderInfo, FolderRole
from kittiwake.core.sanitize import clean_line
from kittiwake.tui.context import app_context
from kittiwake.tui.events import EngineEvent, follow

ROLE_ORDER = {
    FolderRole.INBOX: 0,
    FolderRole.DRAFTS: 1,
    FolderRole.SENT: 2,
    FolderRole.ARCHIVE: 3,
    FolderRole.FLAGGED: 4,
    FolderRole.ALL: 5,
    FolderRole.JUNK: 6,
    FolderRole.TRASH: 7,
}
ROLE_NAMES = {
    FolderRole.INBOX: "Inbox",
    FolderRole.DRAFTS: "Drafts",
    FolderRole.SENT: "Sent",
    FolderRole.ARCHIVE: "Archive",
    FolderRole.JUNK: "Junk",
    FolderRole.TRASH: "Trash",
}


@dataclass(frozen=True)
class FolderRef:
    account: str
    folder: str | None  # None for an account's root node
    selectable: bool = True
    create: bool = False  # a folder the user asked to create (from a picker)


def folder_order(folders: list[FolderInfo]) -> list[FolderInfo]:
    """Special folders first in a fixed order (Inbox, Drafts, Sent, ...), then by name."""
    return sorted(
        folders,
        key=lambda f: (ROLE_ORDER.get(f.role, 99) if f.role else 99, f.name.lower()),
    )


class FolderTree(Tree[FolderRef]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j,down", "cursor_down", "Down", id="folders.down", show=False),
        Binding("k,up", "cursor_up", "Up", id="folders.up", show=False),
    ]

    DEFAULT_CSS = """
    FolderTree {
        background: $panel;
        padding: 0 1 0 0;
    }
    """

    class Changed(Message):
        """An account's folder list changed (the screen may now have a folder to show)."""

        def __init__(self, account: str) -> None:
            super().__init__()
            self.account = account

    def __init__(self, *, id: str | None = None) -> None:
        # Text, not markup: a str label is parsed as markup, which loads Rich's emoji table
        # (~3 ms) before the first frame; the root is hidden anyway.
        super().__init__(Text("Accounts"), id=id)
        self.show_root = False
        self.guide_depth = 2
        self._folder_nodes: dict[tuple[str, str], TreeNode[FolderRef]] = {}
        self._infos: dict[tuple[str, str], FolderInfo] = {}
        self._account_nodes: dict[str, TreeNode[FolderRef]] = {}

    def on_mount(self) -> None:
        follow(self, FolderListChanged, FolderCountsChanged)

    def on_engine_event(self, message: EngineEvent) -> None:
        api = app_context(self).api
        event = message.event
        match event:
            case FolderListChanged(folders=folders):
                acct = next(a for a in api.accounts() if a.key == event.account)
                self.set_account(event.account, acct.name or acct.email, list(folders))
                self.post_message(self.Changed(event.account))
            case FolderCountsChanged(folder=folder, total=total, unread=unread):
                # The event's own counts: reading every folder's again cost a count of each
                # (at 200 folders or 1,000,000 messages, tens of ms per event).
                info = self._infos.get((event.account, folder))
                if info is not None:
                    self.update_counts(event.account, replace(info, total=total, unread=unread))

    def set_account(self, account: str, label: str, folders: list[FolderInfo]) -> None:
        """(Re)build one account's subtree, keeping the highlighted folder if it still exists."""
        highlighted = self.cursor_node.data if self.cursor_node is not None else None
        root = self._account_nodes.get(account)
        if root is None:
            root = self.root.add(
                Text(clean_line(label), style="bold"), FolderRef(account, None, False), expand=True
            )
            self._account_nodes[account] = root
        root.remove_children()
        for key in [k for k in self._folder_nodes if k[0] == account]:
            del self._folder_nodes[key]
            self._infos.pop(key, None)
        by_name = {f.name: f for f in folders}
        for info in folder_order(folders):
            parent = root
            if info.delimiter and info.role is None and info.delimiter in info.name:
                parent_name = info.name.rsplit(info.delimiter, 1)[0]
                parent = self._folder_nodes.get((account, parent_name), root)
            node = parent.add(
                self._label(info, by_name),
                FolderRef(account, info.name, info.selectable),
                expand=True,
                allow_expand=False,
            )
            self._folder_nodes[(account, info.name)] = node
            self._infos[(account, info.name)] = info
        for node in self._folder_nodes.values():
            node.allow_expand = bool(node.children)
        if highlighted is not None and highlighted.folder is not None:
            self.select_folder(highlighted.account, highlighted.folder, move_only=True)

    def _label(self, info: FolderInfo, _: dict[str, FolderInfo]) -> Text:
        name = ROLE_NAMES.get(info.role) if info.role else None
        if name is None:
            name = info.name.rsplit(info.delimiter, 1)[-1] if info.delimiter else info.name
        text = Text(clean_line(name), style="" if info.selectable else "dim")
        if info.unread:
            text.append(f" ({info.unread:,})", style="bold")
        return text

    def update_counts(self, account: str, info: FolderInfo) -> None:
        node = self._folder_nodes.get((account, info.name))
        if node is not None:
            node.set_label(self._label(info, {}))

    def select_folder(self, account: str, folder: str, move_only: bool = False) -> None:
        node = self._folder_nodes.get((account, folder))
        if node is not None:
            self.move_cursor(node)
            if not move_only:
                self.select_node(node)

    def folder_refs(self) -> list[FolderRef]:
        """Every selectable folder in display order (for J/K and the pickers)."""
        out = []
        for account_node in self.root.children:
            stack = list(reversed(account_node.children))
            while stack:
                node = stack.pop()
                if node.data is not None and node.data.selectable:
                    out.append(node.data)
                stack.extend(reversed(node.children))
        return out
