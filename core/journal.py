"""The action journal: every user action is written here before it is sent to the server,
and removed only when the server has confirmed it. Actions taken offline survive quitting
and are replayed in order on reconnect.

Actions name messages by (folder, UIDVALIDITY, UID), which IMAP never reuses for another
message: a replay can be refused (UIDVALIDITY changed) or find some UIDs gone, but it can
never act on the wrong message.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

import msgspec

from kittiwake.core.cache import Cache

Kind = Literal["flags", "move", "copy", "expunge"]


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

    def describe(self) -> str:
        n = len(self.uids)
        what = f"{n} message{'s' if n != 1 else ''}"
        if self.kind == "flags":
            return f"change flags of {what}"
        if self.kind == "move":
            return f"move {what} to {self.dest}"
        if self.kind == "copy":
            return f"copy {what} to {self.dest}"
        return f"delete {what} for good"


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
