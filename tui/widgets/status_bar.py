"""The mailbox's status line: where the user is, the counts, the connection, the outbox.

It describes the folder a ``MessageList`` shows (and the list's selection), reads the rest
from ``MailApi``, and redraws on the engine events that change what it says, plus once a
second for the countdowns (the next retry, the next POP3 check).
"""

from __future__ import annotations

import math
import time

from rich.cells import cell_len, set_cell_size

from kittiwake.core.events import (
    CacheRefreshed,
    ConnectionChanged,
    ConnState,
    DeliveryUncertain,
    FlagsChanged,
    FolderCountsChanged,
    FolderReset,
    MessagesAdded,
    MessageSent,
    MessagesExpunged,
    OutboxChanged,
    SendFailed,
    SyncError,
    SyncProgress,
)
from kittiwake.core.sanitize import clean_line
from kittiwake.tui.context import app_context
from kittiwake.tui.events import EngineEvent, follow
from kittiwake.tui.widgets.message_list import MessageList
from kittiwake.tui.widgets.plain import PlainBar

#: What changes the line: the connection, a sync's progress, a folder's counts (and the
#: journal's length, which shrinks as actions are sent or refused), the outbox.
SHOWS = (
    ConnectionChanged,
    SyncProgress,
    SyncError,
    FolderCountsChanged,
    MessagesAdded,
    FlagsChanged,
    MessagesExpunged,
    FolderReset,
    CacheRefreshed,
    OutboxChanged,
    MessageSent,
    SendFailed,
    DeliveryUncertain,
)

#: A folder is counted again at most this often while a sync adds batches to it: a count
#: reads every row's index entry (~50 ms at 1,000,000 messages), and a first sync of that many
#: sends a thousand events; recounting on each made it quadratic.
RECOUNT_EVERY = 1.0


class StatusBar(PlainBar):
    DEFAULT_CSS = """
    StatusBar {
        height: 1;
        background: $panel;
        color: $foreground;
        padding: 0 1;
    }
    """

    def __init__(self, messages: MessageList, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.messages = messages
        self._progress: dict[str, tuple[int, int]] = {}
        self._counts: dict[tuple[str, str], tuple[int, int]] = {}
        """(total, unread) per folder, read once per change: the line redraws every second."""
        self._counted: dict[tuple[str, str], float] = {}
        self._stale: dict[tuple[str, str], float] = {}
        """Folders mail was added to since they were counted, and since when: recounted by
        ``refresh_status`` a second later unless the engine's count (``FolderCountsChanged``)
        came first. A sync adding batches is counted at most once a second; new mail from
        another device is counted by the engine right after (at 100,000 messages a count is
        ~10 ms of CPU, and two of them, the engine's then this one's, delayed a next change)."""
        self._shown: str | None = None

    def on_mount(self) -> None:
        follow(self, *SHOWS)
        self.set_interval(1.0, self.refresh_status)

    def on_resize(self) -> None:
        self.refresh_status()  # what fits has changed

    def on_engine_event(self, message: EngineEvent) -> None:
        event = message.event
        folder = getattr(event, "folder", None)
        if folder is not None:
            key = (event.account, folder)
            if isinstance(event, FolderCountsChanged):  # the engine has just counted
                self._counts[key] = (event.total, event.unread)
                self._counted[key] = time.monotonic()
                self._stale.pop(key, None)
            elif isinstance(event, SyncProgress | MessagesAdded):
                self._stale.setdefault(key, time.monotonic())
            else:
                self._counts.pop(key, None)
        match event:
            case FolderCountsChanged(folder=folder):
                self._progress.pop(f"{event.account}/{folder}", None)
            case SyncProgress(folder=folder, done=done, total=total):
                self._progress[f"{event.account}/{folder}"] = (done, total)
            case MessagesAdded() | FlagsChanged() | MessagesExpunged():
                # After the list has shown the change: the counts are a query over the
                # whole folder (milliseconds at 100,000), the list's frame goes first.
                self.call_after_refresh(self.refresh_status)
                return
        self.refresh_status()

    def refresh_status(self) -> None:
        """Redraw the line for the list's account and folder."""
        account, folder = self.messages.account, self.messages.folder
        if account is None:
            return
        api = app_context(self).api
        key = (account, folder or "")
        if key in self._stale and time.monotonic() - self._stale[key] >= RECOUNT_EVERY:
            del self._stale[key]
            self._counts.pop(key, None)
        if key not in self._counts:
            self._counts[key] = api.counts(*key)
            self._counted[key] = time.monotonic()
            self._stale.pop(key, None)
        total, unread = self._counts[key]
        if not self.messages.limit:  # a recount waits up to a second during a sync: never
            total = max(total, self.messages.row_count)  # say fewer than the list shows
        state = api.connection(account)
        noun = "message" if total == 1 else "messages"
        # (text, shorter text, how long it stays when the line is short: highest last to go)
        parts: list[tuple[str, str, int]] = [
            (account, account, 10),
            (clean_line(folder or ""),) * 2 + (100,),
            (f"{total:,} {noun}", f"{total:,} msgs", 40),
        ]
        if unread:
            parts.append((f"{unread:,} unread", f"{unread:,} unread", 30))
        if self.messages.limit:
            query = clean_line(self.messages.limit)
            shown = f"{self.messages.row_count:,}"
            parts.append((f"limit: {query} ({shown} shown)", f"limit: {_cut(query)} ({shown})", 80))
        order = self.messages.order
        if not order.is_default:
            parts.append((f"sorted: {order.describe()}", f"sort: {order.brief()}", 70))
        selected = len(self.messages.selected)
        if selected:
            parts.append((f"{selected:,} selected",) * 2 + (90,))
        pending = api.pending_actions(account)
        if pending:
            waiting = f"{pending} action{'s' if pending != 1 else ''} waiting to be sent"
            parts.append((waiting, f"{pending} waiting", 60))
        retry_in = api.retry_in(account)
        conn, conn_short = (
            _describe_connection(state, retry_in),
            _describe_connection(state, retry_in, brief=True),
        )
        syncing = [v for k, v in self._progress.items() if k.startswith(account + "/")]
        if syncing and state.state is ConnState.ONLINE:
            done, total_sync = syncing[-1]
            conn = conn_short = f"syncing {done:,}/{total_sync:,}"
        checking = self._pop3_status(account, state)  # POP3: the next check, or this one
        if checking:
            conn = conn_short = checking
        if api.sign_in_needed(account):
            conn = conn_short = "sign-in needed: press ctrl+l"
        # Online is the usual state, said only when there is room; a sync's progress passes;
        # anything else (offline, sign-in needed) matters most.
        ordinary = state.state is ConnState.ONLINE and not api.sign_in_needed(account)
        parts.append((conn, conn_short, 20 if conn == "online" else 50 if ordinary else 95))
        outbox = api.outbox_status().describe()  # compose and send
        if outbox:
            outbox = clean_line(outbox)
            parts.append((outbox, outbox.split(":", 1)[0], 65))
        line = fit(parts, self.content_size.width)
        if line != self._shown:  # it is asked on every cursor move: most leave it as it was
            self._shown = line
            # One row high whatever it says: no layout pass (which repaints the whole screen).
            self.update(line, layout=False)

    def _pop3_status(self, account: str, state: ConnectionChanged) -> str | None:
        """POP3 has no push: say when the next check is, or how the running one goes."""
        api = app_context(self).api
        next_in = api.next_check_in(account)
        if state.state is ConnState.ONLINE and next_in is not None:
            return f"next check in {_duration(next_in)}"
        pop3 = any(a.key == account and a.kind == "pop3" for a in api.accounts())
        if state.state is ConnState.CONNECTING and pop3:
            done, total = self._progress.get(f"{account}/INBOX", (0, 0))
            return f"downloading {done:,}/{total:,}" if total else "checking for mail…"
        return None


SEPARATOR = " · "


def fit(parts: list[tuple[str, str, int]], width: int) -> str:
    """The parts (text, shorter text, priority) joined into a line of at most ``width``
    cells when it can be: the shorter texts first, lowest priority first, then parts left
    out, lowest first; then, highest first, each part back as long as it fits. The last
    part is given whole when its shorter text only leaves out its end (an offline reason):
    the bar cuts it with "…". At 80 columns a limit and a sort order must show, not be cut
    off at the end."""
    chosen = [text for text, _, _ in parts]

    def length() -> int:
        shown = [c for c in chosen if c]
        return sum(cell_len(c) for c in shown) + cell_len(SEPARATOR) * (len(shown) - 1)

    by_priority = sorted(range(len(parts)), key=lambda i: parts[i][2])
    for step in ("shorten", "leave out"):
        for i in by_priority[:-1] if step == "leave out" else by_priority:
            if width <= 0 or length() <= width:
                break
            chosen[i] = parts[i][1] if step == "shorten" else ""
    for i in reversed(by_priority):
        before = chosen[i]
        for candidate in parts[i][:2]:
            if candidate == before:
                break
            chosen[i] = candidate
            if length() <= width:
                break
            chosen[i] = before
    shown = [i for i, c in enumerate(chosen) if c]
    if shown and parts[shown[-1]][0].startswith(chosen[shown[-1]]):
        chosen[shown[-1]] = parts[shown[-1]][0]  # the end of the line: cut, not shortened
    return SEPARATOR.join(c for c in chosen if c)


def _cut(text: str, cells: int = 24) -> str:
    """``text`` in at most ``cells`` cells, "…" where it was cut."""
    return text if cell_len(text) <= cells else set_cell_size(text, cells - 1) + "…"


def _duration(seconds: float) -> str:
    """ "45 s", "4 min": how long until the next POP3 check."""
    if seconds < 60:
        return f"{max(0, round(seconds))} s"
    return f"{math.ceil(seconds / 60)} min"


def _describe_connection(
    state: ConnectionChanged, retry_in: float | None, *, brief: bool = False
) -> str:
    """``brief``: without the reason, which can be long (ctrl+d tells it)."""
    if state.state is ConnState.ONLINE:
        return "online"
    if state.state is ConnState.CONNECTING:  # the reason: "waiting for password_command"
        if state.reason:
            return _cut(clean_line(state.reason), 40) if brief else clean_line(state.reason)
        return "connecting…"
    text = "login failed" if state.state is ConnState.AUTH_FAILED else "offline"
    text += " (ctrl+d: why)"
    if retry_in is not None:  # before the reason, which can be long and is cut first
        text += f", retry in {retry_in:.0f}s"
    return f"{text}: {clean_line(state.reason)}" if state.reason and not brief else text
