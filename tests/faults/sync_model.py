"""A model of the server for the model-based test of sync (issue 17, item 5).

The state machine in ``sync_machine.py`` plays random user actions through the engine, remote
changes through a plain IMAP connection, faults and restarts; this module holds what it
checks them against: each folder's UIDVALIDITY, UIDNEXT and messages (UID -> Message-ID and
flags), changed exactly as the server changes, with Kittiwake's rules for the races:

- an action names its messages by (folder, UIDVALIDITY, UID), as the user saw them; when it
  reaches the server, it applies to those of them still there under that UIDVALIDITY, and to
  nothing else (a message expunged or moved by another client takes the action with it);
- an action taken offline reaches the server after every remote change made meanwhile;
- undo inverts what the server did (flags as the cache showed them before, the UIDs a move
  or copy got there), follows a message moved straight back (``UidTrail``), and cannot bring
  back a message deleted for good or undo a move whose answer was lost.

Every message the test appends has a Message-ID of its own, so "applied twice" (a second
copy) and "applied to the wrong message" (flags on a neighbour) both show as a difference.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["flags", "move", "copy", "expunge"]

IGNORED_FLAGS = frozenset({"\\Recent"})


@dataclass
class Msg:
    msgid: str
    flags: frozenset[str] = frozenset()


@dataclass
class Folder:
    uidvalidity: int
    uidnext: int = 1
    msgs: dict[int, Msg] = field(default_factory=dict)

    def add(self, msg: Msg) -> int:
        uid = self.uidnext
        self.msgs[uid] = msg
        self.uidnext += 1
        return uid

    def view(self) -> tuple[int, dict[int, tuple[str, frozenset[str]]]]:
        return self.uidvalidity, {u: (m.msgid, m.flags) for u, m in sorted(self.msgs.items())}


@dataclass
class Act:
    """One journaled action as the model knows it (mirrors ``core.journal.Action``)."""

    kind: Kind
    folder: str
    uidvalidity: int | None
    uids: tuple[int, ...]
    add: frozenset[str] = frozenset()
    remove: frozenset[str] = frozenset()
    dest: str | None = None
    previous: dict[int, frozenset[str]] = field(default_factory=dict)
    """flags: each message's flags in the cache when the user acted (what undo restores)."""
    mapping: dict[int, int] | None = None
    """move/copy: source UID -> destination UID, once the engine learnt it."""
    dest_uidvalidity: int | None = None
    sent: bool = False


@dataclass
class Counts:
    """Figures of a run (summed over examples by the machine)."""

    examples: int = 0
    steps: int = 0
    actions: int = 0
    remote: int = 0
    faults: int = 0
    restarts: int = 0
    offline_phases: int = 0
    checks: int = 0
    dropped: int = 0
    """Actions (or parts) that found their messages gone and were rightly not applied."""
    undos: int = 0
    uidvalidity_changes: int = 0


class ServerModel:
    """What the server must hold."""

    def __init__(self, folders: dict[str, int]) -> None:
        self.folders = {name: Folder(uv) for name, uv in folders.items()}
        #: Where the engine's own moves put messages: (dest, new UID) -> (source, old UID),
        #: as ``core.journal.UidTrail`` keeps it (one engine's lifetime).
        self.trail: dict[tuple[str, int], tuple[str, int]] = {}

    def view(self) -> dict[str, tuple[int, dict[int, tuple[str, frozenset[str]]]]]:
        return {name: f.view() for name, f in sorted(self.folders.items())}

    # -- remote changes (another client, applied at once) -----------------------------------

    def append(self, folder: str, msgid: str, flags: frozenset[str] = frozenset()) -> int:
        return self.folders[folder].add(Msg(msgid, flags))

    def set_flags(self, folder: str, uid: int, add: frozenset[str], remove: frozenset[str]) -> None:
        msg = self.folders[folder].msgs[uid]
        msg.flags = (msg.flags | add) - remove

    def expunge(self, folder: str, uid: int) -> None:
        del self.folders[folder].msgs[uid]

    def remote_move(self, folder: str, uid: int, dest: str) -> int:
        msg = self.folders[folder].msgs.pop(uid)
        return self.folders[dest].add(msg)

    def new_uidvalidity(self, folder: str, value: int) -> None:
        self.folders[folder].uidvalidity = value

    # -- the engine's actions, when they reach the server ------------------------------------

    def apply(self, act: Act, *, answer_lost: bool = False) -> int:
        """Apply ``act`` as the server does when the engine sends it; returns how many of its
        messages were gone (dropped). ``answer_lost``: the server did it but its answer never
        came (the engine then does not learn a move's new UIDs)."""
        folder = self.folders[act.folder]
        act.sent = True
        if act.uidvalidity != folder.uidvalidity:
            return len(act.uids)
        present = [u for u in sorted(act.uids) if u in folder.msgs]
        dropped = len(act.uids) - len(present)
        if act.kind == "flags":
            for uid in present:
                msg = folder.msgs[uid]
                msg.flags = (msg.flags | act.add) - act.remove
        elif act.kind == "expunge":
            for uid in present:
                del folder.msgs[uid]
        else:
            assert act.dest is not None
            dest = self.folders[act.dest]
            mapping = {}
            for uid in present:
                msg = folder.msgs[uid]
                if act.kind == "move":
                    del folder.msgs[uid]
                    mapping[uid] = dest.add(msg)
                else:
                    mapping[uid] = dest.add(Msg(msg.msgid, msg.flags))
            if present and not (answer_lost and act.kind == "move"):
                act.mapping = mapping
                act.dest_uidvalidity = dest.uidvalidity
        return dropped

    def moved_by_engine(self, act: Act, followers: list[Act]) -> None:
        """``UidTrail.moved``: a message moved straight back where it came from takes the flag
        changes waiting for it (or kept for undo) to its new UID."""
        if act.kind != "move" or act.mapping is None:
            return
        assert act.dest is not None
        back: dict[int, int] = {}
        for old, new in act.mapping.items():
            origin = self.trail.pop((act.folder, old), None)
            if origin is not None and origin[0] == act.dest:
                back[origin[1]] = new
            self.trail[(act.dest, new)] = (act.folder, old)
        if not back:
            return
        for other in followers:
            if other.kind != "flags" or other.folder != act.dest:
                continue
            if not back.keys() & set(other.uids):
                continue
            other.uids = tuple(back.get(u, u) for u in other.uids)
            other.previous = {back.get(u, u): f for u, f in other.previous.items()}

    def inverse(self, act: Act) -> list[Act]:
        """What undo submits for ``act`` once sent (``Triage.inverse``); [] when refused."""
        if act.kind == "expunge":
            return []
        if act.kind == "flags":
            groups: dict[tuple[frozenset[str], frozenset[str]], list[int]] = {}
            for uid, before in act.previous.items():
                back_add = act.remove & before
                back_remove = act.add - before
                if back_add or back_remove:
                    groups.setdefault((back_add, back_remove), []).append(uid)
            return [
                Act("flags", act.folder, act.uidvalidity, tuple(uids), add=a, remove=r)
                for (a, r), uids in groups.items()
            ]
        if act.mapping is None:
            return []
        assert act.dest is not None
        new_uids = tuple(dst for src, dst in act.mapping.items() if src in set(act.uids))
        if act.kind == "copy":
            return [Act("expunge", act.dest, act.dest_uidvalidity, new_uids)]
        return [Act("move", act.dest, act.dest_uidvalidity, new_uids, dest=act.folder)]
