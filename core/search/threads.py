"""Conversations: Jamie Zawinski's threading algorithm (https://www.jwz.org/doc/threading.html).

Input: one :class:`ThreadInput` per message (any hashable key, e.g. a UID or a
``(folder_id, uid)`` pair when the Sent folder is threaded in). Output: a :class:`Threading`:
a flat list of rows in display order (threads newest first, each thread's messages as a tree
in date order, with depth and the connector lines to draw) and one :class:`ThreadInfo` per
thread (size, unread count, newest date).

The algorithm, as JWZ describes it, with these decisions:

* **Links** come from References, then In-Reply-To when it is not already the last
  reference. Consecutive references are linked parent→child unless the child already has a
  parent (the first word wins) or the link would close a loop (then it is ignored). A
  message's own last reference is authoritative: it replaces a parent guessed from another
  message's References. A message without any reference has no parent.
* **Duplicate Message-IDs**: the first message keeps the ID, later ones become separate
  containers (they thread by their own references and show as separate rows: two UIDs are
  two things the user can act on). Messages without a Message-ID get a private container.
* **Missing parents** are empty containers. Pruning removes empty leaves and promotes the
  children of an empty container to its place, except at the top of a thread where an empty
  root with several children stays as a placeholder row (``key`` None): it shows that these
  messages answer the same missing message.
* **Subject fallback**, only for messages with no References and no In-Reply-To whose
  subject carries a reply or forward prefix (Re:, Fwd:, Fw:, AW:, WG:, SV:, VS:, Antw:,
  Odp:, Réf:, RIF:, TR:, R:, Re[2]:, and [list] tags in front of them): such a thread is
  attached under the latest thread with the same base subject that started no later than it
  (or the earliest one, if all started later). Replies of that kind with no such thread are
  grouped under one placeholder. Messages that carry references are never moved by subject,
  so unrelated "Hello" threads stay apart.
* **Order**: siblings by date, oldest first (conversation order); threads by their newest
  message, newest first.

Everything is iterative (a 10,000-deep chain needs no recursion). The loop check walks up
from the would-be parent only when the would-be child already has children, which keeps the
common cases linear. Measured on 100,000 messages: see ``benches/bench_threads.py``.
"""

from __future__ import annotations

import gc
import sqlite3
from collections.abc import (
    Callable,
    Collection,
    Container,
    Hashable,
    Iterable,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, NamedTuple, TypeVar

import msgspec

from kittiwake.core.message.ids import normalize_msgid
from kittiwake.core.message.subjects import base_subject, is_reply_subject

__all__ = [
    "MAX_INDENT",
    "ThreadColumns",
    "ThreadInfo",
    "ThreadInput",
    "ThreadRow",
    "Threading",
    "columns_from_cache",
    "join_groups",
    "keep_threads",
    "reorder_threads",
    "thread_cached",
    "thread_messages",
]

K = TypeVar("K", bound=Hashable)

#: Levels of indentation drawn; deeper messages are drawn at this level (``depth`` is exact).
MAX_INDENT = 12


class ThreadInput(NamedTuple, Generic[K]):
    """One message to thread. ``references`` are ``<id>`` strings, oldest first (the cache's
    ``refs`` column split); ``date`` is a timestamp (the cache's ``sort_date``)."""

    key: K
    message_id: str | None
    in_reply_to: str | None
    references: Sequence[str]
    subject: str
    date: float


@dataclass(slots=True)
class ThreadColumns(Generic[K]):
    """The same inputs as parallel lists (what ``columns_from_cache`` builds: no object per
    message, which matters at 100,000 messages)."""

    keys: list[K] = field(default_factory=list)
    message_ids: list[str | None] = field(default_factory=list)
    in_reply_to: list[str | None] = field(default_factory=list)
    references: list[Sequence[str]] = field(default_factory=list)
    subjects: list[str] = field(default_factory=list)
    dates: list[float] = field(default_factory=list)

    @classmethod
    def from_inputs(cls, messages: Iterable[ThreadInput[K]]) -> ThreadColumns[K]:
        out: ThreadColumns[K] = cls()
        for m in messages:
            out.keys.append(m.key)
            out.message_ids.append(m.message_id)
            out.in_reply_to.append(m.in_reply_to)
            out.references.append(m.references)
            out.subjects.append(m.subject)
            out.dates.append(m.date)
        return out

    def __len__(self) -> int:
        return len(self.keys)


class ThreadRow(NamedTuple, Generic[K]):
    """One line of the conversation view. ``key`` is None for a placeholder (a missing
    message several others answer). ``prefix`` is drawn before the subject: "" for a thread's
    first row, then connectors like "├─", "│ └─"."""

    key: K | None
    depth: int
    prefix: str
    thread: int


@dataclass(slots=True)
class ThreadInfo(Generic[K]):
    """A thread: rows ``first_row`` to ``first_row + rows - 1`` of the ``Threading``."""

    first_row: int
    rows: int
    messages: int
    unread: int
    newest: float
    first_key: K
    """The earliest message (the thread's root, or the placeholder's earliest child)."""


@dataclass(slots=True)
class Threading(Generic[K]):
    """The conversation view, as parallel columns (row ``i`` is ``keys[i]``, ``depths[i]``,
    ``prefixes[i]``, ``thread_of[i]``), and the threads in display order."""

    keys: list[K | None]
    depths: list[int]
    prefixes: list[str]
    thread_of: list[int]
    threads: list[ThreadInfo[K]]

    def __len__(self) -> int:
        return len(self.keys)

    def row(self, i: int) -> ThreadRow[K]:
        return ThreadRow(self.keys[i], self.depths[i], self.prefixes[i], self.thread_of[i])

    def rows(self) -> list[ThreadRow[K]]:
        return [
            ThreadRow(*r)
            for r in zip(self.keys, self.depths, self.prefixes, self.thread_of, strict=True)
        ]


def keep_threads(threading: Threading[K], keep: Callable[[K], bool]) -> Threading[K]:
    """Only the threads with a message ``keep`` accepts, in the same order (a folder's view
    of threads built over it and the Sent folder: the user's replies show inside the
    folder's conversations, but conversations that live only in Sent do not)."""
    keys: list[K | None] = []
    depths: list[int] = []
    prefixes: list[str] = []
    thread_of: list[int] = []
    threads: list[ThreadInfo[K]] = []
    for info in threading.threads:
        start, end = info.first_row, info.first_row + info.rows
        rows = threading.keys[start:end]
        if not any(k is not None and keep(k) for k in rows):
            continue
        number = len(threads)
        threads.append(
            ThreadInfo(
                len(keys), info.rows, info.messages, info.unread, info.newest, info.first_key
            )
        )
        keys += rows
        depths += threading.depths[start:end]
        prefixes += threading.prefixes[start:end]
        thread_of += [number] * info.rows
    return Threading(keys, depths, prefixes, thread_of, threads)


def reorder_threads(threading: Threading[K], order: Sequence[int]) -> Threading[K]:
    """The same threads, each with its rows as they were (tree order inside a thread), in
    ``order`` (thread numbers): a conversation view sorted by another key than its newest
    message (``core/search/order.py``)."""
    keys: list[K | None] = []
    depths: list[int] = []
    prefixes: list[str] = []
    thread_of: list[int] = []
    threads: list[ThreadInfo[K]] = []
    for number, old in enumerate(order):
        info = threading.threads[old]
        start, end = info.first_row, info.first_row + info.rows
        threads.append(
            ThreadInfo(
                len(keys), info.rows, info.messages, info.unread, info.newest, info.first_key
            )
        )
        keys += threading.keys[start:end]
        depths += threading.depths[start:end]
        prefixes += threading.prefixes[start:end]
        thread_of += [number] * info.rows
    return Threading(keys, depths, prefixes, thread_of, threads)


# -- the algorithm ----------------------------------------------------------------------
#
# Containers are integers indexing three lists (message index or -1, parent or -1, children
# or None): no object per container, no reference cycles for the garbage collector to chase.


class _Tree:
    __slots__ = ("kids", "msg", "parent")

    def __init__(self) -> None:
        self.msg: list[int] = []
        self.parent: list[int] = []
        self.kids: list[list[int] | None] = []

    def new(self, msg: int = -1, parent: int = -1) -> int:
        c = len(self.msg)
        self.msg.append(msg)
        self.parent.append(parent)
        self.kids.append(None)
        if parent >= 0:
            self.add_kid(parent, c)
        return c

    def add_kid(self, parent: int, child: int) -> None:
        self.parent[child] = parent
        kids = self.kids[parent]
        if kids is None:
            self.kids[parent] = [child]
        else:
            kids.append(child)

    def unlink(self, child: int) -> None:
        parent = self.parent[child]
        if parent >= 0:
            kids = self.kids[parent]
            assert kids is not None
            kids.remove(child)
            if not kids:
                self.kids[parent] = None
            self.parent[child] = -1

    def would_loop(self, parent: int, child: int) -> bool:
        """Would making ``child`` a child of ``parent`` close a loop?"""
        if child == parent:
            return True
        if self.kids[child] is None:
            return False  # a leaf is nobody's ancestor
        up = self.parent
        node = up[parent]
        while node >= 0:
            if node == child:
                return True
            node = up[node]
        return False


def thread_messages(
    messages: Sequence[ThreadInput[K]] | ThreadColumns[K],
    seen: Callable[[K], bool] | None = None,
    *,
    unread: Collection[K] | None = None,
    subject_fallback: bool = True,
    max_indent: int = MAX_INDENT,
) -> Threading[K]:
    """Thread ``messages`` (any order). Unread counts come from ``unread`` (the keys that are
    unread: fastest) or else from ``seen(key)``; with neither, every thread counts 0.

    Pure and synchronous: run it off the event loop (``asyncio.to_thread``) for big folders.
    The garbage collector is paused while it runs (it allocates ~100,000 objects that all
    stay alive until it returns; collecting them midway only costs time).
    """
    cols = messages if isinstance(messages, ThreadColumns) else ThreadColumns.from_inputs(messages)
    paused = gc.isenabled()
    gc.disable()
    try:
        return _thread(cols, seen, unread, subject_fallback, max(1, max_indent))
    finally:
        if paused:
            gc.enable()


def _thread(
    cols: ThreadColumns[K],
    seen: Callable[[K], bool] | None,
    unread: Collection[K] | None,
    subject_fallback: bool,
    max_indent: int,
) -> Threading[K]:
    tree = _Tree()
    cmsg, cpar, ckids = tree.msg, tree.parent, tree.kids
    msg_append, par_append, kids_append = cmsg.append, cpar.append, ckids.append
    table: dict[str, int] = {}
    table_get = table.get
    no_refs = bytearray(len(cols))
    would_loop = tree.would_loop

    for idx, (mid, irt, refs) in enumerate(
        zip(cols.message_ids, cols.in_reply_to, cols.references, strict=True)
    ):
        if mid is not None and not (mid[:1] == "<" and mid[-1:] == ">" and " " not in mid):
            mid = normalize_msgid(mid)
        c = table_get(mid) if mid else None
        if c is None:
            c = len(cmsg)
            msg_append(idx)
            par_append(-1)
            kids_append(None)
            if mid:
                table[mid] = c
        elif cmsg[c] >= 0:  # a duplicate Message-ID: a container of its own
            c = len(cmsg)
            msg_append(idx)
            par_append(-1)
            kids_append(None)
        else:
            cmsg[c] = idx

        if irt:
            if not (irt[:1] == "<" and irt[-1:] == ">" and " " not in irt):
                irt = normalize_msgid(irt)
            if irt and (not refs or (refs[-1] != irt and irt not in refs)):
                refs = [*refs, irt]
        prev = -1
        for ref in refs:
            rc = table_get(ref)
            if rc is None:
                if not ref:
                    continue
                rc = len(cmsg)
                msg_append(-1)
                par_append(prev)
                kids_append(None)
                table[ref] = rc
                if prev >= 0:
                    kids = ckids[prev]
                    if kids is None:
                        ckids[prev] = [rc]
                    else:
                        kids.append(rc)
            elif (
                prev >= 0
                and cpar[rc] < 0
                and rc != prev
                and (ckids[rc] is None or not would_loop(prev, rc))
            ):
                cpar[rc] = prev
                kids = ckids[prev]
                if kids is None:
                    ckids[prev] = [rc]
                else:
                    kids.append(rc)
            prev = rc
        if prev < 0:
            no_refs[idx] = 1
            if cpar[c] >= 0:
                tree.unlink(c)
        elif cpar[c] != prev and not would_loop(prev, c):
            if cpar[c] >= 0:
                tree.unlink(c)
            tree.add_kid(prev, c)

    # Roots, pruned: empty leaves dropped, empty inner containers replaced by their children.
    roots: list[int] = []
    for c in [c for c, p in enumerate(cpar) if p < 0]:  # a snapshot: promotion edits cpar
        if ckids[c] is not None:
            _prune(tree, c)
        if cmsg[c] >= 0:
            roots.append(c)
            continue
        kids = ckids[c]
        if kids is None:
            continue
        if len(kids) == 1:
            cpar[kids[0]] = -1
            roots.append(kids[0])
        else:
            roots.append(c)

    if subject_fallback:
        roots = _group_by_subject(tree, roots, cols, no_refs)
    return _emit(tree, roots, cols, seen, unread, max_indent)


def _prune(tree: _Tree, root: int) -> None:
    cmsg, cpar, ckids = tree.msg, tree.parent, tree.kids
    order = [root]
    i = 0
    while i < len(order):
        kids = ckids[order[i]]
        if kids is not None:
            order.extend(kids)
        i += 1
    for node in reversed(order):  # children before their parents
        kids = ckids[node]
        if kids is None:
            continue
        for k in kids:
            if cmsg[k] < 0:
                break
        else:
            continue
        new: list[int] = []
        for k in kids:
            if cmsg[k] >= 0:
                new.append(k)
            else:
                grand = ckids[k]
                if grand is not None:
                    for g in grand:
                        cpar[g] = node
                    new.extend(grand)
        ckids[node] = new or None


def _first_msg(tree: _Tree, c: int, dates: list[float]) -> int:
    """The message of a root, or of a placeholder's earliest child."""
    m = tree.msg[c]
    if m >= 0:
        return m
    kids = tree.kids[c]
    assert kids
    return min((tree.msg[k] for k in kids), key=lambda i: (dates[i], i))


def _group_by_subject(
    tree: _Tree, roots: list[int], cols: ThreadColumns[K], no_refs: bytearray
) -> list[int]:
    cmsg = tree.msg
    subjects, dates = cols.subjects, cols.dates
    movable: list[int] = []
    anchors: dict[str, list[tuple[float, int, int]]] = {}
    for c in roots:
        m = cmsg[c]
        if m >= 0 and no_refs[m] and is_reply_subject(subjects[m]):
            movable.append(c)
    if not movable:
        return roots
    movable_set = set(movable)
    for pos, c in enumerate(roots):
        if c in movable_set:
            continue
        first = _first_msg(tree, c, dates)
        base = base_subject(subjects[first])
        if base:
            anchors.setdefault(base, []).append((dates[first], pos, c))
    for group in anchors.values():
        group.sort()
    moved: set[int] = set()
    orphans: dict[str, list[int]] = {}
    for c in movable:
        m = cmsg[c]
        base = base_subject(subjects[m])
        if not base:
            continue
        candidates = anchors.get(base)
        if not candidates:
            orphans.setdefault(base, []).append(c)
            continue
        when = dates[m]
        target = candidates[0][2]
        for d, _, anchor in candidates:
            if d > when:
                break
            target = anchor
        tree.add_kid(target, c)
        moved.add(c)
    holders: list[int] = []
    for replies in orphans.values():
        if len(replies) < 2:
            continue
        holder = tree.new()
        for c in replies:
            tree.add_kid(holder, c)
            moved.add(c)
        holders.append(holder)
    return [c for c in roots if c not in moved] + holders


def _emit(
    tree: _Tree,
    roots: list[int],
    cols: ThreadColumns[K],
    seen: Callable[[K], bool] | None,
    unread: Collection[K] | None,
    max_indent: int,
) -> Threading[K]:
    cmsg, ckids = tree.msg, tree.kids
    keys_in, dates = cols.keys, cols.dates
    # Rows in root order first; threads are sorted afterwards and their row ranges copied.
    t_keys: list[K | None] = []
    t_depths: list[int] = []
    t_prefixes: list[str] = []
    spans: list[tuple[float, int, int, int, int, int]] = []  # -newest, pos, start, end, n, first
    add_key, add_depth, add_prefix = t_keys.append, t_depths.append, t_prefixes.append

    def by_date(c: int) -> tuple[float, int]:
        i = cmsg[c]
        return (dates[i], i)

    for pos, root in enumerate(roots):
        start = len(t_keys)
        if ckids[root] is None:  # a message alone: the common case, no walk
            i = cmsg[root]
            add_key(keys_in[i])
            add_depth(0)
            add_prefix("")
            spans.append((-dates[i], pos, start, start + 1, 1, i))
            continue
        newest = float("-inf")
        count = 0
        # (container, depth, its row's prefix, the pad its children's prefixes start with)
        stack: list[tuple[int, int, str, str]] = [(root, 0, "", "")]
        pop, push = stack.pop, stack.append
        while stack:
            node, depth, prefix, pad = pop()
            i = cmsg[node]
            if i >= 0:
                add_key(keys_in[i])
                count += 1
                d = dates[i]
                if d > newest:
                    newest = d
            else:
                add_key(None)
            add_depth(depth)
            add_prefix(prefix)
            kids = ckids[node]
            if kids is None:
                continue
            if len(kids) > 1:
                kids.sort(key=by_date)
            last = len(kids) - 1
            cdepth = depth + 1
            if cdepth <= max_indent:
                push((kids[last], cdepth, pad + "└─", pad + "  "))
                if last:
                    tee, bar = pad + "├─", pad + "│ "
                    for n in range(last - 1, -1, -1):
                        push((kids[n], cdepth, tee, bar))
            else:  # too deep to indent further: drawn at the deepest level
                base = pad[:-2]
                push((kids[last], cdepth, base + "└─", pad))
                if last:
                    tee = base + "├─"
                    for n in range(last - 1, -1, -1):
                        push((kids[n], cdepth, tee, pad))
        first = cmsg[root] if cmsg[root] >= 0 else _first_msg(tree, root, dates)
        spans.append((-newest, pos, start, len(t_keys), count, first))

    spans.sort()
    keys: list[K | None] = []
    depths: list[int] = []
    prefixes: list[str] = []
    thread_of: list[int] = []
    threads: list[ThreadInfo[K]] = []
    for tno, (neg_newest, _, start, end, count, first) in enumerate(spans):
        row = len(keys)
        if end - start == 1:
            key = t_keys[start]
            keys.append(key)
            depths.append(0)
            prefixes.append("")
            thread_of.append(tno)
            rows = [key]
        else:
            rows = t_keys[start:end]
            keys += rows
            depths += t_depths[start:end]
            prefixes += t_prefixes[start:end]
            thread_of += [tno] * (end - start)
        n_unread = 0
        if unread is not None:
            for k in rows:
                if k is not None and k in unread:
                    n_unread += 1
        elif seen is not None:
            for k in rows:
                if k is not None and not seen(k):
                    n_unread += 1
        threads.append(ThreadInfo(row, end - start, count, n_unread, -neg_newest, keys_in[first]))
    return Threading(keys, depths, prefixes, thread_of, threads)


# -- from the cache ---------------------------------------------------------------------


class _ThreadEnvelope(msgspec.Struct):
    """The envelope fields threading needs; msgspec skips the rest of the blob undecoded."""

    subject: str = ""
    in_reply_to: str | None = None
    message_id: str | None = None
    references: tuple[str, ...] = ()  # only for rows decoded from ``raw``


def columns_from_cache(
    db: sqlite3.Connection, folder_ids: Iterable[int], skip: Container[tuple[int, int]] = ()
) -> tuple[ThreadColumns[tuple[int, int]], set[tuple[int, int]]]:
    """Thread inputs for every cached message of ``folder_ids`` (keys ``(folder_id, uid)``,
    so the Sent folder can be threaded in) and the set of unread keys. Reads the cache's
    ``messages`` table directly (one query per folder, envelope blobs partly decoded). Rows
    a first sync stored undecoded (``raw``) are decoded here, ~18 µs each, until the
    background decode pass has done it (``searchindex.pending`` counts them). Keys in
    ``skip`` are left out (Gmail: a second copy of a message under another label)."""
    decode = msgspec.msgpack.Decoder(_ThreadEnvelope).decode
    cols: ThreadColumns[tuple[int, int]] = ThreadColumns()
    unread: set[tuple[int, int]] = set()
    lazy = any(row[1] == "raw" for row in db.execute("PRAGMA table_info(messages)"))
    select = "uid, sort_date, seen, refs, envelope" + (", raw" if lazy else ", NULL")
    paused = gc.isenabled()
    gc.disable()
    try:
        for fid in folder_ids:
            fid = int(fid)
            rows = db.execute(
                f"SELECT {select} FROM messages WHERE folder_id=?",  # noqa: S608
                (fid,),
            ).fetchall()
            if skip:
                rows = [r for r in rows if (fid, r[0]) not in skip]
            keys = [(fid, r[0]) for r in rows]
            envs = [decode(r[4]) if r[5] is None else _undecoded(r[5]) for r in rows]
            cols.keys += keys
            cols.dates += [r[1] for r in rows]
            cols.references += [
                r[3].split() if r[5] is None else env.references
                for r, env in zip(rows, envs, strict=True)
            ]
            cols.subjects += [e.subject for e in envs]
            cols.message_ids += [e.message_id for e in envs]
            cols.in_reply_to += [e.in_reply_to for e in envs]
            unread.update(k for k, r in zip(keys, rows, strict=True) if not r[2])
    finally:
        if paused:
            gc.enable()
    return cols, unread


def join_groups(cols: ThreadColumns[K], group_of: Mapping[K, Hashable]) -> None:
    """Messages a server says form one conversation though their headers need not link them
    (Gmail's X-GM-THRID: it also groups same-subject notifications): every member but the
    earliest gets the earliest's Message-ID in front of its references, so JWZ threads it
    below that message; a member linked by its own headers keeps its place under them."""
    if not group_of:
        return
    first: dict[Hashable, int] = {}
    for i, key in enumerate(cols.keys):
        group = group_of.get(key)
        if group is None or not cols.message_ids[i]:
            continue
        j = first.get(group)
        if j is None or cols.dates[i] < cols.dates[j]:
            first[group] = i
    for i, key in enumerate(cols.keys):
        group = group_of.get(key)
        j = first.get(group) if group is not None else None
        if j is None or j == i:
            continue
        root = cols.message_ids[j] or ""
        if not (root[:1] == "<" and root[-1:] == ">" and " " not in root):
            root = normalize_msgid(root) or ""
        refs = cols.references[i]
        if root and root not in refs and root != cols.message_ids[i]:
            cols.references[i] = [root, *refs]


def _undecoded(raw: bytes) -> _ThreadEnvelope:
    from kittiwake.core.cache import decode_raw

    envelope, refs, _ = decode_raw(bytes(raw))
    return _ThreadEnvelope(envelope.subject, envelope.in_reply_to, envelope.message_id, refs)


def thread_cached(
    path: Path,
    folder_ids: Iterable[int],
    *,
    subject_fallback: bool = True,
    skip: Container[tuple[int, int]] = (),
    together: Mapping[tuple[int, int], Hashable] | None = None,
) -> Threading[tuple[int, int]]:
    """Load and thread the cached messages of ``folder_ids`` through a read-only connection
    of its own to the cache file, so the whole job can run in a worker thread
    (``asyncio.to_thread``) while the engine keeps writing through its connection (WAL).
    ``together``: the server's own conversation of each key (``join_groups``)."""
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        cols, unread = columns_from_cache(db, folder_ids, skip)
    finally:
        db.close()
    if together:
        join_groups(cols, together)
    return thread_messages(cols, unread=unread, subject_fallback=subject_fallback)
