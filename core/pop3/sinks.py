"""Where downloaded POP3 mail goes: the local Maildir, or a folder of an IMAP account.

A sink delivers in two phases, so that the download is exactly-once whatever fails when:

1. ``spool()``: the message is streamed from RETR into a spool file; the downloader fsyncs it
   (``SpoolFile.sync``, in a thread).
2. ``prepare(spools)`` returns one *token* per message: what the sink needs to tell later
   whether the delivery happened. The downloader records the tokens in the ledger
   (``committing``) and only then calls
3. ``commit(spools)``: the delivery proper (Maildir: rename into ``new/`` and fsync the
   directory; IMAP: APPEND), after which the ledger says ``stored``.

After a crash between 2 and the ledger's ``stored``, ``recover(token, size)`` answers
whether the message arrived (then it is ``stored`` and never fetched again) or not (then the
row is forgotten and the message is downloaded again, once).

* ``MaildirSink``: the token is the Maildir key. Recovery finishes a delivery whose complete
  spool file is still in ``tmp/``, or finds the key in any folder (the user may have moved
  the message already), else reports it undelivered.
* ``ImapFolderSink``: the token records the folder's UIDVALIDITY and UIDNEXT before the
  APPEND, the size and a SHA-256 of the message with line ends normalised to CRLF (servers
  may store bare LFs as CRLF). Recovery looks only at messages that arrived after that
  UIDNEXT with a matching size, and compares their content: no marker header or keyword is
  added to the user's mail.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import hashlib
import json
import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Generic, Protocol, TypeVar

from kittiwake.core.config import Account
from kittiwake.core.errors import CommandFailed, KittiwakeError
from kittiwake.core.imap.connection import ImapConnection
from kittiwake.core.imap.parser import Fetch, Search, Status, parse_untagged
from kittiwake.core.maildir import INBOX, LazyFile, Maildir, MaildirError, Spool
from kittiwake.core.message import utf7

__all__ = [
    "ImapConnector",
    "ImapFolderSink",
    "MaildirSink",
    "Sink",
    "SpoolFile",
    "imap_connector",
]

log = logging.getLogger(__name__)


class SpoolFile(Protocol):
    """A message being received: RETR writes into it; ``sync`` makes it durable (blocking)."""

    @property
    def size(self) -> int: ...

    def write(self, data: bytes | bytearray, /) -> object: ...

    def sync(self) -> None: ...

    def discard(self) -> None: ...


S = TypeVar("S", bound=SpoolFile)


class Sink(abc.ABC, Generic[S]):
    """Two-phase delivery of downloaded messages (see the module docstring)."""

    description: str = ""

    async def begin_run(self) -> None:
        """Called once at the start of each download run, before any recovery (the ledger's
        lock is held: no other run of this account is delivering)."""

    @abc.abstractmethod
    def spool(self) -> S:
        """A new spool file for one message."""

    @abc.abstractmethod
    async def prepare(self, spools: Sequence[S]) -> list[str]:
        """One token per spool, recorded in the ledger before ``commit``."""

    @abc.abstractmethod
    async def commit(self, spools: Sequence[S]) -> list[str]:
        """Deliver durably (in order); returns where each message went (a locator)."""

    @abc.abstractmethod
    async def recover(self, token: str, size: int) -> str | None:
        """After a crash: the locator if the delivery with ``token`` happened, else None."""

    async def close(self) -> None:
        """Release connections; the sink may be used again afterwards."""


# -- Maildir ---------------------------------------------------------------------------------


class MaildirSink(Sink[Spool]):
    """Deliver into the inbox of a local Maildir++ tree (the default)."""

    def __init__(self, maildir: Maildir, folder: str = INBOX) -> None:
        self.maildir = maildir
        self.folder = folder
        self.description = f"{maildir.root}"
        self._keys: set[str] | None = None

    async def begin_run(self) -> None:
        self._keys = None
        await asyncio.to_thread(self.maildir.clean_tmp)

    def spool(self) -> Spool:
        return self.maildir.spool(self.folder)

    async def prepare(self, spools: Sequence[Spool]) -> list[str]:
        return [s.key for s in spools]

    async def commit(self, spools: Sequence[Spool]) -> list[str]:
        files = await asyncio.to_thread(self.maildir.commit, list(spools))
        return [f.key for f in files]

    async def recover(self, token: str, size: int) -> str | None:
        def check() -> str | None:
            done = self.maildir.recover_spool(self.folder, token, size)
            if done is not None:
                return done.key
            if self._keys is None:  # one scan of every folder per run, however many rows
                self._keys = {k for f in self.maildir.folders() for k in self.maildir.keys(f)}
            return token if token in self._keys else None

        try:
            return await asyncio.to_thread(check)
        except ValueError:
            log.warning("ledger token %r is not a Maildir key; downloading again", token)
            return None


# -- IMAP folder -----------------------------------------------------------------------------

ImapConnector = Callable[[], Awaitable[ImapConnection]]
"""Opens and logs in a fresh IMAP connection (``imap_connector(account)`` makes one)."""


def imap_connector(account: Account) -> ImapConnector:
    """A connector for an IMAP account of the config, with its TLS and login rules."""
    from kittiwake.core.imap.session import imap_session

    if account.imap is None:
        raise ValueError(f"account {account.key} has no IMAP section")

    async def connect() -> ImapConnection:
        return await imap_session(account)

    return connect


class _CrlfHasher:
    """SHA-256 and size of a byte stream with every bare LF counted as CRLF."""

    def __init__(self) -> None:
        self._sha = hashlib.sha256()
        self.size = 0
        self._last_cr = False

    def update(self, data: bytes | bytearray) -> None:
        if not data:
            return
        start = 0
        if self._last_cr and data[0] == 0x0A:
            self._sha.update(b"\n")
            self.size += 1
            start = 1
        body = data[start:]
        if body:
            normal = body.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
            # A lone CR at the end of the previous chunk followed by LF was handled above;
            # a chunk ending in CR may be the first half of a CRLF split across chunks.
            self._sha.update(normal)
            self.size += len(normal)
        self._last_cr = data[-1] == 0x0D

    def hexdigest(self) -> str:
        return self._sha.hexdigest()


def normalized_digest(data: bytes) -> tuple[str, int]:
    hasher = _CrlfHasher()
    hasher.update(data)
    return hasher.hexdigest(), hasher.size


class _FileSpool(LazyFile):
    """A spool file that also hashes what it is given (for the recovery token)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.hasher = _CrlfHasher()

    def write(self, data: bytes | bytearray, /) -> int:
        written = super().write(data)
        self.hasher.update(data)
        return written


class ImapFolderSink(Sink[_FileSpool]):
    """Append each message to ``folder`` of an IMAP account (``deliver_to``), exactly once.

    Spool files live in ``spool_dir`` (under the XDG data dir); one IMAP connection is
    opened lazily through ``connect`` and closed by ``close()``. The folder is created when
    missing. Messages are appended without flags (unread) and with the server's date.
    """

    def __init__(self, connect: ImapConnector, folder: str, spool_dir: Path) -> None:
        self._connect = connect
        self.folder = folder
        self.mailbox = utf7.encode(folder)
        self.spool_dir = spool_dir
        self.description = f"IMAP folder {folder}"
        self._conn: ImapConnection | None = None

    async def _connection(self) -> ImapConnection:
        conn = self._conn
        if conn is None or not conn.is_connected:
            conn = self._conn = await self._connect()
        return conn

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.logout()

    async def begin_run(self) -> None:
        # Spool files are deleted once appended; any left are from an interrupted run, and
        # recovery never needs them (it compares with what the server holds).
        def clean() -> None:
            if self.spool_dir.is_dir():
                for path in self.spool_dir.glob("spool-*"):
                    path.unlink(missing_ok=True)

        await asyncio.to_thread(clean)

    def spool(self) -> _FileSpool:
        self.spool_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        return _FileSpool(self.spool_dir / f"spool-{secrets.token_hex(12)}")

    async def _status(self, conn: ImapConnection, mailbox: str) -> tuple[int, int]:
        result = await conn.status(mailbox, ["UIDNEXT", "UIDVALIDITY"], timeout=None)
        for raw in result.untagged:
            with contextlib.suppress(ValueError):
                item = parse_untagged(raw)
                if isinstance(item, Status) and item.uidnext and item.uidvalidity:
                    return item.uidvalidity, item.uidnext
        raise KittiwakeError(f"{conn.label} did not report UIDNEXT for {utf7.decode(mailbox)}")

    async def _status_or_create(self, conn: ImapConnection, mailbox: str) -> tuple[int, int]:
        try:
            return await self._status(conn, mailbox)
        except CommandFailed:
            log.info("%s: creating %s for deliver_to", conn.label, utf7.decode(mailbox))
            await conn.create(mailbox)
            return await self._status(conn, mailbox)

    async def prepare(self, spools: Sequence[_FileSpool]) -> list[str]:
        conn = await self._connection()
        uidvalidity, uidnext = await self._status_or_create(conn, self.mailbox)
        return [
            json.dumps(
                {
                    "folder": self.folder,
                    "uidvalidity": uidvalidity,
                    "uidnext": uidnext,
                    "size": s.size,
                    "nsize": s.hasher.size,
                    "sha256": s.hasher.hexdigest(),
                },
                sort_keys=True,
            )
            for s in spools
        ]

    async def commit(self, spools: Sequence[_FileSpool]) -> list[str]:
        conn = await self._connection()
        out: list[str] = []
        for spool in spools:
            data = await asyncio.to_thread(spool.path.read_bytes)
            result = await conn.append(self.mailbox, data)
            if not result.ok:  # pragma: no cover - append() raises on NO/BAD
                raise CommandFailed(f"{conn.label} refused APPEND: {result.text}")
            code = result.code or ""
            out.append(code.removeprefix("APPENDUID ") if code.startswith("APPENDUID ") else "")
            spool.discard()
        return out

    async def recover(self, token: str, size: int) -> str | None:
        try:
            info = json.loads(token)
            uidvalidity, uidnext = int(info["uidvalidity"]), int(info["uidnext"])
            sizes = {int(info["size"]), int(info["nsize"])}
            digest = str(info["sha256"])
            mailbox = utf7.encode(str(info["folder"]))
        except (ValueError, KeyError, TypeError):
            log.warning("unreadable deliver_to ledger token; downloading again")
            return None
        conn = await self._connection()
        now_validity, now_next = await self._status_or_create(conn, mailbox)
        if now_validity != uidvalidity:
            log.warning("%s: UIDVALIDITY changed; cannot tell whether a message arrived", mailbox)
            return None
        if now_next <= uidnext:
            return None
        await conn.examine(mailbox)
        try:
            result = await conn.uid_search(
                "UID",
                f"{uidnext}:*",
                "LARGER",
                str(min(sizes) - 1),
                "SMALLER",
                str(max(sizes) + 1),
            )
            candidates: list[int] = []
            for raw in result.untagged:
                with contextlib.suppress(ValueError):
                    item = parse_untagged(raw)
                    if isinstance(item, Search):
                        candidates.extend(u for u in item.uids if u >= uidnext)
            for uid in sorted(candidates):
                fetched = await conn.uid_fetch(str(uid), "(UID BODY.PEEK[])")
                for raw in fetched.untagged:
                    with contextlib.suppress(ValueError):
                        item = parse_untagged(raw)
                        if isinstance(item, Fetch) and item.uid == uid:
                            body = item.section("")
                            if body is not None and normalized_digest(body)[0] == digest:
                                return f"{uidvalidity}:{uid}"
        finally:
            with contextlib.suppress(Exception):
                await conn.unselect()
        return None


def discard_all(spools: Sequence[SpoolFile]) -> None:
    for spool in spools:
        try:
            spool.discard()
        except (OSError, MaildirError):  # pragma: no cover - best effort
            log.exception("could not remove a spool file")
