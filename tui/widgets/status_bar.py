"""The mailbox's status line: where the user is, the counts, the connection, the outbox.

It describes the folder a ``MessageList`` shows (and the list's selection), reads the rest
from ``MailApi``, and redraws on the engine events that change what it says, plus once a
second for the countdowns (the next retry, the next POP3 check).
"""

from __future__ import annotations

import math

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

    def on_mount(self) -> None:
        follow(self, *SHOWS)
        self.set_interval(1.0, self.refresh_status)

    def on_engine_event(self, message: EngineEvent) -> None:
        event = message.event
        folder = getattr(event, "folder", None)
        if folder is not None:
            self._counts.pop((event.account, folder), None)
        match event:
            case FolderCountsChanged(folder=folder):
                self._progress.pop(f"{event.account}/{folder}", None)
            case SyncProgress(folder=folder, done=done, total=total):
                self._progress[f"{event.account}/{folder}"] = (done, total)
        self.refresh_status()

    def refresh_status(self) -> None:
        """Redraw the line for the list's account and folder."""
        account, folder = self.messages.account, self.messages.folder
        if account is None:
            return
        api = app_context(self).api
        key = (account, folder or "")
        if key not in self._counts:
            self._counts[key] = api.counts(*key)
        total, unread = self._counts[key]
        state = api.connection(account)
        noun = "message" if total == 1 else "messages"
        parts = [f"{account}", clean_line(folder or ""), f"{total:,} {noun}"]
        if unread:
            parts.append(f"{unread:,} unread")
        if self.messages.limit:
            parts.append(
                f"limit: {clean_line(self.messages.limit)} ({len(self.messages.index):,} shown)"
            )
        if not self.messages.order.is_default:
            parts.append(f"sorted: {self.messages.order.describe()}")
        selected = len(self.messages.selected)
        if selected:
            parts.append(f"{selected:,} selected")
        pending = api.pending_actions(account)
        if pending:
            parts.append(f"{pending} action{'s' if pending != 1 else ''} waiting to be sent")
        conn = _describe_connection(state, api.retry_in(account))
        syncing = [v for k, v in self._progress.items() if k.startswith(account + "/")]
        if syncing and state.state is ConnState.ONLINE:
            done, total_sync = syncing[-1]
            conn = f"syncing {done:,}/{total_sync:,}"
        conn = self._pop3_status(account, state) or conn  # checking for mail
        if api.sign_in_needed(account):
            conn = "sign-in needed: press ctrl+l"
        parts.append(conn)
        outbox = api.outbox_status().describe()  # compose and send
        if outbox:
            parts.append(clean_line(outbox))
        self.update(" · ".join(parts))

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


def _duration(seconds: float) -> str:
    """ "45 s", "4 min": how long until the next POP3 check."""
    if seconds < 60:
        return f"{max(0, round(seconds))} s"
    return f"{math.ceil(seconds / 60)} min"


def _describe_connection(state: ConnectionChanged, retry_in: float | None) -> str:
    if state.state is ConnState.ONLINE:
        return "online"
    if state.state is ConnState.CONNECTING:  # the reason: "waiting for password_command"
        return clean_line(state.reason) if state.reason else "connecting…"
    text = "login failed" if state.state is ConnState.AUTH_FAILED else "offline"
    text += " (ctrl+d: why)"
    if retry_in is not None:  # before the reason, which can be long and is cut first
        text += f", retry in {retry_in:.0f}s"
    return f"{text}: {clean_line(state.reason)}" if state.reason else text
