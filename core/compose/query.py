"""Addresses from an external address book: mutt's ``query_command`` protocol.

The command (khard, abook, ``notmuch address``, an LDAP script) prints a status line, then one
``address<TAB>name<TAB>extra`` line per match. It runs without a shell; the typed text is one
argument (in place of ``%s``, else appended), so nothing typed is ever interpreted by a shell.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shlex

from kittiwake.core.models import Address

log = logging.getLogger(__name__)

MAX_OUTPUT = 1 << 20
"""Bytes read from the command at most (a runaway command cannot fill memory)."""


def query_argv(command: str | list[str], prefix: str) -> list[str]:
    """The argv to run for ``prefix``: ``%s`` replaced in each word, else ``prefix`` last."""
    words = shlex.split(command) if isinstance(command, str) else list(command)
    if any("%s" in word for word in words):
        return [word.replace("%s", prefix) for word in words]
    return [*words, prefix]


def parse_query_output(text: str) -> list[Address]:
    """The lines after the first, each ``address<TAB>name[<TAB>extra]``; lines without an
    address are skipped, duplicates kept once (the first)."""
    out: list[Address] = []
    seen: set[str] = set()
    for line in text.splitlines()[1:]:
        fields = line.split("\t")
        addr = fields[0].strip()
        if "@" not in addr or any(ch.isspace() or ch in "<>,;" for ch in addr):
            continue
        name = fields[1].strip() if len(fields) > 1 else ""
        if addr.lower() in seen:
            continue
        seen.add(addr.lower())
        out.append(Address(" ".join(name.split()), addr))
    return out


async def run_query(command: str | list[str], prefix: str, timeout: float) -> list[Address]:
    """The command's matches for ``prefix``; [] (logged) when it fails, times out or is
    missing: completion goes on with the addresses already known. A prefix starting with
    "-" is not asked about."""
    if prefix.startswith("-"):
        return []  # it would be read as an option of the command, not as a name
    argv = query_argv(command, prefix)
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
    except OSError as exc:
        log.warning("query_command %s cannot be run: %s", argv[0], exc)
        return []
    assert proc.stdout is not None
    try:
        data = await asyncio.wait_for(_read_all(proc.stdout), timeout)
        if len(data) >= MAX_OUTPUT:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()  # it would block writing the rest
        await asyncio.wait_for(proc.wait(), timeout)
    except TimeoutError:
        log.warning("query_command %s gave no answer in %.0f s", argv[0], timeout)
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        return []
    if proc.returncode:
        # mutt's scripts exit 1 for "no match" and may still print the status line.
        log.info("query_command %s exited with %s", argv[0], proc.returncode)
    return parse_query_output(data.decode("utf-8", "replace"))


async def _read_all(stream: asyncio.StreamReader) -> bytes:
    """Everything up to end of file, or the first ``MAX_OUTPUT`` bytes (``read(n)`` alone
    returns whatever one chunk held)."""
    chunks: list[bytes] = []
    size = 0
    while size < MAX_OUTPUT:
        chunk = await stream.read(MAX_OUTPUT - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)
