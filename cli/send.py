"""``kittiwake send``: a complete message from stdin, sent the way the app sends it (outbox
first; ``core/smtp/send.py``'s ``run_send``), the Sent copy filed over a login of its own.
It returns the result; ``cli/main.py`` prints its one sentence."""

from __future__ import annotations

from kittiwake.core.config import Config
from kittiwake.core.engine import Engine
from kittiwake.core.smtp.outbox import SentInfo
from kittiwake.core.smtp.send import SendResult, run_send


async def send_command(config: Config, account_name: str | None, raw: bytes) -> SendResult:
    """``run_send`` with the engine's Sent filing: the copy goes to the account's Sent folder
    over a login of its own (made only once the server accepted the message)."""
    engine = Engine(config)
    connected: list[str] = []

    async def on_sent(account: str, copy: bytes, info: SentInfo) -> None:
        imap = engine.imap.get(account)
        if imap is None:
            await engine.filer.file_copy(account, copy, info)
            return
        if account not in connected:
            await imap.connect_once()
            connected.append(account)
            await imap.sync_folder_list()  # which folder is Sent, even with a fresh cache
        await engine.filer.file_copy(account, copy, info)

    try:
        return await run_send(config, account_name, raw, on_sent=on_sent)
    finally:
        await engine.stop()
