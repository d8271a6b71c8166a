#!/usr/bin/env python3
"""Key to frame inside the app (issue 19): for each key, the wall time from Textual's input
thread reading it to the first frame of 100 characters or more written after it, and the
event loop thread's CPU time from the app receiving it to that frame.

    .venv/bin/python benches/key_clock.py --messages 100000 --rounds 4 --reps 10 \\
        --against /work/main

``bench_tui.py`` times keys from outside (tmux ``send-keys`` to a changed pane, polled every
2 ms): on a shared machine tmux's own scheduling is most of what it sees. This runs each
checkout's ``kittiwake`` in tmux (100x30) on one generated cache, the checkouts alternating
round by round, and notes the times in the process: Textual's ``LinuxDriver.process_message``
(input thread), ``App.on_event`` (the key on the loop) and ``kittiwake.tui.driver._Writer``
(the frame handed to the terminal). Keys: ``j k PageDown PageUp G g``, ``--reps`` times per
start, 80 ms apart. Medians per key: ``wall``, ``cpu`` (the loop thread), ``tmux`` (send-keys
to a changed pane, for comparison).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

KEYS = ("j", "k", "PageDown", "PageUp", "G", "g")
TEXTUAL_NAME = {"PageDown": "pagedown", "PageUp": "pageup"}  # tmux's name: Textual's
SESSION = f"kwkeyclock-{os.getpid()}"


def run_app(out_path: str, args: list[str]) -> None:
    """In the app's process: patch the three points, then run ``kittiwake`` as usual."""
    from textual import events
    from textual.app import App
    from textual.drivers.linux_driver import LinuxDriver

    import kittiwake.tui.driver as frame_driver

    out = open(out_path, "a", buffering=1)  # noqa: SIM115 (open while the app runs)
    key: dict[str, Any] = {}
    process_message = LinuxDriver.process_message

    def read(self: Any, message: Any) -> None:
        if isinstance(message, events.Key):
            key.clear()
            key.update(name=message.key, read=time.perf_counter())
        process_message(self, message)

    on_event = App.on_event

    async def received(self: Any, event: Any) -> None:
        if isinstance(event, events.Key) and "read" in key and "cpu" not in key:
            key["cpu"] = time.thread_time()
        await on_event(self, event)

    def saw(text: str) -> None:
        if "cpu" not in key or len(text) < 100:
            return
        cpu, now = time.thread_time() - key["cpu"], time.perf_counter() - key["read"]
        out.write(json.dumps({"key": key["name"], "wall": now, "cpu": cpu}) + "\n")
        key.clear()

    loop_thread = threading.get_ident()
    for name in ("write", "write_now"):
        original = getattr(frame_driver._Writer, name)

        def write(self: Any, text: str, _original: Any = original) -> None:
            if threading.get_ident() == loop_thread:
                saw(text)
            _original(self, text)

        setattr(frame_driver._Writer, name, write)
    LinuxDriver.process_message = read  # type: ignore[method-assign]
    App.on_event = received  # type: ignore[method-assign]
    sys.argv = ["kittiwake", *args]
    from kittiwake.cli.main import main

    sys.exit(main())


def capture() -> str:
    args = ["tmux", "capture-pane", "-p", "-e", "-t", SESSION]
    return subprocess.run(args, capture_output=True, text=True).stdout


def one_start(checkout: Path, home: Path, reps: int) -> tuple[list[dict[str, Any]], dict]:
    """One start of ``checkout``'s app: the keys' in-process records and tmux latencies."""
    out = home / f"keys-{os.getpid()}.jsonl"
    out.unlink(missing_ok=True)
    env = " ".join(
        f"{k}={home / v}" if v else f"{k}={home}"
        for k, v in (
            ("HOME", ""),
            ("XDG_CACHE_HOME", "cache"),
            ("XDG_STATE_HOME", "state"),
            ("XDG_CONFIG_HOME", "config"),
        )
    )
    python = checkout / ".venv" / "bin" / "python"
    command = (
        f"env {env} TERM=xterm-256color {python} {Path(__file__).resolve()} --app {out} -- "
        f"--config {home / 'config.toml'}"
    )
    subprocess.run(
        ["tmux", "new", "-d", "-s", SESSION, "-x", "100", "-y", "30", command], check=True
    )
    try:
        started = time.perf_counter()
        while "Subject number" not in capture():
            if time.perf_counter() - started > 30:
                raise SystemExit("no list on screen within 30 s")
            time.sleep(0.05)
        time.sleep(1.5)
        seen: dict[str, list[float]] = {}
        for _ in range(reps):
            for name in KEYS:
                before, start = capture(), time.perf_counter()
                subprocess.run(["tmux", "send-keys", "-t", SESSION, name], check=True)
                while capture() == before and time.perf_counter() - start < 3:
                    time.sleep(0.002)
                seen.setdefault(TEXTUAL_NAME.get(name, name), []).append(
                    time.perf_counter() - start
                )
                time.sleep(0.08)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", SESSION], capture_output=True)
    time.sleep(0.3)
    return [json.loads(line) for line in out.read_text().splitlines()], seen


def main() -> None:
    if "--app" in sys.argv:
        split = sys.argv.index("--")
        run_app(sys.argv[sys.argv.index("--app") + 1], sys.argv[split + 1 :])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--against", type=Path, help="another checkout (with its .venv)")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_tui import fill_cache, write_config  # type: ignore[import-not-found]

    root = Path(__file__).resolve().parent.parent
    checkouts = [root] + ([args.against.resolve()] if args.against else [])
    home = Path(tempfile.mkdtemp(prefix="kw-key-clock-"))
    keep = ["tmux", "new", "-d", "-s", SESSION + "-keep", "sleep 3600"]
    try:
        write_config(home / "config.toml")
        fill_cache(home / "cache" / "kittiwake" / "bench.sqlite3", args.messages)
        subprocess.run(keep, capture_output=True)
        got: dict[Path, dict[tuple[str, str], list[float]]] = {c: {} for c in checkouts}
        for round_ in range(args.rounds):
            for checkout in checkouts if round_ % 2 == 0 else checkouts[::-1]:
                records, seen = one_start(checkout, home, args.reps)
                for record in records:
                    for field in ("wall", "cpu"):
                        got[checkout].setdefault((record["key"], field), []).append(record[field])
                for name, values in seen.items():
                    got[checkout].setdefault((name, "tmux"), []).extend(values)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", SESSION], capture_output=True)
        subprocess.run(["tmux", "kill-session", "-t", SESSION + "-keep"], capture_output=True)
        shutil.rmtree(home, ignore_errors=True)
    print(
        f"load average {os.getloadavg()[0]:.1f}; {args.messages:,} messages; medians (ms) of "
        f"{args.rounds} starts per checkout x {args.reps} presses; "
        + ", ".join(f"{n}: {c}" for n, c in zip(("this", "other"), checkouts, strict=False))
    )
    print(
        f"{'key':10s} "
        + " ".join(
            f"{f + ' ' + n:>12s}"
            for f in ("wall", "cpu", "tmux")
            for n in ("this", "other")[: len(checkouts)]
        )
    )
    for name in (TEXTUAL_NAME.get(k, k) for k in KEYS):
        cells = [
            statistics.median(got[c].get((name, f), [float("nan")])) * 1000
            for f in ("wall", "cpu", "tmux")
            for c in checkouts
        ]
        print(f"{name:10s} " + " ".join(f"{v:12.2f}" for v in cells))


if __name__ == "__main__":
    main()
