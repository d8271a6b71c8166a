#!/usr/bin/env python3
"""POP3 download benchmark: Kittiwake's fetcher against a plain stdlib poplib loop.

Run by hand (as root, like the server tests; Dovecot must be installed):

    .venv/bin/python benches/bench_pop3.py                    # 10,000 messages
    .venv/bin/python benches/bench_pop3.py --messages 2000    # quick run

What it does:

1. Starts a private Dovecot through the test harness (``tests/harness``: loopback address
   127.0.0.2, state in ``/tmp/kittiwake-servers-*``, removed at the end) and writes N
   messages of mixed sizes straight into one user's Maildir: 70% 1-10 KB of text, 25%
   10-100 KB with a base64 attachment, 5% 100 KB-1 MB, plus ``--big`` messages of 5-10 MB
   (a few lines start with "." so dot-stuffing is exercised). All lines are shorter than
   2,048 bytes, because poplib refuses longer ones ("line too long").
2. Lets Dovecot index the maildrop once (UIDL + LIST over POP3S), then measures, each in a
   fresh child process so that peak RSS (``ru_maxrss``) belongs to that measurement alone (``VmHWM``):

   * ``poplib``: stdlib ``poplib.POP3_SSL``, login, UIDL, then ``retr`` each message and
     write it to its own file (no fsync, no ledger): what a naive downloader does.
   * ``kittiwake``: ``fetch_once`` into a fresh Maildir with the ledger (fsync of every
     message and of ``new/``, durable ledger commits), default tuning (pipelined RETR).
   * ``kittiwake-nopipe``: the same with one RETR in flight (``window = 1``), to show what
     pipelining is worth.
   * ``kittiwake-again``: a second run on the same ledger with nothing new (UIDL only).

   Every copy is checked: same count and total size as the server's LIST.
3. Prints messages/s, MB/s, client CPU, peak RSS and RSS growth over the process's
   start-up (imports included in "start").

The script is not a test and never runs in CI; nothing here is imported by the suite.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import grp
import json
import os
import poplib
import pwd
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))  # the harness


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def rss_mb() -> float:
    """Peak RSS of this process so far (VmHWM: unlike ru_maxrss, not inherited across fork and
    exec from the parent, whose fill step is much bigger)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


# =========================================================================================
# Fill (parent)
# =========================================================================================


def make_message(rng: random.Random, n: int, size: int) -> bytes:
    head = (
        f"From: Sender {n % 97} <s{n % 97}@example.org>\r\n"
        f"To: me@example.test\r\n"
        f"Subject: message {n} of the benchmark\r\n"
        f"Date: Thu, 26 Nov 2026 10:{n % 60:02d}:00 +0000\r\n"
        f"Message-ID: <bench{n}.{rng.getrandbits(32)}@example.org>\r\n"
        f"MIME-Version: 1.0\r\n"
    ).encode()
    words = ["kittiwake", "cliff", "ocean", "mail", "POP3", "wind", "north", "tide", "nest"]
    text_lines = []
    text_size = min(size, 8000) if size > 10_000 else size
    total = 0
    while total < text_size:
        line = " ".join(rng.choice(words) for _ in range(rng.randint(5, 11)))
        if rng.random() < 0.03:
            line = "." + line  # dot-stuffed on the wire
        text_lines.append(line)
        total += len(line) + 2
    text = ("\r\n".join(text_lines) + "\r\n").encode()
    if size <= 10_000:
        return head + b"Content-Type: text/plain; charset=utf-8\r\n\r\n" + text
    blob = base64.encodebytes(rng.randbytes((size - len(text)) * 3 // 4)).replace(b"\n", b"\r\n")
    return (
        head
        + b'Content-Type: multipart/mixed; boundary="b0undary"\r\n\r\n'
        + b"--b0undary\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        + text
        + b"--b0undary\r\nContent-Type: application/octet-stream\r\n"
        + b'Content-Disposition: attachment; filename="data.bin"\r\n'
        + b"Content-Transfer-Encoding: base64\r\n\r\n"
        + blob
        + b"--b0undary--\r\n"
    )


def pick_size(rng: random.Random) -> int:
    r = rng.random()
    if r < 0.70:
        return int(1000 * 10 ** rng.random())  # 1-10 KB
    if r < 0.95:
        return int(10_000 * 10 ** rng.random())  # 10-100 KB
    return int(100_000 * 10 ** rng.random())  # 100 KB - 1 MB


def fill(dovecot: Any, user: Any, count: int, big: int, seed: int) -> dict[str, Any]:
    from harness import imap_device

    device = imap_device(dovecot, user)  # the first login creates the Maildir
    device.select("INBOX")
    device.logout()
    cur = dovecot.maildir(user) / "cur"
    mail_uid = pwd.getpwnam("mail").pw_uid
    mail_gid = grp.getgrnam("mail").gr_gid
    rng = random.Random(seed)
    big_at = set(rng.sample(range(count), big))
    total = 0
    largest = 0
    start = int(time.time()) - 86400 * 30
    for i in range(count):
        size = rng.randint(5_000_000, 10_000_000) if i in big_at else pick_size(rng)
        raw = make_message(rng, i + 1, size).replace(b"\r\n", b"\n")  # Maildir: LF
        ts = start + i
        name = f"{ts}.M{i}P{os.getpid()}.bench,S={len(raw)}:2,"
        fd = os.open(cur / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, raw)
            os.fchown(fd, mail_uid, mail_gid)
            os.utime(fd, (ts, ts))
        finally:
            os.close(fd)
        wire = len(raw) + raw.count(b"\n")
        total += wire
        largest = max(largest, wire)
    return {"bytes": total, "largest": largest}


def warm_up(dovecot: Any, user: Any) -> dict[str, Any]:
    started = time.monotonic()
    pop = poplib.POP3_SSL(
        dovecot.host, dovecot.ports.pop3s, context=dovecot.ca.client_context(), timeout=600
    )
    pop.user(user.login)
    pop.pass_(user.password)
    _resp, uidl, _ = pop.uidl()
    _resp, listing, _ = pop.list()
    pop.quit()
    sizes = [int(line.split()[1]) for line in listing]
    return {"count": len(uidl), "bytes": sum(sizes), "seconds": time.monotonic() - started}


# =========================================================================================
# Children: one measurement each
# =========================================================================================


def child_poplib(args: dict[str, Any]) -> dict[str, Any]:
    import ssl

    dest = Path(args["dest"])
    dest.mkdir(parents=True)
    ctx = ssl.create_default_context(cafile=args["ca_file"])
    rss_start = rss_mb()
    t0, c0 = time.monotonic(), cpu()
    pop = poplib.POP3_SSL(args["host"], args["port"], context=ctx, timeout=600)
    pop.user(args["user"])
    pop.pass_(args["password"])
    _resp, listing, _ = pop.uidl()
    count = 0
    total = 0
    for line in listing:
        number = int(line.split()[0])
        _resp, lines, _octets = pop.retr(number)
        data = b"".join(piece + b"\r\n" for piece in lines)
        with open(dest / f"{number}.eml", "wb") as f:
            f.write(data)
        count += 1
        total += len(data)
    pop.quit()
    seconds = time.monotonic() - t0
    return {
        "messages": count,
        "bytes": total,
        "seconds": seconds,
        "cpu": cpu() - c0,
        "rss_start": rss_start,
        "rss_peak": rss_mb(),
    }


def child_kittiwake(args: dict[str, Any]) -> dict[str, Any]:
    from kittiwake.core.config import config_from_dict
    from kittiwake.core.maildir import Maildir
    from kittiwake.core.pop3.fetch import FetchTuning, fetch_once
    from kittiwake.core.pop3.sinks import MaildirSink
    from kittiwake.core.transport import make_ssl_context

    dest = Path(args["dest"])
    config = config_from_dict(
        {
            "accounts": {
                "bench": {
                    "email": args["user"],
                    "pop3": {
                        "host": args["host"],
                        "port": args["port"],
                        "security": "tls",
                        "user": args["user"],
                        "password": args["password"],
                        "ca_file": args["ca_file"],
                        "timeout": 600,
                    },
                }
            }
        }
    )
    account = config.accounts["bench"]
    tuning = FetchTuning(window=args["window"])
    maildir = Maildir(dest / "mail")
    ctx = make_ssl_context(args["ca_file"])
    rss_start = rss_mb()

    async def run() -> Any:
        return await fetch_once(
            account,
            sink=MaildirSink(maildir),
            ledger=dest / "ledger.sqlite3",
            tuning=tuning,
            ssl_context=ctx,
        )

    t0, c0 = time.monotonic(), cpu()
    if os.environ.get("BENCH_PROFILE"):
        import cProfile
        import io
        import pstats

        prof = cProfile.Profile()
        stats = prof.runcall(asyncio.run, run())
        out_s = io.StringIO()
        pstats.Stats(prof, stream=out_s).sort_stats("tottime").print_stats(25)
        print(out_s.getvalue(), file=sys.stderr)
    else:
        stats = asyncio.run(run())
    seconds = time.monotonic() - t0
    out = {
        "messages": stats.new,
        "bytes": stats.bytes,
        "seconds": seconds,
        "cpu": cpu() - c0,
        "rss_start": rss_start,
        "rss_peak": rss_mb(),
        "files": sum(1 for _ in (dest / "mail" / "new").iterdir()),
    }
    if args.get("again"):
        t1, c1 = time.monotonic(), cpu()
        again = asyncio.run(run())
        out["again"] = {
            "messages": again.new,
            "seconds": time.monotonic() - t1,
            "cpu": cpu() - c1,
        }
    return out


def run_child(mode: str, args: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", mode, json.dumps(args)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"child {mode} failed:\n{proc.stderr}")
    if os.environ.get("BENCH_PROFILE"):
        log(proc.stderr)
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


# =========================================================================================
# Main
# =========================================================================================


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--big", type=int, default=10, help="messages of 5-10 MB among them")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path, help="write every figure to this file")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.child:
        mode, raw = opts.child
        args = json.loads(raw)
        result = child_poplib(args) if mode == "poplib" else child_kittiwake(args)
        print(json.dumps(result))
        return

    from harness import Dovecot, ServerRoot, make_test_ca

    root = ServerRoot()
    work = Path(tempfile.mkdtemp(prefix="kittiwake-bench-pop3-"))
    try:
        ca = make_test_ca(work)
        dovecot = Dovecot(root.instance_dir("dovecot"), ca)
        dovecot.start()
        user = dovecot.add_user("bench")
        log(f"filling {opts.messages:,} messages ({opts.big} of 5-10 MB) ...")
        t = time.monotonic()
        filled = fill(dovecot, user, opts.messages, opts.big, opts.seed)
        log(f"  {filled['bytes'] / 1e6:.0f} MB in {time.monotonic() - t:.1f} s")
        warm = warm_up(dovecot, user)
        log(f"Dovecot indexed the maildrop in {warm['seconds']:.1f} s")
        assert warm["count"] == opts.messages
        base = {
            "host": dovecot.host,
            "port": dovecot.ports.pop3s,
            "user": user.login,
            "password": user.password,
            "ca_file": str(ca.ca_file),
        }
        results: dict[str, dict[str, Any]] = {}
        plan = [
            ("poplib", "poplib", {}),
            ("kittiwake", "kittiwake", {"window": 16, "again": True}),
            ("kittiwake-nopipe", "kittiwake", {"window": 1}),
        ]
        for label, mode, extra in plan:
            dest = work / label
            log(f"measuring {label} ...")
            results[label] = run_child(mode, {**base, **extra, "dest": str(dest)})
            r = results[label]
            if r["messages"] != warm["count"] or r["bytes"] != warm["bytes"]:
                raise RuntimeError(
                    f"{label}: got {r['messages']} / {r['bytes']} B, expected "
                    f"{warm['count']} / {warm['bytes']} B"
                )
            shutil.rmtree(dest)
        report(opts, filled, warm, results)
        if opts.json:
            opts.json.write_text(json.dumps({"fill": filled, "warm": warm, **results}, indent=2))
    finally:
        root.cleanup()
        shutil.rmtree(work, ignore_errors=True)


def report(
    opts: Any, filled: dict[str, Any], warm: dict[str, Any], results: dict[str, dict[str, Any]]
) -> None:
    mb = warm["bytes"] / 1e6
    print()
    print(
        f"POP3S download of {warm['count']:,} messages, {mb:.0f} MB "
        f"(largest {filled['largest'] / 1e6:.1f} MB), Dovecot on loopback, {os.cpu_count()} CPUs"
    )
    print()
    print(
        f"{'client':<22}{'time s':>9}{'msg/s':>9}{'MB/s':>8}{'CPU s':>8}"
        f"{'RSS start':>11}{'RSS peak':>10}{'growth':>8}"
    )
    for label, r in results.items():
        print(
            f"{label:<22}{r['seconds']:>9.2f}{r['messages'] / r['seconds']:>9.0f}"
            f"{r['bytes'] / 1e6 / r['seconds']:>8.1f}{r['cpu']:>8.2f}"
            f"{r['rss_start']:>10.0f}M{r['rss_peak']:>9.0f}M"
            f"{r['rss_peak'] - r['rss_start']:>7.0f}M"
        )
    again = results["kittiwake"].get("again")
    if again:
        print()
        print(
            f"second run, nothing new: {again['seconds'] * 1000:.0f} ms "
            f"({again['messages']} downloaded; {again['cpu'] * 1000:.0f} ms CPU)"
        )
    k, p = results["kittiwake"], results["poplib"]
    print()
    print(
        f"kittiwake / poplib: {p['seconds'] / k['seconds']:.2f}x the speed, "
        f"{(k['rss_peak'] - k['rss_start']):.0f} MB vs {(p['rss_peak'] - p['rss_start']):.0f} MB "
        "of memory growth; kittiwake fsyncs every message and records it in the ledger, poplib "
        "writes without fsync"
    )


if __name__ == "__main__":
    main()
