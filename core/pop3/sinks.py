"""Where downloaded POP3 mail goes: the local Maildir, or a folder of another mail store.

A sink delivers in two phases, so that the download is exactly-once whatever fails when:

1. ``spool()``: the message is streamed from RETR into a spool file; the downloader fsyncs it
   (``SpoolFile.sync``, in a thread).
2. ``prepare(spools)`` returns one *token* per message: what the sink needs to tell later
   whether the delivery happened. The downloader records the tokens in the ledger
   (``committing``) and only then calls
3. ``commit(spools)``: the delivery proper (Maildir: rename into ``new/`` and fsync the
   directory; a store: ``append``), after which the ledger says ``stored``.

After a crash between 2 and the ledger's ``stored``, ``recover(token, size)`` answers
whether the message arrived (then it is ``stored`` and never fetched again) or not (then the
row is forgotten and the message is downloaded again, once).

* ``MaildirSink``: the token is the Maildir key. Recovery finishes a delivery whose complete
  spool file is still in ``tmp/``, or finds the key in any folder (the user may have moved
  the message already), else reports it undelivered.
* ``StoreSink``: the token records the store's mark of the folder before the append
  (``MailStore.append_mark``; IMAP: UIDVALIDITY and UIDNEXT), the size and a SHA-256 of the
  message with line ends normalised to CRLF (servers may store bare LFs as CRLF). Recovery
  (``MailStore.find_appended``) looks only at messages that arrived after the mark with a
  matching size, and compares their content: no marker header or keyword is added to the
  user's mail. Tokens written before the mark (``uidvalidity``/``uidnext``) stay readable.
"""

from __future__ import annotations

import abc
import asyncio
import hashlib
import json
import logging
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Generic, Protocol, TypeVar

from kittiwake.core.maildir import INBOX, LazyFile, Maildir, MaildirError, Spool
from kittiwake.core.store import MailStore

__all__ = ["MaildirSink", "Sink", "SpoolFile", "StoreSink"]

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


# -- a folder of a mail store (deliver_to) --------------------------------------------------


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


class StoreSink(Sink[_FileSpool]):
    """Append each message to ``folder`` of a mail store (``deliver_to``: a folder of an IMAP
    account), exactly once, through the store's own API (``MailStore.append``).

    Spool files live in ``spool_dir`` (under the XDG data dir). The folder is created when
    missing (``append_mark``). Messages are appended without flags (unread) and with the
    server's date.
    """

    def __init__(self, store: MailStore, folder: str, spool_dir: Path) -> None:
        self.store = store
        self.folder = folder
        self.spool_dir = spool_dir
        self.description = f"folder {folder} of {store.name}"

    async def begin_run(self) -> None:
        # Spool files are deleted once appended; any left are from an interrupted run, and
        # recovery never needs them (it compares with what the store holds).
        def clean() -> None:
            if self.spool_dir.is_dir():
                for path in self.spool_dir.glob("spool-*"):
                    path.unlink(missing_ok=True)

        await asyncio.to_thread(clean)

    def spool(self) -> _FileSpool:
        self.spool_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        return _FileSpool(self.spool_dir / f"spool-{secrets.token_hex(12)}")

    async def prepare(self, spools: Sequence[_FileSpool]) -> list[str]:
        mark = await self.store.append_mark(self.folder)
        return [
            json.dumps(
                {
                    "folder": self.folder,
                    "mark": mark,
                    "size": s.size,
                    "nsize": s.hasher.size,
                    "sha256": s.hasher.hexdigest(),
                },
                sort_keys=True,
            )
            for s in spools
        ]

    async def commit(self, spools: Sequence[_FileSpool]) -> list[str]:
        out: list[str] = []
        for spool in spools:
            data = await asyncio.to_thread(spool.path.read_bytes)
            uid = await self.store.append(self.folder, data, frozenset())
            out.append("" if uid is None else str(uid))
            spool.discard()
        return out

    async def recover(self, token: str, size: int) -> str | None:
        try:
            info = json.loads(token)
            if "mark" in info:
                mark = str(info["mark"])
            else:  # written before the store API: the same mark, in two fields
                mark = f"{int(info['uidvalidity'])}:{int(info['uidnext'])}"
            sizes = {int(info["size"]), int(info["nsize"])}
            digest = str(info["sha256"])
            folder = str(info["folder"])
        except (ValueError, KeyError, TypeError):
            log.warning("unreadable deliver_to ledger token; downloading again")
            return None

        def matches(body: bytes) -> bool:
            return normalized_digest(body)[0] == digest

        return await self.store.find_appended(folder, mark, sizes, matches)


def discard_all(spools: Sequence[SpoolFile]) -> None:
    for spool in spools:
        try:
            spool.discard()
        except (OSError, MaildirError):  # pragma: no cover - best effort
            log.exception("could not remove a spool file")
