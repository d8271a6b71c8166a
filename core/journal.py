"""The action journal: every user action is written here before it is sent to the server,
and removed only when the server has confirmed it. Actions taken offline survive quitting
and are replayed in order on reconnect.

Actions name messages by (folder, UIDVALIDITY, UID), which IMAP never reuses for another
message: a replay can be refused (UIDVALIDITY changed) or find some UIDs gone, but it can
never act on the wrong message.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal, Protocol, TypeVar

import msgspec

from kittiwake.core.cache import Cache
from kittiwake.core.errors import KittiwakeError

Kind = Literal["flags", "move", "copy", "expunge", "create", "labels"]


class Action(msgspec.Struct, frozen=True, kw_only=True):
    """One user action on some messages of one folder."""

    kind: Kind
    folder: str
    uidvalidity: int | None
    uids: tuple[int, ...]
    add: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()
    dest: str | None = None
    id: int | None = None
    sent: bool = False
    """A COPY for it went to the server: if the journal still holds it, its reply never came
    (connection cut, app killed), so a replay must look in ``dest`` before copying again."""
    dest_uidnext: int | None = None
    """``dest``'s UIDNEXT just before that COPY: copies it made have UIDs from here on."""

    def describe(self) -> str:
        n = len(self.uids)
        what = f"{n} message{'s' if n != 1 else ''}"
        if self.kind == "flags":
            return f"change flags of {what}"
        if self.kind == "move":
            return f"move {what} to {self.dest}"
        if self.kind == "copy":
            return f"copy {what} to {self.dest}"
        if self.kind == "create":
            return f"create the folder {self.folder}"
        if self.kind == "labels":
            return f"change the labels of {what}"
        return f"delete {what} for good"


class ActionRefused(KittiwakeError):
    """A user action names messages that are no longer what the user saw: nothing was done."""


def as_seen(cache: Cache, action: Action) -> Action:
    """``action`` limited to the messages the user saw that are still there, or
    ``ActionRefused`` when none is. The UI names messages by the folder's UIDVALIDITY when it
    showed them: a folder recreated since holds other messages under the same UIDs, and a
    message deleted on another device must not hand its key press to its neighbour."""
    state = cache.folder_state(action.folder)
    current = state.uidvalidity if state is not None else None
    if current is None or (action.uidvalidity is not None and action.uidvalidity != current):
        raise ActionRefused(
            f"{action.folder} was deleted and recreated on the server since it was shown; "
            "nothing was changed"
        )
    present = cache.flags(action.folder, action.uids)
    uids = tuple(u for u in action.uids if u in present)
    if not uids:
        gone = "This message was" if len(action.uids) == 1 else "These messages were"
        raise ActionRefused(f"{gone} moved or deleted on another device; nothing was changed")
    return msgspec.structs.replace(action, uidvalidity=current, uids=uids)


_ENCODE = msgspec.json.Encoder().encode
_DECODE = msgspec.json.Decoder(Action).decode


@dataclass
class Journal:
    cache: Cache
    _ids: list[int] = field(default_factory=list)

    def add(self, action: Action) -> Action:
        """Persist ``action`` and return it with its id. The cache runs with
        ``synchronous=NORMAL`` (a WAL commit survives the app crashing, not the machine
        losing power); the user's intent gets ``FULL``: this commit is on the disk."""
        db = self.cache.db
        db.execute("PRAGMA synchronous=FULL")
        try:
            cur = db.execute(
                "INSERT INTO journal(created, action) VALUES (?, ?)",
                (time.time(), _ENCODE(action)),
            )
        finally:
            db.execute("PRAGMA synchronous=NORMAL")
        return msgspec.structs.replace(action, id=int(cur.lastrowid or 0))

    def mark_sent(self, action: Action, dest_uidnext: int | None) -> Action:
        """Persist, before a COPY goes out, that it did: a replay then knows the outcome is
        unknown and looks in the destination first (``synchronous=FULL``, as in ``add``)."""
        sent = msgspec.structs.replace(action, sent=True, dest_uidnext=dest_uidnext)
        if action.id is None:
            return sent
        db = self.cache.db
        db.execute("PRAGMA synchronous=FULL")
        try:
            db.execute(
                "UPDATE journal SET action=? WHERE id=?",
                (_ENCODE(msgspec.structs.replace(sent, id=None)), action.id),
            )
        finally:
            db.execute("PRAGMA synchronous=NORMAL")
        return sent

    def pending(self) -> list[Action]:
        rows = self.cache.db.execute("SELECT id, action FROM journal ORDER BY id").fetchall()
        return [msgspec.structs.replace(_DECODE(raw), id=int(ident)) for ident, raw in rows]

    def done(self, action: Action) -> None:
        if action.id is not None:
            self.cache.db.execute("DELETE FROM journal WHERE id=?", (action.id,))

    def cancel(self, action: Action) -> bool:
        """Remove a not-yet-sent action (undo before it reached the server)."""
        if action.id is None:
            return False
        cur = self.cache.db.execute("DELETE FROM journal WHERE id=?", (action.id,))
        return cur.rowcount > 0

    def __len__(self) -> int:
        return int(self.cache.db.execute("SELECT count(*) FROM journal").fetchone()[0])

    def holds(self, action: Action) -> bool:
        """``action`` is still journaled (not sent, or not yet confirmed)."""
        row = self.cache.db.execute("SELECT 1 FROM journal WHERE id=?", (action.id,))
        return row.fetchone() is not None


R = TypeVar("R")


class UndoRecords(dict[int, R]):
    """What each action's undo needs (previous flags, where messages went), by action id.

    A record lives while its action is journaled (sending reads it) and, once sent, only if
    ``MailApi`` keeps it for undo: it forgets an action when its step leaves the undo
    history or is undone. Reads, Sent copies and undo steps are never kept, so the records
    stay bounded however many actions a session takes (they grew by one per action)."""

    def __init__(self, journal: Journal) -> None:
        super().__init__()
        self._journal = journal
        self._kept: set[int] = set()

    def keep(self, action: Action) -> None:
        if action.id is not None:
            self._kept.add(action.id)

    def forget(self, action: Action) -> None:
        if action.id is None:
            return
        self._kept.discard(action.id)
        if not self._journal.holds(action):
            self.pop(action.id, None)

    def sent(self, action: Action) -> None:
        """``action`` left the journal: its record goes unless undo may still ask."""
        if action.id is not None and action.id not in self._kept:
            self.pop(action.id, None)


class Undone(Protocol):
    """What an account remembers of an action it did (``Done`` in imap/ and local/)."""

    action: Action
    previous_flags: dict[int, frozenset[str]]


class UidTrail:
    """Where moved messages came from, so that undo can follow a message moved back where it
    was: it has a new UID there, and earlier flag changes on it (for their own undo) are
    renumbered (flag, delete, undo the delete, undo the flag)."""

    LIMIT = 10_000

    def __init__(self) -> None:
        self._origins: dict[tuple[str, int], tuple[str, int]] = {}

    def moved(
        self,
        source: str,
        dest: str,
        pairs: Iterable[tuple[int, int]],
        records: Iterable[Undone],
    ) -> None:
        """``pairs`` (old UID in ``source``, new UID in ``dest``) were just moved."""
        back: dict[int, int] = {}
        for old, new in pairs:
            origin = self._origins.pop((source, old), None)
            if origin is not None and origin[0] == dest:
                back[origin[1]] = new
            self._origins[(dest, new)] = (source, old)
        if len(self._origins) > self.LIMIT:
            self._origins.clear()  # only recent history matters (undo keeps 50 steps)
        if not back:
            return
        for record in records:
            # Flag changes only: a move's or copy's inverse reads its own UID mapping, which
            # names the UIDs it moved then.
            action = record.action
            if action.kind != "flags" or action.folder != dest:
                continue
            if not back.keys() & set(action.uids):
                continue
            record.action = msgspec.structs.replace(
                action, uids=tuple(back.get(u, u) for u in action.uids)
            )
            record.previous_flags = {back.get(u, u): f for u, f in record.previous_flags.items()}


def flags_inverse(action: Action, previous: dict[int, frozenset[str]]) -> list[Action]:
    """The flag changes that put back what ``action`` changed, given each message's flags
    before it: one action per distinct (add, remove) pair."""
    groups: dict[tuple[tuple[str, ...], tuple[str, ...]], list[int]] = {}
    add, remove = set(action.add), set(action.remove)
    for uid, before in previous.items():
        back_add = tuple(sorted(remove & before))
        back_remove = tuple(sorted(add - before))
        if back_add or back_remove:
            groups.setdefault((back_add, back_remove), []).append(uid)
    return [
        Action(
            kind="flags",
            folder=action.folder,
            uidvalidity=action.uidvalidity,
            uids=tuple(uids),
            add=a,
            remove=r,
        )
        for (a, r), uids in groups.items()
    ]
