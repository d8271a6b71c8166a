#!/usr/bin/env python3
"""Warm start to list drawn on a generated cache, quitting cleanly in between (issue 19).

    .venv/bin/python benches/bench_warm_start.py --messages 1000000 --runs 5 --against /work/main

Fills (once, kept under ``--homes``) a cache of N messages as ``bench_tui.py`` does, copies
it for each checkout, then starts each checkout's ``kittiwake`` in tmux (a closed port: no server), alternating the checkouts; each run ends with ``q`` and waits for the process to
exit, so the next start finds the file as a clean quit left it (what a user's warm start
finds). ``--crash`` ends each run by killing the tmux session instead (no clean close).
Prints, per checkout, the medians of wall time from spawn to the newest subject on screen
and of the process's CPU time when the poll (every 5 ms) saw it; and, from inside the
process (``frame_clock.py``, which runs the app), the wall time from the process's start
and the CPU time when that frame was handed to the terminal: the outside poll sees the frame
late on a loaded machine, and its CPU reading then includes what the app did after it.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_tui import env_for, fill_cache, write_config

ROOT = Path(__file__).resolve().parent.parent
SESSION = "kw-bench-warm"
CLOCK = Path(__file__).resolve().parent / "frame_clock.py"
MARKER = "Subject number"


def tmux(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["tmux", *args], capture_output=True, text=True)


def one_start(home: Path, checkout: Path, crash: bool) -> tuple[float, float, float, float]:
    """(wall seconds to the list, CPU seconds when the poll saw it, and both inside the
    process at that frame) of one start."""
    python = checkout / ".venv" / "bin" / "python"
    clock = home / "frame-clock"
    clock.unlink(missing_ok=True)
    env = env_for(home) | {"KW_FRAME_CLOCK": str(clock), "KW_FRAME_MARKER": MARKER}
    cmd = " ".join(
        f"{k}={shlex.quote(v)}" for k, v in env.items() if k.startswith(("XDG_", "HOME", "KW_"))
    )
    tmux("kill-session", "-t", "=" + SESSION)
    start = time.perf_counter()
    made = tmux(
        "new", "-d", "-s", SESSION, "-x", "100", "-y", "30",
        f"exec env {cmd} {python} {CLOCK} --config {home / 'config.toml'}",
    )  # fmt: skip
    if made.returncode:
        raise SystemExit(f"tmux new failed: {made.stderr.strip()}")
    while MARKER not in tmux("capture-pane", "-p", "-t", f"={SESSION}:").stdout:
        if time.perf_counter() - start > 120:
            raise SystemExit("no list within 120 s")
        time.sleep(0.005)
    wall = time.perf_counter() - start
    pid = tmux("display-message", "-p", "-t", f"={SESSION}:", "#{pane_pid}").stdout.strip()
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
    while not clock.exists() or not clock.read_text().endswith("\n"):
        if time.perf_counter() - start > 120:
            raise SystemExit("no frame clock within 120 s")
        time.sleep(0.005)
    frame_wall, frame_cpu = (float(x) for x in clock.read_text().split())
    if crash:
        tmux("kill-session", "-t", "=" + SESSION)
    else:
        tmux("send-keys", "-t", f"={SESSION}:", "q")
        quit_at = time.perf_counter()
        while tmux("has-session", "-t", f"={SESSION}").returncode == 0:
            if time.perf_counter() - quit_at > 120:
                raise SystemExit("the app did not quit within 120 s")
            time.sleep(0.02)
    return wall, cpu, frame_wall, frame_cpu


def main() -> None:
    global SESSION
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--against", type=Path, help="another checkout, measured alternately")
    parser.add_argument("--homes", type=Path, default=Path("/tmp/kw-bench-warm"))
    parser.add_argument("--session", default=SESSION, help="the tmux session's name")
    parser.add_argument("--crash", action="store_true", help="end each run without a clean quit")
    args = parser.parse_args()
    SESSION = args.session
    filled = args.homes / f"h{args.messages}" / "cache" / "kittiwake" / "bench.sqlite3"
    if not filled.exists():
        filled.parent.mkdir(parents=True, exist_ok=True)
        fill_cache(filled, args.messages)
    checkouts = {"this": ROOT} | ({"other": args.against.resolve()} if args.against else {})
    homes = {}
    for name in checkouts:  # a copy each: what one version leaves is not the other's start
        home = homes[name] = args.homes / f"h{args.messages}-{name}"
        shutil.rmtree(home, ignore_errors=True)
        (home / "cache" / "kittiwake").mkdir(parents=True)
        write_config(home / "config.toml")
        shutil.copyfile(filled, home / "cache" / "kittiwake" / "bench.sqlite3")
    got: dict[str, list[tuple[float, float, float, float]]] = {name: [] for name in checkouts}
    try:
        for name in checkouts:  # once each, unmeasured: the file as each one leaves it
            one_start(homes[name], checkouts[name], args.crash)
        for round_ in range(args.runs):
            for name in sorted(checkouts, reverse=bool(round_ % 2)):
                got[name].append(one_start(homes[name], checkouts[name], args.crash))
                wall, cpu, frame_wall, frame_cpu = got[name][-1]
                print(
                    f"  {name}: {wall:.3f} s, {cpu:.3f} s CPU;"
                    f" at the frame {frame_wall:.3f} s, {frame_cpu:.3f} s CPU"
                )
    finally:
        tmux("kill-session", "-t", "=" + SESSION)
        for home in homes.values():
            shutil.rmtree(home, ignore_errors=True)
    for name, runs in got.items():
        wall, cpu, frame_wall, frame_cpu = (statistics.median(r[i] for r in runs) for i in range(4))
        print(
            f"{args.messages:>9,} messages, {name:5s} ({checkouts[name]}): list drawn"
            f" {wall:.3f} s, CPU {cpu:.3f} s; in the process at the frame {frame_wall:.3f} s,"
            f" CPU {frame_cpu:.3f} s (medians of {len(runs)})",
            flush=True,
        )


if __name__ == "__main__":
    main()
