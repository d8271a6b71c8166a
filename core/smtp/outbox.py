"""The outbox: a message is on disk before the first attempt and leaves only once it is sent.

Layout, per account, under ``paths.data_dir()/outbox/<account>/``::

    items/<id>/message.eml   what is submitted (CRLF, no Bcc)
    items/<id>/copy.eml      the copy for Sent when it differs (with Bcc); optional
    items/<id>/meta.json     envelope, state, attempts, errors (replaced atomically)
    items/<id>/lock          flock()ed while a process works on the item
    sent.journal             "<time>\\t<Message-ID>\\t<recipient>" per accepted recipient
    tmp/                     items being written; renamed into items/ when complete

Rules that make "never lost, never twice" hold across crashes and between processes (the app,
``kittiwake send`` and ``kittiwake sync`` may all run at once):

* An item is written completely (fsync'd) in ``tmp/`` and renamed into ``items/``: it exists
  whole or not at all.
* Only the holder of the item's ``lock`` (non-blocking ``flock``) submits it, and re-reads the
  item and the journal once it holds the lock.
* The moment the server accepts, the accepted recipients are appended to ``sent.journal`` and
  fsync'd, before anything else. Recipients already in the journal for that Message-ID are
  never submitted again, whichever item (or process) carries it.
* SMTP cannot tell whether a message was delivered when the connection is lost (or the app is
  killed) after the message went out and before the server's reply. The item is marked
  ``sending`` (fsync'd) once the server is ready for the message, just before it goes; a lost
  reply, or an item found still ``sending`` by the next run, makes it ``uncertain`` ("may have
  been delivered"): kept, never sent again unless the user says so (``retry``).
* The Sent copy (``on_sent``) is a step of its own: ``pending`` once accepted, ``started`` (on
  disk) just before the callback runs, removed with the item once it returned. An item found
  ``started`` after a crash is handed over with ``possibly_done=True``: the callback checks the
  Sent folder for the Message-ID before appending, so the copy exists exactly once.
* 4xx and network failures keep the item queued, retried with exponential backoff; a 5xx marks
  it failed with the server's words and keeps it for editing. Recipients refused with 4xx while
  others were accepted stay queued on their own; 5xx refusals are reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import random
import shutil
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from kittiwake.core import paths
from kittiwake.core.config import Account
from kittiwake.core.events import (
    DeliveryUncertain,
    Event,
    MessageSent,
    OutboxChanged,
    SendFailed,
)
from kittiwake.core.files import make_durable_dirs
from kittiwake.core.message.headers import header_text
from kittiwake.core.tasks import reap

# SMTP itself (aiosmtplib, and the email package it and the header parser below pull in,
# ~13 ms of imports) loads when a message is first sent or named, not with the runner that
# every account with an [smtp] section has from the start.
if TYPE_CHECKING:
    from kittiwake.core.smtp.client import Capabilities, SmtpSession, SubmitResult

log = logging.getLogger(__name__)

FORMAT = 1
JOURNAL_KEEP = 180 * 86400
"""Journal lines older than this are dropped when the journal is compacted."""
JOURNAL_COMPACT_AT = 512 * 1024
TMP_MAX_AGE = 3600
RESCAN_EVERY = 60.0
"""The runner looks at the directory at least this often (other processes add items)."""
BUSY_RETRY = 2.0
"""How long the runner leaves an item alone that another process is sending."""


# -- items ------------------------------------------------------------------------------------


class ItemState(StrEnum):
    QUEUED = "queued"
    """Recipients remain to be submitted."""
    FAILED = "failed"
    """Refused for good; kept until the user edits, retries or discards it."""
    DELIVERED = "delivered"
    """Every recipient accepted or refused for good; maybe the Sent copy still to do."""
    UNCERTAIN = "uncertain"
    """May have been delivered: the message went out but the server's reply never came.
    Kept, and not sent again until the user says so (``retry``) or deletes it."""


class CopyState(StrEnum):
    NONE = "none"
    """No Sent copy wanted (``save_sent = false``)."""
    WAITING = "waiting"
    """Wanted once the server accepts."""
    PENDING = "pending"
    STARTED = "started"
    """``on_sent`` was called; it may or may not have finished (crash, error)."""
    DONE = "done"


@dataclass(frozen=True)
class Refusal:
    recipient: str
    code: int
    text: str

    @property
    def words(self) -> str:
        from kittiwake.core.smtp.client import words

        return words(self.code, self.text)


@dataclass(frozen=True)
class OutboxItem:
    id: str
    account: str
    message_id: str
    envelope_from: str
    recipients: tuple[str, ...]
    """Still to be submitted."""
    smtputf8: bool
    created: float
    state: ItemState = ItemState.QUEUED
    copy: CopyState = CopyState.WAITING
    attempts: int = 0
    next_attempt: float = 0.0
    error: str | None = None
    accepted: tuple[str, ...] = ()
    refused: tuple[Refusal, ...] = ()
    copy_attempts: int = 0
    next_copy_attempt: float = 0.0
    copy_error: str | None = None
    """Why the Sent copy is not saved yet."""
    context: Mapping[str, str] = field(default_factory=dict)
    """Opaque to the outbox: e.g. which message this answers, for \\Answered after sending."""
    sending: bool = False
    """The message is going out (set just before, cleared with the outcome): found set by a
    later run, the reply may have been lost with a killed process."""

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "id": self.id,
            "account": self.account,
            "message_id": self.message_id,
            "envelope_from": self.envelope_from,
            "recipients": list(self.recipients),
            "smtputf8": self.smtputf8,
            "created": self.created,
            "state": self.state.value,
            "copy": self.copy.value,
            "attempts": self.attempts,
            "next_attempt": self.next_attempt,
            "error": self.error,
            "accepted": list(self.accepted),
            "refused": [[r.recipient, r.code, r.text] for r in self.refused],
            "copy_attempts": self.copy_attempts,
            "next_copy_attempt": self.next_copy_attempt,
            "copy_error": self.copy_error,
            "context": dict(self.context),
            "sending": self.sending,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OutboxItem:
        return cls(
            id=str(data["id"]),
            account=str(data["account"]),
            message_id=str(data["message_id"]),
            envelope_from=str(data["envelope_from"]),
            recipients=tuple(str(r) for r in data["recipients"]),
            smtputf8=bool(data.get("smtputf8", False)),
            created=float(data["created"]),
            state=ItemState(data.get("state", "queued")),
            copy=CopyState(data.get("copy", "waiting")),
            attempts=int(data.get("attempts", 0)),
            next_attempt=float(data.get("next_attempt", 0.0)),
            error=data.get("error"),
            accepted=tuple(str(r) for r in data.get("accepted", ())),
            refused=tuple(Refusal(str(r), int(c), str(t)) for r, c, t in data.get("refused", ())),
            copy_attempts=int(data.get("copy_attempts", 0)),
            next_copy_attempt=float(data.get("next_copy_attempt", 0.0)),
            copy_error=data.get("copy_error"),
            context={str(k): str(v) for k, v in dict(data.get("context", {})).items()},
            sending=bool(data.get("sending", False)),
        )

    @property
    def finished(self) -> bool:
        return self.state is ItemState.DELIVERED and self.copy in (CopyState.NONE, CopyState.DONE)


# -- the store --------------------------------------------------------------------------------


def outbox_dir(account: str, root: Path | None = None) -> Path:
    return (root or paths.data_dir() / "outbox") / account


class Outbox:
    """The on-disk queue of one account. Every method is synchronous file work (fsync'd)."""

    def __init__(self, account: str, root: Path | None = None) -> None:
        self.account = account
        self.dir = outbox_dir(account, root)
        self.items_dir = self.dir / "items"
        self.tmp_dir = self.dir / "tmp"
        self.journal_path = self.dir / "sent.journal"
        for d in (self.items_dir, self.tmp_dir):
            make_durable_dirs(d)  # their names survive a power cut, as the items in them
        self._clean_tmp()
        self._compact_journal()

    # -- adding and reading --------------------------------------------------------------

    def enqueue(
        self,
        raw: bytes,
        envelope_from: str,
        recipients: tuple[str, ...] | list[str],
        *,
        message_id: str,
        smtputf8: bool = False,
        save_sent: bool,
        sent_copy: bytes | None = None,
        context: Mapping[str, str] | None = None,
    ) -> OutboxItem:
        """Write the message durably; returns once it is safe on disk. ``save_sent`` is the
        account's setting: whether a copy goes to Sent once the server accepted it."""
        if not recipients:
            raise ValueError("an outbox item needs at least one recipient")
        item_id = f"{time.time_ns():x}-{os.urandom(4).hex()}"
        item = OutboxItem(
            id=item_id,
            account=self.account,
            message_id=message_id,
            envelope_from=envelope_from,
            recipients=tuple(dict.fromkeys(recipients)),
            smtputf8=smtputf8,
            created=time.time(),
            copy=CopyState.WAITING if save_sent else CopyState.NONE,
            context=dict(context or {}),
        )
        staging = self.tmp_dir / item_id
        staging.mkdir(mode=0o700)
        _write_durably(staging / "message.eml", raw)
        if sent_copy is not None and sent_copy != raw:
            _write_durably(staging / "copy.eml", sent_copy)
        _write_durably(staging / "meta.json", _dump(item))
        _write_durably(staging / "lock", b"")
        _fsync_dir(staging)
        os.rename(staging, self.items_dir / item_id)
        _fsync_dir(self.items_dir)
        _fsync_dir(self.tmp_dir)
        return item

    def items(self) -> list[OutboxItem]:
        """Every item, oldest first."""
        out = []
        for entry in sorted(self.items_dir.iterdir()):
            item = self._read(entry)
            if item is not None:
                out.append(item)
        return out

    def get(self, item_id: str) -> OutboxItem | None:
        return self._read(self.items_dir / item_id)

    def raw(self, item_id: str) -> bytes:
        """The message as submitted."""
        return (self.items_dir / item_id / "message.eml").read_bytes()

    def sent_copy(self, item_id: str) -> bytes:
        """The message as filed in Sent (and as to re-edit a failed one: it has the Bcc)."""
        copy = self.items_dir / item_id / "copy.eml"
        return copy.read_bytes() if copy.exists() else self.raw(item_id)

    def counts(self) -> tuple[int, int, int]:
        """(queued, failed, saving); ``uncertain`` ones are counted by the runner's events."""
        queued = failed = saving = 0
        for item in self.items():
            if item.state is ItemState.QUEUED:
                queued += 1
            elif item.state is ItemState.FAILED:
                failed += 1
            elif item.state is ItemState.DELIVERED and not item.finished:
                saving += 1
        return queued, failed, saving

    # -- changing ------------------------------------------------------------------------

    def save(self, item: OutboxItem) -> None:
        """Replace the item's metadata atomically (write, fsync, rename, fsync dir)."""
        directory = self.items_dir / item.id
        if not directory.is_dir():
            raise FileNotFoundError(f"outbox item {item.id} is gone")
        tmp = directory / f"meta.json.{os.urandom(4).hex()}"
        _write_durably(tmp, _dump(item))
        os.replace(tmp, directory / "meta.json")
        _fsync_dir(directory)

    def remove(self, item_id: str) -> None:
        """Drop an item (sent and filed, or discarded by the user)."""
        directory = self.items_dir / item_id
        if not directory.exists():
            return
        grave = self.tmp_dir / f"removed-{item_id}"
        os.rename(directory, grave)
        _fsync_dir(self.items_dir)
        shutil.rmtree(grave, ignore_errors=True)

    def retry(self, item_id: str) -> OutboxItem | None:
        """A failed, uncertain (the user says: send it again) or waiting item is due now."""
        with self.claim(item_id) as got:
            item = self.get(item_id) if got else None
            if item is None:
                return None
            state = item.state
            if state in (ItemState.FAILED, ItemState.UNCERTAIN):
                state = ItemState.QUEUED
            item = replace(
                item, state=state, sending=False, next_attempt=0.0, next_copy_attempt=0.0
            )
            self.save(item)
            return item

    def settle_uncertain(self, item_id: str) -> OutboxItem | None:
        """The user will not send an uncertain item again: it is taken as delivered (its
        recipients journaled, so no item with its Message-ID sends to them again), and its
        Sent copy is still due. It may well have arrived (its reply was lost after the final
        dot): dropping it would have left a delivered message with no copy in Sent."""
        with self.claim(item_id) as got:
            item = self.get(item_id) if got else None
            if item is None or item.state is not ItemState.UNCERTAIN:
                return None
            self.record_accepted(item.message_id, item.recipients)
            item = replace(
                item,
                state=ItemState.DELIVERED,
                recipients=(),
                accepted=item.accepted + item.recipients,
                copy=CopyState.PENDING if item.copy is CopyState.WAITING else item.copy,
                sending=False,
                next_copy_attempt=0.0,
            )
            self.save(item)
            return item

    @contextlib.contextmanager
    def claim(self, item_id: str) -> Iterator[bool]:
        """Hold the item's lock (non-blocking): yields False when another process has it."""
        try:
            fd = os.open(self.items_dir / item_id / "lock", os.O_RDWR)
        except FileNotFoundError:
            yield False
            return
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield (self.items_dir / item_id / "meta.json").exists()
        finally:
            os.close(fd)  # closing drops the lock

    # -- what the server offered last time --------------------------------------------------

    def capabilities(self) -> Capabilities | None:
        """SMTPUTF8/8BITMIME/SIZE as the server offered them at the last connection, so a
        message can be built before the first attempt; None before any connection."""
        from kittiwake.core.smtp.client import Capabilities

        try:
            data = json.loads((self.dir / "capabilities.json").read_bytes())
            size = data.get("size")
            return Capabilities(
                bool(data["smtputf8"]), bool(data["eightbitmime"]), int(size) if size else None
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def save_capabilities(self, caps: Capabilities) -> None:
        if caps == self.capabilities():
            return
        data = {"smtputf8": caps.smtputf8, "eightbitmime": caps.eightbitmime, "size": caps.size}
        tmp = self.dir / f"capabilities.json.{os.urandom(4).hex()}"
        _write_durably(tmp, json.dumps(data).encode())
        os.replace(tmp, self.dir / "capabilities.json")

    # -- the journal of accepted recipients ------------------------------------------------

    def record_accepted(self, message_id: str, recipients: tuple[str, ...] | list[str]) -> None:
        """Durably note that the server accepted ``message_id`` for ``recipients``."""
        if not recipients:
            return
        now = int(time.time())
        data = "".join(
            f"{now}\t{_clean(message_id)}\t{_clean(r).lower()}\n" for r in recipients
        ).encode("utf-8")
        with self._journal(exclusive=True) as fd:
            os.lseek(fd, 0, os.SEEK_END)
            os.write(fd, data)
            os.fsync(fd)

    def sent_recipients(self, message_id: str) -> set[str]:
        """Recipients (lower case) the journal says already accepted ``message_id``."""
        wanted = _clean(message_id)
        out: set[str] = set()
        with self._journal(exclusive=False) as fd:
            for line in _read_all(fd).decode("utf-8", "replace").splitlines():
                parts = line.split("\t")
                if len(parts) == 3 and parts[1] == wanted:
                    out.add(parts[2])
        return out

    @contextlib.contextmanager
    def _journal(self, *, exclusive: bool) -> Iterator[int]:
        while True:
            created = not self.journal_path.exists()
            fd = os.open(self.journal_path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
            if created:  # its name, too, must survive a power cut before a record is in it
                _fsync_dir(self.dir)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
                # Compaction replaces the file: a lock on the old inode protects nothing.
                if os.fstat(fd).st_ino == os.stat(self.journal_path).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
        try:
            yield fd
        finally:
            os.close(fd)

    def _compact_journal(self) -> None:
        try:
            if self.journal_path.stat().st_size < JOURNAL_COMPACT_AT:
                return
        except FileNotFoundError:
            return
        cutoff = time.time() - JOURNAL_KEEP
        with self._journal(exclusive=True) as fd:
            kept = []
            for line in _read_all(fd).decode("utf-8", "replace").splitlines(keepends=True):
                stamp = line.split("\t", 1)[0]
                if not stamp.isdigit() or int(stamp) >= cutoff:
                    kept.append(line)
            tmp = self.dir / f"sent.journal.{os.urandom(4).hex()}"
            _write_durably(tmp, "".join(kept).encode("utf-8"))
            os.replace(tmp, self.journal_path)
            _fsync_dir(self.dir)

    # -- internals ------------------------------------------------------------------------

    def _read(self, directory: Path) -> OutboxItem | None:
        try:
            data = json.loads((directory / "meta.json").read_bytes())
            return OutboxItem.from_json(data)
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("outbox item %s unreadable: %s", directory.name, exc)
            return None

    def _clean_tmp(self) -> None:
        cutoff = time.time() - TMP_MAX_AGE
        for entry in self.tmp_dir.iterdir():
            try:
                if entry.name.startswith("removed-") or entry.stat().st_mtime < cutoff:
                    shutil.rmtree(entry, ignore_errors=True)
            except FileNotFoundError:
                continue


def item_subject(outbox: Outbox, item_id: str) -> str:
    """The Subject of an item's message, decoded ("" when unreadable): to name it to the user."""
    try:
        raw = outbox.sent_copy(item_id)
    except OSError:
        return ""
    from email.parser import HeaderParser
    from email.policy import compat32

    head = HeaderParser(policy=compat32).parsestr(raw.decode("utf-8", "replace"), headersonly=True)
    return header_text(str(head.get("Subject", "") or ""))


def _clean(text: str) -> str:
    return "".join(ch for ch in text if ch not in "\t\r\n")


def _dump(item: OutboxItem) -> bytes:
    return json.dumps(item.to_json(), indent=1, ensure_ascii=False).encode("utf-8")


def _read_all(fd: int) -> bytes:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)


def _write_durably(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- sending ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SentInfo:
    """What ``on_sent`` is told besides the bytes."""

    message_id: str
    possibly_done: bool
    """True when an earlier call may have filed the copy already (crash or error after it
    started): check the Sent folder for ``message_id`` before appending."""
    context: Mapping[str, str]


OnSent = Callable[[str, bytes, SentInfo], Awaitable[None]]
"""``on_sent(account, raw, info)``: file the copy in Sent (IMAP APPEND with \\Seen), set
\\Answered/$Forwarded from ``info.context``. Raise to have it retried later."""

Publish = Callable[[Event], None]


@dataclass(frozen=True)
class Backoff:
    first: float = 30.0
    factor: float = 2.0
    maximum: float = 30 * 60.0
    jitter: float = 0.1

    def delay(self, attempts: int) -> float:
        base = min(self.first * self.factor ** max(attempts - 1, 0), self.maximum)
        return base * (1 + random.uniform(0, self.jitter))  # noqa: S311 (not for secrets)


@dataclass(frozen=True)
class Outcome:
    """What happened to one item in a pass."""

    item_id: str
    message_id: str
    status: Literal["accepted", "queued", "failed", "uncertain", "filed", "busy", "gone"]
    """accepted: the server took it (maybe not for every recipient); queued: waits for a retry;
    failed: refused for good; uncertain: may have been delivered (its reply was lost), kept
    and not sent again; filed: only the Sent copy of a message sent earlier was due
    (``copy_pending`` says if it is still not saved); busy: another process holds it; gone: no
    longer in the outbox."""
    message: str = ""
    refused: tuple[Refusal, ...] = ()
    copy_pending: bool = False
    """Accepted, but the Sent copy is still to be made."""


def _smtp_session(account: Account) -> SmtpSession:
    """The runner's default connection (aiosmtplib's), loaded when a first one is opened."""
    from kittiwake.core.smtp.client import SmtpSession

    return SmtpSession(account)


class _SessionHolder:
    """One SMTP connection shared by the items of a pass, opened on first need."""

    def __init__(
        self, account: Account, factory: Callable[[Account], SmtpSession], outbox: Outbox
    ) -> None:
        self.account = account
        self.factory = factory
        self.outbox = outbox
        self.session: SmtpSession | None = None

    async def get(self) -> SmtpSession:
        if self.session is None:
            session = self.factory(self.account)
            await session.connect()
            self.session = session
            try:
                self.outbox.save_capabilities(session.capabilities)
            except OSError as exc:
                log.info("outbox %s: capabilities not saved: %s", self.account.key, exc)
        return self.session

    async def drop(self) -> None:
        session, self.session = self.session, None
        if session is not None:
            await session.close()


class OutboxRunner:
    """Sends an account's outbox: at once when asked, then with backoff until it is empty."""

    def __init__(
        self,
        account: Account,
        outbox: Outbox,
        *,
        publish: Publish | None = None,
        on_sent: OnSent | None = None,
        backoff: Backoff | None = None,
        session_factory: Callable[[Account], SmtpSession] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if account.smtp is None:
            raise ValueError(f"account {account.key} has no SMTP section")
        self.account = account
        self.outbox = outbox
        self.publish = publish or (lambda event: None)
        self.on_sent = on_sent
        self.backoff = backoff or Backoff()
        self.session_factory = session_factory or _smtp_session
        self.clock = clock
        self.last_error: str | None = None
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._published: tuple[int, int, int, str | None, int] | None = None

    # -- for the engine ----------------------------------------------------------------------

    async def enqueue(
        self,
        raw: bytes,
        envelope_from: str,
        recipients: tuple[str, ...] | list[str],
        *,
        message_id: str,
        smtputf8: bool = False,
        sent_copy: bytes | None = None,
        context: Mapping[str, str] | None = None,
    ) -> OutboxItem:
        """Put a message in the outbox (durably, off the event loop) and wake the runner."""
        assert self.account.smtp is not None
        item = await asyncio.to_thread(
            self.outbox.enqueue,
            raw,
            envelope_from,
            recipients,
            message_id=message_id,
            smtputf8=smtputf8,
            sent_copy=sent_copy,
            save_sent=self.account.smtp.save_sent,
            context=context,
        )
        self._publish_counts()
        self.wake()
        return item

    async def send_now(self, item_id: str) -> Outcome:
        """One attempt at this item at once, whatever its backoff; for ``kittiwake send``."""
        outcomes = await self.flush(force=True, only=item_id)
        if outcomes:
            return outcomes[0]
        item = self.outbox.get(item_id)
        if item is None:
            return Outcome(item_id, "", "gone", "no longer in the outbox")
        return Outcome(item_id, item.message_id, "busy", "another Kittiwake is sending it")

    async def capabilities(self, *, refresh: bool = False) -> Capabilities:
        """What the server offers, to build a message with (``build_mime``'s ``smtputf8_ok``
        and ``eightbit_ok``): remembered from the last connection, else asked now (connect
        and log in). Raises ``SmtpError`` when the server cannot be asked; building with both
        False is always safe then, except for non-ASCII addresses."""
        caps = None if refresh else self.outbox.capabilities()
        if caps is None:
            session = self.session_factory(self.account)
            await session.connect()
            try:
                caps = session.capabilities
            finally:
                await session.close()
            self.outbox.save_capabilities(caps)
        return caps

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"outbox-{self.account.key}"
            )

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await reap(task)

    def wake(self) -> None:
        """Look at the outbox now (a new message; the network or the IMAP side is back)."""
        self._wake.set()

    async def flush(self, *, force: bool = False, only: str | None = None) -> list[Outcome]:
        """One pass over the due items (every item with ``force``); for ``kittiwake sync``."""
        async with self._lock:
            holder = _SessionHolder(self.account, self.session_factory, self.outbox)
            outcomes: list[Outcome] = []
            try:
                for item in self.outbox.items():
                    if only is not None and item.id != only:
                        continue
                    if not force and not self._due(item):
                        continue
                    outcome = await self._process(item, holder, force)
                    if outcome is not None:
                        outcomes.append(outcome)
            finally:
                await holder.drop()
            self._publish_counts()
            return outcomes

    def next_due_in(self) -> float | None:
        now = self.clock()
        times = [self._due_at(item) for item in self.outbox.items()]
        due = [t for t in times if t is not None]
        return max(0.0, min(due) - now) if due else None

    # -- internals ---------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            floor = 0.0
            try:
                outcomes = await self.flush()
                if any(o.status == "busy" for o in outcomes):
                    floor = BUSY_RETRY  # another process is on it: do not spin meanwhile
            except Exception:
                log.exception("outbox %s: pass failed", self.account.key)
                floor = self.backoff.first
            delay = self.next_due_in()
            delay = RESCAN_EVERY if delay is None else min(delay, RESCAN_EVERY)
            # Not ``asyncio.wait_for``: cancelled just as the wake-up arrives, it returns
            # instead of raising (Python 3.11), and ``stop`` then waited out another pass.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(delay, floor, 0.01)):
                    await self._wake.wait()

    def _due_at(self, item: OutboxItem) -> float | None:
        times = []
        if item.state is ItemState.QUEUED:
            times.append(item.next_attempt)
        if item.copy in (CopyState.PENDING, CopyState.STARTED) and self.on_sent is not None:
            times.append(item.next_copy_attempt)
        if item.finished:
            times.append(0.0)  # left behind by a crash between filing and removal
        return min(times) if times else None

    def _due(self, item: OutboxItem) -> bool:
        at = self._due_at(item)
        return at is not None and at <= self.clock()

    async def _process(
        self, listed: OutboxItem, holder: _SessionHolder, force: bool
    ) -> Outcome | None:
        with self.outbox.claim(listed.id) as got:
            if not got:
                return Outcome(
                    listed.id, listed.message_id, "busy", "another Kittiwake is sending it"
                )
            item = self.outbox.get(listed.id)  # what the last holder left
            if item is None:
                return None
            if not force and not self._due(item):
                return None
            outcome: Outcome | None = None
            if item.state is ItemState.QUEUED:
                item, outcome = await self._deliver(item, holder)
            copied = False
            if item.copy in (CopyState.PENDING, CopyState.STARTED):  # accepted at least once
                item = await self._file_copy(item, force)
                copied = True
            if item.finished:
                self.outbox.remove(item.id)
            if outcome is None:
                if not copied:
                    return None
                saved = item.copy is CopyState.DONE
                return Outcome(
                    item.id,
                    item.message_id,
                    "filed",
                    "the copy in Sent is saved" if saved else (item.copy_error or ""),
                    copy_pending=not saved,
                )
            return replace(
                outcome,
                copy_pending=outcome.status == "accepted" and not item.finished,
            )

    async def _deliver(
        self, item: OutboxItem, holder: _SessionHolder
    ) -> tuple[OutboxItem, Outcome]:
        from kittiwake.core.smtp.client import (
            SmtpError,
            SmtpOutcomeUnknown,
            SmtpPermanentError,
            SmtpRecipientsDeferred,
            SubmitResult,
        )

        done = self.outbox.sent_recipients(item.message_id)
        todo = tuple(r for r in item.recipients if r.lower() not in done)
        if not todo:
            # Accepted before (by us before a crash, or by another item with this Message-ID).
            log.info("outbox %s: %s already accepted; not sent again", item.account, item.id)
            item = self._after_acceptance(item, item.recipients, (), ())
            self.outbox.save(item)
            return item, Outcome(
                item.id, item.message_id, "accepted", "already sent; not sent again"
            )
        if item.sending:  # an earlier run died while the message was going out
            return self._uncertain(
                item,
                "Kittiwake stopped while the message was being sent, before the server "
                "confirmed it; it may have been delivered",
            )

        def going() -> None:  # persist first: a kill from here on leaves it "sending"
            self.outbox.save(replace(item, sending=True))

        try:
            session = await holder.get()
            result = await session.submit(
                item.envelope_from,
                todo,
                self.outbox.raw(item.id),
                smtputf8=item.smtputf8,
                on_data=going,
            )
        except SmtpOutcomeUnknown as exc:
            await holder.drop()
            return self._uncertain(item, exc.message)
        except SmtpRecipientsDeferred as exc:
            await holder.drop()
            return self._refusals(item, SubmitResult((), exc.refused), exc.message)
        except SmtpPermanentError as exc:
            await holder.drop()
            if exc.refused:
                return self._refusals(item, SubmitResult((), exc.refused), exc.message)
            return self._failed(item, exc.message)
        except SmtpError as exc:
            await holder.drop()
            return self._deferred(item, exc.message)
        except OSError as exc:  # reading the item's file
            await holder.drop()
            return self._deferred(item, f"outbox item {item.id} unreadable: {exc}")
        except Exception as exc:  # a bug must not spin: back off like any other failure
            log.exception("outbox %s: sending %s failed", item.account, item.id)
            await holder.drop()
            return self._deferred(item, f"sending failed unexpectedly: {exc}")
        # Accepted: make it durable before anything else.
        self.outbox.record_accepted(item.message_id, result.accepted)
        return self._refusals(item, result, "")

    def _refusals(
        self, item: OutboxItem, result: SubmitResult, message: str
    ) -> tuple[OutboxItem, Outcome]:
        """Apply a submission's result: accepted ones, refused for good, refused for now."""
        from kittiwake.core.smtp.client import words

        permanent = tuple(
            Refusal(r, code, text) for r, (code, text) in result.refused.items() if code >= 500
        )
        later = tuple(r for r, (code, _) in result.refused.items() if code < 500)
        accepted_now = result.accepted
        if accepted_now or (item.accepted and not later):
            item = self._after_acceptance(item, accepted_now, permanent, later)
            if later:
                said = "; ".join(
                    f"{r}: {words(*result.refused[r])}" for r in later if r in result.refused
                )
                item = self._schedule(item, f"some recipients refused for now: {said}")
            self.outbox.save(item)
            self.publish(
                MessageSent(
                    self.account.key,
                    item.message_id,
                    tuple((r.recipient, r.words) for r in permanent),
                    item.context,
                )
            )
            text = "accepted" + (
                "; refused: " + "; ".join(f"{r.recipient}: {r.words}" for r in permanent)
                if permanent
                else ""
            )
            if later:
                text += f"; {len(later)} recipient(s) will be tried again"
            return item, Outcome(item.id, item.message_id, "accepted", text, permanent)
        if later:  # nobody accepted; some only for now
            item = replace(item, refused=item.refused + permanent, recipients=later)
            return self._deferred(item, message)
        item = replace(item, refused=item.refused + permanent)
        return self._failed(item, message)

    def _after_acceptance(
        self,
        item: OutboxItem,
        accepted: tuple[str, ...],
        permanent: tuple[Refusal, ...],
        later: tuple[str, ...],
    ) -> OutboxItem:
        copy = CopyState.PENDING if item.copy is CopyState.WAITING else item.copy
        return replace(
            item,
            state=ItemState.QUEUED if later else ItemState.DELIVERED,
            recipients=later,
            accepted=item.accepted + tuple(accepted),
            refused=item.refused + permanent,
            copy=copy,
            error=None,
            sending=False,
        )

    def _schedule(self, item: OutboxItem, error: str) -> OutboxItem:
        attempts = item.attempts + 1
        return replace(
            item,
            attempts=attempts,
            next_attempt=self.clock() + self.backoff.delay(attempts),
            error=error,
        )

    def _deferred(self, item: OutboxItem, message: str) -> tuple[OutboxItem, Outcome]:
        item = self._schedule(item, message)
        self.outbox.save(item)
        self.last_error = message
        log.info("outbox %s: %s waits: %s", item.account, item.id, message)
        return item, Outcome(item.id, item.message_id, "queued", message)

    def _uncertain(self, item: OutboxItem, message: str) -> tuple[OutboxItem, Outcome]:
        item = replace(
            item,
            state=ItemState.UNCERTAIN,
            sending=False,
            error=message,
            attempts=item.attempts + 1,
        )
        self.outbox.save(item)
        self.last_error = message
        log.warning("outbox %s: %s may have been delivered: %s", item.account, item.id, message)
        self.publish(DeliveryUncertain(self.account.key, item.message_id, message, item.id))
        return item, Outcome(item.id, item.message_id, "uncertain", message)

    def _failed(self, item: OutboxItem, message: str) -> tuple[OutboxItem, Outcome]:
        item = replace(item, state=ItemState.FAILED, error=message, attempts=item.attempts + 1)
        self.outbox.save(item)
        log.info("outbox %s: %s refused: %s", item.account, item.id, message)
        self.publish(SendFailed(self.account.key, item.message_id, message, item.id))
        return item, Outcome(item.id, item.message_id, "failed", message, item.refused)

    async def _file_copy(self, item: OutboxItem, force: bool) -> OutboxItem:
        if self.on_sent is None:
            return item
        if not force and item.next_copy_attempt > self.clock():
            return item
        possibly_done = item.copy is CopyState.STARTED
        item = replace(item, copy=CopyState.STARTED)
        self.outbox.save(item)  # before the callback: a crash inside it is seen on restart
        info = SentInfo(item.message_id, possibly_done, item.context)
        try:
            raw = self.outbox.sent_copy(item.id)
            await self.on_sent(self.account.key, raw, info)
        except Exception as exc:
            attempts = item.copy_attempts + 1
            log.info("outbox %s: Sent copy of %s not saved yet: %s", item.account, item.id, exc)
            item = replace(
                item,
                copy_attempts=attempts,
                next_copy_attempt=self.clock() + self.backoff.delay(attempts),
                copy_error=f"the Sent copy is not saved yet: {getattr(exc, 'message', exc)}",
            )
            self.outbox.save(item)
            return item
        item = replace(item, copy=CopyState.DONE, copy_error=None)
        self.outbox.save(item)
        return item

    def _publish_counts(self) -> None:
        items = self.outbox.items()
        queued = [i for i in items if i.state is ItemState.QUEUED]
        failed = sum(1 for i in items if i.state is ItemState.FAILED)
        saving = sum(1 for i in items if i.state is ItemState.DELIVERED and not i.finished)
        uncertain = sum(1 for i in items if i.state is ItemState.UNCERTAIN)
        reason = next((i.error for i in queued if i.error), None)
        retry_in = None
        if queued:
            retry_in = max(0.0, min(i.next_attempt for i in queued) - self.clock())
        state = (len(queued), failed, saving, reason, uncertain)
        if state == self._published and retry_in is None:
            return  # nothing new to say
        self._published = state
        self.publish(
            OutboxChanged(
                self.account.key, len(queued), failed, saving, reason, retry_in, uncertain
            )
        )
