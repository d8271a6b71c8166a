"""``t``: the folder as conversations.

Threads are built off the event loop (``MailApi.threads``: JWZ over the folder and the
account's Sent folder, so the user's own replies show in place) and drawn as trees, newest
conversation first, each with its unread and total counts. ``h``/``l`` fold and unfold a
thread, ``v`` all of them; triage keys on a folded thread act on every message in it.
``enter`` opens the conversation; ``t`` or ``escape`` goes back to the message list, on the
message the cursor was on here (and the view opens on the message list's). New mail, and
messages leaving (moved, deleted), rebuild the view (coalesced), keeping the cursor on the
same message; until then a removal just takes its rows away (a conversation with nothing
left goes whole). The title's counts follow every change. ``O`` sorts the conversations
by the folder's sort choice (the same one as its message list, remembered per folder; see
``core/search/order.py``), each conversation keeping its thread order inside.
"""

from __future__ import annotations

from typing import ClassVar

from textual import on, work
from textual.binding import Binding, BindingType

from kittiwake.core.api import Hit
from kittiwake.core.errors import KittiwakeError
from kittiwake.core.events import Event, FolderReset, MessagesExpunged
from kittiwake.core.models import FolderRole
from kittiwake.core.sanitize import clean_line
from kittiwake.core.search.order import ALL_ORDERS, SortOrder
from kittiwake.tui.screens.search_triage import ResultsScreen
from kittiwake.tui.triage import Targets, plural
from kittiwake.tui.widgets.message_list import MessageList
from kittiwake.tui.widgets.thread_list import ThreadList


class ConversationsScreen(ResultsScreen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("t", "back", "Messages", id="threads.messages"),
        Binding("O", "sort", "Sort by…", id="threads.sort", show=False),
    ]

    def __init__(self, account: str, folder: str) -> None:
        super().__init__(account)
        self.folder = folder
        self._rebuild_pending = False

    def on_mount(self) -> None:
        super().on_mount()
        self.set_title(f"Conversations · {clean_line(self.folder)} · threading…")
        self.results().home_folder = self.folder
        self.build()

    @work(exclusive=True, group="threads", exit_on_error=False)
    async def build(self) -> None:
        try:
            threading, names = await self.kw.api.threads(self.account, self.folder)
        except KittiwakeError as exc:
            self.notify(exc.message, severity="error")
            return
        results = self.results()
        first = results.threading is None
        results.show_threads(self.account, threading, names, keep=True)
        if first and (uid := self._mailbox_uid()) is not None:
            results.go_to(Hit(self.folder, uid))
        self._update_title()

    def action_sort(self, code: str | None = None) -> None:
        """Sort the conversations: by ``code`` ("sender-asc"), or as chosen in a picker;
        the folder's message list below follows (one choice per folder)."""
        if code is not None:
            if (order := SortOrder.from_code(code)) is not None:
                below = self._mailbox_list()
                if below is not None:
                    below.set_order(order)  # remembers it too
                else:
                    self.kw.api.set_sort_order(self.account, self.folder, order)
                self.build()
            return
        from kittiwake.tui.screens.pickers import Picker

        now = self.kw.api.sort_order(self.account, self.folder)
        items = [(f"{o.describe()}{'  (now)' if o == now else ''}", o.code) for o in ALL_ORDERS]

        def chosen(picked: str | None) -> None:
            if picked is not None:
                self.action_sort(picked)

        self.app.push_screen(Picker("Sort conversations by…", items), chosen)

    def _relocation_targets(self) -> list[Targets]:
        """A folded conversation is archived, deleted or moved as this folder's part of it:
        the user's own replies stay in Sent (mutt's thread delete acts on one mailbox too).
        An explicit selection is taken as it is."""
        results = self.results()
        aim = self._targets()
        if results.chosen or not results.cursor_folded():
            return aim
        return [t for t in aim if t.folder == self.folder]

    def _mailbox_list(self) -> MessageList | None:
        """The message list under this screen, when it shows this folder."""
        stack = self.app.screen_stack
        if self not in stack or stack.index(self) == 0:
            return None
        below = stack[stack.index(self) - 1]
        for found in below.query(MessageList):
            if type(found) is MessageList and found.folder == self.folder:
                return found
        return None

    def _mailbox_uid(self) -> int | None:
        found = self._mailbox_list()
        return found.current_uid if found is not None else None

    def _update_title(self) -> None:
        threads, unread = self.results().thread_totals()
        parts = [f"Conversations · {clean_line(self.folder)}", plural(threads, "thread")]
        if unread:
            parts.append(f"{unread:,} with unread mail")
        self.set_title(" · ".join(parts))

    def live_event(self, event: Event) -> None:
        results = self.results()
        known = set(results.hits)
        super().live_event(event)
        if isinstance(event, MessagesExpunged) and any(
            Hit(event.folder, uid) in known for uid in event.uids
        ):
            self._schedule_rebuild()  # the tree's shape (connectors, parents) follows
        if isinstance(event, FolderReset):
            self.messages_added(event.folder)  # recreated: its new messages thread anew

    def messages_added(self, folder: str) -> None:
        sent = self.kw.api.role_folder(self.account, FolderRole.SENT)
        if folder in (self.folder, sent):
            self._schedule_rebuild()

    def _schedule_rebuild(self) -> None:
        if not self._rebuild_pending:
            self._rebuild_pending = True
            self.set_timer(0.3, self._rebuild)

    def _rebuild(self) -> None:
        self._rebuild_pending = False
        self.build()

    def after_change(self) -> None:
        self._update_title()

    def action_back(self) -> None:
        """Back to the message list, on the message under the cursor here."""
        if self.results().clear_selection():
            return
        hit = self.results().current_hit
        found = self._mailbox_list()
        if found is not None and hit is not None and hit.folder == self.folder:
            found.go_to_uid(hit.uid)
        self.app.pop_screen()

    @on(ThreadList.OpenedHit)
    def _open(self, event: ThreadList.OpenedHit) -> None:
        from kittiwake.tui.screens.thread_reader import ThreadReaderScreen

        hits = event.thread or [event.hit]
        self.app.push_screen(ThreadReaderScreen(self.account, hits, event.hit, self.results()))
