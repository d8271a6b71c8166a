"""Writing the user's files safely: private directories, and whole-file replacement that a
crash can never leave half-written (temporary file in the same directory, fsync, rename,
fsync of the directory)."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable
from pathlib import Path

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def make_private_dirs(directory: Path) -> list[Path]:
    """Create ``directory`` and any missing parent with mode 0700 (``Path.mkdir`` gives the
    parents it creates the umask's mode, often 0755). Existing directories are left alone.
    Returns the directories that were missing, outermost first."""
    missing: list[Path] = []
    current = directory
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    missing.reverse()
    for path in missing:
        with contextlib.suppress(FileExistsError):
            path.mkdir(mode=PRIVATE_DIR)
        os.chmod(path, PRIVATE_DIR)  # mkdir's mode is filtered by the umask
    return missing


def make_durable_dirs(directory: Path) -> None:
    """``make_private_dirs``, and each directory created is made durable in its parent
    (fsync of the parent): a file fsync'd inside a directory whose own name was never
    fsync'd can vanish with it in a power cut (the outbox, drafts and the action journal
    are promised to survive one)."""
    for path in make_private_dirs(directory):
        fsync_dir(path.parent)


def atomic_write(
    path: Path, data: bytes, mode: int, check: Callable[[Path], None] | None = None
) -> None:
    """Replace ``path`` by ``data`` (mode ``mode``) in one rename: readers see the old file or
    the new one, never a mix, and a crash leaves the old one. ``check`` is called with the
    complete temporary file before the rename; if it raises, ``path`` is left untouched."""
    directory = path.parent
    # os.urandom as secrets.token_hex does, without loading secrets (hmac, hashlib) at start.
    tmp = directory / f".{path.name}.{os.urandom(6).hex()}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(tmp, flags | getattr(os, "O_CLOEXEC", 0), PRIVATE_FILE)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if check is not None:
            check(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(directory)


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def file_mode(path: Path) -> int | None:
    """The permission bits of ``path``, or None when it does not exist."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return None
