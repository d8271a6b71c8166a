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
"""

from __future__ import annotations

import argparse
import asyncio
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
        dovecot = Dovecot(root.instance_dir("dovecot"), make_test_ca(root.instance_dir("ca")))
        dovecot.start()
        for count in counts:
            user = dovecot.add_user(f"bench{count}", "bench-password")
            fill_maildir(dovecot, user, count, 1)
            device = imap_device(dovecot, user)
            device.select("INBOX")
            newest = f"From: m@example.org\r\nSubject: {marker}\r\n\r\nNewest.\r\n".encode()
            device.append("INBOX", "", None, newest)
            device.select("INBOX")
            device.uid(
                "FETCH", "1:*", "(UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODYSTRUCTURE)"
            )
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
                sync = [str(checkout / ".venv" / "bin" / "kittiwake"), "--config", str(config)]
                env = env_for(home)
                subprocess.run([*sync, "sync"], env=env, check=True, capture_output=True)
                real_app(home, checkout, marker)  # settles what a first start still does
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", default="100000", help="sizes, comma-separated")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--against", type=Path, help="another checkout, measured alternately")
    parser.add_argument("--points", action="store_true", help="VmHWM at points, in-process")
    parser.add_argument("--trace", action="store_true", help="with --points: tracemalloc")
    parser.add_argument("--server", action="store_true", help="against a private Dovecot")
    parser.add_argument("--homes", type=Path, help="keep the filled caches here, to reuse")
    parser.add_argument("--child-points", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
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
                with_server(counts, args.runs, checkouts, top, points_args)
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
    finally:
        tmux("kill-session", "-t", "=" + SESSION)
        tmux("kill-session", "-t", "=" + SESSION + "-keep")


if __name__ == "__main__":
    main()
