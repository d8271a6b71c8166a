"""Threading speed: JWZ over a realistic 100,000-message folder (goal: under 1 s).

    .venv/bin/python benches/bench_threads.py [--messages 100000] [--runs 5] [--seed 1]
        [--cache]   also time loading the inputs from a real Cache file (msgpack decode)
        [--profile] print a cProfile of one run

The folder: threads of heavy-tailed sizes (about half the messages are alone, a few threads
have hundreds), each reply answering a random earlier message of its thread with References
trimmed to the first and the last 9 ancestors, as mailers do; 8% of the threads lost their
first message (a missing parent), 2% of replies come from mailers that drop References and
In-Reply-To (subject fallback), 0.5% of Message-IDs are duplicated, some References lists
contain a loop, and one thread is a 2,000-message chain. Inputs are in cache order (newest
first), which is what the app passes.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from kittiwake.core.search.threads import ThreadColumns, ThreadInput, thread_messages


def generate(n: int, seed: int) -> list[ThreadInput[int]]:
    rng = random.Random(seed)
    out: list[ThreadInput[int]] = []
    t0 = 1.7e9
    uid = 0
    thread_no = 0
    while uid < n:
        thread_no += 1
        size = 1 if rng.random() < 0.5 else min(int(rng.paretovariate(1.2)) + 1, 600)
        if thread_no == 7:
            size = 2000  # one very long chain
        size = min(size, n - uid)
        subject = f"Topic {thread_no} {rng.choice(['budget', 'lunch', 'release', 'bug'])}"
        start = t0 + rng.uniform(0, 3e7)
        ids: list[str] = []
        chains: list[list[str]] = []
        lost_root = size > 1 and rng.random() < 0.08
        for j in range(size):
            mid = f"<t{thread_no}.m{j}.{rng.getrandbits(32):x}@example.org>"
            if rng.random() < 0.005 and ids:
                mid = ids[-1]  # duplicate Message-ID
            if j == 0:
                chain: list[str] = []
            elif thread_no == 7:
                chain = [*chains[j - 1], ids[j - 1]]  # a straight chain
            else:
                parent = rng.randrange(j)
                chain = [*chains[parent], ids[parent]]
            ids.append(mid)
            chains.append(chain)
            if lost_root and j == 0:
                continue
            refs = chain if len(chain) <= 10 else [chain[0], *chain[-9:]]
            irt = refs[-1] if refs else None
            subj = subject if j == 0 else f"Re: {subject}"
            if j and rng.random() < 0.02:
                refs, irt = [], None  # a mailer that drops references
            elif len(refs) > 3 and rng.random() < 0.01:
                refs = [*refs, refs[1]]  # a loop in References
            when = start + j * rng.uniform(60, 7200)
            out.append(ThreadInput(uid + 1, mid, irt, tuple(refs), subj, when))
            uid += 1
    out.sort(key=lambda m: (-m.date, -m.key))
    return out


def timed(fn: object, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        gc.collect()
        t = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - t)
    return times


def fill_cache(messages: list[ThreadInput[int]], path: Path) -> None:
    from kittiwake.core.cache import Cache
    from kittiwake.core.models import SEEN, Envelope, MessageSummary

    cache = Cache(path)
    batch = []
    for m in messages:
        when = datetime.fromtimestamp(m.date, UTC)
        env = Envelope(
            date=when, subject=m.subject, message_id=m.message_id, in_reply_to=m.in_reply_to
        )
        flags = frozenset({SEEN}) if m.key % 7 else frozenset()
        batch.append(MessageSummary(m.key, flags, when, 2000, env, tuple(m.references)))
    cache.put_summaries("INBOX", batch)
    cache.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cache", action="store_true")
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()

    t = time.perf_counter()
    messages = generate(args.messages, args.seed)
    print(
        f"generated {len(messages):,} messages in {time.perf_counter() - t:.2f} s", file=sys.stderr
    )
    unread = {m.key for m in messages if m.key % 7 == 0}

    columns = ThreadColumns.from_inputs(messages)

    def run() -> object:
        return thread_messages(columns, unread=unread)

    result = thread_messages(columns, unread=unread)
    sizes = sorted((t.messages for t in result.threads), reverse=True)
    print(
        f"threads: {len(result.threads):,} (largest {sizes[:3]}, singletons"
        f" {sum(1 for s in sizes if s == 1):,}), rows {len(result):,},"
        f" placeholders {result.keys.count(None):,}, deepest {max(result.depths)}"
    )
    variants = [
        ("columns, unread set", run),
        ("ThreadInput list, unread set", lambda: thread_messages(messages, unread=unread)),
        (
            "ThreadInput list, seen predicate",
            lambda: thread_messages(messages, seen=lambda k: k not in unread),
        ),
    ]
    for name, fn in variants:
        times = timed(fn, args.runs)
        print(
            f"thread_messages ({name}), {len(messages):,} messages:"
            f" best {min(times) * 1000:.0f} ms, median {statistics.median(times) * 1000:.0f} ms"
            f" over {args.runs} runs"
        )
    if args.cache:
        from kittiwake.core.search.threads import columns_from_cache

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "bench.sqlite3"
            fill_cache(messages, path)
            import sqlite3

            db = sqlite3.connect(path)
            fid = db.execute("SELECT id FROM folders WHERE name='INBOX'").fetchone()[0]

            def load_and_thread() -> object:
                cols, unread_keys = columns_from_cache(db, [fid])
                return thread_messages(cols, unread=unread_keys)

            load = timed(lambda: columns_from_cache(db, [fid]), args.runs)
            both = timed(load_and_thread, args.runs)
            print(
                f"columns_from_cache: best {min(load) * 1000:.0f} ms;"
                f" load + thread: best {min(both) * 1000:.0f} ms,"
                f" median {statistics.median(both) * 1000:.0f} ms"
            )
            db.close()
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        run()
        prof.disable()
        pstats.Stats(prof).sort_stats("cumulative").print_stats(15)


if __name__ == "__main__":
    main()
