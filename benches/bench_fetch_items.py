#!/usr/bin/env python3
"""What a first sync's FETCH item list costs Dovecot: the plain fetch against the items the
bulk sync asks for, on a fresh Dovecot cache (a first fetch) and a warm one.

    .venv/bin/python benches/bench_fetch_items.py --messages 10000 --rounds 3

Fills a private Dovecot's INBOX with ``bench_imap_sync``'s messages, then, in rounds whose
order rotates, runs ``UID FETCH 1:* (ITEMS)`` for each item list in a fresh child process
(TLS, bytes read until the tagged reply, nothing parsed: the server's side alone). Before a
"first" fetch Dovecot's ``dovecot.index.cache`` is removed, so it reads the message files
as on a user's first sync; the "again" fetch right after reads its cache. Reported per item
list: wall time, Dovecot's imap process CPU, bytes; medians of the rounds.

``--engine``: the engine's full index (a cold sync, ``client.SUMMARY_ITEMS`` replaced by each
list: a prototype that times the sync only) against imaplib's plain fetch, client CPU too.
``--sizes LOW HIGH``: the messages' size range (log-uniform; 1-20 KB by default). Figures and
how to read them: benches/README.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_imap_sync as bis

PLAIN = bis.ENVELOPE_ITEMS
VARIANTS = {
    "plain": PLAIN,
    "bodystructure": PLAIN + " BODYSTRUCTURE BODY.PEEK[HEADER.FIELDS (REFERENCES)] MODSEQ",
    "header-fields": PLAIN + " BODY.PEEK[HEADER.FIELDS (REFERENCES CONTENT-TYPE)] MODSEQ",
}
TICK = os.sysconf("SC_CLK_TCK")


def imap_cpu(master: int) -> float:
    """CPU seconds of the Dovecot master's ``imap`` children alive now (ours: one login)."""
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        if comm == "imap" and int(fields[1]) == master:
            total += (int(fields[11]) + int(fields[12])) / TICK
    return total


def child_fetch(p: dict[str, Any]) -> dict[str, Any]:
    """One raw FETCH (bis.child_plain's wire ceiling) plus the server's imap CPU for it."""
    original = bis.now
    marks: list[float] = []

    def now() -> float:
        marks.append(imap_cpu(p["master"]))
        return original()

    bis.now = now
    result = bis.child_plain(p)
    # marks: t0, t_login, t_select, t_fetch: the server CPU between select and fetch end.
    result["server_cpu"] = marks[3] - marks[2]
    return result


def child_engine(p: dict[str, Any]) -> dict[str, Any]:
    """The engine's cold sync (``bis.child_cold``) with its summary items replaced by
    ``p["items"]`` (a prototype: the bulk path stores what comes; nothing else changes)."""
    from kittiwake.core.imap import client

    client.SUMMARY_ITEMS = p["items"]
    result = bis.child_cold(p)
    result["fetch"] = result["total"]  # connect to sync_all's end, as compare_peers times it
    return result


ENGINE = {
    "engine-bodystructure": "UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODYSTRUCTURE"
    " BODY.PEEK[HEADER.FIELDS (REFERENCES)]",
    "engine-header-fields": "UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE"
    " BODY.PEEK[HEADER.FIELDS (REFERENCES CONTENT-TYPE)]",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--sizes", type=int, nargs=2, default=(1000, 20000), help="message sizes, log-uniform"
    )
    parser.add_argument(
        "--engine",
        action="store_true",
        help="the engine's full index (cold sync) with each item list against imaplib's plain fetch",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        import json

        params = json.loads(sys.stdin.readline())
        child = child_engine if args.child == "engine" else child_fetch
        print("RESULT " + json.dumps(child(params)), flush=True)
        return

    from harness import Dovecot, ServerRoot, make_test_ca

    root = ServerRoot()
    dovecot = None
    try:
        ca = make_test_ca(root.instance_dir("ca"))
        dovecot = Dovecot(root.instance_dir("dovecot"), ca)
        dovecot.start()
        user = dovecot.add_user("bench")
        bis.log(f"filling INBOX with {args.messages:,} messages")
        factory = bis.MailFactory
        bis.MailFactory = lambda seed: factory(seed, tuple(args.sizes))  # type: ignore[assignment,misc]
        bis.fill_maildir(dovecot, user, args.messages, args.seed)
        bis.verify_fill(dovecot, user, args.messages)
        master = int((dovecot.workdir / "run" / "master.pid").read_text().split()[0])
        cache = dovecot.maildir(user) / "dovecot.index.cache"
        base = {
            "host": dovecot.host,
            "port": dovecot.ports.imaps,
            "ca_file": str(dovecot.ca_file),
            "login": user.login,
            "password": user.password,
            "raw": True,
            "master": master,
        }
        from kittiwake.core.imap.account import Tuning

        tuning = Tuning()
        base |= {
            "messages": args.messages,
            "batch": tuning.batch,
            "first_window": tuning.first_window,
        }
        work = root.instance_dir("bench")
        names = [*ENGINE, "plain"] if args.engine else list(VARIANTS)
        figures: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for r in range(args.rounds):
            order = names[r % len(names) :] + names[: r % len(names)]
            for name in order:
                for phase in ("first", "again"):
                    if phase == "first":
                        cache.unlink(missing_ok=True)
                    if name in ENGINE:
                        kc = work / f"{name}-{r}-{phase}.sqlite3"
                        res = run(base | {"items": ENGINE[name], "cache": str(kc)}, "engine")
                        res |= {"server_cpu": 0.0, "fetch_bytes": res["bytes"]}
                    else:
                        res = run(base | {"items": VARIANTS[name], "raw": not args.engine})
                        if args.engine:  # login to the FETCH's end, as compare_peers times it
                            res["fetch"] = res["total"]
                    res["fetch_cpu"] = res["cpu"]
                    figures.setdefault((name, phase), []).append(res)
                    bis.log(
                        f"round {r + 1} {name:14} {phase:5}: {res['fetch']:.2f} s wall, "
                        f"client CPU {res['fetch_cpu']:.2f} s, "
                        f"server CPU {res['server_cpu']:.2f} s, {res['fetch_bytes'] / 1e6:.1f} MB"
                    )
        plain = {
            ph: statistics.median(x["fetch"] for x in figures[("plain", ph)])
            for ph in ("first", "again")
        }
        print(
            f"\n{args.messages:,} messages of {args.sizes[0]:,}-{args.sizes[1]:,} bytes, {args.rounds} rounds, medians (load {os.getloadavg()[0]:.1f})"
        )
        print("| items | Dovecot cache | wall | ratio to plain | client CPU | server CPU | MB |")
        print("|---|---|---|---|---|---|---|")
        for name in names:
            for ph in ("first", "again"):
                rows = figures[(name, ph)]
                wall = statistics.median(x["fetch"] for x in rows)
                cpu = statistics.median(x["server_cpu"] for x in rows)
                ccpu = statistics.median(x["fetch_cpu"] for x in rows)
                mb = statistics.median(x["fetch_bytes"] for x in rows) / 1e6
                server = "-" if name in ENGINE else f"{cpu:.2f} s"
                print(
                    f"| {name} | {ph} | {wall:.2f} s | {wall / plain[ph]:.2f}x | {ccpu:.2f} s | {server} | {mb:.1f} |"
                )
    finally:
        if dovecot is not None:
            dovecot.close()
        root.cleanup()


def run(params: dict[str, Any], child: str = "fetch") -> dict[str, Any]:
    import json
    import subprocess

    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", child],
        input=json.dumps(params) + "\n",
        stdout=subprocess.PIPE,
        text=True,
        timeout=3600,
        check=False,
    )
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return dict(json.loads(line[7:]))
    raise RuntimeError(f"child failed ({proc.returncode}): {proc.stdout[-2000:]}")


if __name__ == "__main__":
    main()
