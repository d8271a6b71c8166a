"""Search and conversations for one account: what ``MailApi.search*`` and ``threads`` run.

Search has two stages because they answer at very different speeds: the cache (FTS5 plus
column predicates, ``core.search.search_cache``) in milliseconds, then, for IMAP accounts,
the server (``UID SEARCH``, ESEARCH where offered), which also finds bodies never
downloaded and messages not synced yet. Messages only the server found get their summaries
fetched into the cache (published as ``MessagesAdded`` like any sync), so every hit can be
shown and acted on like a cached message. Local (Maildir) accounts hold everything in the
cache, so their first stage is the whole answer.

Threads are built from the cache off the event loop (``asyncio.to_thread`` over a read-only
connection of their own, see ``core.search.threads.thread_cached``), over the folder and the
account's Sent folder, keeping only the conversations with a message in the folder.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable, Sequence
from typing import NamedTuple

from kittiwake.core import gmailids
from kittiwake.core.cache import Cache
from kittiwake.core.message.dates import sort_date
from kittiwake.core.search.index import body_text
from kittiwake.core.search.query import Query, evaluate, parse_query, search_cache
from kittiwake.core.search.threads import Threading, keep_threads, thread_cached
from kittiwake.core.store import MailStore

log = logging.getLogger(__name__)

__all__ = [
    "Hit",
    "index_deferred",
    "local_hits",
    "local_hits_off_loop",
    "server_hits",
    "thread_folder",
]

#: Rows indexed a transaction when a search indexes what the decode pass deferred (~10 ms).
INDEX_BATCH = 1000


class Hit(NamedTuple):
    """One message found: its folder and UID (a result list can span folders)."""

    folder: str
    uid: int


def _folder_ids(cache: Cache, folders: Sequence[str]) -> list[int]:
    return [fid for f in folders if (fid := cache.folder_id(f)) is not None]


def local_hits(cache: Cache, folders: Sequence[str] | None, query: Query | str) -> list[Hit]:
    """The cached messages matching ``query`` in ``folders`` (None: all), newest first.
    A malformed query raises ``QueryError`` (one sentence). Rows decoded but not indexed
    yet are indexed first (as in ``local_hits_off_loop``, but at once: call it on the loop
    that owns the cache, as the command line and a list's limit do)."""
    parsed = parse_query(query) if isinstance(query, str) else query
    names = cache.folder_names()
    ids = None if folders is None else _folder_ids(cache, folders)
    if ids is not None and not ids:
        return []
    for name in folders if folders is not None else list(names.values()):
        while cache.index_deferred(name, INDEX_BATCH):  # see local_hits_off_loop
            pass
    # Rows a first sync left raw are judged one by one until the pass this asks for has
    # decoded and indexed them.
    cache.want_decoded(index=True)
    hits = [Hit(names[f], u) for f, u in search_cache(cache.db, ids, parsed) if f in names]
    return gmailids.once_each(hits, gmailids.msgids(cache.db))


async def index_deferred(
    cache: Cache,
    folders: Sequence[str] | None,
    progress: Callable[[int, int], None] | None = None,
) -> None:
    """Index the rows of ``folders`` (None: all) that the decode pass left out of the search
    index, on the loop, a batch at a time with the loop free between batches (keys and live
    changes are taken); ``progress(done, total)`` after each. Nothing to do: no cost but a
    count."""
    scope = list(folders) if folders is not None else list(cache.folder_names().values())
    total = sum(cache.deferred(name) for name in scope)
    done = 0
    for name in scope if total else ():
        while taken := cache.index_deferred(name, INDEX_BATCH):
            done += taken
            if progress is not None:
                progress(min(done, total), total)
            await asyncio.sleep(0)


async def local_hits_off_loop(
    cache: Cache,
    folders: Sequence[str] | None,
    query: Query | str,
    progress: Callable[[int, int], None] | None = None,
) -> list[Hit]:
    """``local_hits`` in a worker thread over a read-only connection of its own: while a
    first sync's rows are still raw, each is decoded to be judged (~18 µs), which must not
    hold the event loop. Rows decoded but not indexed yet are indexed first, here, on the
    loop, a batch at a time (``index_deferred``): ~15 µs a row, where judging them in
    Python costs ~20 and leaves them to index afterwards. ``progress(done, total)`` follows
    that indexing (a first search after a first sync of 100,000 messages: a few seconds)."""
    parsed = parse_query(query) if isinstance(query, str) else query
    names = cache.folder_names()
    ids = None if folders is None else _folder_ids(cache, folders)
    if ids is not None and not ids:
        return []
    path = cache.path
    await index_deferred(cache, folders, progress)

    def run() -> list[tuple[int, int]]:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            return search_cache(db, ids, parsed)
        finally:
            db.close()

    try:
        found = await asyncio.to_thread(run)
    finally:
        # Rows a first sync left raw, or decoded but not indexed, are judged one by one until
        # then: decode and index them now, after this search (beside it, the pass would take
        # half its interpreter time).
        cache.want_decoded(index=True)
    hits = [Hit(names[f], u) for f, u in found if f in names]
    return gmailids.once_each(hits, gmailids.msgids(cache.db))


async def server_hits(
    store: MailStore,
    folders: Sequence[str],
    query: Query,
    known: set[Hit],
) -> list[Hit]:
    """What the server finds in ``folders`` beyond ``known`` (the cache's answer), newest
    first; nothing for stores without a server to ask (``searches_server``). Summaries of
    UIDs the cache lacks are fetched and stored first. A hit whose cached headers rule it out
    is dropped (the server matches substrings: ``from:ann`` would also find "joanne"); one
    that needs the body the cache lacks is kept."""
    if not store.searches_server:
        return []
    cache = store.cache
    found: list[tuple[float, int, Hit]] = []
    for folder in folders:
        uids = await store.search_folder(folder, query.text)
        fresh = sorted(u for u in uids if Hit(folder, u) not in known)
        for uid, summary in cache.summaries(folder, fresh).items():
            raw = cache.body(folder, uid)
            text = body_text(raw) if raw is not None else None
            if evaluate(query, summary, text) is not False:
                found.append((sort_date(summary), uid, Hit(folder, uid)))
    found.sort(reverse=True)
    # Gmail: a message the cache found under one label is not found again under another.
    ids = gmailids.msgids(cache.db)
    added = gmailids.once_each([*known, *(hit for _, _, hit in found)], ids)
    return [hit for hit in added if hit not in known]


async def server_gmail_hits(
    store: MailStore, folders: Sequence[str], text: str, known: set[Hit]
) -> list[Hit]:
    """A ``gmail:`` query (Gmail's own syntax, X-GM-RAW): only the server can judge it, so
    every message it names is a hit, newest first, each message once."""
    if not store.searches_server:
        return []
    cache = store.cache
    found: list[tuple[float, int, Hit]] = []
    for folder in folders:
        uids = await store.search_folder(folder, text)
        for uid, summary in cache.summaries(folder, sorted(uids)).items():
            found.append((sort_date(summary), uid, Hit(folder, uid)))
    found.sort(reverse=True)
    added = gmailids.once_each([*known, *(hit for _, _, hit in found)], gmailids.msgids(cache.db))
    return [hit for hit in added if hit not in known]


def _keep_in(folder_id: int) -> Callable[[tuple[int, int]], bool]:
    return lambda key: key[0] == folder_id


async def thread_folder(
    cache: Cache, folder: str, sent: str | None
) -> tuple[Threading[tuple[int, int]], dict[int, str]]:
    """The conversations of ``folder`` (with the replies filed in ``sent``), keyed by
    (folder id, uid), and the folder names by id. Runs in a worker thread."""
    fid = cache.folder_id(folder)
    names = cache.folder_names()
    if fid is None:
        return Threading([], [], [], [], []), names
    ids = [fid]
    sent_id = cache.folder_id(sent) if sent is not None and sent != folder else None
    if sent_id is not None:
        ids.append(sent_id)
    path = cache.path

    skip: set[tuple[int, int]] = set()
    if sent_id is not None and sent is not None:
        # Gmail: a message labelled both ways is in both folders; it shows once, here.
        gm = gmailids.msgids(cache.db, [folder, sent])
        here = {m for (f, _), m in gm.items() if f == folder}
        skip = {(sent_id, u) for (f, u), m in gm.items() if f == sent and m in here}
    # Gmail: its own conversations (X-GM-THRID) hold what the headers do not link.
    by_name = {folder: fid, **({sent: sent_id} if sent is not None and sent_id else {})}
    together = {
        (by_name[f], u): thrid for (f, u), thrid in gmailids.thrids(cache.db, list(by_name)).items()
    }

    def build() -> Threading[tuple[int, int]]:
        threading = thread_cached(path, ids, skip=skip, together=together)
        return keep_threads(threading, _keep_in(fid)) if sent_id is not None else threading

    try:
        return await asyncio.to_thread(build), names
    finally:
        cache.want_decoded()  # raw rows are decoded for each threading until then (see above)
