"""Reading a conversation: its messages in order, the ones already read folded to one line.

Opened from the conversation list (the whole thread) or, as ``ResultReaderScreen``, from
search results (one message, read as the message reader reads one: no n/p or folding).
``n``/``p`` move between the messages of the thread, ``enter`` folds or unfolds the one
under the marker, ``J``/``K`` go to the next or previous conversation of the list it came
from (the next result, from search).
Every triage key (``tui/triage.py``, ids ``triage.*``) and every per-message key of the
reader (same ids: ``compose.*`` reply and forward, ``reader.headers``, ``reader.source``,
``reader.save``) acts on the message under the marker, whose attachments are listed under
its body. The view follows the events: flags redraw, a message moved or deleted (here or on
another device) leaves it, and the reader closes when the thread has none left.
Bodies load as they are unfolded (through ``MailApi.message``, cached once fetched); an
unread message that is shown unfolded is marked read, as the reader does.
"""

from __future__ import annotations

from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual import events, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll

from kittiwake.core.api import Hit
from kittiwake.core.events import FlagsChanged, FolderReset, MessagesExpunged
from kittiwake.core.message.body import analyse
from kittiwake.core.message.mime import ParsedMessage
from kittiwake.core.models import FLAGGED, SEEN, Address, MessageSummary
from kittiwake.core.sanitize import clean_line, clean_text
from kittiwake.tui.events import EngineEvent, follow
from kittiwake.tui.screens.reader import MessageBody, attachment_list, offer_save
from kittiwake.tui.screens.search_triage import TitleBar, TriageScreen
from kittiwake.tui.tools import OPEN_BINDING
from kittiwake.tui.triage import triage_bindings
from kittiwake.tui.widgets.footer import KeyFooter
from kittiwake.tui.widgets.message_list import compact_date
from kittiwake.tui.widgets.thread_list import ThreadList


def _people(addrs: tuple[Address, ...]) -> str:
    """Names (or addresses), comma-separated; a name holding a comma is quoted, so "Lee, Ann"
    reads as one person."""
    return ", ".join(_person(clean_line(a.name or a.addr)) for a in addrs)


def _person(name: str) -> str:
    return f'"{name}"' if "," in name else name


class ThreadMessage(MessageBody):
    """One message of the thread: one line when folded, headers and body when not."""

    DEFAULT_CSS = """
    ThreadMessage {
        padding: 0 1;
        margin-bottom: 1;
    }
    ThreadMessage.-current {
        border-left: thick $accent;
        padding-left: 0;
    }
    ThreadMessage.-folded {
        margin-bottom: 0;
        color: $mail-dim;
    }
    """

    def __init__(self, hit: Hit, summary: MessageSummary | None, folded: bool) -> None:
        super().__init__()
        self.hit = hit
        self.summary = summary
        self.folded = folded
        self.body: Text | None = None
        self.parsed: ParsedMessage | None = None
        self.all_headers = False  # ``H``: every header, as sent
        self.source = False  # ``V``: the raw message instead of the body
        self.set_class(folded, "-folded")

    def headline(self) -> Text:
        s = self.summary
        text = Text("▸ " if self.folded else "▾ ", style=self.style_of("dim"))
        if s is None:
            return text.append("(this message is no longer here)")
        env = s.envelope
        marks = ("N" if SEEN not in s.flags else "") + ("!" if FLAGGED in s.flags else "")
        marks += "?" if s.degraded else ""  # shown from its raw headers, as in the list
        if marks:
            text.append(marks + " ", style="bold")
        text.append(_people(env.from_) or "(unknown sender)", style="bold")
        text.append("  " + compact_date(env.date or s.internal_date), style=self.style_of("dim"))
        text.append("  " + (clean_line(env.subject) or "(no subject)"))
        return text

    def show(self) -> None:
        out = self.headline()
        s = self.summary
        if not self.folded and s is not None:
            env = s.envelope
            name = self.style_of("header-name")
            headers = [("To", _people(env.to)), ("Cc", _people(env.cc))]
            if self.all_headers and self.parsed is not None:
                headers = [(clean_line(k), clean_line(v)) for k, v in self.parsed.headers]
            for label, value in headers:
                if value:
                    out.append("\n" + label + ": ", style=name).append(value)
            security = self.parsed.security if self.parsed is not None else None
            for level, sentence in security.lines() if security is not None else []:
                out.append("\nSecurity: ", style=name)  # from gpg, never from the body
                out.append(clean_line(sentence), style=self.style_of(f"sig-{level}"))
            out.append("\n\n")
            if self.source and self.parsed is not None:
                out.append(clean_text(self.parsed.raw.decode("utf-8", "replace")).rstrip())
            else:
                loading = Text("Loading…", style="dim")
                out.append_text(self.body if self.body is not None else loading)
            if self.parsed is not None and (self.parsed.listed or self.parsed.unread_parts):
                attachments = attachment_list(self.parsed)
                attachments.stylize(self.style_of("dim"))
                out.append("\n\n").append_text(attachments)
        self.update(out)

    def render_body(self, body: str, links: list[str]) -> None:
        lines, urls = analyse(clean_text(body), links)
        quotes = [self.style_of(f"quote-{n}") for n in range(1, 5)]
        dim = self.style_of("dim")
        text = Text()
        for line in lines:
            style = Style()
            if line.signature:
                style = dim
            elif line.quote_depth:
                style = quotes[min(line.quote_depth, len(quotes)) - 1]
            text.append(line.text + "\n", style=style)
        for n, url in enumerate(urls, 1):
            text.append(f"[{n}] ", style=dim).append(clean_line(url) + "\n")
        text.rstrip()
        self.body = text
        self.show()


class ThreadReaderScreen(TriageScreen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "back", "Back", id="thread.back"),
        Binding("n", "next", "Next", id="thread.next"),
        Binding("p", "previous", "Previous", id="thread.previous"),
        Binding("enter,o", "toggle_fold", "Fold/unfold", id="thread.toggle"),
        Binding("J", "next_in_list", "Next in list", id="thread.next_in_list", show=False),
        Binding("K", "previous_in_list", "Prev in list", id="thread.previous_in_list", show=False),
        Binding("j,down", "scroll_down", "Down", id="thread.down", show=False),
        Binding("k,up", "scroll_up", "Up", id="thread.up", show=False),
        Binding("space,pagedown", "page_down", "Page", id="thread.page_down", show=False),
        Binding("pageup,b", "page_up", "Page up", id="thread.page_up", show=False),
        Binding("g,home", "top", "Top", id="thread.top", show=False),
        Binding("G,end", "bottom", "Bottom", id="thread.bottom", show=False),
        # The message under the marker, as in the reader (same ids: one remapping for both).
        Binding("r", "reply", "Reply", id="compose.reply"),
        Binding("R", "reply(True)", "Reply all", id="compose.reply_all", show=False),
        Binding("f", "forward", "Forward", id="compose.forward", show=False),
        Binding(
            "F", "forward(True)", "Forward attached", id="compose.forward_attached", show=False
        ),
        Binding("c", "compose", "Compose", id="compose.new", show=False),
        Binding("H", "toggle_headers", "Headers", id="reader.headers", show=False),
        Binding("V", "toggle_source", "Source", id="reader.source", show=False),
        Binding("S", "save_attachment", "Save attachment", id="reader.save", show=False),
        OPEN_BINDING,
        Binding("?", "help", "Help", id="app.help"),
        # The triage keys are ``TriageScreen``'s; these two leave the footer to n and p.
        *triage_bindings(only=("archive", "move")),
    ]

    def __init__(
        self, account: str, hits: list[Hit], focus: Hit, source: ThreadList | None = None
    ) -> None:
        super().__init__(account)
        self.hits = hits
        self.focus_hit = focus
        self.source = source
        self.current = 0
        self._emptied = False  # every message left while another screen was on top
        self.validity: dict[str, int | None] = {}
        """Each folder's UIDVALIDITY when the thread was shown: triage names it."""

    def compose(self) -> ComposeResult:
        yield TitleBar(id="thread-title")
        yield VerticalScroll(id="thread-scroll")
        yield KeyFooter()

    async def on_mount(self) -> None:
        follow(self, FlagsChanged, MessagesExpunged, FolderReset)
        await self.load(self.hits, self.focus_hit)

    def parts(self) -> list[ThreadMessage]:
        return list(self.query(ThreadMessage))

    async def load(self, hits: list[Hit], focus: Hit) -> None:
        """Show ``hits``: unread ones unfolded, read ones folded. With nothing unread, the
        one opened is unfolded (the newest when that is the thread's first)."""
        self.hits, self.focus_hit = hits, focus
        api = self.kw.api
        seen = self.source.validity if self.source is not None else {}
        self.validity = {
            f: seen[f] if f in seen else api.uidvalidity(self.account, f)
            for f in {h.folder for h in hits}
        }
        summaries = [api.summary_of(self.account, h) for h in hits]
        unread = [i for i, s in enumerate(summaries) if s is not None and SEEN not in s.flags]
        opened = hits.index(focus) if focus in hits else len(hits) - 1
        if unread:
            opened = -1
        elif opened == 0:
            opened = len(hits) - 1
        first = unread[0] if unread else opened
        scroll = self.query_one("#thread-scroll", VerticalScroll)
        await scroll.remove_children()
        parts = [
            ThreadMessage(h, s, folded=not (i in unread or i == opened))
            for i, (h, s) in enumerate(zip(hits, summaries, strict=True))
        ]
        await scroll.mount_all(parts)
        for part in parts:
            part.show()
            if not part.folded:
                self.fetch(part)
        self._update_title()
        self._go(first)

    def _update_title(self) -> None:
        summaries = [p.summary for p in self.parts()]
        subject = next((clean_line(s.envelope.subject) for s in summaries if s), "")
        count = f"{len(summaries)} messages" if len(summaries) != 1 else "1 message"
        unread = sum(1 for s in summaries if s is not None and SEEN not in s.flags)
        new = f", {unread} unread" if unread else ""
        self.query_one(TitleBar).update(f"{subject or '(no subject)'} · {count}{new}")

    # -- live events ------------------------------------------------------------------------

    async def on_engine_event(self, message: EngineEvent) -> None:
        event = message.event
        if event.account != self.account:
            return
        match event:
            case FlagsChanged(folder=folder, flags=flags):
                self._refresh_parts({Hit(folder, uid) for uid in flags})
            case MessagesExpunged(folder=folder, uids=uids):
                await self._drop_parts({Hit(folder, uid) for uid in uids})
            case FolderReset(folder=folder):
                await self._drop_parts({p.hit for p in self.parts() if p.hit.folder == folder})

    def _refresh_parts(self, hits: set[Hit]) -> None:
        api = self.kw.api
        changed = False
        for part in self.parts():
            if part.hit in hits:
                part.summary = api.summary_of(self.account, part.hit)
                part.show()
                changed = True
        if changed:
            self._update_title()

    async def _drop_parts(self, gone: set[Hit]) -> None:
        """Messages that left the thread (moved, deleted): their parts go, the marker stays
        at the same place (the next message); with none left, the reader closes."""
        parts = self.parts()
        leaving = [p for p in parts if p.hit in gone]
        if not leaving:
            return
        before = sum(1 for p in parts[: self.current] if p.hit in gone)
        self.hits = [h for h in self.hits if h not in gone]
        await self.query_one("#thread-scroll", VerticalScroll).remove_children(leaving)
        if not self.parts():
            self._close_empty()
            return
        self._update_title()
        self._go(self.current - before)

    def _close_empty(self) -> None:
        if self.is_current:
            self.app.pop_screen()
        else:  # a dialog or the help is on top: close once the user comes back
            self._emptied = True

    def on_screen_resume(self, event: events.ScreenResume) -> None:
        if self._emptied:
            self._emptied = False
            self.app.pop_screen()

    @work(group="thread-bodies", exit_on_error=False)
    async def fetch(self, part: ThreadMessage) -> None:
        api = self.kw.api
        hit = part.hit
        try:
            parsed = await api.message(self.account, hit.folder, hit.uid)
        except Exception as exc:  # network or parse trouble: one sentence, app keeps running
            message = getattr(exc, "message", None) or f"could not load ({type(exc).__name__})"
            part.body = Text(clean_line(message), style="bold")
            part.show()
            return
        if parsed is None:
            part.body = Text("This message is no longer on the server.", style="dim")
            part.show()
            return
        body, links = await api.body_text(parsed)
        part.parsed = parsed
        part.render_body(body, links)
        if part.summary is not None and SEEN not in part.summary.flags:
            await api.mark_seen(self.account, hit.folder, hit.uid)
            part.summary = api.summary_of(self.account, hit)
            part.show()

    # -- moving -----------------------------------------------------------------------------

    def _go(self, index: int) -> None:
        parts = self.parts()
        if not parts:
            return
        self.current = max(0, min(index, len(parts) - 1))
        for n, part in enumerate(parts):
            part.set_class(n == self.current, "-current")
        self.query_one("#thread-scroll", VerticalScroll).scroll_to_widget(
            parts[self.current], animate=False, top=True
        )

    def action_next(self) -> None:
        self._go(self.current + 1)

    def action_previous(self) -> None:
        self._go(self.current - 1)

    def action_toggle_fold(self) -> None:
        parts = self.parts()
        if not parts:
            return
        part = parts[self.current]
        part.folded = not part.folded
        part.set_class(part.folded, "-folded")
        part.show()
        if not part.folded and part.body is None:
            self.fetch(part)

    async def _step_list(self, step: int) -> None:
        """The next or previous conversation of the list (one result, from search), however
        its threads are folded there."""
        source = self.source
        if source is None or not source.step_thread(step):
            return
        hit = source.current_hit
        if hit is None:
            return
        hits = source.current_thread() if source.threading is not None else [hit]
        await self.load(hits, hit)

    async def action_next_in_list(self) -> None:
        await self._step_list(1)

    async def action_previous_in_list(self) -> None:
        await self._step_list(-1)

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_help(self) -> None:
        self.kw.action_help()

    def _scroll(self) -> VerticalScroll:
        return self.query_one("#thread-scroll", VerticalScroll)

    def action_scroll_down(self) -> None:
        self._scroll().scroll_down(animate=False)

    def action_scroll_up(self) -> None:
        self._scroll().scroll_up(animate=False)

    def action_page_down(self) -> None:
        self._scroll().scroll_page_down(animate=False)

    def action_page_up(self) -> None:
        self._scroll().scroll_page_up(animate=False)

    def action_top(self) -> None:
        self._scroll().scroll_home(animate=False)

    def action_bottom(self) -> None:
        self._scroll().scroll_end(animate=False)

    # -- the message under the marker, as the reader has it ---------------------------------

    def _current_part(self) -> ThreadMessage | None:
        """The message under the marker (None once it has left)."""
        parts = self.parts()
        if not parts:
            return None
        part = parts[min(self.current, len(parts) - 1)]
        return part if part.summary is not None else None

    def _opened_part(self) -> ThreadMessage | None:
        """The message under the marker, unfolded (its body loading) so a key shows on it."""
        part = self._current_part()
        if part is not None and part.folded:
            self.action_toggle_fold()
        return part

    def action_toggle_headers(self) -> None:
        if (part := self._opened_part()) is not None:
            part.all_headers = not part.all_headers
            part.show()

    def action_toggle_source(self) -> None:
        if (part := self._opened_part()) is not None:
            part.source = not part.source
            part.show()

    def action_save_attachment(self) -> None:
        part = self._current_part()
        if part is None:
            return
        if part.parsed is not None:
            offer_save(self, part.parsed)
        else:  # folded, or still loading: fetch it (cached once fetched) first
            self._save_when_loaded(part.hit)

    def action_open_part(self) -> None:
        from kittiwake.tui.tools import offer_open

        part = self._current_part()
        if part is not None and part.parsed is not None:
            offer_open(self, part.parsed)
        elif part is not None:
            self.notify("Unfold the message first (enter), then v.", severity="warning")

    @work(group="thread-save", exclusive=True, exit_on_error=False)
    async def _save_when_loaded(self, hit: Hit) -> None:
        try:
            parsed = await self.kw.api.message(self.account, hit.folder, hit.uid)
        except Exception as exc:  # network or parse trouble: one sentence, app keeps running
            message = getattr(exc, "message", None) or f"could not load ({type(exc).__name__})"
            self.notify(clean_line(message), severity="error")
            return
        if parsed is None:
            self.notify("This message is no longer on the server.", severity="warning")
            return
        offer_save(self, parsed)

    def action_compose(self) -> None:
        from kittiwake.tui.screens.compose import compose_new

        compose_new(self.app, self.account)

    def action_reply(self, all: bool = False) -> None:
        from kittiwake.tui.screens.compose import compose_reply

        if (part := self._current_part()) is not None:
            compose_reply(self.app, self.account, part.hit.folder, part.hit.uid, all=all)

    def action_forward(self, attached: bool = False) -> None:
        from kittiwake.tui.screens.compose import compose_forward

        if (part := self._current_part()) is not None:
            hit = part.hit
            compose_forward(self.app, self.account, hit.folder, hit.uid, attached=attached)

    # -- triage of the message under the marker (the keys are ``tui/triage.py``'s) --------

    def _hits(self) -> list[Hit]:
        part = self._current_part()
        return [part.hit] if part is not None else []

    def _validity(self, folder: str) -> int | None:
        return self.validity[folder] if folder in self.validity else super()._validity(folder)

    def _after_submit(self) -> None:
        """Flags show at once (moves and deletes arrive as events and take the part away)."""
        self._refresh_parts(set(self._hits()))


class ResultReaderScreen(ThreadReaderScreen):
    """One search result, read as the message reader reads one message of a folder: the
    same per-message keys, and ``J``/``K`` (shown as Next and Previous, the reader's ids
    are kept) go to the next and previous result; there is no thread to move in or fold."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("J", "next_in_list", "Next", id="thread.next_in_list"),
        Binding("K", "previous_in_list", "Previous", id="thread.previous_in_list"),
    ]

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("next", "previous", "toggle_fold"):
            return False
        return super().check_action(action, parameters)

    def _update_title(self) -> None:
        """The subject, the folder it lives in, and which result this is."""
        parts = self.parts()
        part = parts[0] if parts else None
        s = part.summary if part is not None else None
        title = [(clean_line(s.envelope.subject) if s is not None else "") or "(no subject)"]
        if part is not None:
            title.append(clean_line(part.hit.folder))
        if self.source is not None and self.source.shown_rows:
            title.append(f"result {self.source.cursor + 1:,} of {len(self.source.shown_rows):,}")
        self.query_one(TitleBar).update(" · ".join(title))
