"""From an address to the mailbox on the loopback setup: how long each stage of setup takes.

    .venv/bin/python benches/bench_setup.py [--runs 3] [--messages 200]

Starts the test harness's Dovecot and Postfix and a private dnsmasq answering SRV records for
example.test, then for each run: discovery and the probes (``SetupService.find``), the login
tests, storing the password and writing the config (``save``), and the engine's first sync
until INBOX is in the cache (what the mailbox shows first). Prints each stage's median and
which discovery sources answered. The user's typing is not counted. Needs root, as the
server tests.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from harness import Dovecot, Postfix, ServerRoot, make_test_ca
from harness.clients import imap_device
from harness.dns import DnsServer
from harness.mail import append_many

from kittiwake.core.api import MailApi
from kittiwake.core.config import load_config
from kittiwake.core.engine import Engine
from kittiwake.core.secretstore import StoreKind
from kittiwake.core.setup.discover import Discovery
from kittiwake.core.setup.dns import Dns
from kittiwake.core.setup.probe import tls_context
from kittiwake.core.setup.service import SetupService


async def one_run(dovecot: Dovecot, dns_port: int, messages: int) -> dict[str, float | str]:
    user = dovecot.add_user("bench")
    device = imap_device(dovecot, user)
    append_many(device, messages)
    device.logout()
    work = Path(tempfile.mkdtemp())
    os.environ["XDG_DATA_HOME"] = str(work / "data")
    service = SetupService(
        work / "config.toml",
        Discovery(dns=Dns("127.0.0.1", dns_port, timeout=2), context=tls_context(dovecot.ca_file)),
        ca_file=dovecot.ca_file,
        stores=[StoreKind.FILE],
    )
    figures: dict[str, float | str] = {}
    started = time.perf_counter()
    proposal = await service.find(user.email)
    figures["discover and probe"] = time.perf_counter() - started
    answered = sorted({f.source for f in proposal.findings if f.settings})
    figures["sources"] = ", ".join(answered)
    mark = time.perf_counter()
    results = await service.test_login(proposal, "imap", "Bench", user.password)
    assert all(r.ok for r in results), [r.detail for r in results]
    figures["login tests"] = time.perf_counter() - mark
    mark = time.perf_counter()
    await service.save(proposal, "imap", "Bench", user.password)
    figures["store and write"] = time.perf_counter() - mark
    mark = time.perf_counter()
    config = load_config(service.config_path)
    api = MailApi(Engine(config, cache_dir=work / "cache"))
    api.start()
    key = next(iter(config.accounts))
    while len(api.message_index(key, "INBOX")) < messages:
        await asyncio.sleep(0.01)
    figures["first INBOX screenful"] = time.perf_counter() - mark
    await api.stop()
    figures["total"] = time.perf_counter() - started
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--messages", type=int, default=200)
    args = parser.parse_args()
    root = ServerRoot()
    ca = make_test_ca(Path(root.instance_dir("ca")))
    dovecot = Dovecot(root.instance_dir("dovecot"), ca)
    dovecot.start()
    postfix = Postfix(root.instance_dir("postfix"), ca, dovecot)
    postfix.start()
    runs: list[dict[str, float | str]] = []
    try:
        with DnsServer(
            Path(root.instance_dir("dns")),
            srv=[
                ("_imaps._tcp.example.test", dovecot.host, dovecot.ports.imaps),
                ("_submission._tcp.example.test", postfix.host, postfix.ports.submission),
            ],
        ) as dns:
            for _ in range(args.runs):
                runs.append(asyncio.run(one_run(dovecot, dns.port, args.messages)))
    finally:
        postfix.close()
        dovecot.close()
        root.cleanup()
    print(f"setup on loopback, {args.runs} runs, {args.messages} messages in INBOX")
    for stage in runs[0]:
        if stage == "sources":
            print(f"  sources that answered: {runs[0][stage]}")
            continue
        values = [float(r[stage]) for r in runs]
        print(f"  {stage:<22} median {statistics.median(values):6.2f} s  "
              f"(min {min(values):.2f}, max {max(values):.2f})")  # fmt: skip


if __name__ == "__main__":
    main()
