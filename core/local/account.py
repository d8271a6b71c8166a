"""A local account: a Maildir++ tree (where POP3 delivers) indexed into the account's cache.

``LocalAccount`` satisfies ``core/store.py``'s ``MailStore``, so the API and the UI read and
act on it exactly as on an IMAP account: the same ``Cache`` (one SQLite file per account),
the same events, journaled actions with undo. The folders are the tree's: INBOX (the top
level), Sent, Drafts, Trash and Archive (created if missing, with their roles), and any other
``.Folder`` present.

Indexing is incremental: a rescan of a folder lists its files (names only), and reads the
headers of the new ones only (``core/local/index.py`` has the diff). It runs on start, after
each POP3 download, when a folder is opened, and on request; another program changing the
Maildir (mutt, notmuch) is picked up by the next rescan. Always available: ``state`` is
ONLINE; the POP3 connection's state is published by its poller.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Collection, Sequence
from datetime import datetime
from pathlib import Path

from kittiwake.core.cache import Cache
from kittiwake.core.errors import KittiwakeError
from kittiwake.core.events import (
    ConnState,
    EventBus,
    FlagsChanged,
    FolderCountsChanged,
    FolderListChanged,
    MessagesAdded,
    MessagesExpunged,
    SyncError,
    SyncProgress,
)
from kittiwake.core.local.index import FileIndex, plan_rescan
from kittiwake.core.local.summary import (
    FULL_PARSE_LIMIT,
    summary_from_bytes,
    summary_from_file,
)
from kittiwake.core.local.triage import LocalTriage
from kittiwake.core.maildir import INBOX, Maildir, MaildirError, MessageFile
from kittiwake.core.models import FolderInfo, FolderRole, MessageSummary
from kittiwake.core.search.index import body_words
from kittiwake.core.sqltx import transaction

log = logging.getLogger(__name__)

__all__ = ["LocalAccount", "role_of"]

BATCH = 200
"""New files summarized per worker-thread call (and published per MessagesAdded)."""

_ROLES = {
    "inbox": FolderRole.INBOX,
    "sent": FolderRole.SENT,
    "drafts": FolderRole.DRAFTS,
    "trash": FolderRole.TRASH,
    "archive": FolderRole.ARCHIVE,
    "junk": FolderRole.JUNK,
}


def role_of(folder: str) -> FolderRole | None:
    """The role of a local folder, by its (top-level) name."""
    return _ROLES.get(folder.casefold())


def _summaries(items: Sequence[tuple[MessageFile, int]]) -> list[tuple[MessageSummary, str]]:
    """Summaries of message files, with the words of their bodies for search (blocking:
    runs in a worker thread; the files are ours, so bodies are searchable like headers).
    A file that vanished meanwhile is left out (the next rescan sees it gone)."""
    out = []
    for msg, uid in items:
        try:
            raw = msg.path.read_bytes()  # once, for the summary and the body's words
            if len(raw) <= FULL_PARSE_LIMIT:
                arrived = msg.path.stat().st_mtime
                summary = summary_from_bytes(uid, raw, msg.flags, arrived)
            else:
                summary = summary_from_file(msg.path, uid, msg.flags)
            words = body_words(raw)
        except OSError:
            log.debug("%s vanished while being indexed", msg.path)
            continue
        out.append((summary, words))
    return out


class LocalAccount:
    """The local mail store of one POP3 account. ``start()`` indexes and follows it."""

    searches_server = False
    has_labels = False

    def __init__(self, name: str, root: Path, cache: Cache, bus: EventBus) -> None:
        self.name = name
        self.cache = cache
        self.bus = bus
        self.state = ConnState.ONLINE
        self.maildir = Maildir(root)
        self.files = FileIndex(cache)
        self.open_folder: str | None = None
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._dirty: set[str] = set()
        self._synced = asyncio.Event()
        self._listed = False
        self._task: asyncio.Task[None] | None = None
        self._triage = LocalTriage(name, cache, bus, self.files, self.mark_dirty, self._wake.set)

    @property
    def triage(self) -> LocalTriage:
        return self._triage

    @property
    def is_synced(self) -> bool:
        """The first scan of every folder has finished (later mail is new)."""
        return self._synced.is_set()

    async def wait_synced(self, timeout: float) -> None:
        await asyncio.wait_for(self._synced.wait(), timeout)

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"local:{self.name}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _run(self) -> None:
        await self._guarded(self.sync_all())
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self._guarded(self._catch_up())

    async def _guarded(self, work: Awaitable[object]) -> None:
        """Run ``work``; a failure is one sentence to the user, and the account goes on."""
        try:
            await work
        except KittiwakeError as exc:
            log.warning("%s: %s", self.name, exc.message)
            self.bus.publish(SyncError(self.name, exc.message))
        except OSError as exc:
            log.warning("%s: %s", self.name, exc)
            self.bus.publish(SyncError(self.name, f"{self.maildir.root}: {exc.strerror or exc}"))

    async def _catch_up(self) -> None:
        async with self._lock:
            await self.triage.flush(self.maildir)
            while self._dirty:
                folder = self._dirty.pop()
                if self.maildir.has_folder(folder):
                    await self._rescan(folder)

    def mark_dirty(self, folder: str) -> None:
        """Have ``folder`` rescanned soon (by the running account)."""
        self._dirty.add(folder)
        self._wake.set()

    async def sync_all(self) -> int:
        """Replay journaled actions, list the folders, rescan each (INBOX first)."""
        async with self._lock:
            await self.triage.flush(self.maildir)
            folders = await self._sync_folders()
            added = 0
            for folder in sorted(folders, key=lambda f: (f != INBOX, f != self.open_folder, f)):
                added += await self._rescan(folder)
        self._synced.set()
        return added

    async def flush_actions(self) -> None:
        """Apply every journaled action to the files now."""
        async with self._lock:
            await self.triage.flush(self.maildir)

    # -- folders --------------------------------------------------------------------------

    async def _sync_folders(self) -> list[str]:
        names = await asyncio.to_thread(self.maildir.folders)
        before = {f.name for f in self.cache.folders()}
        infos = [FolderInfo(name=n, delimiter="/", role=role_of(n)) for n in names]
        self.cache.set_folders(infos)
        for name in names:
            self.files.ensure_state(name)
        if set(names) != before or not self._listed:
            self._listed = True
            self.bus.publish(FolderListChanged(self.name, tuple(self.cache.folders())))
        return names

    def set_open_folder(self, folder: str | None) -> None:
        self.open_folder = folder

    async def refresh_folders(self) -> None:
        async with self._lock:
            await self._sync_folders()

    async def append_mark(self, folder: str) -> str:
        raise MaildirError("POP3 mail is delivered into a local account by its own Maildir sink")

    async def find_appended(
        self, folder: str, mark: str, sizes: Collection[int], matches: Callable[[bytes], bool]
    ) -> str | None:
        raise MaildirError("POP3 mail is delivered into a local account by its own Maildir sink")

    async def connect_once(self) -> None:
        """Nothing to connect to: the Maildir is on this machine."""

    async def search_folder(self, folder: str, query: str) -> Collection[int]:
        """No server to ask: the cache holds every message, and its answer is complete."""
        return ()

    def new_folder_name(self, name: str) -> str:
        return name  # a Maildir has no namespace: folders sit beside INBOX

    async def create_folder(self, name: str) -> None:
        async with self._lock:
            try:
                await asyncio.to_thread(self.maildir.create_folder, name)
            except ValueError as exc:
                raise MaildirError(f"Cannot create the folder: {exc}") from None
            await self._sync_folders()

    async def rename_folder(self, old: str, new: str) -> None:
        async with self._lock:
            await self.triage.flush(self.maildir)
            try:
                await asyncio.to_thread(self.maildir.rename_folder, old, new)
            except ValueError as exc:
                raise MaildirError(f"Cannot rename {old}: {exc}") from None
            names = await self._sync_folders()
            for name in names:
                if name == new or name.startswith(new + "/"):
                    await self._rescan(name)

    async def delete_folder(self, folder: str) -> None:
        """Delete the folder and the messages in it (what the UI asked the user about)."""

        def delete() -> None:
            for msg in self.maildir.messages(folder):
                self.maildir.delete(folder, msg.key)
            self.maildir.delete_folder(folder)

        async with self._lock:
            await self.triage.flush(self.maildir)
            try:
                await asyncio.to_thread(delete)
            except ValueError as exc:
                raise MaildirError(f"Cannot delete {folder}: {exc}") from None
            await self._sync_folders()

    # -- indexing -------------------------------------------------------------------------

    async def sync_folder(self, folder: str) -> int:
        """Rescan ``folder`` now; returns how many messages were newly indexed."""
        async with self._lock:
            return await self._rescan(folder)

    async def _rescan(self, folder: str) -> int:
        while True:
            await self.triage.flush(self.maildir)
            listed = await asyncio.to_thread(self.maildir.messages, folder)
            if not self.triage.has_pending():
                break  # else an action came in meanwhile: apply it first, list again
        files = {m.key: m for m in listed}
        on_disk = {k: m.flags for k, m in files.items()}
        plan = plan_rescan(on_disk, self.files.keys(folder), self.cache.flags(folder))
        with transaction(self.files.db):
            self.files.forget(folder, plan.forget)
            fresh = self.files.allocate(folder, len(plan.new))
            self.files.add(folder, zip(plan.new, fresh, strict=True))
        removed = self.cache.remove(folder, plan.stale)
        if removed:
            self.bus.publish(MessagesExpunged(self.name, folder, tuple(removed)))
        changed = self.cache.set_flags(folder, plan.flags)
        if changed:
            self.bus.publish(FlagsChanged(self.name, folder, changed))
        todo = [*plan.index, *zip(plan.new, fresh, strict=True)]
        added = 0
        for start in range(0, len(todo), BATCH):
            batch = [(files[key], uid) for key, uid in todo[start : start + BATCH]]
            indexed = await asyncio.to_thread(_summaries, batch)
            summaries = [summary for summary, _ in indexed]
            if summaries:
                self.cache.put_summaries(folder, summaries)
                for summary, words in indexed:
                    self.cache.index_body_words(folder, summary.uid, words)
                self.bus.publish(MessagesAdded(self.name, folder, tuple(summaries)))
            added += len(summaries)
            if len(todo) > BATCH:
                self.bus.publish(SyncProgress(self.name, folder, added, len(todo)))
        total, unread = self.cache.counts(folder)
        self.bus.publish(FolderCountsChanged(self.name, folder, total, unread))
        return added

    # -- messages -------------------------------------------------------------------------

    async def fetch_body(self, folder: str, uid: int) -> bytes | None:
        key = self.files.keys_of(folder, [uid]).get(uid)
        if key is None:
            return None
        try:
            return await asyncio.to_thread(self.maildir.read, folder, key)
        except (MaildirError, OSError) as exc:
            log.info("%s: %s/%d cannot be read: %s", self.name, folder, uid, exc)
            self.mark_dirty(folder)
            return None

    async def append(self, folder: str, raw: bytes, flags: frozenset[str]) -> int | None:
        """Deliver ``raw`` into ``folder`` durably (a Sent copy, a draft); returns its UID."""
        async with self._lock:
            if not self.maildir.has_folder(folder):
                raise MaildirError(f"there is no folder {folder} in {self.maildir.root}")
            msg = await asyncio.to_thread(self.maildir.add, folder, raw, flags)
            with transaction(self.files.db):
                [uid] = self.files.allocate(folder, 1)
                self.files.add(folder, [(msg.key, uid)])
            arrived = await asyncio.to_thread(lambda: msg.path.stat().st_mtime)
            summary = summary_from_bytes(uid, raw, msg.flags, arrived)
            words = await asyncio.to_thread(body_words, raw)
            self.cache.put_summaries(folder, [summary])
            self.cache.index_body_words(folder, uid, words)
            self.bus.publish(MessagesAdded(self.name, folder, (summary,)))
            total, unread = self.cache.counts(folder)
            self.bus.publish(FolderCountsChanged(self.name, folder, total, unread))
            return uid

    async def append_many(
        self, folder: str, messages: Sequence[tuple[bytes, frozenset[str], datetime | None]]
    ) -> None:
        """One delivery after another: a Maildir has no round trips to save (the date of
        each is the delivery's; a file's time is not the message's identity here)."""
        for raw, flags, _ in messages:
            await self.append(folder, raw, flags)

    async def has_message_id(self, folder: str, message_id: str) -> bool:
        """Whether ``folder`` holds this Message-ID (rescanned first: a copy written just
        before a crash counts)."""
        return bool(await self.message_id_uids(folder, message_id))

    async def message_id_uids(self, folder: str, message_id: str) -> set[int]:
        """The UIDs in ``folder`` of messages with this Message-ID (rescanned first)."""
        await self.sync_folder(folder)
        uids = self.cache.uids(folder)
        return {
            s.uid
            for s in self.cache.summaries(folder, uids).values()
            if s.envelope.message_id == message_id
        }
