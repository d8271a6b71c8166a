#!/usr/bin/env python3
"""Import benchmark: an mbox of N small messages into a private Dovecot's INBOX through
``core/transfer.py`` (what ``kittiwake import`` runs), then the same file again (every
message found already there).

Run by hand (as root, like the server tests; Dovecot must be installed):

    .venv/bin/python benches/import_mbox.py                   # 10,000 messages
    .venv/bin/python benches/import_mbox.py --messages 2000   # quick run

The engine measured is the one the running Python imports: run it with another checkout's
venv (``/path/to/other/.venv/bin/python benches/import_mbox.py``) to compare two versions;
the harness always comes from this checkout. Progress goes to stderr, the figures to stdout.
The script is not a test and never runs in CI.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))  # the harness


async def measure(dovecot: object, user: object, box: Path, n: int) -> dict[str, float]:
    from kittiwake.core import transfer
    from kittiwake.core.cache import Cache
    from kittiwake.core.config import config_from_dict
    from kittiwake.core.events import EventBus
    from kittiwake.core.imap.account import ImapAccount

    imap = {
        "host": dovecot.host,  # type: ignore[attr-defined]
        "port": dovecot.ports.imaps,  # type: ignore[attr-defined]
        "user": user.login,  # type: ignore[attr-defined]
        "password": user.password,  # type: ignore[attr-defined]
        "ca_file": str(dovecot.ca_file),  # type: ignore[attr-defined]
        "timeout": 60,
    }
    config = config_from_dict({"accounts": {"b": {"email": user.email, "imap": imap}}})  # type: ignore[attr-defined]
    with tempfile.TemporaryDirectory() as cache_dir:
        account = ImapAccount(
            config.accounts["b"], Cache(Path(cache_dir) / "c.sqlite3"), EventBus()
        )
        account.start()
        try:
            await account.wait_synced(60)
            figures: dict[str, float] = {}
            for run in ("first", "again"):
                started = time.perf_counter()
                items = transfer.read_source(box)

                def progress(done: int, total: int, run: str = run) -> None:
                    print(f"\r  {run}: {done:,}/{total:,}", end="", file=sys.stderr, flush=True)

                result = await transfer.import_messages(account, "INBOX", items, progress)
                print(file=sys.stderr)
                figures[run] = time.perf_counter() - started
                expected = (n, 0) if run == "first" else (0, n)
                assert (result.added, result.skipped) == expected, result
            return figures
        finally:
            await account.stop()
            account.cache.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=10_000)
    args = parser.parse_args()
    from harness import Dovecot, ServerRoot, make_test_ca
    from harness.mail import message

    from kittiwake.core.message.mbox import mbox_entry

    root = ServerRoot()
    dovecot = None
    try:
        dovecot = Dovecot(root.instance_dir("dovecot"), make_test_ca(root.instance_dir("ca")))
        dovecot.start()
        user = dovecot.add_user("bench")
        box = root.path / "bench.mbox"
        box.write_bytes(b"".join(mbox_entry(message(k)) for k in range(args.messages)))
        size = box.stat().st_size
        print(f"{args.messages:,} messages, {size / 1e6:.1f} MB", file=sys.stderr)
        figures = asyncio.run(measure(dovecot, user, box, args.messages))
    finally:
        if dovecot is not None:
            dovecot.stop()
        root.cleanup()
    n = args.messages
    print(f"import of {n:,} messages ({size / 1e6:.1f} MB mbox) into Dovecot's INBOX")
    print(f"  first run : {figures['first']:8.1f} s  ({n / figures['first']:,.0f} messages/s)")
    print(f"  again     : {figures['again']:8.1f} s  (all {n:,} found already there)")


if __name__ == "__main__":
    main()
