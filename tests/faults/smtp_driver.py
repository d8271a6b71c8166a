"""A test-only outbox run that can kill -9 itself at any step of sending one message, forked
by ``journal_driver --serve`` for specs with ``"driver": "smtp"`` (tests/faults/
test_smtp_crash.py, scripts/faults-long).

Events counted (this process only): every write to the SMTP connection (after it, the bytes
are the kernel's and reach the server even if we die), every reply read, every save of the
item (``Outbox.save``), the journal of accepted recipients (``record_accepted``) and the Sent
copy (``on_sent``, recorded in a file, fsync'd, once per Message-ID when told it may be done,
as ``SentFiler`` checks the Sent folder first). With ``kill_at`` = N the process sends itself
SIGKILL at event N.

With ``imap_port`` in the spec, the Sent copy goes through the real ``SentFiler`` and IMAP
account (the engine's) to that Dovecot instead of a file, and every step of filing it counts
too: each write to the IMAP connection while the copy is being filed (the APPEND in two
halves, so a kill can fall in the middle of its literal) and each tagged reply, counted when
it has arrived but before the app has seen it (the server did it; the app never learnt it).
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

from aiosmtplib.protocol import SMTPProtocol

from kittiwake.core.config import Account, config_from_dict
from kittiwake.core.engine import Engine
from kittiwake.core.imap.account import Tuning
from kittiwake.core.imap.protocol import ImapProtocol, PendingCommand
from kittiwake.core.smtp.outbox import Backoff, Outbox, OutboxRunner, SentInfo


class Steps:
    def __init__(self, kill_at: int | None) -> None:
        self.kill_at = kill_at
        self.events: list[str] = []
        self.filing = False
        """Inside ``SentFiler.file_copy``: IMAP steps count only there."""

    def event(self, name: str) -> None:
        self.events.append(name)
        if len(self.events) == self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)


def instrument(steps: Steps) -> None:
    write = SMTPProtocol.write

    def written(self: SMTPProtocol, data: bytes) -> None:
        write(self, data)
        steps.event(f"wrote {data[:10]!r}")

    SMTPProtocol.write = written  # type: ignore[method-assign]
    read = SMTPProtocol.read_response

    async def answered(self: SMTPProtocol, timeout: float | None = None) -> Any:
        response = await read(self, timeout=timeout)
        steps.event(f"read {response.code}")
        return response

    SMTPProtocol.read_response = answered  # type: ignore[method-assign]
    for name in ("save", "record_accepted"):
        original = getattr(Outbox, name)

        def wrapped(self: Outbox, *args: Any, _name: str = name, _orig: Any = original) -> Any:
            steps.event(f"before outbox.{_name}")
            result = _orig(self, *args)
            steps.event(f"after outbox.{_name}")
            return result

        setattr(Outbox, name, wrapped)


def instrument_filing(steps: Steps) -> None:
    """Count the IMAP steps of filing the Sent copy (this process only)."""
    write = ImapProtocol.write

    def written(self: ImapProtocol, data: bytes, *, log_form: str | None = None) -> None:
        if not steps.filing:
            write(self, data, log_form=log_form)
            return
        verb = data.split(b" ", 2)[1][:10] if data.count(b" ") >= 1 else data[:10]
        start = data.find(b"}\r\n")
        if verb == b"APPEND" and start > 0:  # the literal's first half, then the rest
            middle = start + 3 + (len(data) - start - 3) // 2
            write(self, data[:middle], log_form=log_form)
            steps.event("wrote half of the APPEND literal")
            write(self, data[middle:], log_form=log_form)
        else:
            write(self, data, log_form=log_form)
        steps.event(f"wrote IMAP {verb!r}")

    ImapProtocol.write = written  # type: ignore[method-assign]
    finish = PendingCommand.finish

    def finished(self: PendingCommand, status: str, text: bytes) -> None:
        if steps.filing:
            steps.event(f"answered IMAP {self.name} {status}")
        finish(self, status, text)

    PendingCommand.finish = finished  # type: ignore[method-assign]


async def main(spec: dict[str, Any]) -> None:
    steps = Steps(spec.get("kill_at"))
    instrument(steps)
    account = config_from_dict(
        {
            "accounts": {
                "me": {
                    "email": spec["login"],
                    "imap": {"host": spec["host"]},
                    "smtp": {
                        "host": spec["host"],
                        "port": spec["port"],
                        "security": "none",
                        "user": spec["login"],
                        "password": spec["password"],
                        "timeout": 5,
                    },
                }
            }
        }
    ).accounts["me"]
    if "imap_port" in spec:
        await file_with_imap(spec, steps, account)
        return
    sent_file = Path(spec["sent_file"])

    async def on_sent(account_key: str, raw: bytes, info: SentInfo) -> None:
        steps.event("before on_sent")
        filed = sent_file.read_text().split() if sent_file.exists() else []
        if not (info.possibly_done and info.message_id in filed):
            with sent_file.open("a") as file:
                file.write(info.message_id + "\n")
                file.flush()
                os.fsync(file.fileno())
        steps.event("after on_sent")

    runner = OutboxRunner(
        account,
        Outbox("me", Path(spec["outbox_dir"])),
        on_sent=on_sent,
        backoff=Backoff(first=0.0, factor=1.0, maximum=0.0, jitter=0.0),
    )
    outcomes = await runner.flush()
    with Path(spec["out"]).open("w") as file:
        json.dump({"events": steps.events, "outcomes": [o.status for o in outcomes]}, file)


async def file_with_imap(spec: dict[str, Any], steps: Steps, account: Account) -> None:
    """The same run with the engine's ``SentFiler`` and IMAP account filing the copy."""
    instrument_filing(steps)
    config = config_from_dict(
        {
            "accounts": {
                "me": {
                    "email": spec["login"],
                    "imap": {
                        "host": spec["imap_host"],
                        "port": spec["imap_port"],
                        "security": "none",
                        "user": spec["imap_login"],
                        "password": spec["imap_password"],
                        "timeout": 5,
                    },
                }
            }
        }
    )
    engine = Engine(config, Path(spec["home"]) / "cache", Tuning(backoff_min=0.05))
    imap = engine.imap["me"]
    imap.start()
    try:
        await imap.wait_synced(20)

        async def on_sent(account_key: str, raw: bytes, info: SentInfo) -> None:
            steps.event("before on_sent")
            steps.filing = True
            try:
                await engine.filer.file_copy(account_key, raw, info)
            finally:
                steps.filing = False
            steps.event("after on_sent")

        runner = OutboxRunner(
            account,
            Outbox("me", Path(spec["outbox_dir"])),
            publish=engine.filer.publish,
            on_sent=on_sent,
            backoff=Backoff(first=0.0, factor=1.0, maximum=0.0, jitter=0.0),
        )
        outcomes = await runner.flush()
    finally:
        await engine.stop()
    with Path(spec["out"]).open("w") as file:
        json.dump({"events": steps.events, "outcomes": [o.status for o in outcomes]}, file)
