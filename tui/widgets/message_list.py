"""The message list: a virtual list on Textual's Line API that stays instant at 100,000 rows.

Only the visible rows are rendered, and their summaries are read from the cache a screenful
at a time. The list holds just the folder's position index (UIDs newest first, under 1 MB at
100,000) and a small row cache; it never mounts a widget per message.

A folder is first shown from its head (the first ``HEAD_ROWS`` UIDs, read from the sort
index) and its size (a count); the rest of its index is read after that first frame, a slice
(``INDEX_SLICE``) per turn of the event loop, so keys are handled in between: at 1,000,000
messages the index costs ~0.35 s of CPU, the head under a millisecond. Whatever needs a row
past what is read (``G``, select all, the reader, a live change) reads the rest at once,
through ``index``: a key pressed early waits for it, and acts on the whole folder.
"""

from __future__ import annotations

import time
from array import array
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import ClassVar

from rich.color import Color
from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.scrollbar import ScrollBar, ScrollBarRender
from textual.strip import Strip
from textual.timer import Timer

from kittiwake.core.api import MailApi
from kittiwake.core.events import (
    CacheRefreshed,
    FlagsChanged,
    FolderReset,
    MessagesAdded,
    MessagesExpunged,
)
from kittiwake.core.models import ANSWERED, FLAGGED, SEEN, MessageSummary
from kittiwake.core.sanitize import clean_line
from kittiwake.core.search.order import SortOrder
from kittiwake.tui.events import EngineEvent, follow
from kittiwake.tui.paint import draw_now

_ROW_CACHE = 600
HEAD_ROWS = 256
"""Rows read before a folder's first frame (at least two screenfuls: paging down a few times
does not wait for the index)."""
INDEX_SLICE = 50_000
"""UIDs read per step after the first frame (~20 ms of CPU): a key waits for one step at most."""


def compact_date(when: datetime | None, now: datetime | None = None) -> str:
    """Time today, weekday this week, day and month this year, else the full date."""
    if when is None:
        return ""
    now = now or datetime.now().astimezone()
    local = when.astimezone(now.tzinfo)
    if local.date() == now.date():
        return local.strftime("%H:%M")
    if timedelta(0) <= now - local < timedelta(days=6):
        return local.strftime("%a")
    if local.year == now.year:
        return local.strftime("%b %d")
    return local.strftime("%Y-%m-%d")


#: What the list's marker columns mean, for the help screen (``?``) and the README.
MARKS_HELP = (
    "Marks in the list: N unread, * selected, ! flagged, r answered, + attachments, "
    "? the server's summary of the message could not be read (it is shown from its raw "
    "headers; the reader says so)."
)


def structure_mark(s: MessageSummary | None) -> str:
    """The fourth marker column: ``?`` for a degraded message (its structure is unknown),
    else ``+`` for attachments."""
    if s is None:
        return " "
    return "?" if s.degraded else "+" if s.has_attachments else " "


def _fit(text: str, width: int) -> str:
    """Cut or pad ``text`` to exactly ``width`` cells."""
    from rich.cells import cell_len, set_cell_size

    if width <= 0:
        return ""
    if cell_len(text) > width:
        return set_cell_size(text, width - 1) + "…"
    return set_cell_size(text, width)


class ListScrollBar(ScrollBar):
    """A vertical scroll bar drawn straight into strips. Textual draws it through Rich's
    console, which cost more than the 28 rows of list beside it on each page key (~1 ms);
    the rows are the same (``ScrollBarRender.render_bar`` on the widget's style)."""

    def __init__(
        self, vertical: bool = True, name: str | None = None, *, thickness: int = 1
    ) -> None:
        super().__init__(vertical, name, thickness=thickness)
        self._rows: dict[tuple[object, ...], Strip] = {}

    def render_lines(self, crop: Region) -> list[Strip]:
        bar = self.render()
        if not self.vertical or not isinstance(bar, ScrollBarRender):
            return super().render_lines(crop)
        style = bar.style if isinstance(bar.style, Style) else Style.parse(str(bar.style))
        width, height = self.size
        segments = bar.render_bar(
            size=height,
            virtual_size=bar.virtual_size,
            window_size=bar.window_size,
            position=bar.position,
            thickness=width,
            vertical=True,
            back_color=style.bgcolor or Color.parse("#555555"),
            bar_color=style.color or Color.parse("bright_magenta"),
        )
        base = self.rich_style
        _, background = self.background_colors
        filters = tuple(self.get_line_filters())
        if len(self._rows) > 64:
            self._rows.clear()
        out = []
        for segment in segments.segments[crop.y : crop.y + crop.height]:
            # A bar has four kinds of row at most: each is drawn once.
            key = (segment.text, segment.style, base, background, filters)
            strip = self._rows.get(key)
            if strip is None:
                strip = Strip([Segment(segment.text, base + segment.style)], width)
                for line_filter in filters:
                    strip = strip.apply_filter(line_filter, background)
                self._rows[key] = strip
            out.append(strip.crop(crop.x, crop.x + crop.width))
        return out


class MessageList(ScrollView, can_focus=True):
    """Newest first; one row per message with markers, sender, subject and a compact date."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j,down", "cursor_down", "Next", id="list.next", show=False),
        Binding("k,up", "cursor_up", "Previous", id="list.previous", show=False),
        Binding("g,home", "first", "First", id="list.first", show=False),
        Binding("G,end", "last", "Last", id="list.last", show=False),
        Binding("pagedown,ctrl+f,space", "page_down", "Page down", id="list.page_down", show=False),
        Binding("pageup,ctrl+b", "page_up", "Page up", id="list.page_up", show=False),
        Binding("enter", "open", "Open", id="list.open", show=False),
    ]

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "message-list--selected",
        "message-list--cursor",
        "message-list--unread",
        "message-list--read",
        "message-list--flagged",
        "message-list--marker",
        "message-list--date",
    }

    DEFAULT_CSS = """
    MessageList {
        background: $surface;
        scrollbar-size-vertical: 1;
        overflow-x: hidden;
    }
    MessageList > .message-list--cursor {
        background: $mail-cursor-background;
    }
    MessageList:focus > .message-list--cursor {
        background: $mail-cursor-background;
        text-style: bold;
    }
    MessageList > .message-list--unread {
        color: $mail-unread;
        text-style: bold;
    }
    MessageList > .message-list--read {
        color: $mail-dim;
    }
    MessageList > .message-list--flagged {
        color: $mail-flagged;
    }
    MessageList > .message-list--selected {
        color: $mail-selected;
        text-style: bold;
    }
    MessageList > .message-list--marker {
        color: $accent;
    }
    MessageList > .message-list--date {
        color: $mail-dim;
    }
    """

    cursor: reactive[int] = reactive(0, always_update=True, init=False, repaint=False)
    """Row index of the highlighted message."""

    class Highlighted(Message):
        """The cursor moved to another message."""

        def __init__(self, uid: int | None) -> None:
            super().__init__()
            self.uid = uid

    class Reloaded(Message):
        """The list took in live changes (rows came, went or changed; the selection may
        be smaller)."""

    class Opened(Message):
        """The user asked to read the message under the cursor."""

        def __init__(self, uid: int) -> None:
            super().__init__()
            self.uid = uid

    def __init__(self, api: MailApi, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.api = api
        self.account: str | None = None
        self.folder: str | None = None
        self.show_recipients = False
        self._index: array[int] = array("I")
        """UIDs by row (``index``), or only the first of them while ``_partial``."""
        self._row_count = 0
        """Rows of the list: ``len(index)``, known from a count before the index is read."""
        self._partial = False
        """``_index`` is the first part of the folder's index; the rest is read a slice at a
        time after the first frame (``_read_more``), or at once when a row past what is read
        is needed (``_complete_index``)."""
        self._index_reads = 0  # which show of a folder the slices being read belong to
        self.uidvalidity: int | None = None
        """The folder's UIDVALIDITY when ``index`` was read: actions name it with the UIDs."""
        self.selected: set[int] = set()
        self.order = SortOrder()
        """How the rows are sorted (the folder's remembered order, ``O`` changes it)."""
        self.limit: str | None = None
        """A search query only the matching messages of which are shown (``l``), or None."""
        self._moved = False
        self._rows: OrderedDict[int, MessageSummary] = OrderedDict()
        self._labels: dict[int, str] = {}
        """Gmail labels shown before the subject, read with each row (``_load``)."""
        self._pending_reload = False
        self._reloaded_at = 0.0  # when live changes were last taken in (``time.monotonic``)
        self._pending_refresh = False
        self._pending_changed: set[int] = set()
        self._pending_added: set[int] = set()
        self._pending_other = False  # a pending change other than new mail
        self._styles: dict[tuple[bool, bool, bool, bool], tuple[Style, Style, Style]] = {}
        """(text, marker, date) style per (unread, flagged, cursor, selected): working them
        out walks the CSS of every ancestor, too slow to do for each row of each key."""
        self._strips: dict[tuple[int, bool, bool], tuple[MessageSummary, Strip]] = {}
        """Drawn rows by (uid, cursor, selected), with the summary they were drawn from: a row
        moved past again is not drawn again. A re-read summary (another object) is drawn
        anew; all are dropped when the width or the styles change, and each minute (the
        compact date depends on the time)."""
        self._strips_key: tuple[int, int] = (0, 0)
        self._blank_row: tuple[tuple[int, Style], Strip] | None = None
        self._prepare_pending = False
        self._prepare_timer: Timer | None = None

    @property
    def index(self) -> array[int]:
        """UIDs by row: four bytes a message (``MailApi.message_index``). Read in full
        here when only the head is known yet: what asks for it acts on the whole folder."""
        if self._partial:
            self._complete_index()
        return self._index

    @index.setter
    def index(self, uids: array[int]) -> None:
        self._index = uids
        self._row_count = len(uids)
        self._partial = False

    @property
    def row_count(self) -> int:
        """How many rows the list has (``len(index)``, without waiting for the index)."""
        return self._row_count

    @property
    def index_complete(self) -> bool:
        """The whole index is read (not only the rows of the first screenfuls)."""
        return not self._partial

    def _uid_at(self, row: int) -> int | None:
        """The UID of ``row``, from the rows read so far when it is among them."""
        if 0 <= row < len(self._index):
            return self._index[row]
        if not 0 <= row < self._row_count:
            return None
        index = self.index
        return index[row] if row < len(index) else None

    def _uids(self, start: int, stop: int) -> array[int]:
        """The UIDs of rows ``start`` to ``stop``, from the rows read so far when they are
        all among them."""
        if self._partial and stop > len(self._index):
            self._complete_index()
        return self._index[start:stop]

    def _start_index(self) -> None:
        """The head of the folder's index and its size, or the whole index when that is as
        cheap (a small folder; an order or limit that sorts the whole folder anyway)."""
        if self.account is None or self.folder is None:
            self.index = array("I")
            return
        head = None
        if self.limit is None:
            rows = max(HEAD_ROWS, 2 * self.app.size.height)  # the first page and the next
            head = self.api.message_index_start(self.account, self.folder, self.order, rows)
        if head is None:
            self.index = self._read_index()
            return
        total = self.api.counts(self.account, self.folder)[0] if len(head) == rows else 0
        if total <= len(head):
            self.index = head
            return
        self._index, self._row_count, self._partial = head, total, True
        self._index_reads += 1
        self.call_after_refresh(self._read_more_soon, self._index_reads)

    def _read_more_soon(self, reads: int, waited: int = 0) -> None:
        """The next slice after a turn of the event loop: keys and the engine's start go
        first. A timer, not ``call_later``: the list's queue is emptied without yielding, so
        slices posted back to back would hold every key until the end."""
        self.set_timer(0.002 if waited else 0.001, lambda: self._read_more(reads, waited))

    def _read_more(self, reads: int, waited: int = 0) -> None:
        """Append the next slice of the index (when this folder's head is still the list's);
        after the last, the index is complete. Not while a message waits on the list or
        above it (a key on its way down or back up for its binding: it takes a few turns of
        the loop, and a slice between each would make it wait for several), unless that
        has lasted ~0.2 s."""
        if not self._partial or reads != self._index_reads:
            return
        if waited < 100 and any(node.message_queue_size for node in self.ancestors_with_self):
            self._read_more_soon(reads, waited + 1)
            return
        if self.account is None or self.folder is None or not self._index:
            self._complete_index()
            return
        more = self.api.message_index_after(
            self.account, self.folder, self.order, self._index[-1], INDEX_SLICE
        )
        if more is None:
            self._complete_index()
            return
        self._index.extend(more)
        if len(more) == INDEX_SLICE and len(self._index) < self._row_count:
            self._read_more_soon(reads)
            return
        counted = self._row_count
        self.index = self._index  # all of it: the folder's rows as the slices found them
        if self._row_count != counted:  # changed meanwhile: read again as any change is
            self.call_later(self.reload)

    def _complete_index(self) -> None:
        """Read the whole index in place of the head. Rows added or removed since the count
        came with an engine event, which reloads the list anyway; a row count that differs
        is set right after this (this may run while a line is drawn)."""
        if not self._partial:
            return
        counted = self._row_count
        self.index = self._read_index()
        if self._row_count != counted:
            self.call_later(self.reload)

    @property
    def vertical_scrollbar(self) -> ScrollBar:
        """Textual's, as a ``ListScrollBar`` (made as Textual makes its own)."""
        if self._vertical_scrollbar is None:
            bar = ListScrollBar(
                vertical=True, name="vertical", thickness=self.scrollbar_size_vertical
            )
            bar.display = False
            self._vertical_scrollbar = bar
            self.app._start_widget(self, bar)
        return self._vertical_scrollbar

    # -- data -----------------------------------------------------------------------------

    def show_folder(self, account: str, folder: str, show_recipients: bool = False) -> None:
        """Show ``folder`` and follow its changes live."""
        follow(self, MessagesAdded, FolderReset, CacheRefreshed, MessagesExpunged, FlagsChanged)
        self.account, self.folder = account, folder
        self.show_recipients = show_recipients
        self._rows.clear()
        self._strips.clear()
        self.selected.clear()
        self.uidvalidity = self.api.uidvalidity(account, folder)
        self.order = self.api.sort_order(account, folder)
        self.limit = None
        self._start_index()
        self.virtual_size = Size(self.size.width, self._row_count)
        self.scroll_to(y=0, animate=False)
        self._moved = False
        self.cursor = 0
        self.refresh()

    def reload(
        self,
        *,
        forget: frozenset[int] = frozenset(),
        forget_all: bool = False,
        index: array[int] | None = None,
    ) -> None:
        """Re-read the index after a change, keeping the cursor on the same message (or the
        one that took its place when it vanished); the rows of ``forget`` (every row with
        ``forget_all``) are read again too. ``index``: the new index, already known."""
        if self.account is None or self.folder is None:
            return
        current = self.current_uid
        old_pos = self.cursor
        if not self._moved:
            current = None  # untouched: stay on the newest message while the folder fills
        validity = self.api.uidvalidity(self.account, self.folder)
        if validity != self.uidvalidity:  # recreated: the same UIDs are other messages now
            self.uidvalidity = validity
            self._rows.clear()
            self.selected.clear()
            current = None
            index = None
        self.index = self._read_index() if index is None else index
        if forget_all:
            self._rows.clear()
        for uid in forget:
            self._rows.pop(uid, None)
        if self.selected:  # a set of the whole index is the size of a list of it: only then
            self.selected &= set(self.index)
        self._set_row_count(len(self.index))
        if current is not None and current in self.index:
            position = self.index.index(current)
        else:
            position = min(old_pos, max(0, len(self.index) - 1))
        self.set_reactive(MessageList.cursor, position)
        self._follow_cursor()
        self.refresh()
        # Not after every batch of a first sync: once the folder has been quiet a moment.
        if self._prepare_timer is not None:
            self._prepare_timer.stop()
        self._prepare_timer = self.set_timer(0.25, self._schedule_prepare)

    def _set_row_count(self, rows: int) -> None:
        """The list's height in rows after a live change. Setting ``virtual_size`` asks for a
        layout pass, which repaints the whole screen (15-25 ms measured, ahead of the new
        row): needed only when the scroll bar appears or goes; otherwise the scroll bar is
        updated alone (or, with none before or after, nothing), as Textual does for a size
        change without layout."""
        new = Size(self.size.width, rows)
        old = self.virtual_size
        height = self.size.height
        if new == old:
            return
        bar_stays = old.height > height + 1 and rows > height + 1
        none_stays = old.height < height and rows < height
        if old.width == new.width and (bar_stays or none_stays):
            self.set_reactive(ScrollView.virtual_size, new)
            self._scroll_update(new)
        else:
            self.virtual_size = new

    def _read_index(self) -> array[int]:
        if self.account is None or self.folder is None:
            return array("I")
        return self.api.message_index(self.account, self.folder, self.order, self.limit)

    def set_order(self, order: SortOrder) -> None:
        """Sort by ``order`` (remembered for the folder), the cursor staying on its message."""
        self.order = order
        if self.account is not None and self.folder is not None:
            self.api.set_sort_order(self.account, self.folder, order)
        self._moved = True
        self.reload()

    def set_limit(self, query: str | None) -> None:
        """Show only the messages matching ``query`` (None: all of them again); the
        selection keeps only what stays shown, so a key never acts on a hidden message."""
        self.limit = query or None
        self._moved = True
        self.reload()

    # -- live changes ---------------------------------------------------------------------

    def on_engine_event(self, message: EngineEvent) -> None:
        event = message.event
        if event.account != self.account or getattr(event, "folder", None) != self.folder:
            return
        match event:
            case MessagesAdded() as added:
                self._pending_added.update(added.uids)
            case CacheRefreshed():  # another program wrote it: every row may differ
                self._pending_refresh = True
            case MessagesExpunged(uids=uids):
                self._pending_changed.update(uids)
            case FlagsChanged(flags=flags):
                if self.limit is None and self.order.key != "unread":
                    # The same rows in the same order: only the changed ones are read again
                    # and redrawn, now (re-reading the index costs ms at 100,000).
                    self._redraw(flags.keys())
                    return
                self._pending_changed.update(flags)
        if not isinstance(event, MessagesAdded):
            self._pending_other = True
        self._schedule_reload()

    def _redraw(self, uids: Iterable[int]) -> None:
        """Forget the rows of ``uids`` and repaint those on screen (read again when drawn)."""
        changed = set(uids)
        for uid in changed:
            self._rows.pop(uid, None)
        top = self.scroll_offset.y
        for row, uid in enumerate(self._uids(top, top + self.size.height), top):
            if uid in changed:
                self.refresh_line(row)  # (rows of the folder: ScrollView subtracts the scroll)
        self._draw_now()
        self.post_message(self.Reloaded())

    def _schedule_reload(self) -> None:
        """Coalesce bursts (a first sync sends a batch every few milliseconds): a change
        after a quiet moment is shown at once, the rest of a burst at most every 50 ms."""
        if not self._pending_reload:
            self._pending_reload = True
            # Another order than the default, or a limit, reads more than the index: less
            # often while a sync adds batches.
            costly = self.limit is not None or not self.order.is_default
            wait = self._reloaded_at + (0.5 if costly else 0.05) - time.monotonic()
            if wait > 0:
                self.set_timer(wait, self._reload_now)
            else:
                self._reload_now()

    def _reload_now(self) -> None:
        self._pending_reload = False
        self._reloaded_at = time.monotonic()
        index = None if self._pending_other else self._index_with(self._pending_added)
        self.reload(
            forget=frozenset(self._pending_changed), forget_all=self._pending_refresh, index=index
        )
        self._pending_refresh = self._pending_other = False
        self._pending_changed.clear()
        self._pending_added.clear()
        self._draw_now()
        self.post_message(self.Reloaded())

    def _draw_now(self) -> None:
        """A live change or a cursor move is drawn now, not at the screen's next frame tick
        (``tui/paint.py``): the 60 fps timer was 0-16 ms of new mail's way to the screen,
        and a key's repaint went to the screen as a message and waited for that timer."""
        bar = self._vertical_scrollbar
        draw_now(self, *([bar] if bar is not None else []))

    def _index_with(self, added: set[int]) -> array[int] | None:
        """The index with new mail that lands at its head (the usual case: it is the newest),
        from the head of the cache's order alone, or None when that does not hold (another
        order or a limit, mail dated earlier, other changes meanwhile): then the whole index
        is read again (~30 ms at 100,000 messages)."""
        if (
            not added
            or len(added) > 100
            or self.account is None
            or self.folder is None
            or self.limit is not None
            or not self.order.is_default
        ):
            return None
        head = self.api.message_index_head(self.account, self.folder, len(added) + 32)
        rest = array("I", (uid for uid in head if uid not in added))
        if len(head) - len(rest) != len(added) or rest != self.index[: len(rest)]:
            return None
        return head + self.index[len(rest) :]

    def update_rows(self, uids: set[int]) -> None:
        """Some messages changed (flags): forget their cached rows and repaint."""
        for uid in uids:
            self._rows.pop(uid, None)
        self.refresh()

    def targets(self) -> tuple[int, ...]:
        """What an action applies to: the selection, else the message under the cursor."""
        if self.selected:
            return tuple(u for u in self.index if u in self.selected)
        uid = self.current_uid
        return (uid,) if uid is not None else ()

    def toggle_selected(self, uid: int) -> None:
        self.selected ^= {uid}
        self.refresh()

    def select_all(self) -> None:
        self.selected = set(self.index)
        self.refresh()

    def clear_selection(self) -> bool:
        had = bool(self.selected)
        self.selected.clear()
        self.refresh()
        return had

    def go_to_uid(self, uid: int) -> None:
        """Put the cursor on ``uid`` (when it is in the folder), as if the user moved there."""
        if uid in self.index:
            self._moved = True
            self.cursor = self.index.index(uid)

    @property
    def current_uid(self) -> int | None:
        return self._uid_at(self.cursor)

    def summary(self, uid: int) -> MessageSummary | None:
        return self._load([uid]).get(uid)

    def _load(self, uids: Sequence[int]) -> dict[int, MessageSummary]:
        if len(self._labels) > 4 * _ROW_CACHE:
            self._labels = {u: self._labels[u] for u in self._rows if u in self._labels}
        missing = [u for u in uids if u not in self._rows]
        if missing and self.account and self.folder:
            fetched = self.api.summaries(self.account, self.folder, missing)
            for uid, summary in fetched.items():
                self._rows[uid] = summary
                self._labels[uid] = label_tags(
                    self.api.labels(self.account, self.folder, uid), self.folder
                )
            while len(self._rows) > _ROW_CACHE:
                self._rows.popitem(last=False)
            if len(self._strips) > _ROW_CACHE:
                self._strips.clear()
        return {u: self._rows[u] for u in uids if u in self._rows}

    # -- rendering ------------------------------------------------------------------------

    def on_resize(self) -> None:
        self.virtual_size = Size(self.size.width, self._row_count)

    def notify_style_update(self) -> None:
        """The theme, the CSS or the focus changed: every row's colours may differ."""
        super().notify_style_update()
        self._styles.clear()
        self._strips.clear()

    def render_lines(self, crop: Region) -> list[Strip]:
        """The rows as ``render_line`` keeps them drawn, the very same ``Strip`` objects each
        time, when the list has no border, padding, outline, tint or opacity (Textual's
        per-widget line cache would only copy them): the colour filter, the compositor's
        division at the scroll bar and the terminal codes are then kept on those strips
        (Textual caches each on the strip), and a page key or a list shifted by new mail
        draws its rows from what was drawn before instead of anew (~1-2 ms per frame)."""
        if not self._plain_box():
            return super().render_lines(crop)
        width = self.size.width
        base, background = self.background_colors
        pad = Style(bgcolor=(base + background).rich_color)  # as Textual pads a short line
        filters = self.get_line_filters()
        top, cursor = self.scroll_offset.y, self.cursor
        rows_width = self.scrollable_content_region.width
        strips = []
        for y in crop.line_range:
            strip = self._line(y, top, rows_width, cursor).adjust_cell_length(width, pad)
            for line_filter in filters:
                strip = strip.apply_filter(line_filter, background)
            strips.append(strip)
        if crop.column_span != (0, width):
            strips = [strip.crop(crop.x, crop.right) for strip in strips]
        return strips

    def _plain_box(self) -> bool:
        """Nothing of the widget's CSS box changes its lines: what Textual's ``StylesCache``
        adds to ``render_line``'s strips is then the padding to the full width alone."""
        styles = self.styles
        return (
            not any(styles.gutter)
            and not any(edge for edge, _ in styles.outline)
            and not styles.tint.a
            and self.opacity == 1.0
            and styles.text_opacity == 1.0
            and not (styles.has_rule("hatch") and styles.hatch != "none")
        )

    def render_line(self, y: int) -> Strip:
        return self._line(y, self.scroll_offset.y, self.scrollable_content_region.width)

    def _line(self, y: int, top: int, width: int, cursor: int | None = None) -> Strip:
        """Line ``y`` of the list scrolled to ``top`` (``render_lines`` works out the scroll,
        the width and the cursor once for all its lines: each is a walk through Textual's
        reactives and styles)."""
        row = top + y
        uid = self._uid_at(row)
        if uid is None:
            return self._blank(width)
        if uid not in self._rows:
            # One query for the whole visible window, not one per line.
            self._load(self._uids(top, top + self.size.height + 1))
        strip = self._strip(row, row == (self.cursor if cursor is None else cursor), width)
        return strip if strip is not None else self._blank(width)

    def _blank(self, width: int) -> Strip:
        """An empty row, the same strip each time (``render_lines``)."""
        key = (width, self.rich_style)
        if self._blank_row is None or self._blank_row[0] != key:
            self._blank_row = (key, Strip.blank(width, self.rich_style))
        return self._blank_row[1]

    def _strip(self, row: int, is_cursor: bool, width: int) -> Strip | None:
        """Row ``row`` drawn (from the strips already drawn when it has not changed), or None
        when its summary is not loaded."""
        uid = self._uid_at(row)
        summary = self._rows.get(uid) if uid is not None else None
        if uid is None or summary is None:
            return None
        strips_key = (width, int(time.time() // 60))
        if strips_key != self._strips_key:
            self._strips.clear()
            self._strips_key = strips_key
        key = (uid, is_cursor, uid in self.selected)
        cached = self._strips.get(key)
        if cached is None or cached[0] is not summary:  # a re-read row is drawn again
            cached = self._strips[key] = (summary, self._render_row(summary, is_cursor, width))
        return cached[1]

    def _prepare_neighbours(self) -> None:
        """Once a move is on screen, read and draw ahead what the next paging key or g/G
        shows (the pages above and below, the first and the last), so that key only has to
        paint: the summaries are read and the rows drawn while the user looks."""
        self._prepare_pending = False
        count, height = self._row_count, self.size.height
        if not count or height <= 0 or self.account is None:
            return
        width = self.scrollable_content_region.width
        top, step = self.scroll_offset.y, max(1, height - 1)
        pages = [
            (top + step, min(count - 1, self.cursor + step)),  # page down: where the cursor goes
            (max(0, top - step), max(0, self.cursor - step)),
            (0, 0),  # g
            (max(0, count - height), count - 1),  # G
        ]
        for start, cursor in pages:
            rows = range(min(start, count), min(start + height, count))
            if rows and (not self._partial or rows.stop <= len(self._index)):
                # (past the head while the index is read: not worth reading it early)
                self._load(self._uids(rows.start, rows.stop))
                for r in rows:
                    self._strip(r, False, width)
                self._strip(cursor, True, width)

    def _schedule_prepare(self) -> None:
        # Not at once after the frame: Textual writes it to the terminal from a thread of
        # its own, which would wait for the GIL (up to 5 ms) while this draws.
        if not self._prepare_pending:
            self._prepare_pending = True
            self.set_timer(0.05, self._prepare_neighbours)

    def _row_styles(
        self, unread: bool, flagged: bool, is_cursor: bool, selected: bool
    ) -> tuple[Style, Style, Style]:
        """The (text, marker, date) styles of a row in this state, worked out once."""
        key = (unread, flagged, is_cursor, selected)
        styles = self._styles.get(key)
        if styles is None:
            component = self.get_component_rich_style
            style = self.rich_style + component(
                "message-list--unread" if unread else "message-list--read"
            )
            if flagged:
                style += component("message-list--flagged")
            if is_cursor:
                style += component("message-list--cursor")
            marker_style = style + component("message-list--marker")
            if selected:
                style += component("message-list--selected")
                marker_style = style
            date_style = (style + component("message-list--date")) if not unread else style
            styles = self._styles[key] = (style, marker_style, date_style)
        return styles

    def _render_row(self, s: MessageSummary | None, is_cursor: bool, width: int) -> Strip:
        if s is None:
            return Strip.blank(width, self.rich_style)
        unread = SEEN not in s.flags
        selected = s.uid in self.selected
        style, marker_style, date_style = self._row_styles(
            unread, FLAGGED in s.flags, is_cursor, selected
        )
        markers = (
            ("*" if selected else "N" if unread else " ")
            + ("!" if FLAGGED in s.flags else " ")
            + ("r" if ANSWERED in s.flags else " ")
            + structure_mark(s)
        )
        env = s.envelope
        people = env.to if self.show_recipients else env.from_
        who = ", ".join(a.name or a.addr for a in people) if people else ""
        if self.show_recipients:
            who = "To " + who
        date = compact_date(env.date or s.internal_date)
        date_w = 10
        who_w = max(8, min(24, width // 4))
        subject_w = max(0, width - len(markers) - who_w - date_w - 3)
        subject = self._labels.get(s.uid, "") + (clean_line(env.subject) or "(no subject)")
        # One segment for the text between the markers and the date: fewer to crop and join.
        text = f" {_fit(clean_line(who), who_w)} {_fit(subject, subject_w)} "
        segments = [
            Segment(markers, marker_style),
            Segment(text, style),
            Segment(_fit(date, date_w).rjust(date_w), date_style),
        ]
        strip = Strip(segments)
        return strip.adjust_cell_length(width, style)

    # -- cursor ---------------------------------------------------------------------------

    def watch_cursor(self, old: int, new: int) -> None:
        if self._row_count:
            clamped = max(0, min(new, self._row_count - 1))
            if clamped != new:
                self.cursor = clamped
                return
        top = self.scroll_offset.y
        self._follow_cursor()
        if self.scroll_offset.y == top:
            # Only two rows changed: repaint just those (a key costs a few ms, not a screen).
            # Rows of the folder: ScrollView.refresh_line subtracts the scroll itself.
            self.refresh_line(old)
            self.refresh_line(new)
        else:
            self.refresh()
        self._draw_now()  # not two message hops and the screen's timer later
        self._schedule_prepare()
        self.post_message(self.Highlighted(self.current_uid))

    def _follow_cursor(self) -> None:
        region = Region(0, self.cursor, self.size.width, 1)
        self.scroll_to_region(region, animate=False, immediate=True)

    def action_cursor_down(self) -> None:
        self._moved = True
        if self.cursor < self._row_count - 1:
            self.cursor += 1

    def action_cursor_up(self) -> None:
        self._moved = True
        if self.cursor > 0:
            self.cursor -= 1

    def action_first(self) -> None:
        self._moved = True
        self.cursor = 0

    def action_last(self) -> None:
        self._moved = True
        self.cursor = max(0, self._row_count - 1)

    def action_page_down(self) -> None:
        self._moved = True
        step = max(1, self.size.height - 1)
        self.scroll_to(y=self.scroll_offset.y + step, animate=False, immediate=True)
        self.cursor = min(self._row_count - 1, self.cursor + step)

    def action_page_up(self) -> None:
        self._moved = True
        step = max(1, self.size.height - 1)
        self.scroll_to(y=max(0, self.scroll_offset.y - step), animate=False, immediate=True)
        self.cursor = max(0, self.cursor - step)

    def action_open(self) -> None:
        uid = self.current_uid
        if uid is not None:
            self.post_message(self.Opened(uid))

    def on_click(self, event: object) -> None:
        y = getattr(event, "y", None)
        if isinstance(y, int):
            row = self.scroll_offset.y + y
            if 0 <= row < self._row_count:
                self.cursor = row


def label_tags(labels: tuple[str, ...] | None, folder: str | None) -> str:
    """Gmail labels as the list shows them, before the subject: ``[Work] [Travel] ``. The
    system ones (``\\Inbox``, ``\\Important``, ...) and the folder's own are left out:
    Gmail's web list shows only the user's labels, too."""
    shown = [
        clean_line(label)
        for label in labels or ()
        if not label.startswith("\\") and label != folder
    ]
    return "".join(f"[{label}] " for label in shown)
