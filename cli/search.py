"""``kittiwake search``: the app's search for scripts, cache first, then the server.

One line per message (date, sender, subject, folder, UID; tab-separated, with the account
first when several are searched), or with ``--json`` one JSON array. Text from mail is
cleaned before it is printed. A malformed query stops before anything is opened, with the
parser's sentence (``QueryError``, exit status 1). An account whose server cannot be
reached gives its cached results and one warning on stderr.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from kittiwake.core.config import Config
from kittiwake.core.engine import Engine
from kittiwake.core.errors import ConfigError, KittiwakeError
from kittiwake.core.models import SEEN, MessageSummary
from kittiwake.core.sanitize import clean_line
from kittiwake.core.search.query import Query, parse_query
from kittiwake.core.search.service import Hit, local_hits, server_hits
from kittiwake.core.store import MailStore


@dataclass(frozen=True, slots=True)
class Found:
    account: str
    hit: Hit
    summary: MessageSummary

    def as_json(self) -> dict[str, object]:
        env = self.summary.envelope
        when = env.date or self.summary.internal_date
        return {
            "account": self.account,
            "folder": self.hit.folder,
            "uid": self.hit.uid,
            "date": when.isoformat() if when is not None else None,
            "from": clean_line(str(env.from_[0])) if env.from_ else "",
            "subject": clean_line(env.subject),
            "unread": SEEN not in self.summary.flags,
            "flags": sorted(self.summary.flags),
            "size": self.summary.size,
            "message_id": env.message_id,
        }

    def as_line(self, with_account: bool) -> str:
        env = self.summary.envelope
        when = env.date or self.summary.internal_date
        date = when.astimezone().strftime("%Y-%m-%d %H:%M") if when is not None else "-"
        sender = clean_line(str(env.from_[0])) if env.from_ else "-"
        cells = [date, sender, clean_line(env.subject) or "(no subject)"]
        cells += [clean_line(self.hit.folder), str(self.hit.uid)]
        if with_account:
            cells.insert(0, self.account)
        return "\t".join(cells)


async def search_account(
    store: MailStore, folder: str | None, query: Query, err: TextIO
) -> list[Hit]:
    """The cache's hits, then the server's additions (connecting once where a server
    completes the search)."""
    cache = store.cache
    online = store.searches_server
    if online:
        try:
            await store.connect_once()
            await store.refresh_folders()
        except KittiwakeError as exc:
            err.write(f"kittiwake: warning: {store.name}: {exc.message}; cached results only\n")
            online = False
    names = {f.name for f in cache.folders() if f.selectable}
    if folder is not None and folder not in names and cache.folder_id(folder) is None:
        raise ConfigError(f"account {store.name} has no folder named {folder!r}")
    folders = [folder] if folder is not None else sorted(names)
    hits = local_hits(cache, folders, query)
    if online:
        try:
            hits += await server_hits(store, folders, query, set(hits))
        except KittiwakeError as exc:
            err.write(f"kittiwake: warning: {store.name}: {exc.message}; cached results only\n")
    return hits


async def run_search(
    config: Config,
    account: str | None,
    folder: str | None,
    text: str,
    as_json: bool,
    *,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
    cache_dir: Path | None = None,
) -> int:
    query = parse_query(text)  # a malformed query stops here, before any connection
    engine = Engine(config, cache_dir=cache_dir)
    accounts = [a.key for a in engine.select(account) if a.key in engine.stores]
    found: list[Found] = []
    missing: list[ConfigError] = []
    try:
        for name in accounts:
            store = engine.stores[name]
            try:
                hits = await search_account(store, folder, query, err)
            except ConfigError as exc:
                if account is not None:
                    raise
                missing.append(exc)  # --folder without --account: the accounts that have it
                continue
            for hit in hits:
                summary = store.cache.summary(hit.folder, hit.uid)
                if summary is not None:
                    found.append(Found(name, hit, summary))
    finally:
        await engine.stop()
    if missing and len(missing) == len(accounts):
        raise ConfigError(f"no account has a folder named {folder!r}")
    if as_json:
        json.dump([f.as_json() for f in found], out, ensure_ascii=False, indent=1)
        out.write("\n")
    else:
        for f in found:
            out.write(f.as_line(len(accounts) > 1) + "\n")
    out.flush()
    return 0
