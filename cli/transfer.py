"""``kittiwake export`` and ``kittiwake import``: a folder (or the messages of it matching a
query) to an mbox file or ``.eml`` files; an mbox file or a Maildir into a folder, each
message once however often it is run (``core/transfer.py`` says how duplicates are found).

Progress goes to stderr, the one-line result to stdout.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from kittiwake.core.api import MailApi
from kittiwake.core.config import Config
from kittiwake.core.engine import Engine
from kittiwake.core.errors import ConfigError
from kittiwake.core.sanitize import clean_line
from kittiwake.core.search.query import parse_query
from kittiwake.core.store import MailStore


async def _ready(engine: Engine, account: str, folder: str) -> MailStore:
    """The account connected once (IMAP), its folder list and ``folder`` read."""
    [chosen] = engine.select(account)
    store = engine.stores[chosen.key]
    if store.searches_server:  # a server to talk to
        await store.connect_once()
    await store.refresh_folders()
    names = {f.name for f in store.cache.folders() if f.selectable}
    if folder not in names:
        raise ConfigError(f"account {chosen.key} has no folder named {folder!r}")
    await store.sync_folder(folder)
    return store


async def run_export(
    config: Config,
    account: str,
    folder: str,
    dest: Path,
    *,
    query: str | None = None,
    as_eml: bool = False,
    out: TextIO = sys.stdout,
    cache_dir: Path | None = None,
) -> int:
    if query:
        parse_query(query)  # a malformed query stops here, before any connection
    engine = Engine(config, cache_dir=cache_dir)
    try:
        store = await _ready(engine, account, folder)
        api = MailApi(engine)
        if query:
            uids = [hit.uid for hit in api.search_cached(store.name, folder, query)]
        else:
            uids = store.cache.uids(folder)
        validity = api.uidvalidity(store.name, folder)
        said = await api.export_messages(
            store.name, [(folder, validity, uids)], dest, as_eml=as_eml
        )
    finally:
        await engine.stop()
    out.write(clean_line(said) + "\n")
    return 0


async def run_import(
    config: Config,
    account: str,
    folder: str,
    source: Path,
    *,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
    cache_dir: Path | None = None,
) -> int:
    engine = Engine(config, cache_dir=cache_dir)

    def progress(done: int, total: int) -> None:  # after each batch (core/transfer.py)
        err.write(f"\r{done:,}/{total:,}")
        err.flush()
        if done == total:
            err.write("\n")

    try:
        store = await _ready(engine, account, folder)
        result = await MailApi(engine).import_messages(store.name, folder, source, progress)
    finally:
        await engine.stop()
    out.write(clean_line(result.describe(folder)) + "\n")
    return 0
