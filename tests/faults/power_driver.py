"""A test-only run of the real engine that does one of each durable thing, for a power cut
checked under strace (``power.py``): ``python -m faults.power_driver SPEC.json`` with
``tests/`` on ``PYTHONPATH``, run by tests/faults/test_power_cut.py.

In order, each waited for before the next: a flag set on INBOX's first message (the action
journal, then a UID STORE), a new draft saved (the local draft, then an APPEND to Drafts), a
message sent (the outbox, then MAIL FROM; the journal of accepted recipients, then the Sent
copy's APPEND). Every file the run writes starts absent (fresh directories)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from kittiwake.core.api import MailApi
from kittiwake.core.compose.mime import build_mime
from kittiwake.core.compose.reply import new_message
from kittiwake.core.config import config_from_dict
from kittiwake.core.engine import Engine
from kittiwake.core.events import OutboxChanged
from kittiwake.core.imap.account import Tuning
from kittiwake.core.journal import Action
from kittiwake.core.models import Address


async def main(spec: dict[str, Any]) -> None:
    os.environ["XDG_DATA_HOME"] = spec["data_dir"]
    imap = {
        "host": spec["host"],
        "port": spec["imap_port"],
        "security": "none",
        "user": spec["imap_login"],
        "password": spec["imap_password"],
        "timeout": 10,
    }
    smtp = {
        "host": spec["host"],
        "port": spec["smtp_port"],
        "security": "none",
        "user": spec["smtp_login"],
        "password": spec["smtp_password"],
        "timeout": 10,
    }
    config = config_from_dict(
        {"accounts": {"me": {"email": spec["email"], "imap": imap, "smtp": smtp}}}
    )
    api = MailApi(Engine(config, Path(spec["cache_dir"]), Tuning(backoff_min=0.05)))
    events = api.subscribe()
    api.start()
    try:
        account = api.engine.imap["me"]
        await account.wait_synced(20)
        flag = Action(kind="flags", folder="INBOX", uidvalidity=None, uids=(1,), add=("$Power",))
        api.act("me", flag)
        await account.flush_actions()
        local = api.compose.new("me", "someone@example.test", "power draft")
        await api.save_draft(local)
        acct = config.accounts["me"]
        built = build_mime(
            new_message(acct, to=[Address("", spec["rcpt"])], subject="power send", body="x\n"),
            acct,
        )
        runner = api.engine.outboxes["me"]
        events.pending()
        await runner.enqueue(
            built.raw, built.envelope_from, built.envelope_rcpts, message_id=built.message_id
        )
        await events.wait_for(OutboxChanged, 30, queued=0, saving=0)
    finally:
        await api.stop()
    Path(spec["out"]).write_text(json.dumps({"message_id": built.message_id}))


if __name__ == "__main__":
    asyncio.run(main(json.loads(Path(sys.argv[1]).read_text())))
