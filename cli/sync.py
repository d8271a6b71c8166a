"""``kittiwake sync``: the engine without the UI, for scripts and for testing the engine.

Output is line-oriented and flushed per line so another program can follow it; progress goes
to stderr only when it is a terminal. Text from mail is cleaned before it is printed.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import sys
import time
from datetime import datetime
from typing import TextIO

from kittiwake.core.config import Config
from kittiwake.core.engine import Engine
from kittiwake.core.errors import CacheError
from kittiwake.core.events import (
    ConnectionChanged,
    Event,
    FlagsChanged,
    FolderCountsChanged,
    FolderListChanged,
    FolderReset,
    MessagesAdded,
    MessagesExpunged,
    SyncError,
    SyncProgress,
)
from kittiwake.core.sanitize import clean_line
from kittiwake.core.smtp.outbox import ItemState, item_subject


def _quote(text: str) -> str:
    return '"' + clean_line(text).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _uids(uids: tuple[int, ...] | list[int]) -> str:
    return ",".join(str(u) for u in uids)


def describe(event: Event) -> list[str]:
    """One line per change, naming account, folder, kind and UIDs."""
    a = event.account
    match event:
        case MessagesAdded(folder=folder, summaries=summaries):
            lines = []
            for s in summaries:
                sender = str(s.envelope.from_[0]) if s.envelope.from_ else ""
                lines.append(
                    f"{a} {_quote(folder)} new uid={s.uid} from={_quote(sender)}"
                    f" subject={_quote(s.envelope.subject)}"
                )
            return lines
        case FlagsChanged(folder=folder, flags=flags):
            return [
                f"{a} {_quote(folder)} flags uid={uid} flags=({' '.join(sorted(f))})"
                for uid, f in sorted(flags.items())
            ]
        case MessagesExpunged(folder=folder, uids=uids):
            return [f"{a} {_quote(folder)} expunged uids={_uids(uids)}"]
        case FolderListChanged(folders=folders):
            names = " ".join(_quote(f.name) for f in folders)
            return [f"{a} - folders {names}"]
        case FolderReset(folder=folder):
            return [f"{a} {_quote(folder)} reset (UIDVALIDITY changed)"]
        case FolderCountsChanged(folder=folder, total=total, unread=unread):
            return [f"{a} {_quote(folder)} counts total={total} unread={unread}"]
        case ConnectionChanged(state=state, reason=reason, retry_in=retry):
            extra = f" {_quote(reason)}" if reason else ""
            extra += f" retry_in={retry:.1f}s" if retry is not None else ""
            return [f"{a} - {state.value}{extra}"]
        case SyncError(folder=folder, message=message):
            return [f"{a} {_quote(folder or '-')} error {_quote(message)}"]
    return []


async def run_sync(
    config: Config,
    account: str | None,
    watch: bool,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    engine = Engine(config)
    engine.select(account)  # fail early on an unknown name
    for notice in engine.notices:
        err.write(f"kittiwake: warning: {notice}\n")
    try:
        if watch:
            return await _watch(engine, account, out)
        return await _once(engine, account, out, err)
    except sqlite3.DatabaseError as exc:
        raise CacheError(engine.cache_failure(exc)) from exc
    finally:
        await engine.stop()


async def _once(engine: Engine, account: str | None, out: TextIO, err: TextIO) -> int:
    started = time.monotonic()
    sub = engine.bus.subscribe()
    show = err.isatty()

    async def progress() -> None:
        async for event in sub:
            if show and isinstance(event, SyncProgress):
                err.write(
                    f"\r\x1b[K{event.account} {clean_line(event.folder)}:"
                    f" {event.done:,}/{event.total:,}"
                )
                err.flush()

    printer = asyncio.create_task(progress())
    try:
        results = await engine.sync_once(account)
    finally:
        printer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await printer
        if show:
            err.write("\r\x1b[K")
            err.flush()
    for name, stats in results.items():
        traffic = engine.traffic(name)
        out.write(
            f"{name}: {stats.folders} folders, {stats.messages:,} messages"
            f" ({stats.fetched:,} fetched), {traffic / 1e6:.1f} MB,"
            f" {stats.seconds:.2f} s\n"
        )
    out.write(f"done in {time.monotonic() - started:.2f} s\n")
    out.flush()
    held = held_messages(engine, account)
    for line in held:
        err.write(f"kittiwake: {line}\n")
    err.flush()
    return 1 if held else 0


def held_messages(engine: Engine, account: str | None) -> list[str]:
    """One line per outbox message that needs the user: refused for good, or may have been
    delivered (its reply was lost), neither sent again by itself; or sent, with its copy in
    Sent refused so far."""
    lines = []
    for acct in engine.select(account):
        runner = engine.outboxes.get(acct.key)
        if runner is None:
            continue
        for item in runner.outbox.items():
            subject = clean_line(item_subject(runner.outbox, item.id)) or "(no subject)"
            if item.state is ItemState.DELIVERED and item.copy_error:
                # Sent, but the copy in Sent was refused (Courier's CREATE "Sent" was): said
                # at every run until it is saved, never retried in silence.
                lines.append(
                    f"{acct.key}: sent, but not saved in Sent: “{subject}”:"
                    f" {clean_line(item.copy_error)} (tried again at each sync)"
                )
                continue
            if item.state not in (ItemState.FAILED, ItemState.UNCERTAIN):
                continue
            to = ", ".join(clean_line(r) for r in item.recipients) or "nobody"
            why = clean_line(item.error or "")
            if item.state is ItemState.FAILED:
                lines.append(
                    f"{acct.key}: not sent, refused by the server: “{subject}” to {to}: {why}"
                    " (kept in the outbox; edit or delete it in the app: ctrl+p Outbox)"
                )
            else:
                lines.append(
                    f"{acct.key}: may have been delivered: “{subject}” to {to}: {why}"
                    " (kept in the outbox, not sent again; send it again or delete it in the"
                    " app: ctrl+p Outbox)"
                )
    return lines


async def _watch(engine: Engine, account: str | None, out: TextIO) -> int:
    names = {a.key for a in engine.select(account)}
    sub = engine.bus.subscribe()
    for name in names:
        if name in engine.stores:
            engine.stores[name].start()
        if name in engine.pop3:
            engine.pop3[name].start()
    try:
        async for event in sub:
            if event.account not in names or isinstance(event, SyncProgress):
                continue
            stamp = datetime.now().astimezone().isoformat(timespec="milliseconds")
            for line in describe(event):
                out.write(f"{stamp} {line}\n")
            out.flush()
    except asyncio.CancelledError:
        pass
    return 0
