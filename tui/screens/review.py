"""The review screen after the editor: headers editable in place, the body, attachments, and
the keys that decide (send, edit again, attach, save as draft, discard).

Nothing is lost: every change is written to the draft's local copy first; every 30 seconds,
and when the app quits mid-compose, the draft also goes to the Drafts folder (replacing the
previous copy there).
"""

from __future__ import annotations

import asyncio
import mimetypes
from dataclasses import replace
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from kittiwake.core.compose.draft import (
    Draft,
    DraftParseError,
    format_address,
    format_addresses,
)
from kittiwake.core.compose.drafts import LocalDraft
from kittiwake.core.compose.signature import unsigned
from kittiwake.core.errors import KittiwakeError
from kittiwake.core.models import Address
from kittiwake.core.sanitize import clean_line, clean_text
from kittiwake.tui.context import AppContext, app_context
from kittiwake.tui.screens.compose import (
    BuiltinEditor,
    PathPrompt,
    editor_command,
    run_external_editor,
)
from kittiwake.tui.screens.confirm import Confirm
from kittiwake.tui.widgets.address_input import AddressInput
from kittiwake.tui.widgets.footer import KeyFooter

AUTOSAVE_EVERY = 30.0
ADDRESS_FIELDS = ("to", "cc", "bcc")


def human_size(n: float) -> str:
    for unit in ("B", "KB", "MB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


#: (sign, encrypt) in the order ``p`` steps through them, and how the review shows each.
CRYPTO_STATES = {
    (False, False): "not signed, not encrypted",
    (True, False): "signed",
    (True, True): "signed and encrypted",
    (False, True): "encrypted",
}

#: Autocrypt's recommendation (``ComposeFace.recommendation``), after the sign/encrypt state.
AUTOCRYPT_ADVICE = {
    "encrypt": "  Autocrypt: every recipient asks for encryption",
    "available": "  Autocrypt: every recipient can read encrypted mail",
    "discourage": "  Autocrypt: a recipient may no longer read encrypted mail",
}


class ReviewScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "send", "Send", id="compose.send"),
        Binding("e", "edit", "Edit", id="compose.edit"),
        Binding("a", "attach", "Attach", id="compose.attach"),
        Binding("d", "detach", "Detach", id="compose.detach"),
        Binding("o", "change_account", "From", id="compose.from"),
        Binding("s", "save_draft", "Draft", id="compose.save"),
        Binding("p", "crypto", "Sign/Encrypt", id="compose.crypto"),
        Binding("q", "discard", "Discard", id="compose.discard"),
        Binding("t", "field('to')", "Edit To", id="compose.to", show=False),
        Binding("c", "field('cc')", "Edit Cc", id="compose.cc", show=False),
        Binding("b", "field('bcc')", "Edit Bcc", id="compose.bcc", show=False),
        Binding("S", "field('subject')", "Edit Subject", id="compose.subject", show=False),
        Binding("escape", "leave_field", "Leave the field", id="compose.leave", show=False),
        Binding("?", "help", "Help", id="app.help"),
    ]

    DEFAULT_CSS = """
    ReviewScreen #fields {
        height: auto;
        background: $panel;
        padding: 0 1;
        border-bottom: solid $panel-lighten-2;
    }
    ReviewScreen .field {
        height: 1;
    }
    ReviewScreen .field Label {
        width: 9;
        color: $mail-header-name;
        text-style: bold;
    }
    ReviewScreen .field Input {
        border: none;
        height: 1;
        padding: 0;
        width: 1fr;
        background: $panel;
    }
    ReviewScreen .field Input:focus {
        background: $boost;
    }
    ReviewScreen #from {
        width: 1fr;
    }
    ReviewScreen #body-scroll {
        padding: 0 1;
    }
    ReviewScreen #attachments {
        height: auto;
        max-height: 6;
        border: none;
        padding: 0 1;
        color: $mail-dim;
    }
    ReviewScreen #attachments.-empty {
        display: none;
    }
    """

    def __init__(self, local: LocalDraft, *, edit_first: bool = False) -> None:
        super().__init__()
        self.local = local
        self.edit_first = edit_first
        self.original_server_copy = (local.server_folder, local.server_uid)
        """A draft reopened from Drafts: discarding the edits keeps it there."""
        self._saved = local.draft if local.server_uid is not None else None
        self.closed = False
        self._editing = False
        self._builtin: BuiltinEditor | None = None
        self._autocrypt: str | None = None
        """Autocrypt's recommendation for the recipients when the screen opened."""

    @property
    def kw(self) -> AppContext:
        return app_context(self)

    # -- layout ---------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        complete = self.kw.api.complete_addresses
        query = self.kw.api.query_addresses
        with VerticalScroll(id="fields"):
            with Horizontal(classes="field"):
                yield Label("From:")
                yield Static(id="from")
            for name in ADDRESS_FIELDS:
                with Horizontal(classes="field"):
                    yield Label(f"{name.capitalize()}:")
                    yield AddressInput(complete, query=query, id=name)
            with Horizontal(classes="field"):
                yield Label("Subject:")
                yield Input(id="subject")
            with Horizontal(classes="field"):
                yield Label("OpenPGP:", id="crypto-label")
                yield Static(id="crypto")
        with VerticalScroll(id="body-scroll", can_focus=True):
            yield Static(id="body")
        yield OptionList(id="attachments")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.show_draft()
        self.run_worker(self._crypto_defaults(), group="crypto")
        self.query_one("#body-scroll").focus()
        self.set_interval(AUTOSAVE_EVERY, self.autosave)
        self.kw.open_drafts.add(self)
        if self.edit_first:
            self.edit_body(first=True)

    def show_draft(self) -> None:
        draft = self.local.draft
        sender = format_address(draft.from_) if draft.from_.addr else ""
        self.query_one("#from", Static).update(
            Text(f"{clean_line(sender)}  ({self.local.account})")
        )
        for name in ADDRESS_FIELDS:
            value = clean_line(format_addresses(getattr(draft, name)))
            self.query_one(f"#{name}", Input).value = value
        self.query_one("#subject", Input).value = clean_line(draft.subject)
        self._show_crypto()
        self.query_one("#body", Static).update(Text(clean_text(draft.body)))
        options = self.query_one("#attachments", OptionList)
        options.clear_options()
        for label in self._attachment_labels():
            options.add_option(Option(Text(label)))
        options.set_class(not options.option_count, "-empty")
        self.refresh_bindings()  # "Detach" only with something to detach

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "detach":
            draft = self.local.draft
            return bool(draft.attachments or draft.attached)
        return True

    def _attachment_labels(self) -> list[str]:
        draft = self.local.draft
        out = []
        for path in draft.attachments:
            ctype = mimetypes.guess_type(path.name, strict=False)[0] or "application/octet-stream"
            try:
                size = human_size(path.stat().st_size)
            except OSError:
                size = "missing"
            out.append(f"📎 {clean_line(path.name)}  {ctype}  {size}")
        for att in draft.attached:
            out.append(
                f"📎 {clean_line(att.filename)}  {att.content_type}  {human_size(len(att.data))}"
            )
        return out

    # -- the draft ------------------------------------------------------------------------

    def read_fields(self) -> Draft | None:
        """The draft with the header fields as typed; None (and a notice naming the key
        that edits the field) when an address cannot be read. Focus never moves by itself:
        a key pressed next must not land in a field the user did not choose."""
        found: dict[str, tuple[Address, ...]] = {}
        for name in ADDRESS_FIELDS:
            field = self.query_one(f"#{name}", Input)
            try:
                found[name] = self.kw.api.compose.parse_recipients(field.value, name.capitalize())
            except DraftParseError as exc:
                key = "" if field.has_focus else f" ({name[0]}: edit {name.capitalize()})"
                self.notify(clean_line(exc.message) + key, severity="error", markup=False)
                return None
        subject = " ".join(self.query_one("#subject", Input).value.split())
        return replace(
            self.local.draft, to=found["to"], cc=found["cc"], bcc=found["bcc"], subject=subject
        )

    async def _update(self, draft: Draft) -> None:
        self.local = await self.kw.api.compose.keep(replace(self.local, draft=draft))

    @on(Input.Submitted)
    async def _field_done(self, event: Input.Submitted) -> None:
        draft = self.read_fields()
        if draft is not None:
            await self._update(draft)
            for name in ADDRESS_FIELDS:  # aliases show expanded
                value = clean_line(format_addresses(getattr(draft, name)))
                self.query_one(f"#{name}", Input).value = value
            self.query_one("#body-scroll").focus()

    def action_field(self, name: str) -> None:
        self.query_one(f"#{name}", Input).focus()

    def action_leave_field(self) -> None:
        """Escape in a header field: the edit is cancelled (the field shows the draft's value
        again) and the review keys work again."""
        focused = self.focused
        if not isinstance(focused, Input) or focused.id not in (*ADDRESS_FIELDS, "subject"):
            return
        name = focused.id
        draft = self.local.draft
        if name == "subject":
            focused.value = clean_line(draft.subject)
        else:
            focused.value = clean_line(format_addresses(getattr(draft, name)))
        self.query_one("#body-scroll").focus()

    # -- editing the body -----------------------------------------------------------------

    @work(exclusive=True, group="editor", exit_on_error=False)
    async def edit_body(self, first: bool = False) -> None:
        api = self.kw.api
        draft = self.read_fields() if not first else self.local.draft
        if draft is None:
            return
        self.local = await api.compose.keep(replace(self.local, draft=draft))
        before = self.local.draft.to_text()
        while True:
            self._editing = True  # the editor's file is the local copy meanwhile
            try:
                text = await self._run_editor(before)
            except asyncio.CancelledError:
                raise  # the app is quitting: save_on_quit reads the editor's file
            except Exception:
                self._editing = False
                raise
            self._editing = False
            if text is None:  # the built-in editor was cancelled
                break
            if first and self.local.is_new and text == before and not unsigned(draft.body).strip():
                self.notify("Empty message: discarded.")
                await self._close(discard=True)
                return
            try:
                new = Draft.from_text(text, self.local.draft, self.kw.config.aliases)
            except DraftParseError as exc:
                again = await self.app.push_screen_wait(
                    Confirm(f"{clean_line(exc.message)}. Edit again? (n keeps it all as the body)")
                )
                if again:
                    before = text
                    await self._write_text(text)
                    continue
                new = replace(self.local.draft, body=text)
            await self._update(new)
            break
        self.show_draft()

    async def _write_text(self, text: str) -> None:
        path = self.kw.api.compose.text_path(self.local)
        path.write_text(text, "utf-8")

    async def _run_editor(self, current: str) -> str | None:
        command = editor_command(self.kw.config)
        if command is None:
            self._builtin = BuiltinEditor(current, keep=self._write_text)
            # Kept if the wait is cancelled (the app quitting): save_on_quit reads it.
            result: str | None = await self.app.push_screen_wait(self._builtin)
            self._builtin = None
            return result
        path = self.kw.api.compose.text_path(self.local)
        code = run_external_editor(self.app, command, path)
        self.refresh(layout=True)
        if code != 0:
            self.notify(f"The editor exited with status {code}.", severity="warning")
        return self.kw.api.compose.read_back(self.local)

    def action_edit(self) -> None:
        self.edit_body()

    # -- attachments and account ----------------------------------------------------------

    def action_attach(self) -> None:
        async def chosen(value: str | None) -> None:
            if not value:
                return
            path = Path(value).expanduser()
            if not path.is_file():
                self.notify(
                    f"{clean_line(str(path))} is not a file.", severity="error", markup=False
                )
                return
            draft = self.read_fields() or self.local.draft
            await self._update(replace(draft, attachments=(*draft.attachments, path.resolve())))
            self.show_draft()

        self.app.push_screen(PathPrompt(), chosen)

    async def action_detach(self) -> None:
        options = self.query_one("#attachments", OptionList)
        if not options.option_count:
            self.notify("There is no attachment.", severity="warning")
            return
        index = options.highlighted or 0
        draft = self.read_fields() or self.local.draft
        files = list(draft.attachments)
        held = list(draft.attached)
        if index < len(files):
            files.pop(index)
        else:
            held.pop(index - len(files))
        await self._update(replace(draft, attachments=tuple(files), attached=tuple(held)))
        self.show_draft()

    def action_change_account(self) -> None:
        """``o``: send from another account or identity (the signature follows)."""
        from kittiwake.tui.screens.pickers import Picker

        api = self.kw.api
        choices = api.compose.identities()
        if len(choices) < 2:
            self.notify("No other account or identity can send.", severity="warning")
            return
        items = []
        for n, (key, address) in enumerate(choices):
            items.append((clean_line(f"{key}: {format_address(address)}"), str(n)))

        async def chosen(picked: str | None) -> None:
            if picked is None:
                return
            key, address = choices[int(picked)]
            draft = self.read_fields() or self.local.draft
            local = replace(self.local, draft=draft)
            self.local = api.compose.change_account(local, key, address.addr)
            await self._update(self.local.draft)
            self.show_draft()

        self.app.push_screen(Picker("Send from…", items), chosen)

    # -- OpenPGP ---------------------------------------------------------------------------

    def _show_crypto(self) -> None:
        draft = self.local.draft
        state = CRYPTO_STATES.get((draft.sign, draft.encrypt), "")
        protocol = self.kw.api.compose.protocol(self.local.account)
        self.query_one("#crypto-label", Label).update(f"{protocol}:")
        advice = AUTOCRYPT_ADVICE.get(self._autocrypt or "", "")
        self.query_one("#crypto", Static).update(Text(f"{state}  (p changes it){advice}"))

    async def _crypto_defaults(self) -> None:
        """The account's sign-by-default and encrypt-when-possible, once, on opening, and
        Autocrypt's recommendation for the recipients when the account uses it."""
        self._autocrypt = await self.kw.api.compose.recommendation(self.local)
        local = await self.kw.api.compose.crypto_defaults(self.local)
        if local is not self.local:
            self.local = await self.kw.api.compose.keep(local)
        self._show_crypto()

    async def action_crypto(self) -> None:
        """p: not signed -> signed -> signed and encrypted -> encrypted -> not signed."""
        draft = self.read_fields() or self.local.draft
        order = list(CRYPTO_STATES)
        sign, encrypt = order[(order.index((draft.sign, draft.encrypt)) + 1) % len(order)]
        await self._update(replace(draft, sign=sign, encrypt=encrypt))
        self._show_crypto()

    async def _keys_or_plain(self, draft: Draft) -> Draft | None:
        """An encrypted message to a recipient with no key: send it unencrypted, or not at
        all (None), as the user says."""
        if not draft.encrypt:
            return draft
        missing = await self.kw.api.compose.missing_keys(replace(self.local, draft=draft))
        if not missing:
            return draft
        names = ", ".join(missing)
        smime = self.kw.api.compose.protocol(self.local.account) == "S/MIME"
        what = "S/MIME certificate" if smime else "OpenPGP key"
        plain = await self.app.push_screen_wait(
            Confirm(f"No {what} for {clean_line(names)}. Send it unencrypted?")
        )
        if not plain:
            self.notify(f"Not sent: p changes encryption, or add a {what} for {clean_line(names)}.")
            return None
        return replace(draft, encrypt=False)

    # -- leaving --------------------------------------------------------------------------

    @work(exclusive=True, group="send", exit_on_error=False)
    async def action_send(self) -> None:
        draft = self.read_fields()
        if draft is None:
            return
        if not draft.recipients:
            self.notify(
                "Add a recipient first: t edits To, c Cc, b Bcc.", severity="error", markup=False
            )
            return
        if not draft.body.strip() and not draft.attachments and not draft.attached:
            # An editor that emptied the file: ask, as a mistake is likelier than intent.
            sure = await self.app.push_screen_wait(Confirm("Send this message with no text?"))
            if not sure:
                return
        checked = await self._keys_or_plain(draft)
        if checked is None:
            return
        draft = checked
        try:
            await self._update(draft)
            said = await self.kw.api.send(self.local)
        except KittiwakeError as exc:
            self.notify(clean_line(exc.message), severity="error", markup=False)
            return
        self._finished()
        self.notify(said, markup=False)
        self.dismiss(None)

    @work(exclusive=True, group="save", exit_on_error=False)
    async def action_save_draft(self) -> None:
        draft = self.read_fields()
        if draft is None:
            return
        await self._update(draft)
        if await self._save_to_server(quiet=False):
            await self.kw.api.compose.discard(self.local, keep_server_copy=True)
            self.notify("Draft saved in Drafts.")
        else:
            self.kw.api.compose.open_ids.discard(self.local.id)  # recovered later
        self._finished()
        self.dismiss(None)

    def action_discard(self) -> None:
        reopened = (self.local.server_folder, self.local.server_uid) == self.original_server_copy
        reopened = reopened and self.local.server_uid is not None

        async def answer(yes: bool | None) -> None:
            if yes:
                await self._close(discard=True)
                # A draft reopened from Drafts stays there: only this session's changes go.
                said = "Changes discarded; the draft stays in Drafts." if reopened else None
                self.notify(said or "Message discarded.")

        question = "Discard your changes to this draft?" if reopened else "Discard this message?"
        self.app.push_screen(Confirm(question), answer)

    async def _close(self, *, discard: bool) -> None:
        keep = (self.local.server_folder, self.local.server_uid) == self.original_server_copy
        if discard:
            await self.kw.api.compose.discard(self.local, keep_server_copy=keep)
        self._finished()
        self.dismiss(None)

    def _finished(self) -> None:
        """Sent, saved or discarded: nothing more to save when the app quits."""
        self.closed = True
        self.kw.open_drafts.discard(self)

    def action_help(self) -> None:
        self.kw.action_help()

    # -- saving ---------------------------------------------------------------------------

    async def _save_to_server(self, *, quiet: bool) -> bool:
        try:
            self.local = await self.kw.api.save_draft(self.local)
        except KittiwakeError as exc:
            if not quiet:
                self.notify(clean_line(exc.message), severity="warning", markup=False)
            return False
        self._saved = self.local.draft
        return True

    async def autosave(self) -> None:
        """Every 30 s while composing: when something changed, local copy then Drafts."""
        if self.closed or self._editing:
            return
        draft = self.read_fields() if self.is_mounted else None
        if draft is not None and draft != self.local.draft:
            await self._update(draft)
        if self.local.draft != self._saved:
            await self._save_to_server(quiet=True)

    async def save_on_quit(self) -> None:
        """The app quits mid-compose: the draft goes to Drafts (it is on disk already)."""
        if self.closed:
            return
        if self._editing:  # the editor's file, or the built-in editor's text as it is now
            editor = self._builtin
            if editor is not None:
                text = editor.latest
            else:
                text = self.kw.api.compose.read_back(self.local)
            try:
                draft: Draft | None = Draft.from_text(
                    text, self.local.draft, self.kw.config.aliases
                )
            except DraftParseError:
                draft = replace(self.local.draft, body=text)
        else:
            try:
                draft = self.read_fields()
            except Exception:  # widgets already gone: what is on disk is the latest
                draft = None
        if draft is not None and draft != self.local.draft:
            await self._update(draft)
        if await self._save_to_server(quiet=True):
            await self.kw.api.compose.discard(self.local, keep_server_copy=True)
        self.closed = True
