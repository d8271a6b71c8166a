"""User actions on a local (Maildir) account: journaled, shown at once, applied to the files.

As on IMAP (``core/imap/triage.py``), ``submit`` writes the action to the journal first, then
changes the cache at once with the events a change would publish, so the screen follows
without waiting. ``flush`` (run by the account, one action at a time, under its lock) then
applies journaled actions to the Maildir: a rename for flags, a rename into another folder
for a move, a new file for a copy, an unlink for a delete for good. Only then is the action
removed from the journal, so a crash in between replays it on the next start; every step is
idempotent (a file already moved is found at its destination by its key).

A move's UIDs in the destination are given at submit time, so undo can name the messages
there at once. A failure (or a replay after a restart, when those UIDs are not known) marks
the folders for a rescan, which brings the cache back to what the files say.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec

from kittiwake.core.cache import Cache
from kittiwake.core.errors import KittiwakeError
from kittiwake.core.events import (
    EventBus,
    FlagsChanged,
    FolderCountsChanged,
    MessagesAdded,
    MessagesExpunged,
    SyncError,
)
from kittiwake.core.journal import Action, Journal, UidTrail, UndoRecords, flags_inverse
from kittiwake.core.local.index import FileIndex
from kittiwake.core.maildir import Maildir, MaildirError
from kittiwake.core.models import MessageSummary
from kittiwake.core.sqltx import transaction

log = logging.getLogger(__name__)

__all__ = ["Done", "LocalTriage"]


@dataclass
class Done:
    """What an action did: enough to build its inverse."""

    action: Action
    previous_flags: dict[int, frozenset[str]] = field(default_factory=dict)
    dest_uids: dict[int, int] = field(default_factory=dict)
    """Source UID -> UID in the destination (move, copy)."""
    snapshot: list[MessageSummary] = field(default_factory=list)


@dataclass
class _Outcome:
    """What the file work of one action achieved (computed in a worker thread)."""

    moved: list[tuple[int, str, str]] = field(default_factory=list)
    """(source UID, key in the source, key in the destination)."""
    gone: int = 0
    error: KittiwakeError | None = None


class LocalTriage:
    def __init__(
        self,
        account: str,
        cache: Cache,
        bus: EventBus,
        files: FileIndex,
        mark_dirty: Callable[[str], None],
        wake: Callable[[], None],
    ) -> None:
        self.account = account
        self.cache = cache
        self.bus = bus
        self.files = files
        self.journal = Journal(cache)
        self._mark_dirty = mark_dirty
        self._wake = wake
        self.done: UndoRecords[Done] = UndoRecords(self.journal)
        self._running: int | None = None
        self._trail = UidTrail()

    # -- submitting -----------------------------------------------------------------------

    def submit(self, action: Action) -> Action:
        """Persist, show in the cache at once, and have the files follow. Returns it with
        its id."""
        if action.uidvalidity is None:
            state = self.cache.folder_state(action.folder)
            action = msgspec.structs.replace(
                action, uidvalidity=state.uidvalidity if state else None
            )
        action = self.journal.add(action)
        assert action.id is not None
        before = self.cache.summaries(action.folder, list(action.uids))
        flags = {u: s.flags for u, s in before.items()}
        record = Done(action, flags, snapshot=list(before.values()))
        if action.kind in ("move", "copy") and action.dest is not None:
            present = sorted(before)
            fresh = self.files.allocate(action.dest, len(present))
            record.dest_uids = dict(zip(present, fresh, strict=True))
            if action.kind == "move":
                self._trail.moved(
                    action.folder, action.dest, record.dest_uids.items(), self.done.values()
                )
        self.done[action.id] = record
        self._apply_to_cache(record)
        self._wake()
        return action

    def _apply_to_cache(self, record: Done) -> None:
        action = record.action
        touched = {action.folder}
        if action.kind == "flags":
            add, remove = frozenset(action.add), frozenset(action.remove)
            changed = self.cache.set_flags(
                action.folder, {u: (f | add) - remove for u, f in record.previous_flags.items()}
            )
            if changed:
                self.bus.publish(FlagsChanged(self.account, action.folder, changed))
        if action.kind in ("move", "copy") and action.dest is not None:
            self.cache.carry_body_words(action.folder, action.dest, record.dest_uids)
        if action.kind in ("move", "expunge"):
            removed = self.cache.remove(action.folder, action.uids)
            if removed:
                self.bus.publish(MessagesExpunged(self.account, action.folder, tuple(removed)))
        if action.kind in ("move", "copy") and action.dest is not None:
            copies = [
                dataclasses.replace(s, uid=record.dest_uids[s.uid])
                for s in record.snapshot
                if s.uid in record.dest_uids
            ]
            if copies:
                self.cache.put_summaries(action.dest, copies)
                self.bus.publish(MessagesAdded(self.account, action.dest, tuple(copies)))
            touched.add(action.dest)
        self._publish_counts(touched)

    def _publish_counts(self, folders: set[str]) -> None:
        for folder in sorted(folders):
            total, unread = self.cache.counts(folder)
            self.bus.publish(FolderCountsChanged(self.account, folder, total, unread))

    def cancel_pending(self, action: Action) -> bool:
        """Undo an action whose files have not been touched yet: drop it, restore the cache."""
        if action.id is None or action.id == self._running:
            return False
        if not self.journal.cancel(action):
            return False
        record = self.done.pop(action.id, None)
        if record is None:
            self._mark_dirty(action.folder)
            return True
        touched = {action.folder}
        if action.kind == "flags":
            restored = self.cache.set_flags(action.folder, record.previous_flags)
            if restored:
                self.bus.publish(FlagsChanged(self.account, action.folder, restored))
        if action.kind in ("move", "expunge") and record.snapshot:
            self.cache.put_summaries(action.folder, record.snapshot)
            self.bus.publish(MessagesAdded(self.account, action.folder, tuple(record.snapshot)))
        if action.kind in ("move", "copy") and action.dest is not None:
            removed = self.cache.remove(action.dest, record.dest_uids.values())
            if removed:
                self.bus.publish(MessagesExpunged(self.account, action.dest, tuple(removed)))
            touched.add(action.dest)
        self._publish_counts(touched)
        return True

    def has_pending(self) -> bool:
        return len(self.journal) > 0

    # -- applying to the files ------------------------------------------------------------

    async def flush(self, maildir: Maildir) -> None:
        """Apply every journaled action to the files, in order (the caller holds the
        account's lock). An action cancelled meanwhile is skipped."""
        while True:
            pending = self.journal.pending()
            if not pending:
                return
            action = pending[0]
            self._running = action.id
            try:
                await self._execute(maildir, action)
            except Exception:  # a bug, not the disk: never block the queue behind it
                log.exception("%s: %s failed", self.account, action.describe())
                self._tell(f"Could not {action.describe()}; see the log", action)
                self._mark_dirty(action.folder)
            finally:
                # Cancelled (the app is quitting): stays journaled and is replayed.
                self._running = None
            self.journal.done(action)
            self.done.sent(action)

    async def _execute(self, maildir: Maildir, action: Action) -> None:
        record = self.done.get(action.id or -1)
        state = self.cache.folder_state(action.folder)
        if state is None or state.uidvalidity != action.uidvalidity:
            self._tell(f"{action.folder} was recreated; did not {action.describe()}", action)
            self._mark_dirty(action.folder)
            return
        keys = self.files.keys_of(action.folder, action.uids)
        outcome = await asyncio.to_thread(_apply_to_files, maildir, action, keys)
        outcome.gone += len(action.uids) - len(keys)
        self._record(action, record, outcome)
        if outcome.error is not None:
            log.warning("%s: %s failed: %s", self.account, action.describe(), outcome.error)
            self._tell(f"Could not {action.describe()}: {outcome.error.message}", action)
        elif outcome.gone:
            self._tell(
                f"{outcome.gone} of {len(action.uids)} messages were changed by another "
                f"program; did the rest ({action.describe()})",
                action,
            )
        if record is None or outcome.error is not None or outcome.gone:
            # Replayed after a restart, or not all done: the files have the last word.
            self._mark_dirty(action.folder)
            if action.dest is not None:
                self._mark_dirty(action.dest)

    def _record(self, action: Action, record: Done | None, outcome: _Outcome) -> None:
        """Bring the key -> UID mapping in step with what the files now are."""
        if action.kind == "flags" or not outcome.moved:
            return
        with transaction(self.files.db):
            if action.kind in ("move", "expunge"):
                self.files.forget(action.folder, [src_key for _, src_key, _ in outcome.moved])
            if action.kind in ("move", "copy") and action.dest is not None:
                planned = record.dest_uids if record is not None else {}
                missing = [uid for uid, _, _ in outcome.moved if uid not in planned]
                given = self.files.allocate(action.dest, len(missing))
                fresh = dict(zip(missing, given, strict=True))
                self.files.add(
                    action.dest,
                    [(key, planned.get(uid) or fresh[uid]) for uid, _, key in outcome.moved],
                )

    def _tell(self, message: str, action: Action) -> None:
        self.bus.publish(SyncError(self.account, message, action.folder))

    # -- undo -----------------------------------------------------------------------------

    def keep(self, action: Action) -> None:
        """Undo may ask about ``action`` once it is done (see ``UndoRecords``)."""
        self.done.keep(action)

    def forget(self, action: Action) -> None:
        """Undo will not ask about ``action`` any more."""
        self.done.forget(action)

    def inverse(self, action: Action) -> list[Action] | str:
        """The actions that undo ``action``, or why it cannot be undone."""
        if action.kind == "expunge":
            return "Messages deleted for good cannot be brought back"
        record = self.done.get(action.id or -1)
        if record is None:
            return "Nothing is known about that action any more"
        action = record.action  # renumbered if its messages were moved back meanwhile
        if action.kind == "flags":
            return flags_inverse(action, record.previous_flags)
        assert action.dest is not None
        new_uids = tuple(record.dest_uids[u] for u in sorted(record.dest_uids))
        if not new_uids:
            return f"No message reached {action.dest}"
        dest_state = self.cache.folder_state(action.dest)
        validity = dest_state.uidvalidity if dest_state else None
        if action.kind == "copy":
            return [Action(kind="expunge", folder=action.dest, uidvalidity=validity, uids=new_uids)]
        return [
            Action(
                kind="move",
                folder=action.dest,
                uidvalidity=validity,
                uids=new_uids,
                dest=action.folder,
            )
        ]


def _apply_to_files(maildir: Maildir, action: Action, keys: dict[int, str]) -> _Outcome:
    """The file work of one action (blocking: runs in a worker thread). Stops at the first
    error, reporting what was done before it."""
    out = _Outcome()
    add, remove = frozenset(action.add), frozenset(action.remove)
    for uid in sorted(keys):
        key = keys[uid]
        try:
            msg = maildir.find(action.folder, key)
            if action.kind == "flags":
                if msg is None:
                    out.gone += 1
                else:
                    maildir.set_flags(action.folder, key, (msg.flags | add) - remove)
            elif action.kind == "expunge":
                if msg is not None:
                    maildir.delete(action.folder, key)
                out.moved.append((uid, key, key))
            elif action.kind == "move":
                assert action.dest is not None
                if msg is not None:
                    maildir.move(action.folder, key, action.dest)
                elif maildir.find(action.dest, key) is None:  # not already moved
                    out.gone += 1
                    continue
                out.moved.append((uid, key, key))
            elif action.kind == "copy":
                assert action.dest is not None
                if msg is None:
                    out.gone += 1
                    continue
                copy = maildir.copy(action.folder, key, action.dest)
                out.moved.append((uid, key, copy.key))
        except MaildirError as exc:
            out.error = exc
            break
        except (OSError, ValueError) as exc:
            out.error = MaildirError(f"{maildir.root}: {exc}")
            break
    return out
