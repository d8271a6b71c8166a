"""``o``: go to a folder by fuzzy name."""

from __future__ import annotations

from kittiwake.core.sanitize import clean_line
from kittiwake.tui.screens.pickers import Picker
from kittiwake.tui.widgets.folder_tree import FolderRef


class FolderPicker(Picker[FolderRef]):
    def __init__(self, refs: list[FolderRef]) -> None:
        accounts = {r.account for r in refs}
        items = [
            (
                clean_line(f"{r.account}/{r.folder}" if len(accounts) > 1 else r.folder or ""),
                r,
            )
            for r in refs
        ]
        super().__init__("Go to folder…", items)
