"""A test-only POP3 download into a Maildir that can kill -9 itself at any step; run in a
child forked by ``journal_driver --serve`` (spec ``"driver": "pop3"``), from ``pop3_lab``.

Kill points are counted here, not in production code: in this process only, the steps of a
download are wrapped to count an event before and after each (or after, for a message
received): a message retrieved (RETR complete), its spool file written and fsynced, its
rename into ``new/``, the directory fsync, the ledger's ``begin`` (UIDL recorded as
committing), ``stored``, ``forget`` and ``deleted``, the DELEs and the QUIT. With
``kill_at`` = N the process sends itself SIGKILL at event N. A clean run writes the list of
events it saw, which the lab turns into kill points. With ``retry`` (random runs, where the
proxy may also reset the connection), a download cut by the network is tried again, as the
poller would, up to 5 times.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

from faults.journal_driver import Steps

from kittiwake.core import maildir as maildir_module
from kittiwake.core.config import config_from_dict
from kittiwake.core.errors import KittiwakeError
from kittiwake.core.maildir import LazyFile, Maildir
from kittiwake.core.pop3.client import Pop3Client
from kittiwake.core.pop3.fetch import FetchTuning, fetch_once
from kittiwake.core.pop3.ledger import Ledger
from kittiwake.core.pop3.sinks import MaildirSink


def instrument(steps: Steps, root: Path) -> None:
    """Wrap each step of a download (this process only)."""

    def around(owner: Any, name: str, label: str) -> None:
        original = getattr(owner, name)

        def wrapped(*args: Any, **kwargs: Any) -> Any:
            steps.event(f"before {label}")
            result = original(*args, **kwargs)
            steps.event(f"after {label}")
            return result

        setattr(owner, name, wrapped)

    def around_async(owner: Any, name: str, label: str) -> None:
        original = getattr(owner, name)

        async def wrapped(*args: Any, **kwargs: Any) -> Any:
            steps.event(f"before {label}")
            result = await original(*args, **kwargs)
            steps.event(f"after {label}")
            return result

        setattr(owner, name, wrapped)

    for name in ("begin", "stored", "forget", "deleted"):
        around(Ledger, name, f"ledger.{name}")
    around(LazyFile, "sync", "spool write+fsync")
    around(maildir_module, "_fsync_dir", "fsync dir")
    around_async(Pop3Client, "dele_many", "DELE")
    around_async(Pop3Client, "quit", "QUIT")

    rename = os.rename

    def renamed(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        inside = str(dst).startswith(str(root))
        if inside:
            steps.event("before rename")
        rename(src, dst, *args, **kwargs)
        if inside:
            steps.event("after rename")

    os.rename = renamed  # type: ignore[assignment]

    retr_many = Pop3Client.retr_many

    async def counted(
        self: Pop3Client, *args: Any, **kwargs: Any
    ) -> AsyncGenerator[tuple[int, int | None, Any], None]:
        async for item in retr_many(self, *args, **kwargs):
            steps.event("retrieved")
            yield item

    Pop3Client.retr_many = counted  # type: ignore[method-assign,assignment]


async def main(spec: dict[str, Any]) -> None:
    root = Path(spec["maildir"])
    steps = Steps(spec.get("kill_at"), Path(spec["out"]))
    instrument(steps, root)
    config = config_from_dict(
        {
            "accounts": {
                "pop": {
                    "email": spec["login"],
                    "pop3": {
                        "host": spec["host"],
                        "port": spec["port"],
                        "security": "none",
                        "user": spec["login"],
                        "password": spec["password"],
                        "keep_on_server": False,
                        "timeout": 10,
                    },
                }
            }
        }
    )
    sink = MaildirSink(Maildir(root))
    # Small batches: several commits (and so several ledger steps) in one run.
    tuning = FetchTuning(window=2, batch_messages=2, batch_seconds=60.0)
    new = recovered = deleted = losses = 0
    while True:  # as the poller does: a download cut by the network is tried again
        try:
            stats = await fetch_once(
                config.accounts["pop"], sink=sink, ledger=Path(spec["ledger"]), tuning=tuning
            )
        except KittiwakeError as exc:
            losses += 1
            if losses > 5 or not spec.get("retry"):
                raise
            print(f"download cut ({exc.message}); again", file=sys.stderr, flush=True)
            continue
        new, recovered, deleted = new + stats.new, recovered + stats.recovered, stats.deleted
        break
    steps.write(
        {
            "events": steps.events,
            "new": new,
            "recovered": recovered,
            "deleted": deleted,
            "losses": losses,
        }
    )
