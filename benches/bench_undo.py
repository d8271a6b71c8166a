"""How long ``MailApi.undo`` blocks the event loop for a large move, against a real Dovecot.

    .venv/bin/python benches/bench_undo.py [--messages 10000] [--runs 3]

Undo runs on the event loop (the UI waits for it): building the inverse of a move from the
COPYUID pairs was quadratic (0.96 s for 10,000 messages) until the bookkeeping of
core/journal.py built the set of moved UIDs once. Needs root and Dovecot, as the server tests.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from harness import Dovecot, ServerRoot, make_test_ca
from harness.clients import imap_device
from harness.mail import append_many

from kittiwake.core.api import MailApi
from kittiwake.core.config import config_from_dict
from kittiwake.core.engine import Engine
from kittiwake.core.journal import Action


async def one_run(dovecot: Dovecot, count: int) -> float:
    user = dovecot.add_user("bench")
    device = imap_device(dovecot, user)
    append_many(device, count)
    device.logout()
    imap = {
        "host": dovecot.host,
        "port": dovecot.ports.imaps,
        "user": user.login,
        "password": user.password,
        "ca_file": str(dovecot.ca_file),
        "timeout": 60,
    }
    config = config_from_dict({"accounts": {"me": {"email": user.email, "imap": imap}}})
    with tempfile.TemporaryDirectory() as cache:
        api = MailApi(Engine(config, Path(cache)))
        api.start()
        account = api.engine.imap["me"]
        await account.wait_synced(300)
        uids = tuple(api.message_index("me", "INBOX"))
        api.act(
            "me", Action(kind="move", folder="INBOX", uidvalidity=None, uids=uids, dest="Archive")
        )
        await account.flush_actions()
        started = time.perf_counter()
        said = api.undo("me")
        blocked = time.perf_counter() - started
        assert said == f"Undone: move {count} messages to Archive", said
        await account.flush_actions()
        await api.stop()
    return blocked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    root = ServerRoot()
    try:
        dovecot = Dovecot(root.instance_dir("dovecot"), make_test_ca(Path(root.instance_dir("ca"))))
        dovecot.start()
        try:
            times = [asyncio.run(one_run(dovecot, args.messages)) for _ in range(args.runs)]
        finally:
            dovecot.close()
    finally:
        root.cleanup()
    print(
        f"undo of a {args.messages}-message move blocked the event loop: "
        f"median {statistics.median(times) * 1000:.1f} ms, "
        f"min {min(times) * 1000:.1f} ms, max {max(times) * 1000:.1f} ms ({args.runs} runs)"
    )


if __name__ == "__main__":
    main()
