"""Opening the hostile corpus (issue 17, item 7): every message within 200 ms, bounded memory.

    .venv/bin/python benches/bench_hostile_open.py            # parsing only: no server, ~10 s
    .venv/bin/python benches/bench_hostile_open.py --app      # + the real app (root, Dovecot)

Parsing: each message of tests/faults/hostile_mail.py (the deep corpus: 27 messages) through
``parse_message``, best of ``--runs`` in CPU seconds, and the peak of memory it allocated
(tracemalloc, a run of its own); then, for a message with parts left unread, reading every
attachment (what S, v and a forward do, off the event loop).

``--app`` runs tests/faults/test_hostile_content.py with the deep corpus and the figures on:
the real app through Pilot at 120x40, each message opened with J from the one before (the
reader prefetches the next, as when a user reads on). Per message: "open" is J to the reader's
widgets updated; "on screen" adds Pilot's polling (20 ms) and one refresh; "parse" is the
worker thread's. Peak RSS of the test process after the list was drawn and after every view of
every message was opened.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests" / "faults"), str(ROOT / "tests")]

from hostile_mail import corpus  # noqa: E402

from kittiwake.core.message.mime import parse_message  # noqa: E402


def parse_figures(runs: int) -> None:
    messages = corpus("127.0.0.2:9", deep=True)
    rows = []
    for name, raw in messages.items():
        best = min(_cpu(lambda raw=raw: parse_message(raw)) for _ in range(runs))
        tracemalloc.start()
        parsed = parse_message(raw)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        rows.append((best, name, len(raw), peak, parsed.unread_parts))
        if parsed.unread_parts:
            tracemalloc.start()
            every = _cpu(lambda parsed=parsed: parsed.attachments)
            later = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            count = len(parsed.attachments)
            rows.append((every, f"  {name}: every attachment ({count:,})", 0, later, 0))
    print(f"parse_message, {len(messages)} messages, best of {runs} (CPU):")
    print(f"{'message':<44} {'size':>9} {'CPU ms':>8} {'peak MiB':>9} {'unread':>7}")
    for cpu, name, size, peak, unread in rows:
        print(f"{name:<44} {size:>9,} {cpu * 1000:>8.1f} {peak / 2**20:>9.1f} {unread:>7,}")
    opened = [r for r in rows if not r[1].startswith(" ")]
    worst = max(opened)
    print(
        f"max {worst[0] * 1000:.1f} ms ({worst[1]}), median "
        f"{statistics.median(r[0] for r in opened) * 1000:.1f} ms, "
        f"max peak {max(r[3] for r in opened) / 2**20:.1f} MiB"
    )


def _cpu(work: object) -> float:
    started = time.process_time()
    work()  # type: ignore[operator]
    return time.process_time() - started


def app_figures() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "figures.json"
        env = os.environ | {"KITTIWAKE_HOSTILE_DEEP": "1", "KITTIWAKE_HOSTILE_FIGURES": str(out)}
        test = "tests/faults/test_hostile_content.py::test_hostile_corpus_in_list_reader_headers_source_and_attachments"
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test]
        started = time.monotonic()
        subprocess.run(cmd, cwd=ROOT, env=env, check=True)
        print(f"the test took {time.monotonic() - started:.0f} s; load average {os.getloadavg()}")
        figures = json.loads(out.read_text())
    messages: dict[str, dict[str, float]] = figures["messages"]
    print(f"\n{len(messages)} messages opened in the app (J from the one before):")
    keys = ("open", "on screen", "parse", "parse cpu", "render", "headers", "source")
    print(f"{'message':<34}" + "".join(f"{k:>11}" for k in keys))
    for name, times in sorted(messages.items(), key=lambda kv: -kv[1]["open"]):
        print(f"{name[:33]:<34}" + "".join(f"{times.get(k, 0) * 1000:>9.0f}ms" for k in keys))
    for key in keys:
        values = [t[key] for t in messages.values()]
        print(
            f"{key:<10} median {statistics.median(values) * 1000:6.0f} ms,"
            f" max {max(values) * 1000:6.0f} ms"
        )
    rss = figures["peak rss kib"]
    print(
        f"peak RSS: {rss['listed'] / 1024:.0f} MiB with the list drawn, "
        f"{rss['read'] / 1024:.0f} MiB after every message and view"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--app", action="store_true", help="also open the corpus in the app")
    args = parser.parse_args()
    parse_figures(args.runs)
    if args.app:
        app_figures()


if __name__ == "__main__":
    main()
