"""User actions on an IMAP account: optimistic on screen, journaled, replayed, undoable.

``submit`` writes the action to the journal, applies it to the cache at once (publishing the
same events a server change would), and wakes the account, which sends it the next time it
holds the command connection (at once when online; on reconnect otherwise). The server's
refusal rolls the cache back and says why in one sentence; messages another device already
moved or deleted are left out, and the user is told.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

import msgspec

from kittiwake.core import gmailids
from kittiwake.core.cache import Cache
from kittiwake.core.errors import CommandFailed
from kittiwake.core.events import (
    EventBus,
    FlagsChanged,
    MessagesAdded,
    MessagesExpunged,
    SyncError,
)
from kittiwake.core.imap.codes import passing
from kittiwake.core.imap.uidset import UidSet
from kittiwake.core.journal import Action, Journal, UidTrail, UndoRecords, flags_inverse
from kittiwake.core.models import DELETED, MessageSummary

# The protocol is loaded when an action is first sent, not with the account (see
# ``account.py``): a warm start draws the list without it.
if TYPE_CHECKING:
    from kittiwake.core.imap.client import ImapClient
    from kittiwake.core.imap.parser import CopyUid

log = logging.getLogger(__name__)


@dataclass
class Done:
    """What the server did for an action: enough to build its inverse."""

    action: Action
    previous_flags: dict[int, frozenset[str]] = field(default_factory=dict)
    copyuid: CopyUid | None = None
    sent: bool = False


class Triage:
    def __init__(
        self,
        account: str,
        cache: Cache,
        bus: EventBus,
        mark_dirty: Callable[[str], None],
        wake: Callable[[], None],
        recreated: Callable[[str], None],
        mark_list: Callable[[], None] = lambda: None,
    ) -> None:
        self.account = account
        self.cache = cache
        self.bus = bus
        self.journal = Journal(cache)
        self._mark_dirty = mark_dirty
        self._wake = wake
        self._recreated = recreated
        self._mark_list = mark_list
        self._snapshots: dict[int, list[MessageSummary]] = {}
        self.done: UndoRecords[Done] = UndoRecords(self.journal)
        self._trail = UidTrail()

    # -- submitting -----------------------------------------------------------------------

    def submit(self, action: Action) -> Action:
        """Persist, apply to the cache, and schedule for the server. Returns it with its id."""
        if action.uidvalidity is None:
            state = self.cache.folder_state(action.folder)
            action = msgspec.structs.replace(
                action, uidvalidity=state.uidvalidity if state else None
            )
        action = self.journal.add(action)
        assert action.id is not None
        before = self.cache.summaries(action.folder, list(action.uids))
        self._snapshots[action.id] = list(before.values())
        self.done[action.id] = Done(action, {u: s.flags for u, s in before.items()})
        self._apply_locally(action)
        self._wake()
        return action

    def _apply_locally(self, action: Action) -> None:
        if action.kind == "flags":
            current = self.cache.flags(action.folder, action.uids)
            add, remove = frozenset(action.add), frozenset(action.remove)
            changed = self.cache.set_flags(
                action.folder, {u: (f | add) - remove for u, f in current.items()}
            )
            if changed:
                self.bus.publish(FlagsChanged(self.account, action.folder, changed))
        elif action.kind in ("move", "expunge"):
            removed = self.cache.remove(action.folder, action.uids)
            if removed:
                self.bus.publish(MessagesExpunged(self.account, action.folder, tuple(removed)))
        elif action.kind == "labels":
            self._relabel(action.folder, action.uids, action.add, action.remove)

    def _relabel(
        self, folder: str, uids: Iterable[int], add: Sequence[str], remove: Sequence[str]
    ) -> None:
        """Gmail labels, shown changed at once (``core/gmailids.py``); the list redraws on
        the FlagsChanged (the flags themselves are as they were)."""
        db = self.cache.db
        gone = {x.lower() for x in remove}
        for uid in uids:
            before = gmailids.labels_of(db, folder, uid) or ()
            kept = [x for x in before if x.lower() not in gone]
            kept += [x for x in add if x.lower() not in {k.lower() for k in kept}]
            gmailids.set_labels(db, folder, uid, kept)
        current = self.cache.flags(folder, uids)
        if current:
            self.bus.publish(FlagsChanged(self.account, folder, current))

    def _rollback(self, action: Action) -> None:
        snapshot = self._snapshots.pop(action.id or -1, [])
        if not snapshot:
            self._mark_dirty(action.folder)  # no snapshot (e.g. after a restart): resync
            return
        if action.kind == "labels":
            self._relabel(action.folder, action.uids, action.remove, action.add)
        elif action.kind == "flags":
            restored = self.cache.set_flags(action.folder, {s.uid: s.flags for s in snapshot})
            if restored:
                self.bus.publish(FlagsChanged(self.account, action.folder, restored))
        elif action.kind in ("move", "expunge"):
            self.cache.put_summaries(action.folder, snapshot)
            self.bus.publish(MessagesAdded(self.account, action.folder, tuple(snapshot)))

    def cancel_pending(self, action: Action) -> bool:
        """Undo an action the server has not seen yet: drop it and restore the cache."""
        if self.journal.cancel(action):
            self._rollback(action)
            self.done.pop(action.id or -1, None)
            return True
        return False

    # -- sending --------------------------------------------------------------------------

    def has_pending(self) -> bool:
        return len(self.journal) > 0

    async def flush(self, client: ImapClient) -> None:
        """Send every journaled action in order. Connection loss propagates and leaves the
        rest in the journal, and so does a refusal for the server's passing state (its
        bandwidth limit, ``[UNAVAILABLE]``); another refusal rolls that action back and goes
        on. Actions refused because their folder was recreated are told in one sentence per
        folder."""
        recreated: dict[str, list[str]] = {}
        try:
            await self._flush(client, recreated)
        finally:
            for folder, undone in recreated.items():
                self.bus.publish(
                    SyncError(
                        self.account,
                        f"{folder} was deleted and recreated on the server; "
                        f"did not {', '.join(undone)}",
                        folder,
                    )
                )

    async def _flush(self, client: ImapClient, recreated: dict[str, list[str]]) -> None:
        for action in self.journal.pending():
            action = self._followed(action)
            try:
                if action.kind == "create":
                    await self._create(client, action.folder)
                elif await self._same_folder(client, action):
                    await self._execute(client, action)
                else:
                    recreated.setdefault(action.folder, []).append(action.describe())
                    continue
            except CommandFailed as exc:
                if passing(exc.code, exc.text):
                    raise  # the server's bandwidth limit, [UNAVAILABLE]: kept for later
                log.info("%s: server refused %s: %s", self.account, action.describe(), exc)
                self.journal.done(action)
                self.done.sent(action)
                self._rollback(action)
                self.bus.publish(
                    SyncError(
                        self.account,
                        f"Could not {action.describe()}: {exc.text or exc.message}",
                        action.folder,
                    )
                )
                continue
            self.journal.done(action)
            self.done.sent(action)
            self._snapshots.pop(action.id or -1, None)

    async def _same_folder(self, client: ImapClient, action: Action) -> bool:
        """Select the action's folder; False (the action refused and dropped) when it is not
        the folder the action was made in: recreated since (new UIDVALIDITY), its UIDs name
        other messages. The cache still shows the old folder with the action applied, so it
        is dropped whole (``recreated``) and fetched again, not rolled back."""
        sel = await client.select(action.folder)
        if action.uidvalidity is not None and sel.uidvalidity == action.uidvalidity:
            return True
        log.info("%s: %s refused: %s recreated", self.account, action.describe(), action.folder)
        self.journal.done(action)
        self._snapshots.pop(action.id or -1, None)
        self.done.pop(action.id or -1, None)
        state = self.cache.folder_state(action.folder)
        if state is not None and state.uidvalidity != sel.uidvalidity:
            self._recreated(action.folder)
        return False

    async def _execute(self, client: ImapClient, action: Action) -> None:
        existing = await client.uid_search_existing(action.uids)
        gone = len(action.uids) - len(existing)
        if gone:
            self.bus.publish(
                SyncError(
                    self.account,
                    f"{gone} of {len(action.uids)} messages were already moved or deleted "
                    f"elsewhere; did the rest ({action.describe()})"
                    if existing
                    else f"The messages were already moved or deleted elsewhere; "
                    f"did not {action.describe()}",
                    action.folder,
                )
            )
        if not existing:
            return
        uids = sorted(existing)
        record = self.done.get(action.id or -1)
        if action.kind == "flags":
            if action.add:
                await client.uid_store(uids, "+FLAGS", action.add)
            if action.remove:
                await client.uid_store(uids, "-FLAGS", action.remove)
        elif action.kind in ("move", "copy"):
            dest = action.dest
            assert dest is not None
            move = action.kind == "move"
            before: CopyUid | None = None
            if not (move and client.has("MOVE")):  # a COPY: not idempotent, unlike MOVE
                if action.sent:
                    before = await self._copied_before(client, action, uids)
                else:
                    status = await client.status(dest)
                    action = self.journal.mark_sent(action, status.uidnext)
            mapping = await client.uid_copy_or_move(
                uids, dest, move, copied_before=set(before.source) if before else ()
            )
            if before is not None:
                mapping = _merged(before, mapping)
            if record is not None:
                record.copyuid = mapping
            if mapping is not None and move:
                self._trail.moved(action.folder, dest, mapping.pairs(), self.done.values())
            self._mark_dirty(dest)
        elif action.kind == "expunge":
            await client.uid_store(uids, "+FLAGS", [DELETED])
            await client.uid_expunge(uids)
        elif action.kind == "labels":
            from kittiwake.core.imap import gmail

            await gmail.store_labels(client, UidSet.from_iterable(uids), action.add, action.remove)
            self._mark_dirty(action.folder)  # removing this folder's own label takes it out
            if action.add:
                self._mark_list()  # Gmail makes a label's folder when first used
            if "\\inbox" in {x.lower() for x in action.remove}:
                self._mark_dirty("INBOX")  # archived from a label's folder: it leaves INBOX
        if record is not None:
            record.sent = True

    async def _create(self, client: ImapClient, folder: str) -> None:
        """CREATE (and SUBSCRIBE) a folder the user named while choosing where to move:
        replayed like any action, so a move into it waits behind it, offline too. A folder
        that exists already (created elsewhere, or by an attempt whose reply was lost) is
        what was wanted."""
        try:
            await client.create(folder)
        except CommandFailed as exc:
            if exc.code != "ALREADYEXISTS" and "exist" not in exc.text.lower():
                raise
            log.info("%s: %s exists already", self.account, folder)
        self._mark_list()

    async def _copied_before(
        self, client: ImapClient, action: Action, uids: list[int]
    ) -> CopyUid | None:
        """Which of ``uids`` an earlier COPY of ``action`` (its reply lost) already put in the
        destination: the messages there from its UIDNEXT at that time on, matched by
        Message-ID, size and INTERNALDATE (which COPY keeps). None if none."""
        assert action.dest is not None
        originals = await client.uid_fetch_summaries(UidSet.from_iterable(uids))
        sel = await client.select(action.dest, readonly=True)
        since = action.dest_uidnext or 1
        try:
            landed = [s for s in await client.uid_fetch_summaries(f"{since}:*") if s.uid >= since]
        finally:
            await client.select(action.folder)
        pairs = match_copies(originals, landed)
        if not pairs:
            return None
        log.info(
            "%s: %d of %d messages were copied to %s before the connection was lost; "
            "not copied again",
            self.account,
            len(pairs),
            len(uids),
            action.dest,
        )
        return copyuid_of(sel.uidvalidity or 0, pairs)

    # -- undo -----------------------------------------------------------------------------

    def _followed(self, action: Action) -> Action:
        """A flag change waiting to be sent, on the UIDs its messages have now: undoing one
        step of [flag, move] (junk) moves them back first, under new UIDs (``UidTrail``
        renumbers the waiting change's record), then changes their flags there."""
        record = self.done.get(action.id or -1)
        if action.kind != "flags" or record is None or record.action.uids == action.uids:
            return action
        return msgspec.structs.replace(action, uids=record.action.uids)

    def keep(self, action: Action) -> None:
        """Undo may ask about ``action`` once it is sent (see ``UndoRecords``)."""
        self.done.keep(action)

    def forget(self, action: Action) -> None:
        """Undo will not ask about ``action`` any more."""
        self.done.forget(action)

    def current(self, action: Action) -> Action:
        """``action`` as it reads now (its UIDs renumbered if its messages moved back)."""
        record = self.done.get(action.id or -1)
        return record.action if record is not None else action

    def inverse(self, action: Action) -> list[Action] | str:
        """The actions that undo ``action`` (already sent), or why it cannot be undone."""
        action = self.current(action)
        record = self.done.get(action.id or -1)
        if action.kind == "expunge":
            return "Messages deleted for good cannot be brought back"
        if record is None:
            return "Nothing is known about that action any more"
        if action.kind == "flags":
            return flags_inverse(action, record.previous_flags)
        if action.kind == "labels":
            return [msgspec.structs.replace(action, id=None, add=action.remove, remove=action.add)]
        mapping = record.copyuid
        if mapping is None:
            return f"The server did not say where the messages went in {action.dest}"
        moved = set(action.uids)  # once: per pair, undoing 10,000 took 1 s on the event loop
        new_uids = tuple(dst for src, dst in mapping.pairs() if src in moved)
        assert action.dest is not None
        if action.kind == "copy":
            return [
                Action(
                    kind="expunge",
                    folder=action.dest,
                    uidvalidity=mapping.uidvalidity,
                    uids=new_uids,
                )
            ]
        return [
            Action(
                kind="move",
                folder=action.dest,
                uidvalidity=mapping.uidvalidity,
                uids=new_uids,
                dest=action.folder,
            )
        ]


def _copy_key(summary: MessageSummary) -> tuple[str | None, int, datetime | None]:
    return (summary.envelope.message_id, summary.size, summary.internal_date)


def match_copies(
    originals: Iterable[MessageSummary], landed: Iterable[MessageSummary]
) -> list[tuple[int, int]]:
    """(original UID, copy UID) for each original that has a copy among ``landed``; each copy
    answers for one original, so two identical originals need two copies."""
    waiting: dict[tuple[str | None, int, datetime | None], list[int]] = {}
    for copy in sorted(landed, key=lambda s: s.uid):
        waiting.setdefault(_copy_key(copy), []).append(copy.uid)
    pairs = []
    for original in sorted(originals, key=lambda s: s.uid):
        copies = waiting.get(_copy_key(original))
        if copies:
            pairs.append((original.uid, copies.pop(0)))
    return pairs


def copyuid_of(uidvalidity: int, pairs: Sequence[tuple[int, int]]) -> CopyUid:
    """A COPYUID mapping for ``pairs`` (source UID, destination UID), in that order."""
    from kittiwake.core.imap.parser import CopyUid

    return CopyUid(
        uidvalidity,
        UidSet.from_iterable(src for src, _ in pairs),
        UidSet.from_iterable(dst for _, dst in pairs),
        tuple((src, src) for src, _ in pairs),
        tuple((dst, dst) for _, dst in pairs),
    )


def _merged(before: CopyUid, now: CopyUid | None) -> CopyUid:
    """The mapping of a COPY done in two goes (an earlier one whose reply was lost, then the
    rest), so that undo finds every copy."""
    pairs = list(before.pairs())
    if now is not None:
        pairs += list(now.pairs())
    return copyuid_of(before.uidvalidity, pairs)
