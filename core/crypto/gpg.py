"""Running ``gpg``: an argv list (never a shell), and its machine output only.

gpg writes its status lines (``[GNUPG:] GOODSIG ...``) to a pipe of their own (``--status-fd``)
so nothing it prints for humans, and nothing a signer put in a user ID, is taken for one. The
plaintext of a decryption comes back through stdout, in memory: it is never written to a file.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
from dataclasses import dataclass

#: A wedged gpg (an unanswered pinentry on a terminal nobody sees) must not hold a reader.
TIMEOUT = 60.0
_PREFIX = "[GNUPG:] "


@dataclass(frozen=True)
class GpgResult:
    returncode: int
    stdout: bytes
    status: tuple[tuple[str, ...], ...]
    """Each status line split on spaces, without the ``[GNUPG:]`` prefix."""
    stderr: str


@dataclass(frozen=True)
class GnuPG:
    """Which gpg to run and on which home (None: $GNUPGHOME, else ~/.gnupg)."""

    program: str = "gpg"
    home: str | None = None
    keyrings: tuple[str, ...] = ()
    """More keyrings to read (``--keyring``): the Autocrypt peers' keys when encrypting."""


class GpgMissing(Exception):
    """The gpg program could not be started."""


def unescape(field: str) -> str:
    """Status-line fields escape control characters and '%' as %XX."""
    out = bytearray()
    i = 0
    data = field.encode("utf-8", "surrogateescape")
    while i < len(data):
        if data[i] == 0x25 and _hex(data[i + 1 : i + 3]):
            out.append(int(data[i + 1 : i + 3], 16))
            i += 3
        else:
            out.append(data[i])
            i += 1
    return out.decode("utf-8", "replace")


def _hex(pair: bytes) -> bool:
    return len(pair) == 2 and all(c in b"0123456789abcdefABCDEF" for c in pair)


def run(
    gpg: GnuPG,
    args: list[str],
    stdin: bytes = b"",
    *,
    interactive: bool = False,
    timeout: float = TIMEOUT,
) -> GpgResult:
    """Run ``gpg args`` feeding ``stdin``; blocking (callers use ``asyncio.to_thread``).

    Not interactive, pinentry is refused (``--pinentry-mode error``): a passphrase the agent
    has cached still works, and a needed one is reported instead of a prompt drawn over the
    app. Interactive, the caller has stepped aside (App.suspend) and pinentry has the terminal.
    """
    read_fd, write_fd = os.pipe()
    argv = [gpg.program] + (["--homedir", gpg.home] if gpg.home else [])
    for keyring in gpg.keyrings:
        argv += ["--keyring", keyring]
    argv += ["--batch", "--no-tty", "--status-fd", str(write_fd), "--with-colons"]
    if not interactive:
        argv += ["--pinentry-mode", "error"]
    argv += args
    env = dict(os.environ)
    env["LC_ALL"] = "C"
    if interactive:
        with contextlib.suppress(OSError):
            env["GPG_TTY"] = os.ttyname(0)
    status_chunks: list[bytes] = []

    def drain() -> None:
        with os.fdopen(read_fd, "rb") as pipe:
            while chunk := pipe.read(65536):
                status_chunks.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=(write_fd,),
            env=env,
        )
    except OSError as exc:
        os.close(read_fd)
        os.close(write_fd)
        raise GpgMissing(f"{gpg.program} could not be started ({exc.strerror or exc})") from None
    os.close(write_fd)
    reader.start()
    try:
        out, err = proc.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    reader.join(timeout=5)
    status = tuple(
        tuple(line[len(_PREFIX) :].split(" "))
        for line in b"".join(status_chunks).decode("utf-8", "replace").splitlines()
        if line.startswith(_PREFIX)
    )
    return GpgResult(proc.returncode, out, status, err.decode("utf-8", "replace"))
