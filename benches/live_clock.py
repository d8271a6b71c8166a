#!/usr/bin/env python3
"""A live change to its frame inside the app (issue 19): the engine's event published to the
first frame the compositor makes after it, wall and CPU time, headless (100x30).

    .venv/bin/python benches/live_clock.py --messages 100000 --rounds 2 --changes 20 \\
        --against /work/main

``compare_peers.py --live-runs`` measures the whole way from another device's command to the
pane, with Dovecot's half-second watch delay and the raw socket beside it: on a shared machine
its per-round differences swing by tens of ms. This measures only the UI's part, the same
way for each checkout: on a generated cache (no server; the engine retries a closed port), a
message's flags are changed in the cache and ``FlagsChanged`` published, then a new newest
message is stored and ``MessagesAdded`` published, as the engine does after its FETCH; each
timed to the first ``App._display`` after it (the frame, before the driver writes it). The
checkouts alternate run by run (``--rounds``), each on a fresh copy of the cache.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


async def changes(home: Path, count: int) -> dict[str, list[tuple[float, float]]]:
    from kittiwake.core.config import load_config
    from kittiwake.core.events import FlagsChanged, MessagesAdded
    from kittiwake.core.models import SEEN, Address, Envelope, MessageSummary
    from kittiwake.tui.app import KittiwakeApp
    from kittiwake.tui.widgets.message_list import MessageList

    app = KittiwakeApp(load_config(home / "config.toml"))
    out: dict[str, list[tuple[float, float]]] = {}
    async with app.run_test(size=(100, 30)) as pilot:
        messages = app.screen.query_one(MessageList)
        while not messages.index_complete or messages.row_count == 0:
            await pilot.pause(0.02)
        await pilot.pause(0.5)
        account = next(iter(app.api.engine.imap.values()))
        cache, bus = account.cache, app.api.engine.bus
        mark: dict[str, Any] = {}
        display = app._display

        def recorded(screen: Any, update: Any) -> None:
            if "wall" in mark and update is not None and "took" not in mark:
                mark["took"] = (
                    time.perf_counter() - mark["wall"],
                    time.thread_time() - mark["cpu"],
                )
            display(screen, update)

        app._display = recorded  # type: ignore[method-assign]

        async def timed(name: str, event: Any) -> None:
            mark.clear()
            mark.update(wall=time.perf_counter(), cpu=time.thread_time())
            bus.publish(event)
            while "took" not in mark:
                await asyncio.sleep(0.0005)
            out.setdefault(name, []).append(mark["took"])

        uid = max(messages.index) + 1
        for n in range(count):
            row = messages.index[3]  # a row on screen, not the cursor's
            summary = messages.summary(row)
            assert summary is not None
            flags = frozenset(summary.flags ^ {SEEN})
            cache.set_flags("INBOX", {row: flags})
            await timed("flags", FlagsChanged(account.name, "INBOX", {row: flags}))
            await pilot.pause(0.1)
            now = datetime.now(UTC)
            envelope = Envelope(
                date=now,
                subject=f"Fresh news {n}",
                from_=(Address("Ann Lee", "ann@example.org"),),
                to=(),
                message_id=f"<fresh{n}@example.org>",
            )
            fresh = MessageSummary(uid, frozenset(), now, 1000, envelope, (), False, uid)
            cache.put_summaries("INBOX", [fresh])
            await timed("new mail", MessagesAdded(account.name, "INBOX", [fresh]))
            uid += 1
            await pilot.pause(0.15)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--changes", type=int, default=20, help="of each kind per run")
    parser.add_argument("--against", type=Path, help="another checkout (with its .venv)")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        for key in ("HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME", "XDG_CONFIG_HOME"):
            os.environ[key] = str(args.child / {"HOME": ""}.get(key, key[4:-5].lower()))
        print(json.dumps(asyncio.run(changes(args.child, args.changes))))
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_tui import fill_cache, write_config  # type: ignore[import-not-found]

    root = Path(__file__).resolve().parent.parent
    checkouts = [root] + ([args.against.resolve()] if args.against else [])
    top = Path(tempfile.mkdtemp(prefix="kw-live-clock-"))
    try:
        source = top / "source"
        source.mkdir()
        write_config(source / "config.toml")
        fill_cache(source / "cache" / "kittiwake" / "bench.sqlite3", args.messages)
        got: dict[Path, dict[str, list[tuple[float, float]]]] = {c: {} for c in checkouts}
        for round_ in range(args.rounds):
            for checkout in checkouts if round_ % 2 == 0 else checkouts[::-1]:
                home = top / "run"
                shutil.rmtree(home, ignore_errors=True)
                shutil.copytree(source, home)
                python = checkout / ".venv" / "bin" / "python"
                run = [str(python), __file__, "--child", str(home), "--changes", str(args.changes)]
                done = subprocess.run(run, capture_output=True, text=True, check=True, cwd=checkout)
                for name, values in json.loads(done.stdout.strip().splitlines()[-1]).items():
                    got[checkout].setdefault(name, []).extend(map(tuple, values))
    finally:
        shutil.rmtree(top, ignore_errors=True)
    print(
        f"load average {os.getloadavg()[0]:.1f}; {args.messages:,} messages; medians (ms) of "
        f"{args.rounds} runs per checkout x {args.changes} changes; "
        + ", ".join(f"{n}: {c}" for n, c in zip(("this", "other"), checkouts, strict=False))
    )
    for name in ("flags", "new mail"):
        for field, index in (("wall", 0), ("cpu", 1)):
            cells = [statistics.median(v[index] for v in got[c][name]) * 1000 for c in checkouts]
            print(f"{name:9s} {field:5s} " + " ".join(f"{v:8.2f}" for v in cells))


if __name__ == "__main__":
    main()
