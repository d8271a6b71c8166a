"""Reading one message: headers, the body as text, attachments; J/K walk the list."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from rich.style import Style
from rich.text import Text
from textual import work
from textual.app import ComposeResult, SuspendNotSupported
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Static

from kittiwake.core import paths
from kittiwake.core.errors import KittiwakeError
from kittiwake.core.events import FolderReset, MessagesExpunged
from kittiwake.core.journal import ActionRefused
from kittiwake.core.message.body import BodyLine, analyse
from kittiwake.core.message.mime import Attachment, ParsedMessage
from kittiwake.core.models import SEEN, Address
from kittiwake.core.sanitize import clean_line, clean_text
from kittiwake.tui.context import AppContext, app_context
from kittiwake.tui.events import EngineEvent, follow
from kittiwake.tui.tools import (
    EXPORT_BINDING,
    OPEN_BINDING,
    PIPE_BINDING,
    with_every_attachment,
)
from kittiwake.tui.triage import Targets, TriageCommands, triage_bindings
from kittiwake.tui.widgets.footer import KeyFooter
from kittiwake.tui.widgets.plain import PlainBar

if TYPE_CHECKING:
    from kittiwake.tui.widgets.message_list import MessageList


#: Above the headers when the message shown left its folder elsewhere (one line at 80 columns).
GONE = "This message was moved or deleted on another device; keys change nothing."
RECREATED = "Its folder was recreated on the server; this message is no longer there."
DEGRADED = "This message's summary could not be read from the server; shown from its raw headers."
#: Bytes of a message's source the source view (V) shows: laying out 1 MiB of text in one
#: Static took 7 s with the app frozen; a longer source ends with a note of what is left.
MAX_SOURCE_SHOWN = 64 * 1024
#: Characters of one header value the header pane shows (a 1 MiB Subject froze it for 1 s).
MAX_HEADER_SHOWN = 2000


def _addresses(addrs: tuple[Address, ...]) -> str:
    return ", ".join(clean_line(str(a)) for a in addrs)


def human_size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"


def unique_path(directory: Path, name: str) -> Path:
    """``directory/name``, or ``name (1)``, ``name (2)``... : never overwrite a file."""
    candidate = directory / name
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    n = 1
    while candidate.exists():
        candidate = directory / (f"{stem} ({n}).{ext}" if ext else f"{stem} ({n})")
        n += 1
    return candidate


def save_attachment(attachment: Attachment, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    target = unique_path(directory, attachment.filename)
    with open(target, "xb") as fh:  # "x": fail rather than overwrite, even in a race
        fh.write(attachment.payload())
    return target


def attachment_list(parsed: ParsedMessage) -> Text:
    """One line per attachment read when the message opened: number, name, type, size (empty
    without attachments), then how many parts are left to read (S and v list every one). The
    type comes from the mail, so it is sanitised like the name."""
    lines = [
        f"[{a.index}] {clean_line(a.filename)}  {clean_line(a.content_type)}  {human_size(a.size)}"
        for a in parsed.listed
    ]
    if parsed.unread_parts:
        lines.append(f"… and {parsed.unread_parts:,} more parts: S or v lists every attachment")
    return Text("\n".join(lines))


def save_attachment_as(attachment: Attachment, answer: str) -> Path:
    """Save where the user said: into a directory (under the attachment's own safe name, made
    unique), or as the file named, never over an existing one. A relative path is taken
    from the download directory, never from wherever the app was started."""
    target = paths.download_dir() / Path(answer).expanduser()  # relative: to downloads
    if answer.endswith("/") or target.is_dir():
        return save_attachment(attachment, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "xb") as fh:  # "x": an existing file is never overwritten
        fh.write(attachment.payload())
    return target


def offer_save(screen: Screen[Any], parsed: ParsedMessage | None) -> None:
    """``S``: save an attachment (asking which one when there are several, then where, the
    download directory offered, as mutt asks); shared by the reader and the conversation
    reader."""
    from kittiwake.tui.screens.compose import PathPrompt

    def save(attachment: Attachment) -> None:
        default = unique_path(paths.download_dir(), attachment.filename)  # a free name

        def where(answer: str | None) -> None:
            if not answer:
                return
            try:
                path = save_attachment_as(attachment, answer)
            except FileExistsError:
                screen.notify(f"{answer} exists already; give another name.", severity="error")
                return
            except OSError as exc:
                why = exc.strerror or str(exc)
                screen.notify(f"Could not save {attachment.filename}: {why}", severity="error")
                return
            screen.notify(f"Saved {path}")

        ask = PathPrompt("Save attachment to (tab completes):", str(default))
        screen.app.push_screen(ask, where)

    def offer(attachments: tuple[Attachment, ...]) -> None:
        if not attachments:
            screen.notify("This message has no attachments.", severity="warning")
            return
        if len(attachments) == 1:
            save(attachments[0])
            return
        from kittiwake.tui.screens.attachment_picker import AttachmentPicker

        def chosen(attachment: Attachment | None) -> None:
            if attachment is not None:
                save(attachment)

        screen.app.push_screen(AttachmentPicker(list(attachments)), chosen)

    if parsed is None:
        screen.notify("This message has no attachments.", severity="warning")
        return
    with_every_attachment(screen, parsed, offer)


class MessageBody(Static):
    """The body text; its component classes carry the theme's mail colours to Rich styles."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "body--quote-1",
        "body--quote-2",
        "body--quote-3",
        "body--quote-4",
        "body--dim",
        "body--link",
        "body--header-name",
        "body--sig-good",
        "body--sig-bad",
        "body--sig-note",
    }

    DEFAULT_CSS = """
    MessageBody > .body--quote-1 { color: $mail-quote-1; }
    MessageBody > .body--quote-2 { color: $mail-quote-2; }
    MessageBody > .body--quote-3 { color: $mail-quote-3; }
    MessageBody > .body--quote-4 { color: $mail-quote-4; }
    MessageBody > .body--dim { color: $mail-dim; }
    MessageBody > .body--link { color: $mail-link; text-style: underline; }
    MessageBody > .body--header-name { color: $mail-header-name; text-style: bold; }
    MessageBody > .body--sig-good { color: $success; text-style: bold; }
    MessageBody > .body--sig-bad { color: $error; text-style: bold reverse; }
    MessageBody > .body--sig-note { color: $warning; text-style: bold; }
    """

    def style_of(self, name: str) -> Style:
        return self.get_component_rich_style(f"body--{name}", partial=True)


class ReaderScreen(TriageCommands):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "back", "Back", id="reader.back"),
        Binding("J", "next_message", "Next", id="reader.next"),
        Binding("K", "previous_message", "Previous", id="reader.previous"),
        Binding("j,down", "scroll_down", "Down", id="reader.down", show=False),
        Binding("k,up", "scroll_up", "Up", id="reader.up", show=False),
        Binding("space,pagedown", "page_down", "Page", id="reader.page_down", show=False),
        Binding("pageup,b", "page_up", "Page up", id="reader.page_up", show=False),
        Binding("g,home", "top", "Top", id="reader.top", show=False),
        Binding("G,end", "bottom", "Bottom", id="reader.bottom", show=False),
        Binding("H", "toggle_headers", "Headers", id="reader.headers"),
        Binding("S", "save_attachment", "Save", id="reader.save"),
        Binding("V", "toggle_source", "Source", id="reader.source"),
        PIPE_BINDING,
        EXPORT_BINDING,
        OPEN_BINDING,
        Binding("D", "decrypt", "Decrypt", id="reader.decrypt", show=False),
        Binding("ctrl+k", "fetch_key", "Fetch the signer's key", id="reader.fetch_key", show=False),
        # The list's triage keys (same ids), on the message shown.
        *triage_bindings(labels={"read": "Unread"}),
        Binding("r", "reply", "Reply", id="compose.reply"),
        Binding("R", "reply(True)", "Reply all", id="compose.reply_all", show=False),
        Binding("f", "forward", "Forward", id="compose.forward", show=False),
        Binding(
            "F", "forward(True)", "Forward attached", id="compose.forward_attached", show=False
        ),
        Binding("c", "compose", "Compose", id="compose.new", show=False),
        Binding("?", "help", "Help", id="app.help"),
    ]

    DEFAULT_CSS = """
    ReaderScreen #headers {
        background: $panel;
        padding: 0 1;
        height: auto;
        max-height: 50%;
    }
    ReaderScreen #body-scroll {
        padding: 0 1;
    }
    ReaderScreen #attachments {
        height: auto;
        margin-top: 1;
        color: $mail-dim;
    }
    ReaderScreen #gone {
        display: none;
        height: auto;
        padding: 0 1;
        background: $panel;
        color: $warning;
        text-style: bold;
    }
    ReaderScreen.-gone #gone {
        display: block;
    }
    ReaderScreen #attachments.-empty {
        display: none;
    }
    """

    def __init__(self, account: str, folder: str, messages: MessageList) -> None:
        super().__init__()
        self.account = account
        self.folder = folder
        self.messages = messages
        self.uid: int | None = messages.current_uid
        #: The folder's UIDVALIDITY when the list showed ``uid``: keys act on exactly that.
        self.uidvalidity: int | None = messages.uidvalidity
        self.parsed: ParsedMessage | None = None
        self.all_headers = False
        self.source = False
        self.gone = False
        #: The message this reader itself moved away (a picker's answer comes later): its
        #: leaving shows the next message, not "deleted on another device".
        self._leaving: int | None = None

    @property
    def kw(self) -> AppContext:
        return app_context(self)

    def compose(self) -> ComposeResult:
        yield PlainBar(id="gone")
        yield Static(id="headers")
        # The attachments scroll with the body: a message may carry thousands of them.
        with VerticalScroll(id="body-scroll"):
            yield MessageBody(id="body")
            yield Static(id="attachments", classes="-empty")
        yield KeyFooter()

    def on_mount(self) -> None:
        follow(self, MessagesExpunged, FolderReset)
        self.load()

    # -- loading --------------------------------------------------------------------------

    def load(self) -> None:
        self.parsed = None
        self.show_gone(None)
        if self.uid is not None and self.uid not in self.messages.index:
            self.show_gone(GONE)
        self.query_one("#headers", Static).update(self._summary_headers())
        self.query_one("#body", Static).update(Text("Loading…", style="dim"))
        self._show_attachments(Text())
        self.fetch()

    def _labels(self) -> str:
        """Gmail labels, every one (system labels by the names Gmail shows for them)."""
        if self.uid is None:
            return ""
        labels = self.kw.api.labels(self.account, self.folder, self.uid)
        return ", ".join(clean_line(x.removeprefix("\\")) for x in labels or ())

    def _summary_headers(self) -> Text:
        """What the cache already knows, shown at once while the body loads."""
        text = Text()
        if self.uid is None:
            return text
        s = self.messages.summary(self.uid)
        if s is None:
            return text
        env = s.envelope
        self._header_line(text, "From", _addresses(env.from_))
        self._header_line(text, "Subject", clean_line(env.subject))
        self._degraded_line(text)
        return text

    def _degraded_line(self, text: Text) -> None:
        """The server's description of this message could not be read (``?`` in the list)."""
        s = self.messages.summary(self.uid) if self.uid is not None else None
        if s is not None and s.degraded:
            self._header_line(text, "Note", DEGRADED)

    @work(exclusive=True, group="load", exit_on_error=False)
    async def fetch(self) -> None:
        uid = self.uid
        if uid is None:
            return
        api = self.kw.api
        try:
            parsed = await api.message(self.account, self.folder, uid)
        except Exception as exc:  # network or parse trouble: one sentence, app keeps running
            message = (
                getattr(exc, "message", None)
                or f"could not load this message ({type(exc).__name__})"
            )
            self.query_one("#body", Static).update(Text(clean_line(message), style="bold"))
            return
        if uid != self.uid:
            return
        if parsed is None:
            self.query_one("#body", Static).update(
                Text("This message is no longer on the server.", style="dim")
            )
            return
        self.parsed = parsed
        body_text, links = await self._body_text(parsed)
        if uid != self.uid:
            return
        self.render_message(body_text, links)
        summary = self.messages.summary(uid)
        if summary is not None and SEEN not in summary.flags and not self.gone:
            seen = api.mark_seen(self.account, self.folder, uid, uidvalidity=self.uidvalidity)
            self.run_worker(seen, group="seen")
        position = self.messages.index.index(uid) if uid in self.messages.index else -1
        if 0 <= position + 1 < len(self.messages.index):
            api.prefetch(self.account, self.folder, self.messages.index[position + 1])

    async def _body_text(self, parsed: ParsedMessage) -> tuple[str, list[str]]:
        return await self.kw.api.body_text(parsed)

    # -- rendering ------------------------------------------------------------------------

    def _style(self, name: str) -> Style:
        return self.query_one("#body", MessageBody).style_of(name)

    def _header_line(self, text: Text, name: str, value: str) -> None:
        if not value:
            return
        if len(value) > MAX_HEADER_SHOWN:
            value = value[:MAX_HEADER_SHOWN] + f" … ({len(value) - MAX_HEADER_SHOWN:,} more)"
        text.append(f"{name}: ", style=self._style("header-name"))
        text.append(value + "\n")

    def render_message(self, body: str, links: list[str]) -> None:
        parsed = self.parsed
        assert parsed is not None
        headers = Text()
        if self.all_headers:
            for name, value in parsed.headers:
                self._header_line(headers, clean_line(name), clean_line(value))
        else:
            self._header_line(headers, "From", _addresses(parsed.from_))
            self._header_line(headers, "To", _addresses(parsed.to))
            self._header_line(headers, "Cc", _addresses(parsed.cc))
            if parsed.date is not None:
                self._header_line(
                    headers, "Date", parsed.date.astimezone().strftime("%a, %d %b %Y %H:%M")
                )
            self._header_line(headers, "Subject", clean_line(parsed.subject))
            labels = self._labels()
            if labels:
                self._header_line(headers, "Labels", labels)
            self._degraded_line(headers)
        self._security_lines(headers, parsed)
        headers.rstrip()
        self.query_one("#headers", Static).update(headers)
        if self.source:
            source = Text(clean_text(parsed.raw[:MAX_SOURCE_SHOWN].decode("utf-8", "replace")))
            if len(parsed.raw) > MAX_SOURCE_SHOWN:
                left = len(parsed.raw) - MAX_SOURCE_SHOWN
                source.append(f"\n… and {left:,} more bytes, not shown.", style="dim")
            self.query_one("#body", Static).update(source)
        else:
            self.query_one("#body", Static).update(self._body(body, links))
        self._show_attachments(attachment_list(parsed))
        self.query_one("#body-scroll").scroll_home(animate=False)

    def _security_lines(self, headers: Text, parsed: ParsedMessage) -> None:
        """The signature and encryption status, in the header block: drawn by the app from
        gpg's status output, never from the message text, so a body cannot imitate it."""
        if parsed.security is None:
            return
        fetch = ""
        if parsed.security.unknown_keys:
            key = self.app.get_key_display(self._fetch_binding())
            fetch = f" (press {key})."
        for level, sentence in parsed.security.lines():
            if fetch and "unknown key" in sentence:
                sentence, fetch = sentence.removesuffix(".") + fetch, ""
            headers.append("Security: ", style=self._style("header-name"))
            headers.append(clean_line(sentence) + "\n", style=self._style(f"sig-{level}"))

    def _fetch_binding(self) -> Binding:
        """The fetch-key binding as the user's ``[keys]`` left it (its key may be remapped)."""
        for bindings in self._bindings.key_to_bindings.values():
            for binding in bindings:
                if binding.action == "fetch_key":
                    return binding
        return Binding("ctrl+k", "fetch_key")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The fetch-key action exists only while the message shown has a signature from an
        unknown OpenPGP key: elsewhere it is neither in the help screen nor in the palette."""
        if action == "fetch_key":
            security = self.parsed.security if self.parsed is not None else None
            return security is not None and bool(security.unknown_keys)
        return super().check_action(action, parameters)

    def _show_attachments(self, listing: Text) -> None:
        attachments = self.query_one("#attachments", Static)
        attachments.update(listing)
        attachments.set_class(not listing.plain, "-empty")

    def _body(self, body: str, links: list[str]) -> Text:
        lines, urls = analyse(clean_text(body), links)
        quote_styles = [self._style(f"quote-{n}") for n in range(1, 5)]
        dim = self._style("dim")
        link = self._style("link")
        text = Text()
        for line in lines:
            text.append_text(self._line(line, urls, quote_styles, dim, link))
            text.append("\n")
        if urls:
            text.append("\n")
            for n, url in enumerate(urls, 1):
                text.append(f"[{n}] ", style=dim)
                text.append(clean_line(url), style=link + Style(link=clean_line(url)))
                text.append("\n")
        text.rstrip()
        return text

    def _line(
        self, line: BodyLine, urls: list[str], quotes: list[Style], dim: Style, link: Style
    ) -> Text:
        base = Style()
        if line.signature:
            base = dim
        elif line.quote_depth:
            base = quotes[min(line.quote_depth, len(quotes)) - 1]
        text = Text(line.text, style=base)
        for span in line.links:
            url = urls[span.number - 1]
            text.stylize(link + Style(link=clean_line(url)), span.start, span.end)
        out = Text(style=base)
        last = 0
        for span in line.links:
            out.append_text(text[last : span.end])
            out.append(f"[{span.number}]", style=dim)
            last = span.end
        out.append_text(text[last:])
        return out

    # -- actions --------------------------------------------------------------------------

    def action_back(self) -> None:
        self.app.pop_screen()

    async def action_decrypt(self) -> None:
        """Decrypt with a passphrase: the app steps aside for gpg-agent's pinentry."""
        parsed, uid = self.parsed, self.uid
        security = parsed.security if parsed is not None else None
        if uid is None or security is None or not security.encrypted or security.decrypted:
            self.notify("This message is not waiting to be decrypted.")
            return
        api = self.kw.api
        try:
            with self.app.suspend():
                shown = await api.decrypt(self.account, self.folder, uid)
        except SuspendNotSupported:  # no terminal to give away (tests): pinentry needs none
            shown = await api.decrypt(self.account, self.folder, uid)
        if shown is None or uid != self.uid:
            return
        self.parsed = shown
        body_text, links = await self._body_text(shown)
        self.render_message(body_text, links)

    async def action_fetch_key(self) -> None:
        """Fetch the unknown signer's key from the keyserver, then verify again."""
        parsed, uid = self.parsed, self.uid
        if uid is None or parsed is None or parsed.security is None:
            return
        if not parsed.security.unknown_keys:
            self.notify("This message has no signature from an unknown key.")
            return
        self.notify("Fetching the signer's key…")
        try:
            shown = await self.kw.api.fetch_keys(self.account, self.folder, uid)
        except KittiwakeError as exc:
            self.notify(exc.message, severity="error")
            return
        if shown is None or uid != self.uid:
            return
        self.parsed = shown
        body_text, links = await self._body_text(shown)
        self.render_message(body_text, links)
        self.refresh_bindings()

    def _step(self, step: int) -> None:
        messages = self.messages
        try:  # from the message shown, wherever the list's cursor went since
            target = messages.index.index(self.uid) + step  # type: ignore[arg-type]
        except ValueError:  # expunged elsewhere: the list's cursor kept its old place, where
            target = messages.cursor + min(step, 0)  # the next message now is
        if 0 <= target < len(messages.index):
            messages.cursor = target
            self.uid = messages.current_uid
            self.uidvalidity = messages.uidvalidity
            self.load()

    def action_next_message(self) -> None:
        self._step(1)

    def action_previous_message(self) -> None:
        self._step(-1)

    def action_scroll_down(self) -> None:
        self.query_one("#body-scroll").scroll_down(animate=False)

    def action_scroll_up(self) -> None:
        self.query_one("#body-scroll").scroll_up(animate=False)

    def action_page_down(self) -> None:
        self.query_one("#body-scroll").scroll_page_down(animate=False)

    def action_page_up(self) -> None:
        self.query_one("#body-scroll").scroll_page_up(animate=False)

    def action_top(self) -> None:
        self.query_one("#body-scroll").scroll_home(animate=False)

    def action_bottom(self) -> None:
        self.query_one("#body-scroll").scroll_end(animate=False)

    def _rerender(self) -> None:
        if self.parsed is not None:
            self.run_worker(self._rerender_async(), exclusive=True, group="render")

    async def _rerender_async(self) -> None:
        if self.parsed is not None:
            body, links = await self._body_text(self.parsed)
            self.render_message(body, links)

    def action_toggle_headers(self) -> None:
        self.all_headers = not self.all_headers
        self._rerender()

    def action_toggle_source(self) -> None:
        self.source = not self.source
        self._rerender()

    def action_save_attachment(self) -> None:
        offer_save(self, self.parsed)

    def action_open_part(self) -> None:
        from kittiwake.tui.tools import offer_open

        offer_open(self, self.parsed)

    # -- triage: tui/triage.py's keys on the message shown ----------------------------------

    def _triage_account(self) -> str | None:
        return self.account

    def _targets(self) -> list[Targets]:
        """The message shown, by its folder, UIDVALIDITY and UID (never the list's cursor
        row, which another device's expunge moves)."""
        if self.uid is None:
            return []
        return [Targets(self.folder, self.uidvalidity, (self.uid,))]

    def _after_submit(self) -> None:
        self.messages.clear_selection()

    def _refused(self, exc: ActionRefused) -> None:
        """A message gone meanwhile is left alone, and said to be."""
        super()._refused(exc)
        self._leaving = None
        self.show_gone(GONE)

    def _leave(self, act: Callable[[], bool | None]) -> bool | None:
        """``act`` takes the message shown out of its folder: show the next. When a picker
        or a question is open, its answer moves it later (``on_engine_event`` shows the
        next then)."""
        shown = self.uid
        if shown is None:
            return None
        before = len(self.app.screen_stack)
        self._leaving = shown
        acted = act()
        if acted and len(self.app.screen_stack) == before:
            self._show_next(shown)
        return acted

    def action_archive(self) -> bool | None:
        return self._leave(super().action_archive)

    def action_delete(self) -> bool | None:
        return self._leave(super().action_delete)

    def action_junk(self) -> bool | None:
        return self._leave(super().action_junk)

    def action_move(self) -> None:
        self._leave(super().action_move)

    def _show_next(self, left: int) -> None:
        """``left`` left the folder: show the message after it (before it, at the end)."""
        index = self.messages.index
        # Already gone from the index (reloaded): the cursor kept its row, the next one's.
        position = index.index(left) if left in index else self.messages.cursor
        rest = [u for u in index if u != left]
        if not rest:
            self.app.pop_screen()
            return
        following = rest[min(max(position, 0), len(rest) - 1)]
        self.messages.go_to_uid(following)
        self.uid = following
        self.load()

    def show_gone(self, why: str | None) -> None:
        """Say that the message shown is no longer in its folder (or clear that)."""
        self.gone = why is not None
        self.set_class(self.gone, "-gone")
        self.query_one("#gone", PlainBar).update(why or "")

    # -- live events ----------------------------------------------------------------------

    def on_engine_event(self, message: EngineEvent) -> None:
        """The fate of the message shown: moved or deleted (here or elsewhere), or its
        folder recreated."""
        event = message.event
        if event.account != self.account or getattr(event, "folder", None) != self.folder:
            return
        shown = self.uid
        match event:
            case MessagesExpunged(uids=uids) if shown is not None and shown in uids:
                if self._leaving == shown:  # moved by this reader (after a picker)
                    self._leaving = None
                    if self.is_current:
                        self._show_next(shown)
                else:
                    self.show_gone(GONE)
            case FolderReset():
                self.show_gone(RECREATED)

    def action_help(self) -> None:
        self.kw.action_help()

    # -- compose and send -----------------------------------------------------------------

    def action_compose(self) -> None:
        from kittiwake.tui.screens.compose import compose_new

        compose_new(self.app, self.account)

    def _quotable(self) -> bool:
        """A reply or forward reads the message again by its UID: in a folder recreated
        since it was shown, that UID is another message, so it is refused (said above)."""
        if self.uid is None:
            return False
        if self.kw.api.uidvalidity(self.account, self.folder) != self.uidvalidity:
            self.show_gone(RECREATED)
            self.notify(RECREATED, severity="warning")
            return False
        return True

    def action_reply(self, all: bool = False) -> None:
        from kittiwake.tui.screens.compose import compose_reply

        if self._quotable() and self.uid is not None:
            compose_reply(self.app, self.account, self.folder, self.uid, all=all)

    def action_forward(self, attached: bool = False) -> None:
        from kittiwake.tui.screens.compose import compose_forward

        if self._quotable() and self.uid is not None:
            compose_forward(self.app, self.account, self.folder, self.uid, attached=attached)
