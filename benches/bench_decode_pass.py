"""The CPU a cold start costs after its first sync: the background decode pass (issue 19).

    .venv/bin/python benches/bench_decode_pass.py --messages 10000           # ~1 min
    .venv/bin/python benches/bench_decode_pass.py --messages 100000 --keep /tmp/c100k.sqlite3
    .venv/bin/python benches/bench_decode_pass.py --cache /tmp/c100k.sqlite3 --profile
    .venv/bin/python benches/bench_decode_pass.py --messages 100000 --against /work/main --at-once-only

A first sync stores most summaries undecoded (``core/imap/lazy.py``); ``decode_pass`` decodes
and indexes them, in the background. This fills a private Dovecot's INBOX with
``bench_imap_sync``'s generated messages (root, Dovecot: as for the server tests), then, each
in a fresh child process:

1. Cold starts as the app makes them (``ImapAccount.start()`` on an empty cache): the process
   CPU from the end of the first sync until the account is quiet, plus ``--quiet`` idle
   seconds; with the decode pass started at once (as before issue 19's change:
   ``cache.want_decoded()`` right after the sync) and as now (only once something needs
   every row), interleaved, ``--runs`` each. Then a first search (``from:judy``) and its CPU.
2. The decode pass alone over a synced cache file (``connect_once`` + ``sync_all``), as the
   account runs it without the back-off, on copies of that file: CPU and wall time, best and
   median of ``--runs``. ``--cache`` reuses a file a previous run kept (``--keep``): this
   part only, no server needed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "tests"), str(REPO / "benches")]


def child_sync(p: dict[str, Any]) -> dict[str, Any]:
    from bench_imap_sync import _make_account, _preload, _timed_bus

    _preload()

    async def run() -> dict[str, Any]:
        account = _make_account(p, _timed_bus(), p["cache"])
        account._decode_wanted = False  # connect_once + sync_all: no decode pass
        started = time.monotonic()
        await account.connect_once()
        await account.sync_all()
        took = time.monotonic() - started
        count = account.cache.counts("INBOX")[0]
        await account.stop()
        account.cache.close()
        return {"seconds": took, "cached": count}

    return asyncio.run(run())


def child_running(p: dict[str, Any]) -> dict[str, Any]:
    """A cold start as the app makes it: ``start()`` on an empty cache, then the CPU this
    process spends from the end of the first sync until the account is quiet (its decode
    pass, if one runs, finished) plus ``quiet`` seconds more, or ``window`` seconds."""
    from bench_imap_sync import _make_account, _preload, _timed_bus

    _preload()

    async def run() -> dict[str, Any]:
        account = _make_account(p, _timed_bus(), p["cache"])
        # Tuning.decode_after_sync (the default: the pass at once) or not (when wanted).
        account._decode_wanted = p["eager"]
        started = time.monotonic()
        account.start()
        await account.wait_synced(600)
        synced = time.monotonic()
        cpu0 = time.process_time()
        decoder = account._decoder
        if decoder is not None:
            await asyncio.wait_for(asyncio.shield(decoder), p["window"])
        busy = time.monotonic() - synced
        await asyncio.sleep(p["quiet"])  # a bench, not a test: the idle tail is measured
        cpu = time.process_time() - cpu0
        raw = len(account.cache.undecoded("INBOX", 10**7))
        first, wall = time.process_time(), time.monotonic()
        hits = await _search(account.cache)
        search_cpu, search_wall = time.process_time() - first, time.monotonic() - wall
        await account.wait_decoded(p["window"])  # the pass the search asked for, if any
        until_quiet = time.process_time() - first
        again, wall = time.process_time(), time.monotonic()
        await _search(account.cache)
        again, again_wall = time.process_time() - again, time.monotonic() - wall
        await account.stop()
        account.cache.close()
        return {"sync": synced - started, "cpu": cpu, "busy": busy, "raw_left": raw,
                "search_cpu": search_cpu, "search_wall": search_wall, "hits": hits,
                "until_quiet": until_quiet, "again": again, "again_wall": again_wall}  # fmt: skip

    return asyncio.run(run())


async def _search(cache: Any) -> int:
    """A search as the app's search screen runs it (``MailApi.search_local``)."""
    from kittiwake.core.search.service import local_hits_off_loop

    return len(await local_hits_off_loop(cache, ["INBOX"], "from:judy"))


def child_decode(p: dict[str, Any]) -> dict[str, Any]:
    import kittiwake.core.imap.account  # noqa: F401  (imports out of the clock)
    from kittiwake.core.cache import Cache
    from kittiwake.core.imap.lazy import decode_pass

    if p.get("wal_limit"):
        from kittiwake.core import cache as cache_module

        cache_module.WAL_LIMIT = p["wal_limit"]
    cache = Cache(Path(p["cache"]))
    raw_before = _raw_rows(p["cache"])

    # As the account runs it after a first sync: the search index left to the first search
    # where this checkout can (``--against`` an older one measures its pass as it was).
    deferred = "index" in inspect.signature(decode_pass).parameters

    async def run() -> int:
        done = 0
        for folder in cache.folders():
            if deferred:
                done += await decode_pass(cache, folder.name, index=False)
            else:
                done += await decode_pass(cache, folder.name)
        return done

    profiler = None
    if p.get("profile"):
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    wal = Path(p["cache"] + "-wal")
    peak = [0]
    stop = threading.Event()

    def sample() -> None:  # the WAL's size every 50 ms: what an open after a crash reads back
        while not stop.wait(0.05):
            with contextlib.suppress(FileNotFoundError):
                peak[0] = max(peak[0], wal.stat().st_size)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    cpu, wall = time.process_time(), time.perf_counter()
    done = asyncio.run(run())
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    stop.set()
    sampler.join()
    wal_end = wal.stat().st_size if wal.exists() else 0
    if profiler is not None:
        import pstats

        profiler.disable()
        stats = pstats.Stats(profiler, stream=sys.stderr)
        stats.sort_stats("cumulative").print_stats(25)
        stats.sort_stats("tottime").print_stats(20)
    cache.close()
    return {"cpu": cpu, "wall": wall, "decoded": done, "raw_before": raw_before,
            "raw_after": _raw_rows(p["cache"]), "wal_peak": peak[0],
            "wal_end": wal_end}  # fmt: skip


def _raw_rows(path: str) -> int:
    import sqlite3

    db = sqlite3.connect(path)
    try:
        (n,) = db.execute("SELECT count(*) FROM messages WHERE raw IS NOT NULL").fetchone()
    finally:
        db.close()
    return int(n)


CHILDREN = {"sync": child_sync, "decode": child_decode, "running": child_running}


def run_child(mode: str, params: dict[str, Any], python: str = sys.executable) -> dict[str, Any]:
    proc = subprocess.run(
        [python, str(Path(__file__).resolve()), "--child", mode],
        input=json.dumps(params) + "\n",
        stdout=subprocess.PIPE,
        text=True,
        check=False,
        timeout=3600,
    )
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return dict(json.loads(line[7:]))
    raise RuntimeError(f"child {mode} failed (exit {proc.returncode}):\n{proc.stdout[-2000:]}")


@contextlib.contextmanager
def server(n: int, seed: int) -> Iterator[dict[str, Any]]:
    """A private Dovecot whose INBOX holds ``n`` generated messages: the children's params."""
    from bench_imap_sync import fill_maildir, verify_fill
    from harness import Dovecot, ServerRoot, make_test_ca

    from kittiwake.core.imap.account import Tuning

    root = ServerRoot()
    dovecot = None
    try:
        dovecot = Dovecot(root.instance_dir("dovecot"), make_test_ca(root.instance_dir("ca")))
        dovecot.start()
        user = dovecot.add_user("bench")
        print(f"filling INBOX with {n:,} messages", file=sys.stderr)
        fill_maildir(dovecot, user, n, seed)
        verify_fill(dovecot, user, n)
        tuning = Tuning()
        yield {
            "host": dovecot.host,
            "port": dovecot.ports.imaps,
            "ca_file": str(dovecot.ca_file),
            "login": user.login,
            "password": user.password,
            "batch": tuning.batch,
            "first_window": tuning.first_window,
        }
    finally:
        if dovecot is not None:
            dovecot.stop()
        root.cleanup()


def running(
    base: dict[str, Any],
    tmp: Path,
    runs: int,
    window: float,
    quiet: float,
    pythons: dict[str, str],
    modes: tuple[bool, ...] = (True, False),
) -> None:
    """Cold starts, the pass started at once (the default) and left until wanted,
    interleaved, for each checkout of ``pythons`` (label -> its interpreter) in turn."""
    results: dict[tuple[str, bool], list[dict[str, Any]]] = {}
    for i in range(runs):
        for eager in modes:
            for label, python in pythons.items():
                cache = tmp / f"running-{i}-{eager}-{label}.sqlite3"
                params = {**base, "cache": str(cache), "eager": eager, "window": window,
                          "quiet": quiet}  # fmt: skip
                r = run_child("running", params, python)
                results.setdefault((label, eager), []).append(r)
                print(f"[{label}] cold start {i + 1}, pass {'at once' if eager else 'when wanted'}: sync "
                      f"{r['sync']:.2f} s, then {r['cpu']:.2f} s CPU ({r['busy']:.2f} s busy + "
                      f"{quiet:.0f} s), {r['raw_left']:,} rows left raw; a first search "
                      f"{r['search_cpu']:.2f} s CPU, {r['search_wall']:.2f} s wall ({r['hits']:,} "
                      f"hits), {r['until_quiet']:.2f} s CPU from it until quiet; the next search "
                      f"{r['again']:.2f} s CPU, {r['again_wall']:.2f} s wall", file=sys.stderr)  # fmt: skip
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{cache}{suffix}").unlink(missing_ok=True)
    for (label, eager), rows in results.items():
        cpu = statistics.median(r["cpu"] for r in rows)
        busy = statistics.median(r["busy"] for r in rows)
        search = statistics.median(r["search_cpu"] for r in rows)
        search_wall = statistics.median(r["search_wall"] for r in rows)
        quiet_cpu = statistics.median(r["until_quiet"] for r in rows)
        each = ", ".join(f"{r['cpu']:.2f}" for r in rows)
        print(f"[{label}] after the first sync, pass {'at once (the default)' if eager else 'when wanted (decode_after_sync=False)'}:"
              f" CPU median {cpu:.2f} s (busy {busy:.2f} s wall, then {quiet:.0f} s idle; all:"
              f" {each});"
              f" then a first search {search:.2f} s CPU, {search_wall:.2f} s wall;"
              f" {quiet_cpu:.2f} s CPU from it until quiet")  # fmt: skip


def synced_cache(base: dict[str, Any], into: Path) -> None:
    synced = run_child("sync", {**base, "cache": str(into)})
    print(f"cold sync: {synced['seconds']:.1f} s, {synced['cached']:,} cached", file=sys.stderr)


def decode_runs(
    template: Path, tmp: Path, runs: int, profile: bool, wal_limit: int | None = None
) -> None:
    results = []
    for i in range(runs + (1 if profile else 0)):
        copy = tmp / f"run{i}.sqlite3"
        for suffix in ("", "-wal", "-shm"):
            if Path(f"{template}{suffix}").exists():
                shutil.copy(f"{template}{suffix}", f"{copy}{suffix}")
        profiled = profile and i == runs
        r = run_child("decode", {"cache": str(copy), "profile": profiled, "wal_limit": wal_limit})
        if not profiled:
            results.append(r)
        print(f"decode pass {i + 1}: {r['cpu']:.2f} s CPU, {r['wall']:.2f} s wall, "
              f"{r['decoded']:,} decoded; raw rows {r['raw_before']:,} -> {r['raw_after']:,};"
              f" WAL peak {r['wal_peak'] / 2**20:.1f} MB, at the end {r['wal_end'] / 2**20:.1f} MB"
              + (" (profiled)" if profiled else ""), file=sys.stderr)  # fmt: skip
    cpu = [r["cpu"] for r in results]
    wall = [r["wall"] for r in results]
    print(
        f"the decode pass alone over {results[0]['raw_before']:,} raw rows: CPU best "
        f"{min(cpu):.2f} s, median {statistics.median(cpu):.2f} s; wall best {min(wall):.2f} s,"
        f" median {statistics.median(wall):.2f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cache", type=Path, help="a synced cache kept by --keep: no server")
    parser.add_argument("--keep", type=Path, help="keep the synced cache here")
    parser.add_argument("--profile", action="store_true", help="cProfile one more decode pass")
    parser.add_argument("--window", type=float, default=600, help="longest wait for the pass")
    parser.add_argument("--quiet", type=float, default=5, help="idle seconds measured after")
    parser.add_argument(
        "--wal-limit-mb", type=int, default=0, help="the cache's WAL_LIMIT for the decode pass"
    )
    parser.add_argument(
        "--against",
        type=Path,
        help="another checkout (its .venv): its cold starts interleaved with this one's",
    )
    parser.add_argument(
        "--at-once-only", action="store_true", help="cold starts with the default only"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = CHILDREN[args.child](json.loads(sys.stdin.readline()))
        print("RESULT " + json.dumps(result), flush=True)
        return
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        template = args.cache
        if template is None:
            template = tmp / "synced.sqlite3"
            with server(args.messages, args.seed) as base:
                pythons = {"this": sys.executable}
                if args.against is not None:
                    pythons[args.against.name] = str(args.against / ".venv/bin/python")
                modes = (True,) if args.at_once_only else (True, False)
                running(base, tmp, args.runs, args.window, args.quiet, pythons, modes)
                synced_cache(base, template)
            if args.keep is not None:
                shutil.copy(template, args.keep)
        decode_runs(template, tmp, args.runs, args.profile, args.wal_limit_mb << 20 or None)
    print(f"load average {os.getloadavg()[0]:.1f} (2 cores: anything above 2 inflates wall time)")


if __name__ == "__main__":
    main()
