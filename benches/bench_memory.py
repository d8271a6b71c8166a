#!/usr/bin/env python3
"""Peak memory (VmHWM) of the app with a folder of N generated summaries open (issue 19).

Two measurements, both on a cache filled by ``bench_tui.fill_cache`` and an account whose
port is closed (no server: what the open folder itself costs):

- the real ``kittiwake`` in tmux: started, its list drawn, one quiet second, then 20 ``j``,
  5 PageDown, ``G``, ``g``; VmHWM read from ``/proc`` before it is closed;
- ``--points``: the app in this process (Textual's Pilot, headless) with VmHWM and VmRSS
  printed after the imports, the app's start, the list drawn and the keys, and with
  ``--trace`` the largest Python allocations (tracemalloc; it inflates RSS itself).

``--against /other/checkout`` measures that checkout's ``kittiwake`` too, alternately, on
the same cache (its own ``.venv``). ``--server``: against a private Dovecot holding N
messages instead (root), each checkout's cache filled by its ``kittiwake sync``: a warm
start with its resync. ``--homes DIR`` keeps the generated caches there for the next run
(a million summaries take 1.5 minutes to generate).

    .venv/bin/python benches/bench_memory.py --messages 10000,100000 --runs 3 --against /work/main

``--order sender-asc`` (any order's code) opens the folder in that order, as ``O`` leaves it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benches"))
SESSION = f"kwmem-{os.getpid()}"


def status_mb(pid: int | str = "self") -> tuple[float, float]:
    """(VmHWM, VmRSS) of ``pid`` in MB."""
    text = Path(f"/proc/{pid}/status").read_text()
    hwm, rss = (re.search(rf"{k}:\s+(\d+) kB", text) for k in ("VmHWM", "VmRSS"))
    assert hwm is not None and rss is not None
    return int(hwm.group(1)) / 1024, int(rss.group(1)) / 1024


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True).stdout


def real_app(home: Path, checkout: Path, marker: str = "Subject number") -> list[float]:
    """VmHWM in MB of ``checkout``'s kittiwake: when its list is drawn, one quiet second
    later (a warm resync against a server is done by then) and after the keys."""
    from bench_tui import env_for

    env = env_for(home)
    cmd = " ".join(f"{k}={v}" for k, v in env.items() if k.startswith(("XDG_", "HOME")))
    kittiwake = checkout / ".venv" / "bin" / "kittiwake"
    tmux("kill-session", "-t", "=" + SESSION)
    tmux(
        "new-session", "-d", "-s", SESSION, "-x", "100", "-y", "30",
        f"exec env {cmd} TERM=xterm-256color {kittiwake} --config {home / 'config.toml'}",
    )  # fmt: skip
    began = time.perf_counter()
    while marker not in tmux("capture-pane", "-p", "-t", f"={SESSION}:"):
        if time.perf_counter() - began > 60:
            screen = tmux("capture-pane", "-p", "-t", f"={SESSION}:")
            raise SystemExit(f"{checkout}: no list within 60 s:\n{screen}")
        time.sleep(0.01)
    pid = int(tmux("display-message", "-p", "-t", f"={SESSION}:", "#{pane_pid}").strip())
    peaks = [status_mb(pid)[0]]
    time.sleep(1.0)
    peaks.append(status_mb(pid)[0])
    for key in ["j"] * 20 + ["PageDown"] * 5 + ["G", "g"]:
        tmux("send-keys", "-t", f"={SESSION}:", key)
        time.sleep(0.05)
    time.sleep(0.5)
    peaks.append(status_mb(pid)[0])
    tmux("kill-session", "-t", "=" + SESSION)
    return peaks


def env_for(home: Path) -> dict[str, str]:
    from bench_tui import env_for as env

    return env(home)


def with_server(
    counts: list[int],
    runs: int,
    checkouts: dict[str, Path],
    top: Path,
    points_args: list[str] | None = None,
    cold: bool = False,
) -> None:
    """The same against a private Dovecot holding the messages, each checkout's cache filled
    by its ``kittiwake sync`` first: a warm start with its resync (QRESYNC, nothing changed)."""
    sys.path.insert(0, str(ROOT / "tests"))
    from bench_imap_sync import fill_maildir  # type: ignore[import-not-found]
    from harness import Dovecot, ServerRoot, make_test_ca
    from harness.clients import imap_device

    marker = "Kwbench newest marker"
    root = ServerRoot()
    try:
        dovecot = Dovecot(
            root.instance_dir("dovecot"),
            make_test_ca(root.instance_dir("ca")),
            extra_conf="service imap {\n  vsz_limit = 4G\n}\n",  # a first look at 1M files
        )
        dovecot.start()
        for count in counts:
            user = dovecot.add_user(f"bench{count}", "bench-password")
            if count >= 1_000_000:  # compare_peers --scale's tree, as it is (never rebuilt)
                from bench_imap_sync import BENCH_DATA, adopt_maildir

                tree = BENCH_DATA / f"inbox-{count}"
                if not (tree / "recipe.json").exists():
                    raise SystemExit(f"no {tree}: build it with compare_peers.py --scale")
                adopt_maildir(dovecot, user, tree / "Maildir")
            else:
                fill_maildir(dovecot, user, count, 1)
            device = imap_device(dovecot, user)
            device.socket().settimeout(3600)
            device.select("INBOX")
            if count < 1_000_000:  # the 1M tree is indexed once, when it is built
                newest = f"From: m@example.org\r\nSubject: {marker}\r\n\r\nNewest.\r\n".encode()
                device.append("INBOX", "", None, newest)
                device.select("INBOX")
                items = "(UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODYSTRUCTURE)"
                device.uid("FETCH", "1:*", items)
            device.logout()
            homes = {}
            for name, checkout in checkouts.items():
                home = homes[name] = top / f"{name}-{count}"
                home.mkdir(parents=True)
                config = home / "config.toml"
                config.write_text(
                    f'[accounts.bench]\nemail = "{user.email}"\n[accounts.bench.imap]\n'
                    f'host = "{dovecot.host}"\nport = {dovecot.ports.imaps}\n'
                    f'user = "{user.login}"\npassword = "{user.password}"\n'
                    f'ca_file = "{dovecot.ca_file}"\n'
                )
                config.chmod(0o600)
                if cold:
                    continue
                sync = [str(checkout / ".venv" / "bin" / "kittiwake"), "--config", str(config)]
                env = env_for(home)
                subprocess.run([*sync, "sync"], env=env, check=True, capture_output=True)
                real_app(home, checkout, marker)  # settles what a first start still does
            if cold and points_args is not None:
                order = [n for r in range(runs) for n in sorted(checkouts, reverse=bool(r % 2))]
                for name in order:  # alternating, ``runs`` times
                    checkout = checkouts[name]
                    print(f"-- {count:,} messages, {name} ({checkout}), cold, Dovecot", flush=True)
                    for sub in ("cache", "state", ".local"):
                        shutil.rmtree(homes[name] / sub, ignore_errors=True)
                    child = [str(checkout / ".venv" / "bin" / "python"), __file__]
                    config = str(homes[name] / "config.toml")
                    env = env_for(homes[name])
                    subprocess.run([*child, "--child-cold", config, *points_args], env=env)
                continue
            if cold:
                report_cold(count, runs, {n: (homes[n], c) for n, c in checkouts.items()}, marker)
                continue
            if points_args is not None:
                for name, checkout in checkouts.items():
                    print(f"-- {count:,} messages, {name} ({checkout}), Dovecot", flush=True)
                    child = [str(checkout / ".venv" / "bin" / "python"), __file__]
                    config = str(homes[name] / "config.toml")
                    subprocess.run([*child, "--child-points", config, *points_args], env=env)
                continue
            report(count, runs, {n: (homes[n], c) for n, c in checkouts.items()}, marker)
    finally:
        root.cleanup()


def cold_app(home: Path, checkout: Path, marker: str) -> tuple[float, float, float]:
    """(VmHWM in MB, CPU seconds, wall seconds) of ``checkout``'s kittiwake started on an
    empty cache: its first sync and background decode pass, until its CPU stays under 2%
    of a core for 3 s."""
    from bench_tui import env_for
    from compare_peers import cpu_of, wait_quiet

    shutil.rmtree(home / "cache", ignore_errors=True)
    shutil.rmtree(home / "data", ignore_errors=True)
    shutil.rmtree(home / "state", ignore_errors=True)
    shutil.rmtree(home / ".local", ignore_errors=True)
    env = env_for(home)
    cmd = " ".join(f"{k}={v}" for k, v in env.items() if k.startswith(("XDG_", "HOME")))
    kittiwake = checkout / ".venv" / "bin" / "kittiwake"
    tmux("kill-session", "-t", "=" + SESSION)
    began = time.perf_counter()
    tmux(
        "new-session", "-d", "-s", SESSION, "-x", "100", "-y", "30",
        f"exec env {cmd} TERM=xterm-256color {kittiwake} --config {home / 'config.toml'}",
    )  # fmt: skip
    while marker not in tmux("capture-pane", "-p", "-t", f"={SESSION}:"):
        if time.perf_counter() - began > 600:
            raise SystemExit(f"{checkout}: no list within 600 s")
        time.sleep(0.05)
    pid = int(tmux("display-message", "-p", "-t", f"={SESSION}:", "#{pane_pid}").strip())
    wait_quiet(pid, limit=3600, still=10.0)
    hwm, cpu = status_mb(pid)[0], cpu_of(pid)
    tmux("kill-session", "-t", "=" + SESSION)
    return hwm, cpu, time.perf_counter() - began


def report_cold(count: int, runs: int, where: dict[str, tuple[Path, Path]], marker: str) -> None:
    """Cold starts (first sync and decode pass), the checkouts alternating."""
    got: dict[str, list[tuple[float, float, float]]] = {name: [] for name in where}
    for round_ in range(runs):
        for name in sorted(where, reverse=bool(round_ % 2)):
            home, checkout = where[name]
            got[name].append(cold_app(home, checkout, marker))
            hwm, cpu, wall = got[name][-1]
            print(f"   {name}: VmHWM {hwm:.1f} MB, CPU {cpu:.1f} s, {wall:.0f} s", flush=True)
    for name, runs_ in got.items():
        hwm = statistics.median(r[0] for r in runs_)
        cpu = statistics.median(r[1] for r in runs_)
        print(
            f"{count:>9,} messages, {name:5s}: cold start, first sync + decode pass:"
            f" VmHWM {hwm:.1f} MB, CPU {cpu:.1f} s (runs: {[round(r[0], 1) for r in runs_]})",
            flush=True,
        )


def report(count: int, runs: int, where: dict[str, tuple[Path, Path]], marker: str) -> None:
    """Alternate the checkouts ``runs`` times; medians of VmHWM at the three moments."""
    peaks: dict[str, list[list[float]]] = {name: [] for name in where}
    for round_ in range(runs):
        for name in sorted(where, reverse=bool(round_ % 2)):
            home, checkout = where[name]
            peaks[name].append(real_app(home, checkout, marker))
    for name, got in peaks.items():
        med = [statistics.median(run[i] for run in got) for i in range(3)]
        print(
            f"{count:>9,} messages, {name:5s}: VmHWM list drawn {med[0]:.1f} MB, one second"
            f" later {med[1]:.1f} MB, after the keys {med[2]:.1f} MB"
            f" (runs: {[round(run[2], 1) for run in got]})",
            flush=True,
        )


def points(config: Path, trace: bool) -> None:
    """VmHWM at points of one start in this process (the checkout this venv installed)."""
    if trace:
        tracemalloc.start(10)

    def mark(name: str) -> None:
        hwm, rss = status_mb()
        extra = ""
        if trace:
            now, peak = tracemalloc.get_traced_memory()
            extra = f"  Python heap {now / 2**20:5.1f} MB (peak {peak / 2**20:5.1f})"
        print(f"{name:18s} VmHWM {hwm:6.1f} MB  VmRSS {rss:6.1f} MB{extra}", flush=True)

    mark("interpreter")
    from kittiwake.core.config import load_config
    from kittiwake.tui.app import KittiwakeApp
    from kittiwake.tui.widgets.message_list import MessageList

    mark("imports")

    async def run() -> None:
        app = KittiwakeApp(load_config(config))
        async with app.run_test(size=(100, 30)) as pilot:
            mark("app started")
            messages = app.screen.query_one(MessageList)
            while len(messages.index) == 0:
                await pilot.pause(0.01)
            await pilot.pause()
            mark("list drawn")
            drawn = tracemalloc.take_snapshot() if trace else None
            await pilot.pause(1.0)
            mark("one second later")
            if drawn is not None:
                print("   grew in that second (Python heap):")
                for stat in tracemalloc.take_snapshot().compare_to(drawn, "lineno")[:10]:
                    print("     ", stat)
            for key in ["j"] * 20 + ["pagedown"] * 5 + ["G", "g"]:
                await pilot.press(key)
                await pilot.pause()
            mark("after the keys")
            if trace:
                for stat in tracemalloc.take_snapshot().statistics("lineno")[:15]:
                    print("  ", stat)

    asyncio.run(run())


def sqlite_used() -> tuple[int, int]:
    """SQLite's own heap in this process (``sqlite3_memory_used``/``_highwater``): what
    tracemalloc does not see."""
    import _sqlite3
    import ctypes

    lib = ctypes.CDLL(_sqlite3.__file__)
    for name in ("sqlite3_memory_used", "sqlite3_memory_highwater"):
        getattr(lib, name).restype = ctypes.c_int64
    return lib.sqlite3_memory_used(), lib.sqlite3_memory_highwater(0)


def malloc_mb() -> tuple[float, float, float]:
    """glibc's heap: (in use, free inside the heap, mmapped) in MB (``mallinfo2``)."""
    import ctypes

    class Info(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
            "uordblks", "fordblks", "keepcost")]  # fmt: skip

    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = Info
    info = libc.mallinfo2()
    return info.uordblks / 2**20, info.fordblks / 2**20, info.hblkhd / 2**20


def cold_points(config: Path, trace: bool) -> None:
    """A cold start in this process (headless) with a search wanted at once (the decode pass
    follows the first sync): VmHWM every 2 s until the CPU is quiet, and
    with ``trace`` the largest Python allocations (by traceback) at the traced peak."""
    if trace:
        tracemalloc.start(12)
    from kittiwake.core.config import load_config
    from kittiwake.tui.app import KittiwakeApp

    best: list[object] = [0, None]

    async def run() -> None:
        app = KittiwakeApp(load_config(config))
        async with app.run_test(size=(100, 30)) as pilot:
            for account in app.api.engine.imap.values():
                account.cache.want_decoded()  # as a search would: the decode pass follows
            quiet = 0
            last = time.process_time()
            began = time.perf_counter()
            while quiet < 8:
                await pilot.pause(2.0)
                cpu = time.process_time()
                quiet = quiet + 1 if cpu - last < 0.04 else 0
                last = cpu
                hwm, rss = status_mb()
                extra = ""
                if trace:
                    now, peak = tracemalloc.get_traced_memory()
                    extra = f" heap {now / 2**20:6.1f} MB (peak {peak / 2**20:6.1f})"
                    if now > best[0]:  # type: ignore[operator]
                        best[:] = [now, tracemalloc.take_snapshot()]
                        if len(best) == 2:
                            best.append(best[1])  # the first: what the peak is compared to
                wall = time.perf_counter() - began
                used = sqlite_used()
                extra += f" SQLite {used[0] / 2**20:5.1f} MB (peak {used[1] / 2**20:5.1f})"
                extra += " malloc used {:5.1f} free {:5.1f} mmap {:5.1f}".format(*malloc_mb())
                print(
                    f"{wall:6.0f} s CPU {cpu:6.1f} VmHWM {hwm:6.1f} VmRSS {rss:6.1f}{extra}",
                    flush=True,
                )

    asyncio.run(run())
    if trace and best[1] is not None:
        snap = best[1]
        print(f"grown most by the sampled heap peak {best[0] / 2**20:.1f} MB:")  # type: ignore[operator]
        diff = snap.compare_to(best[2], "traceback")  # type: ignore[attr-defined]
        for stat in diff[:12]:
            print(f"  {stat.size_diff / 2**20:+7.2f} MB {stat.count_diff:+8d} blocks")
            for line in stat.traceback.format()[-14:]:
                print("     ", line)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", default="100000", help="sizes, comma-separated")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--against", type=Path, help="another checkout, measured alternately")
    parser.add_argument("--points", action="store_true", help="VmHWM at points, in-process")
    parser.add_argument("--trace", action="store_true", help="with --points: tracemalloc")
    parser.add_argument("--server", action="store_true", help="against a private Dovecot")
    parser.add_argument("--cold", action="store_true", help="with --server: empty caches")
    parser.add_argument("--homes", type=Path, help="keep the filled caches here, to reuse")
    parser.add_argument("--order", help="the folder's remembered order, e.g. sender-asc")
    parser.add_argument("--child-points", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child-cold", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_cold:
        cold_points(args.child_cold, args.trace)
        return
    if args.child_points:
        points(args.child_points, args.trace)
        return
    from bench_tui import env_for, fill_cache, write_config

    checkouts = {"this": ROOT} | ({"other": args.against.resolve()} if args.against else {})
    keep = ["tmux", "new", "-d", "-s", SESSION + "-keep", "sleep 3600"]
    subprocess.run(keep, capture_output=True)  # keeps the tmux server up between runs
    try:
        counts = [int(n) for n in args.messages.split(",")]
        if args.server:
            top = Path(tempfile.mkdtemp(prefix="kw-bench-mem-server-"))
            try:
                points_args = (["--trace"] if args.trace else []) if args.points else None
                with_server(counts, args.runs, checkouts, top, points_args, args.cold)
            finally:
                shutil.rmtree(top, ignore_errors=True)
            return
        for count in counts:
            if args.homes:
                home = args.homes / f"h{count}"
            else:
                home = Path(tempfile.mkdtemp(prefix="kw-bench-mem-"))
            try:
                if not (home / "config.toml").exists():
                    (home / "cache" / "kittiwake").mkdir(parents=True, exist_ok=True)
                    write_config(home / "config.toml")
                    fill_cache(home / "cache" / "kittiwake" / "bench.sqlite3", count)
                orders = home / "state" / "kittiwake" / "sort-orders.json"
                orders.unlink(missing_ok=True)
                if args.order:  # as ``O`` leaves it (core/search/order.py: SortMemory)
                    orders.parent.mkdir(parents=True, exist_ok=True)
                    orders.write_text(json.dumps({"bench": {"INBOX": args.order}}))
                if args.points:
                    for name, checkout in checkouts.items():
                        print(f"-- {count:,} messages, {name} ({checkout})", flush=True)
                        python = checkout / ".venv" / "bin" / "python"
                        cmd = [str(python), __file__, "--child-points", str(home / "config.toml")]
                        env = env_for(home)
                        subprocess.run(cmd + (["--trace"] if args.trace else []), env=env)
                    continue
                where = {name: (home, checkout) for name, checkout in checkouts.items()}
                report(count, args.runs, where, "Subject number")
            finally:
                if not args.homes:
                    shutil.rmtree(home, ignore_errors=True)
                else:
                    (home / "state" / "kittiwake" / "sort-orders.json").unlink(missing_ok=True)
    finally:
        tmux("kill-session", "-t", "=" + SESSION)
        tmux("kill-session", "-t", "=" + SESSION + "-keep")


if __name__ == "__main__":
    main()
