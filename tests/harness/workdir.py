"""Where server state lives: one world-traversable temp directory per test session.

Why not pytest's ``tmp_path_factory``: Dovecot delivers mail as the unprivileged ``mail`` user and
Postfix runs as ``postfix``; both must traverse every parent of their directories. pytest's base
temp (/tmp/pytest-of-root/...) is mode 0700, and pytest re-tightens it whenever *any* session starts,
so loosening it would break servers of a concurrently running session. Instead each session makes its
own ``/tmp/kittiwake-servers-*`` (mode 0711: traversable, not listable), removes it at the end, and
reaps what a crashed earlier session left behind.

Set ``KITTIWAKE_KEEP_SERVER_DIRS=1`` to keep the directories (config, logs, mail) for debugging.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
from pathlib import Path

from .common import ServerError, process_alive

ROOT_PREFIX = "kittiwake-servers-"
_OWNER_FILE = "owner"


def _start_time(pid: int) -> str:
    """Kernel start time of a process, to tell a live owner from a reused pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]


def _check_traversable(path: Path) -> None:
    for parent in [path, *path.parents]:
        if not parent.stat().st_mode & 0o001:
            raise ServerError(
                f"{parent} is not traversable by other users (mode "
                f"{parent.stat().st_mode & 0o777:o}); the mail servers drop root and need it. "
                "Point TMPDIR at a directory whose parents are all o+x."
            )


class ServerRoot:
    """A session's directory for all server instances; ``instance_dir`` hands out subdirectories."""

    def __init__(self) -> None:
        base = Path(tempfile.gettempdir())
        _check_traversable(base)
        reap_stale_roots(base)
        self.path = Path(tempfile.mkdtemp(prefix=ROOT_PREFIX, dir=base))
        self.path.chmod(0o711)
        pid = os.getpid()
        (self.path / _OWNER_FILE).write_text(f"{pid} {_start_time(pid)}\n")

    def instance_dir(self, kind: str) -> Path:
        """A fresh, traversable directory for one server instance (or the CA)."""
        path = Path(tempfile.mkdtemp(prefix=f"{kind}-", dir=self.path))
        path.chmod(0o711)
        return path

    def cleanup(self) -> None:
        """Remove everything, unless the developer asked to keep it."""
        if os.environ.get("KITTIWAKE_KEEP_SERVER_DIRS"):
            return
        shutil.rmtree(self.path, ignore_errors=True)


def reap_stale_roots(base: Path) -> None:
    """Stop servers and remove directories left by sessions that died without tearing down.

    A process is killed only if its pid file lies in the stale root *and* the process itself names
    that root (command line for Dovecot, MAIL_CONFIG for Postfix), so a reused pid is never hit.
    """
    for root in base.glob(f"{ROOT_PREFIX}*"):
        try:
            pid_text, start = (root / _OWNER_FILE).read_text().split()
            owner = int(pid_text)
        except (OSError, ValueError):
            continue  # not ours, or still being created
        if process_alive(owner) and _start_time(owner) == start:
            continue
        for pid_file in [*root.glob("*/run/master.pid"), *root.glob("*/spool/pid/master.pid")]:
            with contextlib.suppress(OSError, ValueError):
                pid = int(pid_file.read_text().split()[0])
                marks = (
                    Path(f"/proc/{pid}/cmdline").read_bytes()
                    + Path(f"/proc/{pid}/environ").read_bytes()
                )
                if str(root).encode() in marks:
                    os.killpg(pid, signal.SIGKILL)
        if not os.environ.get("KITTIWAKE_KEEP_SERVER_DIRS"):
            shutil.rmtree(root, ignore_errors=True)
