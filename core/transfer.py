"""Export and import: messages to ``.eml`` files or one mbox file; an mbox file or a
Maildir into a folder (APPEND on IMAP), never twice.

A message is already in the folder when one there has its Message-ID and its bytes (the
same size, else the same SHA-256 once fetched); a message without a Message-ID is compared
by its bytes with those of the same size. Bytes are compared without their Status and
X-Status lines (an mbox file's bookkeeping, ``core/message/mbox.py``). So importing the same
file again adds nothing, and an export imported elsewhere gives the same messages once.

Flags travel: an mbox export writes them as mutt's Status lines and the INTERNALDATE as the
separator's date, and an import reads them back (a Maildir's from its ``:2,`` info letters).
An import appends in batches (``MailStore.append_many``: one MULTIAPPEND on IMAP) of at most
``BATCH_BYTES`` and ``BATCH_COUNT``, reporting progress after each.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from email.policy import compat32
from pathlib import Path

from kittiwake.core.errors import KittiwakeError
from kittiwake.core.files import PRIVATE_FILE, make_private_dirs
from kittiwake.core.message.ids import normalize_msgid
from kittiwake.core.message.mbox import mbox_entry, read_status, split_mbox_dated
from kittiwake.core.message.mime import safe_filename
from kittiwake.core.models import ANSWERED, DELETED, DRAFT, FLAGGED, SEEN
from kittiwake.core.store import MailStore

#: Maildir info letters (``:2,DFRST``) as IMAP flags (P, "passed", has none).
_MAILDIR_FLAGS = {"S": SEEN, "F": FLAGGED, "R": ANSWERED, "T": DELETED, "D": DRAFT}
#: A batch of an import: one command of at most this many bytes and messages (a server's
#: limit on one command is commonly tens of megabytes; a lost batch is resent whole).
BATCH_BYTES = 4 * 1024 * 1024
BATCH_COUNT = 500


@dataclass(frozen=True, slots=True)
class Incoming:
    raw: bytes
    flags: frozenset[str]
    when: datetime | None = None
    """The INTERNALDATE to give it (the mbox separator's date), where known."""


@dataclass(slots=True)
class ImportResult:
    added: int = 0
    skipped: int = 0
    """Already in the folder (or twice in the source)."""

    def describe(self, folder: str) -> str:
        said = f"Imported {self.added:,} message{'s' if self.added != 1 else ''} into {folder}"
        return f"{said}; {self.skipped:,} already there" if self.skipped else said


def _crlf(raw: bytes) -> bytes:
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def message_id_of(raw: bytes) -> str | None:
    head = BytesHeaderParser(policy=compat32).parsebytes(raw[: 256 * 1024])
    value = head.get("Message-ID")
    return normalize_msgid(str(value)) if value is not None else None


def read_source(path: Path) -> list[Incoming]:
    """The messages of an mbox file or a Maildir (``cur`` and ``new``), in order, with
    CRLF line ends as IMAP wants them."""
    if path.is_dir():
        if not (path / "cur").is_dir() and not (path / "new").is_dir():
            raise KittiwakeError(f"{path} is a directory but not a Maildir (no cur/ or new/)")
        found: list[tuple[float, str, Incoming]] = []
        for sub in ("cur", "new"):
            folder = path / sub
            if not folder.is_dir():
                continue
            for entry in folder.iterdir():
                if entry.name.startswith(".") or not entry.is_file():
                    continue
                info = entry.name.partition(":2,")[2]
                flags = frozenset(_MAILDIR_FLAGS[c] for c in info if c in _MAILDIR_FLAGS)
                raw = _crlf(entry.read_bytes())
                mtime = entry.stat().st_mtime
                when = datetime.fromtimestamp(mtime, UTC)
                found.append((mtime, entry.name, Incoming(raw, flags, when)))
        return [item for *_, item in sorted(found, key=lambda f: (f[0], f[1]))]
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KittiwakeError(f"{path}: cannot be read ({exc.strerror})") from None
    if data and not data.startswith(b"From "):
        raise KittiwakeError(f"{path} is not an mbox file (it does not start with 'From ')")
    out: list[Incoming] = []
    for stored, dated in split_mbox_dated(data):
        raw, flags = read_status(stored)
        out.append(Incoming(raw, flags, dated))
    return out


def _digest(raw: bytes) -> bytes:
    """SHA-256 of a message as compared for duplicates: CRLF, no Status lines."""
    return hashlib.sha256(read_status(_crlf(raw))[0]).digest()


async def import_messages(
    store: MailStore,
    folder: str,
    messages: Iterable[Incoming],
    progress: Callable[[int, int], None] | None = None,
) -> ImportResult:
    """APPEND every message not already in ``folder`` (see the module's docstring); the
    folder is synced first so the cache knows what it holds."""
    items = list(messages)
    result = ImportResult()
    with contextlib.suppress(KittiwakeError):  # offline: the cache is all there is to compare
        await store.sync_folder(folder)
    cache = store.cache
    summaries = cache.summaries(folder, cache.uids(folder)).values()
    by_id: dict[str, list[tuple[int, int]]] = {}
    by_size: dict[int, list[int]] = {}
    for s in summaries:
        mid = normalize_msgid(s.envelope.message_id)
        if mid is not None:
            by_id.setdefault(mid, []).append((s.uid, s.size))
        by_size.setdefault(s.size, []).append(s.uid)
    added_hashes: set[bytes] = set()
    fetched: dict[int, bytes] = {}

    async def digest_of(uid: int) -> bytes | None:
        if uid not in fetched:
            body = await store.fetch_body(folder, uid)
            if body is None:
                return None
            fetched[uid] = _digest(body)
        return fetched[uid]

    async def already_there(item: Incoming, digest: bytes) -> bool:
        if digest in added_hashes:
            return True
        mid = message_id_of(item.raw)
        if mid is not None:
            for uid, size in by_id.get(mid, []):
                if size == len(item.raw) or await digest_of(uid) == digest:
                    return True
            return False
        for uid in by_size.get(len(item.raw), []):
            if await digest_of(uid) == digest:
                return True
        return False

    batch: list[Incoming] = []
    size = 0

    async def send(done: int) -> None:
        nonlocal size
        if batch:
            await store.append_many(folder, [(b.raw, b.flags, b.when) for b in batch])
            result.added += len(batch)
            batch.clear()
            size = 0
        if progress is not None:
            progress(done, len(items))

    for done, item in enumerate(items, start=1):
        digest = _digest(item.raw)
        if await already_there(item, digest):
            result.skipped += 1
            if progress is not None and done % BATCH_COUNT == 0:
                progress(done, len(items))  # a re-run finds them all, slowly when fetching
        else:
            if batch and (size + len(item.raw) > BATCH_BYTES or len(batch) >= BATCH_COUNT):
                await send(done - 1)
            batch.append(item)
            size += len(item.raw)
            added_hashes.add(digest)
    await send(len(items))
    return result


# -- export ------------------------------------------------------------------------------------


def _private_new_file(path: Path) -> int:
    """A new file, 0600 (mail is private), never over an existing one."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    return os.open(path, flags, PRIVATE_FILE)


def write_mbox(
    path: Path, messages: Iterable[tuple[bytes, Collection[str], datetime | None]]
) -> int:
    """Write a new mbox file at ``path`` (an existing file is refused, never overwritten)
    of (raw, flags, INTERNALDATE): the flags as Status lines, the date on the separator."""
    make_private_dirs(path.parent)
    count = 0
    with os.fdopen(_private_new_file(path), "wb") as fh:
        for raw, flags, when in messages:
            fh.write(mbox_entry(raw, flags, when))
            count += 1
    return count


def eml_name(n: int, subject: str) -> str:
    return safe_filename(f"{n:04d} {subject[:60]}".strip() + ".eml", f"{n:04d}.eml")


def write_eml(directory: Path, messages: Iterable[tuple[str, bytes]]) -> list[Path]:
    """One ``.eml`` file per (subject, raw) in ``directory``, numbered in order, each the
    server's exact bytes."""
    make_private_dirs(directory)
    written: list[Path] = []
    for n, (subject, raw) in enumerate(messages, start=1):
        target = directory / eml_name(n, subject)
        k = 1
        while target.exists():
            target = directory / eml_name(n, f"{subject} ({k})")
            k += 1
        with os.fdopen(_private_new_file(target), "wb") as fh:
            fh.write(raw)
        written.append(target)
    return written
