#!/usr/bin/env python3
"""The reading UI on a 100,000-message folder from a warm cache.

Measures, as a user would feel it:
- process start to the first painted message list (a real terminal: tmux, polled every 5 ms);
- cursor down, page down and jump to end: key to repaint (Textual's Pilot, headless, median
  and max over repetitions);
- peak memory (RSS) of the app process.

``--against /other/checkout`` instead compares the terminal key latencies of this checkout
and another one (its own ``.venv``) on the same cache, interleaved run by run; with
``--cold`` too, their cold starts instead (empty cache, a private Dovecot holding
``--messages``): wall time to the newest row on screen and the process CPU at that frame.

The cache is filled directly with generated summaries and the account points at a closed
port, so the app paints from the cache while the engine retries in the background.

    .venv/bin/python benches/bench_tui.py --messages 100000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SESSION = f"kwbench-{os.getpid()}"  # its own: another run at the same time is not disturbed


def fill_cache(path: Path, count: int) -> None:
    from kittiwake.core.cache import Cache
    from kittiwake.core.models import Address, Envelope, FolderInfo, FolderRole, MessageSummary

    cache = Cache(path)
    cache.set_folders(
        [FolderInfo("INBOX", "/", FolderRole.INBOX), FolderInfo("Sent", "/", FolderRole.SENT)]
    )
    t0 = datetime(2020, 1, 1, tzinfo=UTC)
    batch = []
    names = ["Ann Lee", "Jörg Müller", "山田太郎", "Zoë Martin", "GitHub"]
    for uid in range(1, count + 1):
        when = t0 + timedelta(minutes=uid * 7)
        env = Envelope(
            date=when,
            subject=f"Subject number {uid} about the quarterly planning",
            from_=(Address(names[uid % 5], f"user{uid % 97}@example.org"),),
            to=(Address("Me", "me@example.test"),),
            message_id=f"<{uid}@example.org>",
        )
        flags = frozenset({"\\Seen"}) if uid < count - 50 else frozenset()
        batch.append(MessageSummary(uid, flags, when, 4000, env, (), uid % 9 == 0, uid))
        if len(batch) == 5000:
            cache.put_summaries("INBOX", batch)
            batch = []
    cache.put_summaries("INBOX", batch)
    from kittiwake.core.cache import FolderState

    cache.set_folder_state("INBOX", FolderState(1, count + 1, count))
    cache.close()


def write_config(path: Path) -> None:
    path.write_text(
        '[accounts.bench]\nemail = "me@example.test"\n'
        '[accounts.bench.imap]\nhost = "127.0.0.1"\nport = 9\npassword = "x"\nsecurity = "tls"\n'
    )
    path.chmod(0o600)


def env_for(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "KITTIWAKE"))}
    env.update(
        HOME=str(home),
        XDG_CACHE_HOME=str(home / "cache"),
        XDG_STATE_HOME=str(home / "state"),
        XDG_CONFIG_HOME=str(home / "config"),
        TERM="xterm-256color",
    )
    return env


def capture(escapes: bool = False) -> str:
    args = ["tmux", "capture-pane", "-p", "-t", SESSION] + (["-e"] if escapes else [])
    return subprocess.run(args, capture_output=True, text=True).stdout


def key_latency(key: str, reps: int) -> list[float]:
    """Seconds from tmux send-keys to a changed screen (colours included), polled every 2 ms."""
    out = []
    for _ in range(reps):
        before = capture(True)
        start = time.perf_counter()
        subprocess.run(["tmux", "send-keys", "-t", SESSION, key], check=True)
        while capture(True) == before:
            if time.perf_counter() - start > 5:
                raise SystemExit(f"screen did not change after {key}")
            time.sleep(0.002)
        out.append(time.perf_counter() - start)
        time.sleep(0.05)  # let the app go idle before the next key
    return out


def first_paint(
    home: Path,
    config: Path,
    runs: int,
    keys_after: int = 0,
    marker: str = "Subject number",
    checkout: Path = ROOT,
    probes: list[dict[str, float]] | None = None,
) -> tuple[list[float], dict[str, list[float]]]:
    """Seconds from spawning ``kittiwake`` in tmux to the newest subject on screen; then, in
    the last run, key latencies as the terminal shows them. With ``probes``, the app runs
    under ``start_probe.py`` and what it noted at the first frame is appended there."""
    out = []
    lat: dict[str, list[float]] = {}
    kittiwake = str(checkout / ".venv" / "bin" / "kittiwake")
    probe = home / "probe.json"
    if probes is not None:
        here = Path(__file__).resolve().parent / "start_probe.py"
        kittiwake = f"{checkout / '.venv' / 'bin' / 'python'} {here} {probe} --"
    for _ in range(runs):
        subprocess.run(["tmux", "kill-session", "-t", SESSION], capture_output=True)
        env = env_for(home)
        cmd = " ".join(f"{k}={v!s}" for k, v in env.items() if k.startswith(("XDG_", "HOME")))
        new = ["tmux", "new", "-d", "-s", SESSION, "-x", "100", "-y", "30"]
        probe.unlink(missing_ok=True)
        for _attempt in range(3):  # tmux new fails now and then on a busy machine
            start = time.perf_counter()
            started = subprocess.run(
                [*new, f"env {cmd} {kittiwake} --config {config}"], capture_output=True, text=True
            )
            if started.returncode == 0:
                break
            subprocess.run(["tmux", "kill-session", "-t", SESSION], capture_output=True)
            time.sleep(0.5)
        else:
            raise SystemExit(f"tmux new failed: {started.stderr.strip()}")
        while True:
            screen = subprocess.run(
                ["tmux", "capture-pane", "-p", "-t", SESSION], capture_output=True, text=True
            ).stdout
            if re.search(marker, screen):
                out.append(time.perf_counter() - start)
                break
            if time.perf_counter() - start > 20:
                raise SystemExit(f"no list painted within 20 s:\n{screen}")
            time.sleep(0.005)
        if probes is not None:
            while not probe.exists() and time.perf_counter() - start < 30:
                time.sleep(0.01)
            time.sleep(0.05)  # written whole by now
            probes.append(json.loads(probe.read_text()))
        if keys_after and len(out) == runs:
            time.sleep(1.0)
            lat["j"] = key_latency("j", keys_after)
            lat["k"] = key_latency("k", keys_after)
            lat["PageDown"] = key_latency("PageDown", keys_after)
            lat["G/g"] = [
                t for _ in range(keys_after // 2) for t in key_latency("G", 1) + key_latency("g", 1)
            ]
        subprocess.run(["tmux", "kill-session", "-t", SESSION], capture_output=True)
    return out, lat


async def keys(config_path: Path, reps: int) -> dict[str, list[float]]:
    from kittiwake.core.config import load_config
    from kittiwake.tui.app import KittiwakeApp
    from kittiwake.tui.widgets.message_list import MessageList

    app = KittiwakeApp(load_config(config_path))
    timings: dict[str, list[float]] = {}
    async with app.run_test(size=(100, 30)) as pilot:
        messages = app.screen.query_one(MessageList)
        while len(messages.index) == 0:
            await pilot.pause(0.01)
        await pilot.pause()
        for _ in range(reps):
            for name, key in (("down", "j"), ("pagedown", "pagedown"), ("end", "G"), ("home", "g")):
                cpu = time.process_time()
                await pilot.press(key)
                await pilot.pause()  # until the repaint has been processed
                timings.setdefault(name + " cpu", []).append(time.process_time() - cpu)
    return timings


def child_keys(config: str, reps: int) -> None:
    timings = asyncio.run(keys(Path(config), reps))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"timings": timings, "rss_mb": rss}))


def cold_first_paint(
    count: int, runs: int, other: Path | None = None
) -> dict[str, tuple[list[float], list[dict[str, float]]]]:
    """Process start to first painted list with an EMPTY cache, syncing from a private Dovecot
    holding ``count`` messages (the test harness; Dovecot's own index warmed first). With
    ``other`` (a checkout), this checkout's and that one's starts alternate, each run under
    ``start_probe.py``: seconds to the newest message's row on screen and what the probe noted
    at that frame (process CPU, peak RSS), per checkout ("this", "other")."""
    sys.path.insert(0, str(ROOT / "tests"))
    sys.path.insert(0, str(ROOT / "benches"))
    from bench_imap_sync import fill_maildir  # type: ignore[import-not-found]
    from harness import Dovecot, ServerRoot, make_test_ca
    from harness.clients import imap_device
    from harness.mail import message

    root = ServerRoot()
    try:
        dovecot = Dovecot(root.instance_dir("dovecot"), make_test_ca(root.instance_dir("ca")))
        dovecot.start()
        user = dovecot.add_user("bench", "bench-password")
        fill_maildir(dovecot, user, count, 1)
        device = imap_device(dovecot, user)
        device.select("INBOX")
        device.uid("FETCH", "1:*", "(UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODYSTRUCTURE)")
        # The newest message (once Dovecot has given the filled ones their UIDs, at the SELECT
        # above), on the first screen, names itself for the probe's marker.
        newest = message(0, subject="Subject number 0, the newest").replace(
            b"Thu, 26 Nov 2026 10:00:00 +0000", format_datetime(datetime.now(UTC)).encode()
        )
        device.append("INBOX", "", None, newest)
        device.logout()
        home = Path(tempfile.mkdtemp(prefix="kw-bench-cold-"))
        config = home / "config.toml"
        config.write_text(
            f'[accounts.bench]\nemail = "{user.email}"\n[accounts.bench.imap]\n'
            f'host = "{dovecot.host}"\nport = {dovecot.ports.imaps}\nuser = "{user.login}"\n'
            f'password = "{user.password}"\nca_file = "{dovecot.ca_file}"\n'
        )
        config.chmod(0o600)
        checkouts = {"this": ROOT, **({"other": other} if other is not None else {})}
        out: dict[str, tuple[list[float], list[dict[str, float]]]] = {
            name: ([], []) for name in checkouts
        }
        for round_ in range(runs):
            for name in sorted(checkouts, reverse=bool(round_ % 2)):
                shutil.rmtree(home / "cache", ignore_errors=True)
                paints, _ = first_paint(
                    home,
                    config,
                    1,
                    marker="Subject number",
                    checkout=checkouts[name],
                    probes=out[name][1],
                )
                out[name][0].extend(paints)
        shutil.rmtree(home, ignore_errors=True)
        dovecot.close()
        return out
    finally:
        root.cleanup()


def cold_against(count: int, other: Path, runs: int) -> None:
    """Cold starts of this checkout and ``other``, interleaved: wall and process CPU."""
    got = cold_first_paint(count, runs, other)
    print(f"load average {os.getloadavg()[0]:.1f}; cold starts, {count:,} messages on the server")
    print(f"medians of {runs} starts each, interleaved (this: {ROOT}, other: {other})")
    print(f"{'cold start':26s} {'this':>7s} {'other':>7s}")
    rows = {
        "to newest row on screen (s)": {n: got[n][0] for n in got},
        "process CPU (s)": {n: [p["cpu"] for p in got[n][1]] for n in got},
        "peak RSS (MB)": {n: [p["rss_mb"] for p in got[n][1]] for n in got},
    }
    for label, values in rows.items():
        a, b = (statistics.median(values[n]) for n in ("this", "other"))
        print(f"{label:26s} {a:7.3f} {b:7.3f}")
    for name in got:
        print(f"{name} to screen: " + " ".join(f"{t:.2f}" for t in got[name][0]))


def against(home: Path, config: Path, other: Path, runs: int, reps: int) -> None:
    """Terminal key latencies of this checkout and ``other``, one start each per round, the
    order swapped each round (so load from elsewhere falls on both alike)."""
    checkouts = {"this": ROOT, "other": other}
    lat: dict[str, dict[str, list[float]]] = {name: {} for name in checkouts}
    starts: dict[str, list[float]] = {name: [] for name in checkouts}
    probes: dict[str, list[dict[str, float]]] = {name: [] for name in checkouts}
    for round_ in range(runs):
        for name in sorted(checkouts, reverse=bool(round_ % 2)):
            took, got = first_paint(
                home,
                config,
                1,
                keys_after=reps,
                checkout=checkouts[name],
                probes=probes[name],
            )
            starts[name] += took
            for key, values in got.items():
                lat[name].setdefault(key, []).extend(values)
    print(f"load average {os.getloadavg()[0]:.1f}; medians of {runs} starts, interleaved")
    print(f"{'start':22s} {'this':>7s} {'other':>7s}   (this: {ROOT}, other: {other})")
    rows = {
        "to list on screen (s)": starts,
        "process CPU (s)": {n: [p["cpu"] for p in probes[n]] for n in checkouts},
        "peak RSS (MB)": {n: [p["rss_mb"] for p in probes[n]] for n in checkouts},
        "modules loaded": {n: [p["modules"] for p in probes[n]] for n in checkouts},
    }
    for label, values in rows.items():
        a, b = (statistics.median(values[n]) for n in ("this", "other"))
        print(f"{label:22s} {a:7.3f} {b:7.3f}")
    print(f"medians of {runs} x {reps} presses (ms)")
    print(f"{'key':9s} {'this':>7s} {'other':>7s}")
    for key in lat["this"]:
        a, b = (statistics.median(lat[n][key]) * 1000 for n in ("this", "other"))
        print(f"{key:9s} {a:7.1f} {b:7.1f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--child-keys", metavar="CONFIG")
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--cold", action="store_true", help="also: first paint with an empty cache")
    parser.add_argument("--against", type=Path, help="another checkout: compare key latencies")
    args = parser.parse_args()
    if args.child_keys:
        child_keys(args.child_keys, args.reps)
        return
    if args.cold and args.against:
        keep = ["tmux", "new", "-d", "-s", SESSION + "-keep", "sleep 3600"]
        subprocess.run(keep, capture_output=True)
        try:
            cold_against(args.messages, args.against.resolve(), args.runs)
        finally:
            subprocess.run(["tmux", "kill-session", "-t", SESSION], capture_output=True)
            subprocess.run(["tmux", "kill-session", "-t", SESSION + "-keep"], capture_output=True)
        return
    home = Path(tempfile.mkdtemp(prefix="kw-bench-tui-"))
    try:
        config = home / "config.toml"
        write_config(config)
        t = time.perf_counter()
        fill_cache(home / "cache" / "kittiwake" / "bench.sqlite3", args.messages)
        print(f"cache filled with {args.messages:,} summaries in {time.perf_counter() - t:.1f} s")
        # A session that outlives the measured ones keeps the tmux server up: killing the
        # last session stops it, and a new one started meanwhile can fail.
        keep = ["tmux", "new", "-d", "-s", SESSION + "-keep", "sleep 3600"]
        subprocess.run(keep, capture_output=True)
        if args.against:
            against(home, config, args.against.resolve(), args.runs, args.reps)
            return
        if shutil.which("tmux"):
            paints, lat = first_paint(home, config, args.runs, keys_after=args.reps)
            print(
                f"process start to first painted list (warm cache): median {statistics.median(paints) * 1000:.0f} ms,"
                f" max {max(paints) * 1000:.0f} ms over {len(paints)} runs (goal < 500 ms)"
            )
            for name, values in lat.items():
                print(
                    f"terminal: key {name:9s} to changed screen: median {statistics.median(values) * 1000:5.1f} ms,"
                    f" max {max(values) * 1000:5.1f} ms (includes tmux polling; goal < 30 ms)"
                )
        out = subprocess.run(
            [sys.executable, __file__, "--child-keys", str(config), "--reps", str(args.reps)],
            capture_output=True,
            text=True,
            env=env_for(home),
            check=True,
        )
        data = json.loads(out.stdout.strip().splitlines()[-1])
        for name, values in data["timings"].items():
            print(
                f"headless (Pilot) {name:12s} per key: median {statistics.median(values) * 1000:5.1f} ms, max {max(values) * 1000:5.1f} ms (goal < 30 ms)"
            )
        print(f"peak RSS of the app process: {data['rss_mb']:.0f} MB (goal < 100 MB)")
        if args.cold and shutil.which("tmux"):
            cold = cold_first_paint(args.messages, args.runs)["this"][0]
            print(
                f"process start to first painted list (COLD: empty cache, {args.messages:,} on the server):"
                f" median {statistics.median(cold) * 1000:.0f} ms, max {max(cold) * 1000:.0f} ms (goal < 1 s)"
            )
    finally:
        subprocess.run(["tmux", "kill-session", "-t", SESSION], capture_output=True)
        subprocess.run(["tmux", "kill-session", "-t", SESSION + "-keep"], capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
