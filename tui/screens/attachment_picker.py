"""``S`` (or ``v``) with several attachments: choose which one to save (or open)."""

from __future__ import annotations

from kittiwake.core.message.mime import Attachment
from kittiwake.core.sanitize import clean_line
from kittiwake.tui.screens.pickers import Picker


class AttachmentPicker(Picker[Attachment]):
    def __init__(
        self, attachments: list[Attachment], title: str = "Save which attachment?"
    ) -> None:
        items = [
            (f"{a.index}. {clean_line(a.filename)} ({clean_line(a.content_type)})", a)
            for a in attachments
        ]
        super().__init__(title, items)
