"""A message list over several folders: search results, and conversations as a tree.

``MessageList`` shows one folder by UID; this list's rows are ``Hit`` (folder, UID) pairs, so
search results can span the account, and a conversation can hold the user's replies from the
Sent folder. In conversation mode each thread is drawn as a tree (indent and connector
lines, the subject only where it changes), its first row carries the thread's unread and
total counts, and a thread can be folded to that one row. It reuses ``MessageList``'s
scrolling, cursor, keys and styles; only the data and the drawing differ.
"""

from __future__ import annotations

from array import array
from collections import OrderedDict
from typing import ClassVar

from rich.segment import Segment
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.strip import Strip

from kittiwake.core.api import Hit, MailApi
from kittiwake.core.message.subjects import base_subject
from kittiwake.core.models import ANSWERED, FLAGGED, SEEN, MessageSummary
from kittiwake.core.sanitize import clean_line
from kittiwake.core.search.threads import Threading
from kittiwake.tui.widgets.message_list import MessageList, _fit, compact_date, structure_mark

_ROW_CACHE = 600


class ThreadList(MessageList):
    """Rows of ``Hit``; flat (search results) or threaded (conversations)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("l,right", "unfold", "Unfold thread", id="threads.unfold", show=False),
        Binding("h,left", "fold", "Fold thread", id="threads.fold", show=False),
        Binding("v", "toggle_all", "Fold/unfold all", id="threads.toggle_all", show=False),
    ]

    class OpenedHit(Message):
        """The user asked to open the row under the cursor (a message, or a folded thread)."""

        def __init__(self, hit: Hit, thread: list[Hit] | None) -> None:
            super().__init__()
            self.hit = hit
            self.thread = thread

    def __init__(self, api: MailApi, *, id: str | None = None) -> None:
        super().__init__(api, id=id)
        self.hits: list[Hit | None] = []  # every row, threaded or not (None: placeholder)
        self.prefixes: list[str] = []
        self.thread_of: list[int] = []
        self.threading: Threading[tuple[int, int]] | None = None
        self.folded: set[int] = set()
        self.shown_rows: list[int] = []  # rows of ``hits`` on screen, in order
        self.chosen: set[Hit] = set()
        self.spans: dict[int, tuple[int, int]] = {}  # thread -> its rows [start, end)
        self.show_folder_column = False
        self.always_show_folder = False
        """Show the folder column even when every row is in one folder (a search of every
        folder: where a hit lives is worth saying)."""
        self.home_folder: str | None = None
        self.outgoing_folders: frozenset[str] = frozenset()
        """Sent and Drafts: their rows name the recipients ("To ..."), as the list does."""
        """Rows in this folder leave the folder column blank (a folder's conversations)."""
        self._summaries: OrderedDict[Hit, MessageSummary] = OrderedDict()
        self.thread_unread: dict[int, int] = {}
        """Unread messages per thread, kept current from flag changes and removals (the
        threading's own counts are those of when it was built)."""
        self._thread_by_hit: dict[Hit, int] | None = None  # built when first needed
        self.validity: dict[str, int | None] = {}
        """Each folder's UIDVALIDITY when its rows were first shown: actions name it."""

    # -- data -------------------------------------------------------------------------------

    def _saw(self, hits: list[Hit | None] | list[Hit]) -> None:
        """Record the UIDVALIDITY of folders whose rows are shown for the first time."""
        if self.account is None:
            return
        for folder in {h.folder for h in hits if h is not None} - self.validity.keys():
            self.validity[folder] = self.api.uidvalidity(self.account, folder)

    def forget_folder(self, folder: str) -> None:
        """``folder`` was recreated (new UIDVALIDITY): its rows name other messages now."""
        self.validity.pop(folder, None)
        self.forget({h for h in self.hits if h is not None and h.folder == folder})

    def show_hits(self, account: str, hits: list[Hit]) -> None:
        """Flat rows (search results), newest first."""
        self.account = account
        self.threading = None
        self.validity = {}
        self._saw(hits)
        self.hits = list(hits)
        self.prefixes = [""] * len(hits)
        self.thread_of = list(range(len(hits)))
        self.folded.clear()
        self.chosen.clear()
        self._summaries.clear()
        self.thread_unread = {}
        self._thread_by_hit = None
        self._relayout(keep=None)
        self.cursor = 0

    def append_hits(self, hits: list[Hit]) -> None:
        """More results (the server's), after the ones shown; the cursor stays put."""
        known = set(self.hits)
        fresh = [h for h in hits if h not in known]
        self._saw(fresh)
        start = len(self.hits)
        self.hits += fresh
        self.prefixes += [""] * len(fresh)
        self.thread_of += list(range(start, start + len(fresh)))
        self._relayout(keep=self.current_hit)

    def show_threads(
        self,
        account: str,
        threading: Threading[tuple[int, int]],
        names: dict[int, str],
        *,
        keep: bool = False,
    ) -> None:
        """Conversations, newest thread first, unfolded. With ``keep`` (a rebuild after new
        mail or a removal) the cursor stays on its message, folded threads stay folded and
        the selection stays selected."""
        current = self.current_hit if keep else None
        folded_roots = {self._root(t) for t in self.folded} - {None}
        chosen = set(self.chosen) if keep else set()
        self.account = account
        self.threading = threading
        self.hits = [None if k is None else Hit(names.get(k[0], "?"), k[1]) for k in threading.keys]
        if not keep:
            self.validity = {}
        self._saw(self.hits)
        self.prefixes = threading.prefixes
        self.thread_of = threading.thread_of
        self.folded.clear()
        self.chosen = chosen & {h for h in self.hits if h is not None}
        self._summaries.clear()
        self.thread_unread = {n: info.unread for n, info in enumerate(threading.threads)}
        self._thread_by_hit = None
        self._relayout(keep=None)
        if keep:
            self.folded = {t for t in self.spans if self._root(t) in folded_roots}
            self._relayout(keep=current)
        else:
            self.cursor = 0

    def forget(self, gone: set[Hit]) -> None:
        """Messages that left (moved, deleted): their rows go, the cursor stays near."""
        if not gone:
            return
        keep = self.current_hit
        if self.threading is None:
            rows = [i for i, h in enumerate(self.hits) if h not in gone]
            self.hits = [self.hits[i] for i in rows]
            self.prefixes = [""] * len(self.hits)
            self.thread_of = list(range(len(self.hits)))
        else:  # the tree keeps its shape until rebuilt; the rows just go
            touched = {self.thread_of[i] for i, h in enumerate(self.hits) if h in gone}
            if not touched:
                return
            live = {t for t, h in zip(self.thread_of, self.hits, strict=True) if h not in gone}
            rows = [  # a placeholder row goes with the last real message of its thread
                i
                for i, h in enumerate(self.hits)
                if h not in gone and (h is not None or self.thread_of[i] in live)
            ]
            self.hits = [self.hits[i] for i in rows]
            self.prefixes = [self.prefixes[i] for i in rows]
            self.thread_of = [self.thread_of[i] for i in rows]
            self._thread_by_hit = None
        self.chosen -= gone
        for hit in gone:
            self._summaries.pop(hit, None)
        self._relayout(keep=keep if keep not in gone else None)
        if self.threading is not None:
            self.folded &= set(self.spans)
            self._recount(touched & set(self.spans))
            for thread in touched - set(self.spans):
                self.thread_unread.pop(thread, None)

    def refresh_hits(self, hits: set[Hit]) -> None:
        """Flags changed: read those rows again (and recount their threads' unread)."""
        for hit in hits:
            self._summaries.pop(hit, None)
        if self.threading is not None:
            if self._thread_by_hit is None:
                self._thread_by_hit = {
                    h: t for h, t in zip(self.hits, self.thread_of, strict=True) if h is not None
                }
            by_hit = self._thread_by_hit
            self._recount({by_hit[h] for h in hits if h in by_hit})
        self.refresh()

    def _recount(self, threads: set[int]) -> None:
        """Count the unread messages of ``threads`` again, from the cache's flags."""
        if self.account is None:
            return
        for thread in threads:
            by_folder: dict[str, list[int]] = {}
            for hit in self._thread_hits(thread):
                by_folder.setdefault(hit.folder, []).append(hit.uid)
            self.thread_unread[thread] = sum(
                1
                for folder, uids in by_folder.items()
                for s in self.api.summaries(self.account, folder, uids).values()
                if SEEN not in s.flags
            )

    def thread_totals(self) -> tuple[int, int]:
        """(conversations shown, conversations with unread mail), as they are now."""
        if self.threading is None:
            return (0, 0)
        return (len(self.spans), sum(1 for t in self.spans if self.thread_unread.get(t, 0)))

    def _relayout(self, keep: Hit | None) -> None:
        position = self.cursor
        rows: list[int] = []
        spans: dict[int, tuple[int, int]] = {}
        last_thread = -1
        for i, thread in enumerate(self.thread_of):
            if thread != last_thread:
                spans[thread] = (i, i + 1)
            else:
                spans[thread] = (spans[thread][0], i + 1)
            if thread in self.folded and thread == last_thread:
                continue
            last_thread = thread
            rows.append(i)
        self.spans = spans
        self.shown_rows = rows
        self.index = array("I", range(len(rows)))
        folders = {h.folder for h in self.hits if h is not None}
        self.show_folder_column = self.always_show_folder or len(folders) > 1
        self.virtual_size = Size(self.size.width, len(rows))
        if keep is not None and keep in self.hits:
            at = self.hits.index(keep)
            position = next((n for n, i in enumerate(rows) if i >= at), position)
        self.set_reactive(MessageList.cursor, max(0, min(position, len(rows) - 1)))
        self._follow_cursor()
        self.refresh()

    # -- what the row under the cursor means ------------------------------------------------

    def go_to(self, hit: Hit) -> None:
        """Put the cursor on ``hit`` (on its thread's row, when folded)."""
        if hit in self.hits:
            self._relayout(keep=hit)

    def row_at(self, position: int) -> int | None:
        return self.shown_rows[position] if 0 <= position < len(self.shown_rows) else None

    @property
    def current_hit(self) -> Hit | None:
        row = self.row_at(self.cursor)
        if row is None:
            return None
        hit = self.hits[row]
        if hit is not None:
            return hit
        members = self._thread_hits(self.thread_of[row])  # a placeholder: its first reply
        return members[0] if members else None

    def _root(self, thread: int) -> Hit | None:
        """The first message of a thread (what identifies it across rebuilds)."""
        members = self._thread_hits(thread)
        return members[0] if members else None

    def _thread_hits(self, thread: int) -> list[Hit]:
        start, end = self.spans.get(thread, (0, 0))
        return [h for h in self.hits[start:end] if h is not None]

    def current_thread(self) -> list[Hit]:
        """Every message of the conversation under the cursor, in tree order."""
        row = self.row_at(self.cursor)
        return [] if row is None else self._thread_hits(self.thread_of[row])

    def step_thread(self, step: int) -> bool:
        """Move the cursor to the first row of the next (``step`` 1) or previous (-1)
        conversation, whether or not threads are unfolded (flat rows: one row). False when
        there is none."""
        row = self.row_at(self.cursor)
        if row is None:
            return False
        if self.threading is None:
            target = self.cursor + step
            if not 0 <= target < len(self.shown_rows):
                return False
            self.cursor = target
            return True
        start, end = self.spans[self.thread_of[row]]
        if step > 0:
            if end >= len(self.hits):
                return False
            first = end
        else:
            if start == 0:
                return False
            first = self.spans[self.thread_of[start - 1]][0]
        self.cursor = self.shown_rows.index(first)  # a thread's first row is always shown
        return True

    def cursor_folded(self) -> bool:
        row = self.row_at(self.cursor)
        return row is not None and self.threading is not None and self.thread_of[row] in self.folded

    def hit_targets(self) -> list[Hit]:
        """What an action applies to: the selection; else the folded thread under the cursor,
        whole; else the message under the cursor."""
        if self.chosen:
            return [h for h in self.hits if h is not None and h in self.chosen]
        if self.cursor_folded():
            return self.current_thread()
        hit = self.current_hit
        return [hit] if hit is not None else []

    def targets(self) -> tuple[int, ...]:  # the UIDs of one folder make no sense here
        return ()

    def summary_of(self, hit: Hit) -> MessageSummary | None:
        return self._load_hits([hit]).get(hit)

    def _load_hits(self, hits: list[Hit]) -> dict[Hit, MessageSummary]:
        missing: dict[str, list[int]] = {}
        for hit in hits:
            if hit not in self._summaries:
                missing.setdefault(hit.folder, []).append(hit.uid)
        if missing and self.account is not None:
            for folder, uids in missing.items():
                for uid, summary in self.api.summaries(self.account, folder, uids).items():
                    self._summaries[Hit(folder, uid)] = summary
            while len(self._summaries) > _ROW_CACHE:
                self._summaries.popitem(last=False)
        return {h: self._summaries[h] for h in hits if h in self._summaries}

    # -- selection --------------------------------------------------------------------------

    def toggle_chosen(self) -> None:
        targets = (
            self.current_thread()
            if self.cursor_folded()
            else [h for h in [self.current_hit] if h is not None]
        )
        if all(t in self.chosen for t in targets):
            self.chosen -= set(targets)
        else:
            self.chosen |= set(targets)
        self.refresh()

    def select_all(self) -> None:
        self.chosen = {h for h in self.hits if h is not None}
        self.refresh()

    def clear_selection(self) -> bool:
        had = bool(self.chosen)
        self.chosen.clear()
        self.refresh()
        return had

    # -- folding ----------------------------------------------------------------------------

    def _fold(self, thread: int | None, folded: bool) -> None:
        if thread is None or self.threading is None:
            return
        keep = self.current_hit
        if folded:
            self.folded.add(thread)
        else:
            self.folded.discard(thread)
        self._relayout(keep=keep)
        if folded:  # the cursor goes to the thread's one row
            first = self.spans[thread][0]
            self.cursor = self.shown_rows.index(first)

    def _cursor_thread(self) -> int | None:
        row = self.row_at(self.cursor)
        return None if row is None else self.thread_of[row]

    def action_fold(self) -> None:
        self._fold(self._cursor_thread(), True)

    def action_unfold(self) -> None:
        self._fold(self._cursor_thread(), False)

    def action_toggle_all(self) -> None:
        if self.threading is None:
            return
        keep = self.current_hit
        if self.folded:
            self.folded.clear()
        else:
            self.folded = set(range(len(self.threading.threads)))
        self._relayout(keep=keep)

    def action_open(self) -> None:
        hit = self.current_hit
        if hit is None:
            return
        thread = self.current_thread() if self.threading is not None else None
        self.post_message(self.OpenedHit(hit, thread))

    # -- drawing ----------------------------------------------------------------------------

    def on_resize(self) -> None:
        self.virtual_size = Size(self.size.width, len(self.shown_rows))

    def render_line(self, y: int) -> Strip:
        top = self.scroll_offset.y
        position = top + y
        width = self.scrollable_content_region.width
        row = self.row_at(position)
        if row is None:
            return Strip.blank(width, self.rich_style)
        window = [self.hits[i] for i in self.shown_rows[top : top + self.size.height + 1]]
        self._load_hits([h for h in window if h is not None])
        return self._draw(row, position == self.cursor, width)

    def _thread_counts(self, thread: int) -> tuple[int, int]:
        """(unread, messages) of a thread, as they are now (``thread_unread``)."""
        if self.threading is None:
            return (0, 1)
        return (self.thread_unread.get(thread, 0), len(self._thread_hits(thread)))

    def _draw(self, row: int, is_cursor: bool, width: int) -> Strip:
        hit = self.hits[row]
        thread = self.thread_of[row]
        folded = self.threading is not None and thread in self.folded
        first_of_thread = row == 0 or self.thread_of[row - 1] != thread
        summary = self._summaries.get(hit) if hit is not None else None
        base = self.rich_style
        unread_in_thread, in_thread = self._thread_counts(thread)
        if folded:
            members = [self._summaries.get(h) for h in self._thread_hits(thread)]
            summary = summary or next((m for m in members if m is not None), None)
            unread = unread_in_thread > 0
            chosen = all(h in self.chosen for h in self._thread_hits(thread))
        else:
            unread = summary is not None and SEEN not in summary.flags
            chosen = hit is not None and hit in self.chosen
        flags = summary.flags if summary is not None else frozenset()
        style = base + self.get_component_rich_style(
            "message-list--unread" if unread else "message-list--read"
        )
        if FLAGGED in flags:
            style += self.get_component_rich_style("message-list--flagged")
        if is_cursor:
            style += self.get_component_rich_style("message-list--cursor")
        marker_style = style + self.get_component_rich_style("message-list--marker")
        if chosen:
            style += self.get_component_rich_style("message-list--selected")
            marker_style = style
        dim = style + self.get_component_rich_style("message-list--date") if not unread else style
        markers = (
            ("*" if chosen else "N" if unread else " ")
            + ("!" if FLAGGED in flags else " ")
            + ("r" if ANSWERED in flags else " ")
            + structure_mark(summary)
        )
        env = summary.envelope if summary is not None else None
        who = ""
        if env is not None and hit is not None and hit.folder in self.outgoing_folders:
            who = "To " + ", ".join(a.name or a.addr for a in env.to) if env.to else ""
        elif env is not None and env.from_:
            who = ", ".join(a.name or a.addr for a in env.from_)
        subject = (clean_line(env.subject) or "(no subject)") if env is not None else ""
        if hit is None and not folded:  # the thread's first message is not here: its subject
            first_hits = self._thread_hits(thread)[:1]
            known = self._summaries.get(first_hits[0]) if first_hits else None
            who = "(not here)"
            subject = clean_line(known.envelope.subject) if known is not None else ""
        tree = "" if folded else self.prefixes[row]
        if self.threading is not None and not first_of_thread and not folded:
            parent_subject = self._thread_subject(thread)
            if base_subject(subject) == parent_subject:
                subject = ""  # the same conversation: the tree says it
        count = ""
        if self.threading is not None and first_of_thread and in_thread > 1:
            count = f"{unread_in_thread}/{in_thread}" if unread_in_thread else f"{in_thread}"
            if folded:
                count = "▸" + count
        date = compact_date((env.date or summary.internal_date) if env and summary else None)
        date_w = 10
        count_w = 7 if self.threading is not None else 0
        folder_w = min(14, max(6, width // 8)) if self.show_folder_column else 0
        who_w = max(8, min(24, width // 4))
        subject_w = max(0, width - len(markers) - who_w - count_w - folder_w - date_w - 3)
        segments = [
            Segment(markers, marker_style),
            Segment(" ", style),
            Segment(_fit(clean_line(who), who_w), style),
            Segment(" ", style),
        ]
        if count_w:
            segments.append(Segment(_fit(count, count_w - 1).rjust(count_w - 1) + " ", dim))
        segments.append(Segment(_fit(tree + subject, subject_w), style))
        if folder_w:
            home = hit is None or hit.folder == self.home_folder
            folder = "" if home or hit is None else clean_line(hit.folder)
            segments.append(Segment(" " + _fit(folder, folder_w - 1), dim))
        segments += [Segment(" ", style), Segment(_fit(date, date_w).rjust(date_w), dim)]
        return Strip(segments).adjust_cell_length(width, style)

    def _thread_subject(self, thread: int) -> str:
        """The base subject of the thread's first message (its children repeat it)."""
        for h in self._thread_hits(thread)[:1]:
            s = self._summaries.get(h) or self.summary_of(h)
            return base_subject(s.envelope.subject) if s is not None else ""
        return ""
