"""Starting to compose (mutt's flow): ``c`` asks for To and Subject, ``r R f F`` go straight to
the editor with headers and quote filled in; the review screen follows (``review.py``).

The body is edited in ``$VISUAL``/``$EDITOR`` (the app suspends; the command is split with
shlex and gets the draft's file as its argument, never a shell), or in the built-in editor
when none is set or ``[ui] editor = "builtin"``.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import App, ComposeResult, SuspendNotSupported
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Input, Static, TextArea

from kittiwake.core.compose.draft import Draft
from kittiwake.core.compose.drafts import LocalDraft
from kittiwake.core.config import Config
from kittiwake.core.errors import KittiwakeError
from kittiwake.core.sanitize import clean_line
from kittiwake.tui.context import app_context
from kittiwake.tui.widgets.address_input import AddressInput, PathInput
from kittiwake.tui.widgets.footer import KeyFooter

KEEP_EVERY = 5.0
"""Seconds between writes of the built-in editor's text to the draft's local copy."""


def editor_command(config: Config) -> list[str] | None:
    """The external editor as argv, or None for the built-in one."""
    chosen = config.ui.editor or os.environ.get("VISUAL") or os.environ.get("EDITOR")
    if not chosen or chosen.strip() == "builtin":
        return None
    try:
        argv = shlex.split(chosen)
    except ValueError:
        return None
    return argv or None


def run_external_editor(app: App[object], argv: list[str], path: Path) -> int:
    """Hand the terminal to the editor until it exits (the app resumes as it was)."""
    command = [*argv, str(path)]
    try:
        with app.suspend():
            return subprocess.run(command, check=False).returncode
    except SuspendNotSupported:  # no terminal to give away (tests, the web): run it anyway
        return subprocess.run(
            command, check=False, stdin=subprocess.DEVNULL, capture_output=True
        ).returncode


class BuiltinEditor(Screen[str | None]):
    """The body (with its header block) in a TextArea: ctrl+s to finish, escape to cancel."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "done", "Done", id="editor.done", priority=True),
        Binding("escape", "cancel", "Cancel", id="editor.cancel"),
    ]

    DEFAULT_CSS = """
    BuiltinEditor #editor-help {
        height: 1;
        background: $panel;
        padding: 0 1;
    }
    """

    def __init__(self, text: str, keep: Callable[[str], Awaitable[None]] | None = None) -> None:
        super().__init__()
        self.text = text
        self.keep = keep
        """Writes the text to the draft's local copy (every few seconds while it changes)."""
        self._kept = text
        self.latest = text
        """The text as it is now: what a quit mid-edit saves (the file may be seconds old)."""

    def compose(self) -> ComposeResult:
        yield Static(
            Text("Edit the message · ctrl+s: done · escape: cancel", style="bold"),
            id="editor-help",
        )
        area = TextArea(self.text, id="editor", soft_wrap=True, show_line_numbers=False)
        yield area
        yield KeyFooter()

    def on_mount(self) -> None:
        area = self.query_one(TextArea)
        area.focus()
        head_end = self.text.find("\n\n")
        if head_end >= 0:  # the cursor where the body starts, as mutt's editors do
            line = self.text[: head_end + 2].count("\n")
            area.move_cursor((line, 0))
        if self.keep is not None:
            self.set_interval(KEEP_EVERY, self._keep_now)

    def on_text_area_changed(self, event: TextArea.Changed) -> None:
        self.latest = event.text_area.text

    async def _keep_now(self) -> None:
        text = self.query_one(TextArea).text
        if self.keep is not None and text != self._kept:
            await self.keep(text)
            self._kept = text

    def action_done(self) -> None:
        self.dismiss(self.query_one(TextArea).text)

    def action_cancel(self) -> None:
        self.dismiss(None)


class NewMessagePrompt(ModalScreen[tuple[str, str] | None]):
    """``c``: To (with completion) and Subject, then the editor."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="compose.prompt_cancel"),
    ]

    DEFAULT_CSS = """
    NewMessagePrompt {
        align: center middle;
    }
    NewMessagePrompt > Vertical {
        width: 90%;
        max-width: 80;
        height: auto;
        background: $surface;
        border: tall $accent;
        padding: 0 1;
    }
    """

    def __init__(self, complete: Callable[[str, list[str]], list[object]], to: str = "") -> None:
        super().__init__()
        self.complete = complete
        self.to = to

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Text("To (→ completes):"))
            query = app_context(self).api.query_addresses
            yield AddressInput(self.complete, value=self.to, query=query, id="to")  # type: ignore[arg-type]
            yield Static(Text("Subject:"))
            yield Input(id="subject")

    def on_mount(self) -> None:
        self.query_one("#to", Input).focus()

    @on(Input.Submitted, "#to")
    def _to_done(self) -> None:
        self.query_one("#subject", Input).focus()

    @on(Input.Submitted, "#subject")
    def _subject_done(self) -> None:
        self.dismiss((self.query_one("#to", Input).value, self.query_one("#subject", Input).value))

    def action_cancel(self) -> None:
        self.dismiss(None)


class PathPrompt(ModalScreen[str | None]):
    """A path with filesystem completion: ``a`` in the review (a file to attach), ``S`` in
    the readers (where to save an attachment)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="compose.path_cancel"),
    ]

    DEFAULT_CSS = """
    PathPrompt {
        align: center middle;
    }
    PathPrompt > Vertical {
        width: 90%;
        max-width: 80;
        height: auto;
        background: $surface;
        border: tall $accent;
        padding: 0 1;
    }
    """

    def __init__(
        self, question: str = "Attach file (tab or → completes):", value: str | None = None
    ) -> None:
        super().__init__()
        self.question = question
        self.value = value if value is not None else str(Path.cwd()) + "/"

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Text(self.question))
            yield PathInput(value=self.value, id="path")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    @on(Input.Submitted, "#path")
    def _submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)


# -- starting a message -----------------------------------------------------------------------


def _open_review(app: App[Any], make: Awaitable[LocalDraft], edit_first: bool) -> None:
    from kittiwake.tui.screens.review import ReviewScreen

    async def start() -> None:
        try:
            local = await make
        except KittiwakeError as exc:
            app.notify(clean_line(exc.message), severity="error")
            return
        await app.push_screen(ReviewScreen(local, edit_first=edit_first))

    app.run_worker(start(), group="compose-start", exclusive=True)


def compose_new(app: App[Any], account: str | None, to: str = "") -> None:
    """``c``: ask To and Subject, then the editor."""

    def answered(result: tuple[str, str] | None) -> None:
        if result is None:
            return
        to_text, subject = result

        async def make() -> LocalDraft:
            return app_context(app).api.compose.new(account, to_text, subject)

        _open_review(app, make(), edit_first=True)

    complete = app_context(app).api.complete_addresses
    app.push_screen(NewMessagePrompt(complete, to), answered)  # type: ignore[arg-type]


def compose_reply(app: App[Any], account: str, folder: str, uid: int, *, all: bool) -> None:
    reply = app_context(app).api.compose.reply(account, folder, uid, all=all)
    _open_review(app, reply, edit_first=True)


def compose_forward(app: App[Any], account: str, folder: str, uid: int, *, attached: bool) -> None:
    forward = app_context(app).api.compose.forward(account, folder, uid, attached=attached)
    _open_review(app, forward, edit_first=True)


def compose_reopen(app: App[Any], account: str, folder: str, uid: int) -> None:
    """A draft from the Drafts folder: straight to the review."""
    _open_review(app, app_context(app).api.draft_from(account, folder, uid), edit_first=False)


def compose_prepared(app: App[Any], account: str | None, draft: Draft) -> None:
    """A message filled in beforehand (``kittiwake 'mailto:...'``)."""

    async def make() -> LocalDraft:
        return app_context(app).api.compose.from_draft(account, draft)

    _open_review(app, make(), edit_first=True)


def compose_refused(app: App[Any], account: str, item_id: str) -> None:
    """A message the server refused, back in the review to fix and send again."""
    _open_review(app, app_context(app).api.compose.edit_refused(account, item_id), edit_first=False)


def delete_refused(app: App[Any], account: str, item_id: str, label: str) -> None:
    """A refused message given up on: asked first, then gone from the outbox."""
    from kittiwake.tui.screens.confirm import Confirm

    async def answer(yes: bool | None) -> None:
        if not yes:
            return
        try:
            await app_context(app).api.compose.delete_refused(account, item_id)
        except (KittiwakeError, OSError, KeyError) as exc:
            app.notify(clean_line(f"Not deleted: {exc}"), severity="error", markup=False)
            return
        app.notify(clean_line(f"Deleted from the outbox: {label}"), markup=False)

    app.push_screen(
        Confirm(clean_line(f"Delete the refused message {label}? It was not sent.")), answer
    )


def resend_uncertain(app: App[Any], account: str, item_id: str, label: str) -> None:
    """A message that may have been delivered: the user says it was not; asked first (the
    recipients may get it twice), then sent again."""
    from kittiwake.tui.screens.confirm import Confirm

    async def answer(yes: bool | None) -> None:
        if not yes:
            return
        try:
            await app_context(app).api.compose.resend_uncertain(account, item_id)
        except (KittiwakeError, OSError, KeyError) as exc:
            app.notify(clean_line(f"Not sent again: {exc}"), severity="error", markup=False)
            return
        app.notify(clean_line(f"Sending again: {label}"), markup=False)

    app.push_screen(
        Confirm(
            clean_line(
                f"Send {label} again? It may have been delivered already; if it was, the "
                "recipients get it twice."
            )
        ),
        answer,
    )


def delete_uncertain(app: App[Any], account: str, item_id: str, label: str) -> None:
    """A message that may have been delivered, not to be sent again: asked first."""
    from kittiwake.tui.screens.confirm import Confirm

    async def answer(yes: bool | None) -> None:
        if not yes:
            return
        try:
            await app_context(app).api.compose.delete_uncertain(account, item_id)
        except (KittiwakeError, OSError, KeyError) as exc:
            app.notify(clean_line(f"Not deleted: {exc}"), severity="error", markup=False)
            return
        app.notify(clean_line(f"Deleted from the outbox: {label}"), markup=False)

    app.push_screen(
        Confirm(
            clean_line(
                f"Delete {label} from the outbox? It may have been delivered; it will not be "
                "sent again."
            )
        ),
        answer,
    )
