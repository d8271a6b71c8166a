"""``o``: go to a folder by fuzzy name."""

from __future__ import annotations

from kittiwake.core.sanitize import clean_line
from kittiwake.tui.screens.pickers import Picker
from kittiwake.tui.widgets.folder_tree import FolderRef


class FolderPicker(Picker[FolderRef]):
    """With ``create_in`` set, a name that matches no folder can be created."""

    def __init__(
        self, refs: list[FolderRef], title: str = "Go to folder…", create_in: str | None = None
    ) -> None:
        self.create_in = create_in
        accounts = {r.account for r in refs}
        items = [
            (
                clean_line(f"{r.account}/{r.folder}" if len(accounts) > 1 else r.folder or ""),
                r,
            )
            for r in refs
        ]
        super().__init__(title, items)

    def extra_items(self, query: str) -> list[tuple[str, FolderRef]]:
        name = query.strip()
        if self.create_in is None or not name:
            return []
        if any(label == name for label, _ in self.items):
            return []
        return [
            (f"Create folder “{clean_line(name)}”", FolderRef(self.create_in, name, True, True))
        ]
