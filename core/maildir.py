"""A local Maildir++ tree: the master copy of a POP3 account's mail.

The layout is the one mutt, Dovecot (``LAYOUT=maildir++``) and notmuch read: the top level
is the inbox (``cur/``, ``new/``, ``tmp/``), every other folder is a directory ``.NAME`` next
to them holding its own ``cur/new/tmp`` and an empty ``maildirfolder`` file. Sub-folders are
dot-separated (``.Lists.python`` is ``Lists/python``) and names are modified UTF-7 on disk,
as Dovecot writes them.

Delivery is the standard one (https://cr.yp.to/proto/maildir.html): write a file with a
unique name in ``tmp/``, fsync it, rename it into ``new/``, fsync ``new/``. Once a delivery
returns, the message survives a crash or a power loss. Unique names are
``SECONDS.MusecPpidQcounterRrandom.HOST``: nothing from a server (no UIDL, no subject, no
folder name from the wire) ever becomes part of a path, and every key or folder name given
to this module is checked before it is joined to one.

Flags live in the file name's info part (``KEY:2,FRS``): ``D`` \\Draft, ``F`` \\Flagged,
``P`` $Forwarded (passed), ``R`` \\Answered, ``S`` \\Seen, ``T`` \\Deleted (trashed).
Lower-case letters (Dovecot keywords) are kept as they are when flags change. Setting flags
is a rename into ``cur/``; moving to another folder is a rename that keeps the key, so a
message is found by its key in any folder.

Everything here is synchronous file-system work, as ``core/cache.py`` is synchronous SQLite:
cheap calls run on the event loop; fsync-heavy bulk work (``commit`` of a batch) is done in a
thread by the caller.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import random as _random
import re
import socket
import stat
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

from kittiwake.core.errors import KittiwakeError
from kittiwake.core.message import utf7
from kittiwake.core.models import ANSWERED, DELETED, DRAFT, FLAGGED, FORWARDED, SEEN

__all__ = [
    "INBOX",
    "STANDARD_FOLDERS",
    "Maildir",
    "MaildirError",
    "MessageFile",
    "Spool",
    "flags_from_info",
    "folder_dirname",
    "folder_from_dirname",
    "info_from_flags",
    "is_valid_key",
    "split_filename",
    "unique_name",
]

INBOX = "INBOX"
STANDARD_FOLDERS = ("Sent", "Drafts", "Trash", "Archive")
"""Created with every tree (the local counterparts of the IMAP special-use folders)."""
TMP_MAX_AGE = 36 * 3600
"""The Maildir rule: a file left in tmp/ for 36 hours is a failed delivery and is removed."""

_FLAG_OF_LETTER = {
    "D": DRAFT,
    "F": FLAGGED,
    "P": FORWARDED,
    "R": ANSWERED,
    "S": SEEN,
    "T": DELETED,
}
_LETTER_OF_FLAG = {flag: letter for letter, flag in _FLAG_OF_LETTER.items()}
_MAX_NAME = 255
_HOST_UNSAFE = re.compile(r"[^A-Za-z0-9.-]")
_BAD_KEY = re.compile(r"[/:\x00-\x1f\x7f]")
_counter = itertools.count(1)

Subdir = Literal["new", "cur"]


class MaildirError(KittiwakeError):
    """A Maildir operation failed: the message says what, and which path."""


# -- names and flags (pure) --------------------------------------------------------------------


def _hostname() -> str:
    host = _HOST_UNSAFE.sub("_", socket.gethostname()).strip(".")
    return host[:64] or "localhost"


_HOST = _hostname()


def unique_name(
    now: float | None = None,
    *,
    pid: int | None = None,
    counter: int | None = None,
    random: int | None = None,
    host: str | None = None,
) -> str:
    """A fresh unique Maildir name (the key of a message), e.g.
    ``1764201600.M123456P4242Q7R9f86d081884c7d65.myhost``."""
    t = time.time() if now is None else now
    sec = int(t)
    usec = int((t - sec) * 1_000_000)
    pid = os.getpid() if pid is None else pid
    n = next(_counter) if counter is None else counter
    # Uniqueness comes from time, pid and counter; R only guards against a reused pid, so
    # the process-seeded PRNG will do (os.urandom costs ~40 µs a call on some VMs).
    rnd = _random.getrandbits(64) if random is None else random
    h = _HOST if host is None else (_HOST_UNSAFE.sub("_", host).strip(".")[:64] or "localhost")
    return f"{sec}.M{usec}P{pid}Q{n}R{rnd:016x}.{h}"


def is_valid_key(key: str) -> bool:
    """Whether ``key`` can safely name a file of a Maildir subdirectory: one plain path
    component, not hidden, no info separator, no control characters."""
    return (
        0 < len(key) <= _MAX_NAME - 16
        and _BAD_KEY.search(key) is None
        and not key.startswith(".")
        and key == key.strip()
    )


def split_filename(name: str) -> tuple[str, str]:
    """``KEY:2,FS`` -> (``KEY``, ``2,FS``); a name without info -> (name, "")."""
    key, _, info = name.partition(":")
    return key, info


def flags_from_info(info: str) -> frozenset[str]:
    """The flags of an info part ``2,FRS`` (experimental ``1,...`` infos carry none)."""
    if not info.startswith("2,"):
        return frozenset()
    return frozenset(_FLAG_OF_LETTER[c] for c in info[2:] if c in _FLAG_OF_LETTER)


def info_from_flags(flags: Iterable[str], previous: str = "") -> str:
    """The info part for ``flags``: ``2,`` and the letters in ASCII order.

    Flags without a letter (other keywords) are dropped; lower-case letters of ``previous``
    (Dovecot keywords) are kept.
    """
    letters = {_LETTER_OF_FLAG[f] for f in flags if f in _LETTER_OF_FLAG}
    if previous.startswith("2,"):
        letters.update(c for c in previous[2:] if "a" <= c <= "z")
    return "2," + "".join(sorted(letters))


def folder_dirname(name: str) -> str:
    """The directory (below the root) of folder ``name``: ``Sent`` -> ``.Sent``,
    ``Lists/python`` -> ``.Lists.python``, non-ASCII as modified UTF-7; INBOX -> "".

    Raises ValueError for a name that cannot be a Maildir++ folder: empty parts, ``.`` in a
    part (the hierarchy separator on disk), control characters, too long.
    """
    if name.upper() == INBOX:
        return ""
    parts = name.split("/")
    encoded: list[str] = []
    for part in parts:
        if not part or part != part.strip():
            raise ValueError(f"folder name {name!r} has an empty part or stray spaces")
        if "." in part:
            raise ValueError(f"folder name {name!r}: '.' cannot be used in a local folder name")
        if any(ord(c) < 0x20 or c == "\x7f" for c in part):
            raise ValueError(f"folder name {name!r} contains control characters")
        try:
            encoded.append(utf7.encode(part))
        except ValueError:
            raise ValueError(f"folder name {name!r} is not valid Unicode text") from None
    if encoded[0].upper() == INBOX:
        raise ValueError(f"folder name {name!r}: INBOX cannot have sub-folders here")
    dirname = "." + ".".join(encoded)
    if len(dirname.encode()) > _MAX_NAME:
        raise ValueError(f"folder name {name!r} is too long")
    return dirname


def folder_from_dirname(dirname: str) -> str | None:
    """The folder name of a ``.NAME`` directory, or None if it is not a folder directory."""
    if not dirname.startswith(".") or dirname in (".", ".."):
        return None
    parts = dirname[1:].split(".")
    if any(not p for p in parts):
        return None
    return "/".join(utf7.decode(p) for p in parts)


# -- files -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MessageFile:
    """One message of a folder as it is on disk now."""

    folder: str
    key: str
    subdir: Subdir
    filename: str
    path: Path
    flags: frozenset[str]
    info: str

    @property
    def is_new(self) -> bool:
        """Still in ``new/``: no mail reader has seen it yet."""
        return self.subdir == "new"


SPOOL_MEMORY = 256 * 1024
"""A spooled message up to this size is kept in memory until ``sync``."""


def _write_all(fd: int, data: bytes | bytearray) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


class LazyFile:
    """A new file whose creation and writing happen, for small contents, in ``sync()``.

    The first ``memory`` bytes stay in memory; the file (``O_EXCL``, mode 0600) is created
    only when more arrives, or by ``sync()``, which the downloader runs in a worker thread.
    Creating a file can wait for a file-system journal commit while other files are being
    fsynced (ext4: a third of a millisecond and more), which would stall the event loop.
    """

    def __init__(self, path: Path, memory: int = SPOOL_MEMORY) -> None:
        self.path = path
        self.size = 0
        self._limit = memory
        self._mem: bytearray | None = bytearray()
        self._fd: int | None = None
        self._done = False

    def _create(self) -> int:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise MaildirError(f"{self.path}: cannot be created ({exc.strerror})") from exc
        self._fd = fd
        return fd

    def write(self, data: bytes | bytearray, /) -> int:
        if self._done:
            raise MaildirError(f"{self.path}: already closed")
        fd = self._fd
        try:
            if fd is None:
                mem = self._mem
                assert mem is not None
                if len(mem) + len(data) <= self._limit:
                    mem += data
                    self.size += len(data)
                    return len(data)
                fd = self._create()
                _write_all(fd, mem)
                self._mem = None
            _write_all(fd, data)
        except OSError as exc:
            raise MaildirError(f"{self.path}: cannot be written ({exc.strerror})") from exc
        self.size += len(data)
        return len(data)

    def sync(self) -> None:
        """Create (if need be), write, fsync and close. Blocking: run it in a thread."""
        if self._done:
            return
        self._done = True
        fd = self._fd if self._fd is not None else self._create()
        try:
            if self._mem:
                _write_all(fd, self._mem)
            self._mem = None
            os.fsync(fd)
        except OSError as exc:
            raise MaildirError(f"{self.path}: cannot be written ({exc.strerror})") from exc
        finally:
            self._fd = None
            os.close(fd)

    def discard(self) -> None:
        """Close and remove the (partial) file."""
        self._done = True
        self._mem = None
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


class Spool(LazyFile):
    """A message being written into ``tmp/`` of a folder; ``Maildir.commit`` delivers it."""

    def __init__(self, maildir: Maildir, folder: str, key: str, path: Path) -> None:
        super().__init__(path)
        self.maildir = maildir
        self.folder = folder
        self.key = key


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Maildir:
    """A Maildir++ tree rooted at ``root`` (created, with the standard folders, if missing)."""

    def __init__(self, root: Path, *, create: bool = True) -> None:
        self.root = root
        self._index: dict[str, dict[str, tuple[Subdir, str]]] = {}
        if create:
            self.create()
        elif not (root / "cur").is_dir():
            raise MaildirError(f"{root} is not a Maildir (it has no cur/ directory)")

    # -- the tree -----------------------------------------------------------------------------

    def create(self) -> None:
        """Make the root and the standard folders; existing ones are left alone."""
        try:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._make_folder_dirs(self.root)
            for name in STANDARD_FOLDERS:
                self.create_folder(name)
        except OSError as exc:
            raise MaildirError(f"{self.root}: cannot create the Maildir ({exc.strerror})") from exc

    def _make_folder_dirs(self, path: Path, *, folder: bool = False) -> None:
        created = False
        for sub in ("tmp", "new", "cur"):
            try:
                (path / sub).mkdir(mode=0o700)
                created = True
            except FileExistsError:
                pass
        if folder:
            marker = path / "maildirfolder"
            if not marker.exists():
                marker.touch(mode=0o600)
                created = True
        if created:
            _fsync_dir(path)
            _fsync_dir(path.parent)

    def folder_path(self, folder: str) -> Path:
        """The directory of ``folder`` (ValueError for a name that cannot be one)."""
        dirname = folder_dirname(folder)
        return self.root / dirname if dirname else self.root

    def folders(self) -> list[str]:
        """INBOX first, then every folder directory in name order."""
        out: list[str] = []
        try:
            entries = list(os.scandir(self.root))
        except OSError as exc:
            raise MaildirError(f"{self.root}: cannot be read ({exc.strerror})") from exc
        for entry in entries:
            name = folder_from_dirname(entry.name)
            if name is None or not entry.is_dir(follow_symlinks=False):
                continue
            if (Path(entry.path) / "cur").is_dir():
                out.append(name)
        return [INBOX, *sorted(out, key=str.casefold)]

    def has_folder(self, folder: str) -> bool:
        try:
            return (self.folder_path(folder) / "cur").is_dir()
        except ValueError:
            return False

    def create_folder(self, folder: str) -> None:
        """Create ``folder`` (and its parents, as Dovecot does); no error if it exists."""
        path = self.folder_path(folder)
        if path == self.root:
            return
        try:
            path.mkdir(mode=0o700, exist_ok=True)
            self._make_folder_dirs(path, folder=True)
        except OSError as exc:
            raise MaildirError(f"{path}: cannot create the folder ({exc.strerror})") from exc

    def rename_folder(self, old: str, new: str) -> None:
        """Rename a folder (sub-folders go with it)."""
        src, dst = self.folder_path(old), self.folder_path(new)
        if src == self.root or dst == self.root:
            raise MaildirError("INBOX cannot be renamed")
        if dst.exists():
            raise MaildirError(f"a folder called {new} already exists")
        prefix = src.name + "."
        children = [e.name for e in os.scandir(self.root) if e.name.startswith(prefix)]
        try:
            os.rename(src, dst)
            for child in children:
                os.rename(self.root / child, self.root / (dst.name + child[len(src.name) :]))
            _fsync_dir(self.root)
        except OSError as exc:
            raise MaildirError(f"{src}: cannot be renamed ({exc.strerror})") from exc
        self._index.clear()

    def delete_folder(self, folder: str) -> None:
        """Delete an empty folder (messages must have been moved or deleted first)."""
        path = self.folder_path(folder)
        if path == self.root:
            raise MaildirError("INBOX cannot be deleted")
        if any(True for _ in self._scan(folder)):
            raise MaildirError(f"the folder {folder} is not empty")
        try:
            for sub in ("tmp", "new", "cur"):
                for entry in os.scandir(path / sub):
                    os.unlink(entry.path)
                (path / sub).rmdir()
            (path / "maildirfolder").unlink(missing_ok=True)
            path.rmdir()
            _fsync_dir(self.root)
        except OSError as exc:
            raise MaildirError(f"{path}: cannot be deleted ({exc.strerror})") from exc
        self._index.pop(folder, None)

    # -- listing and finding ------------------------------------------------------------------

    def _scan(self, folder: str) -> Iterator[tuple[Subdir, str]]:
        base = self.folder_path(folder)
        subdirs: tuple[Subdir, ...] = ("new", "cur")
        for sub in subdirs:
            try:
                entries = os.scandir(base / sub)
            except FileNotFoundError:
                if not base.is_dir():
                    raise MaildirError(f"no folder {folder} in {self.root}") from None
                continue
            with entries:
                for entry in entries:
                    if entry.name.startswith("."):
                        continue
                    yield sub, entry.name

    def _rebuild(self, folder: str) -> dict[str, tuple[Subdir, str]]:
        index: dict[str, tuple[Subdir, str]] = {}
        for sub, name in self._scan(folder):
            key, _info = split_filename(name)
            if is_valid_key(key):
                index[key] = (sub, name)
        self._index[folder] = index
        return index

    def _message(self, folder: str, key: str, sub: Subdir, name: str) -> MessageFile:
        _key, info = split_filename(name)
        return MessageFile(
            folder=folder,
            key=key,
            subdir=sub,
            filename=name,
            path=self.folder_path(folder) / sub / name,
            flags=flags_from_info(info) if sub == "cur" else frozenset(),
            info=info,
        )

    def messages(self, folder: str = INBOX) -> list[MessageFile]:
        """Every message of ``folder`` (unordered; files with unusable names are skipped)."""
        index = self._rebuild(folder)
        return [self._message(folder, key, sub, name) for key, (sub, name) in index.items()]

    def keys(self, folder: str = INBOX) -> set[str]:
        return set(self._rebuild(folder))

    def get(self, folder: str, key: str) -> MessageFile:
        """The message ``key`` of ``folder``; MaildirError if it is not there."""
        found = self.find(folder, key)
        if found is None:
            raise MaildirError(f"no message {key} in {folder} ({self.root})")
        return found

    def find(self, folder: str, key: str) -> MessageFile | None:
        if not is_valid_key(key):
            raise ValueError(f"{key!r} is not a Maildir message key")
        index = self._index.get(folder)
        if index is not None and key in index:
            sub, name = index[key]
            if (self.folder_path(folder) / sub / name).exists():
                return self._message(folder, key, sub, name)
        # Not known, or renamed by another program: look again.
        index = self._rebuild(folder)
        if key in index:
            sub, name = index[key]
            return self._message(folder, key, sub, name)
        return None

    def locate(self, key: str) -> MessageFile | None:
        """Find ``key`` in any folder (a message keeps its key when it is moved)."""
        for folder in self.folders():
            found = self.find(folder, key)
            if found is not None:
                return found
        return None

    def read(self, folder: str, key: str) -> bytes:
        msg = self.get(folder, key)
        try:
            return msg.path.read_bytes()
        except FileNotFoundError:
            msg = self.get(folder, key)  # renamed in between (flags changed elsewhere)
            return msg.path.read_bytes()

    def open(self, folder: str, key: str) -> BinaryIO:
        return self.get(folder, key).path.open("rb")

    def size(self, folder: str, key: str) -> int:
        return self.get(folder, key).path.stat().st_size

    # -- delivering ---------------------------------------------------------------------------

    def spool(self, folder: str = INBOX, key: str | None = None) -> Spool:
        """A new message file in ``tmp/`` of ``folder`` (created lazily: see ``LazyFile``)."""
        base = self.folder_path(folder)
        name = key or unique_name()
        if not is_valid_key(name):
            raise ValueError(f"{name!r} is not a Maildir message key")
        return Spool(self, folder, name, base / "tmp" / name)

    def commit(
        self, spools: Sequence[Spool], flags: Iterable[str] = (), *, sync: bool = True
    ) -> list[MessageFile]:
        """Deliver spooled messages (already written): fsync each, rename into ``new/`` (or
        ``cur/`` with ``flags``), fsync the directories. Blocking; returns the delivered files.
        """
        flag_set = frozenset(flags)
        out: list[MessageFile] = []
        touched: set[Path] = set()
        for spool in spools:
            spool.sync()
            base = self.folder_path(spool.folder)
            sub: Subdir = "cur" if flag_set else "new"
            name = spool.key + (":" + info_from_flags(flag_set) if flag_set else "")
            target = base / sub / name
            try:
                os.rename(spool.path, target)
            except OSError as exc:
                raise MaildirError(f"{target}: cannot be delivered ({exc.strerror})") from exc
            touched.add(base / sub)
            index = self._index.get(spool.folder)
            if index is not None:
                index[spool.key] = (sub, name)
            out.append(self._message(spool.folder, spool.key, sub, name))
        if sync:
            for directory in touched:
                _fsync_dir(directory)
        return out

    def add(
        self,
        folder: str,
        data: bytes,
        flags: Iterable[str] = (),
        *,
        mtime: float | None = None,
    ) -> MessageFile:
        """Deliver ``data`` to ``folder`` durably (e.g. a sent message to Sent, with \\Seen)."""
        spool = self.spool(folder)
        try:
            spool.write(data)
            if mtime is not None:
                spool.sync()
                os.utime(spool.path, (mtime, mtime))
            return self.commit([spool], flags)[0]
        except BaseException:
            spool.discard()
            raise

    def recover_spool(self, folder: str, key: str, size: int) -> MessageFile | None:
        """After a crash: deliver ``tmp/KEY`` if it is complete (``size`` octets), else
        remove it. Returns the delivered file, or None if there was nothing to deliver."""
        if not is_valid_key(key):
            raise ValueError(f"{key!r} is not a Maildir message key")
        base = self.folder_path(folder)
        path = base / "tmp" / key
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        if not stat.S_ISREG(st.st_mode) or st.st_size != size:
            path.unlink(missing_ok=True)
            return None
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        target = base / "new" / key
        os.rename(path, target)
        _fsync_dir(base / "new")
        self._index.pop(folder, None)
        return self._message(folder, key, "new", key)

    def clean_tmp(self, max_age: float = TMP_MAX_AGE, now: float | None = None) -> int:
        """Remove files older than ``max_age`` from every ``tmp/`` (failed deliveries)."""
        limit = (time.time() if now is None else now) - max_age
        removed = 0
        for folder in self.folders():
            tmp = self.folder_path(folder) / "tmp"
            try:
                entries = list(os.scandir(tmp))
            except FileNotFoundError:
                continue
            for entry in entries:
                try:
                    st = entry.stat(follow_symlinks=False)
                    if stat.S_ISREG(st.st_mode) and st.st_mtime < limit:
                        os.unlink(entry.path)
                        removed += 1
                except FileNotFoundError:
                    continue
        return removed

    # -- changing -----------------------------------------------------------------------------

    def set_flags(self, folder: str, key: str, flags: Iterable[str]) -> MessageFile:
        """Give the message exactly ``flags`` (a rename into ``cur/``)."""
        msg = self.get(folder, key)
        flag_set = frozenset(flags)
        info = info_from_flags(flag_set, msg.info)
        name = f"{key}:{info}"
        if msg.subdir == "cur" and msg.filename == name:
            return msg
        base = self.folder_path(folder)
        target = base / "cur" / name
        self._rename(msg.path, target)
        self._index.setdefault(folder, {})[key] = ("cur", name)
        return self._message(folder, key, "cur", name)

    def add_flags(self, folder: str, key: str, flags: Iterable[str]) -> MessageFile:
        msg = self.get(folder, key)
        return self.set_flags(folder, key, msg.flags | frozenset(flags))

    def remove_flags(self, folder: str, key: str, flags: Iterable[str]) -> MessageFile:
        msg = self.get(folder, key)
        return self.set_flags(folder, key, msg.flags - frozenset(flags))

    def move(self, folder: str, key: str, dest: str) -> MessageFile:
        """Move to ``dest`` keeping the key and flags (``new/`` stays ``new/``). Durable."""
        msg = self.get(folder, key)
        if self.folder_path(dest) == self.folder_path(folder):
            return msg
        if not self.has_folder(dest):
            raise MaildirError(f"no folder {dest} in {self.root}")
        target_dir = self.folder_path(dest) / msg.subdir
        self._rename(msg.path, target_dir / msg.filename)
        _fsync_dir(target_dir)
        _fsync_dir(msg.path.parent)
        self._index.get(folder, {}).pop(key, None)
        self._index.setdefault(dest, {})[key] = (msg.subdir, msg.filename)
        return self._message(dest, key, msg.subdir, msg.filename)

    def copy(self, folder: str, key: str, dest: str) -> MessageFile:
        """Deliver a copy to ``dest`` under a new key, with the same flags."""
        msg = self.get(folder, key)
        return self.add(dest, msg.path.read_bytes(), msg.flags)

    def delete(self, folder: str, key: str) -> None:
        """Remove the message for good."""
        msg = self.get(folder, key)
        try:
            msg.path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise MaildirError(f"{msg.path}: cannot be deleted ({exc.strerror})") from exc
        _fsync_dir(msg.path.parent)
        self._index.get(folder, {}).pop(key, None)

    def _rename(self, src: Path, dst: Path) -> None:
        if dst.exists():
            raise MaildirError(f"{dst} already exists")
        try:
            os.rename(src, dst)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                raise MaildirError(f"{src} vanished (changed by another program?)") from exc
            raise MaildirError(f"{src}: cannot be renamed ({exc.strerror})") from exc
