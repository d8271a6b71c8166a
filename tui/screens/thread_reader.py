"""Reading a conversation: its messages in order, the ones already read folded to one line.

Opened from the conversation list (the whole thread) or from search results (one message).
``n``/``p`` move between the messages of the thread, ``enter`` folds or unfolds the one
under the marker, ``J``/``K`` go to the next or previous row of the list it came from.
Every triage key of the mailbox (same ids, ``triage.*``) acts on the message under the
marker; the view follows the events: flags redraw, a message moved or deleted (here or on
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
from kittiwake.core.body import analyse
from kittiwake.core.events import Event, FlagsChanged, FolderReset, MessagesExpunged
from kittiwake.core.models import FLAGGED, SEEN, Address, MessageSummary
from kittiwake.core.sanitize import clean_line, clean_text
from kittiwake.tui.screens.reader import MessageBody
from kittiwake.tui.screens.search_triage import TitleBar, TriageScreen
from kittiwake.tui.widgets.footer import KeyFooter
from kittiwake.tui.widgets.message_list import compact_date
from kittiwake.tui.widgets.thread_list import ThreadList


def _people(addrs: tuple[Address, ...]) -> str:
    return ", ".join(clean_line(a.name or a.addr) for a in addrs)


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
        self.set_class(folded, "-folded")

    def headline(self) -> Text:
        s = self.summary
        text = Text("▸ " if self.folded else "▾ ", style=self.style_of("dim"))
        if s is None:
            return text.append("(this message is no longer here)")
        env = s.envelope
        marks = ("N" if SEEN not in s.flags else "") + ("!" if FLAGGED in s.flags else "")
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
            for label, value in (("To", _people(env.to)), ("Cc", _people(env.cc))):
                if value:
                    out.append("\n" + label + ": ", style=name).append(value)
            out.append("\n\n")
            out.append_text(self.body if self.body is not None else Text("Loading…", style="dim"))
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
        Binding("?", "help", "Help", id="app.help"),
        # The triage keys are ``TriageScreen``'s; these two leave the footer to n and p.
        Binding("e", "archive", "Archive", id="triage.archive", show=False),
        Binding("m", "move", "Move", id="triage.move", show=False),
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

    def compose(self) -> ComposeResult:
        yield TitleBar(id="thread-title")
        yield VerticalScroll(id="thread-scroll")
        yield KeyFooter()

    async def on_mount(self) -> None:
        self.follow_events()
        await self.load(self.hits, self.focus_hit)

    def parts(self) -> list[ThreadMessage]:
        return list(self.query(ThreadMessage))

    async def load(self, hits: list[Hit], focus: Hit) -> None:
        """Show ``hits``: unread ones unfolded, read ones folded. With nothing unread, the
        one opened is unfolded (the newest when that is the thread's first)."""
        self.hits, self.focus_hit = hits, focus
        api = self.kw.api
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

    @work(exclusive=True, group="thread-events", exit_on_error=False)
    async def follow_events(self) -> None:
        async with self.kw.api.subscribe() as stream:
            async for event in stream:
                if event.account == self.account:
                    await self.on_engine_event(event)

    async def on_engine_event(self, event: Event) -> None:
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
        source = self.source
        if source is None:
            return
        target = source.cursor + step
        if not 0 <= target < len(source.index):
            return
        source.cursor = target
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

    # -- triage of the message under the marker (the keys are ``TriageScreen``'s) ----------

    def _targets(self) -> list[Hit]:
        parts = self.parts()
        if not parts:
            return []
        part = parts[min(self.current, len(parts) - 1)]
        return [part.hit] if part.summary is not None else []

    def _after_submit(self) -> None:
        """Flags show at once (moves and deletes arrive as events and take the part away)."""
        self._refresh_parts(set(self._targets()))
