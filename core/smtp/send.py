"""Sending a complete message through the outbox: ``run_send``, which ``kittiwake send``
(``cli/send.py``) runs with the Sent copy filed by the engine."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime, getaddresses
from pathlib import Path
from typing import Literal

from kittiwake.core.compose.draft import ComposeError, is_address
from kittiwake.core.compose.mime import Built, address_header, envelope_address
from kittiwake.core.compose.reply import account_address, own_addresses
from kittiwake.core.config import Account, Config
from kittiwake.core.errors import ConfigError
from kittiwake.core.message.ids import make_message_id, normalize_msgid
from kittiwake.core.smtp.outbox import Backoff, OnSent, Outbox, OutboxRunner, Publish


@dataclass(frozen=True)
class SendResult:
    status: Literal["accepted", "queued", "refused", "uncertain"]
    """accepted: the server took it; queued: safe in the outbox, sent later (next start of the
    app, ``kittiwake sync``); refused: the server said no for good (kept in the outbox);
    uncertain: sent, but the server's reply was lost: it may have been delivered (kept in the
    outbox, not sent again unless the user says so)."""
    account: str
    message_id: str
    message: str
    """One sentence for the user, with the server's words when it refused."""
    refused: tuple[tuple[str, str], ...] = ()
    """Recipients refused while others were accepted: (address, the server's words)."""
    item_id: str = ""

    @property
    def exit_code(self) -> int:
        return 1 if self.status in ("refused", "uncertain") else 0


async def run_send(
    config: Config,
    account_name: str | None,
    raw: bytes,
    *,
    on_sent: OnSent | None = None,
    publish: Publish | None = None,
    outbox_root: Path | None = None,
    backoff: Backoff | None = None,
) -> SendResult:
    """Send a complete RFC 5322 message the way the app sends: into the outbox, then at once.

    Without ``account_name`` the account is the one whose address is in From, else the first
    account that can send. Date and Message-ID are added when missing; the envelope recipients
    are To, Cc and Bcc, and Bcc is removed from what is sent (the Sent copy keeps it).
    """
    account = choose_account(config, account_name, raw)
    built = prepare_message(raw, account)
    runner = OutboxRunner(
        account,
        Outbox(account.key, outbox_root),
        publish=publish,
        on_sent=on_sent,
        backoff=backoff,
    )
    item = await runner.enqueue(
        built.raw,
        built.envelope_from,
        built.envelope_rcpts,
        message_id=built.message_id,
        smtputf8=built.smtputf8,
        sent_copy=built.sent_copy,
    )
    outcome = await runner.send_now(item.id)
    assert account.smtp is not None
    server = f"{account.smtp.host}:{account.smtp.port}"
    refused = tuple((r.recipient, r.words) for r in outcome.refused)
    if outcome.status in ("accepted", "filed"):
        text = f"sent: {server} accepted {built.message_id}"
        if outcome.status == "filed" or outcome.message.startswith("already"):
            text = f"{built.message_id} was sent before; not sent again"
        if refused:
            text += "; refused: " + "; ".join(f"{r}: {w}" for r, w in refused)
        if outcome.copy_pending and account.smtp.save_sent:
            left = runner.outbox.get(item.id)
            why = left.copy_error if left is not None else None
            text += (
                f"; {why} (tried again at each sync)"
                if why
                else ("; the copy in Sent will be saved later")
            )
        return SendResult("accepted", account.key, built.message_id, text, refused, item.id)
    if outcome.status == "failed":
        text = f"not sent: {outcome.message} (kept in the outbox)"
        return SendResult("refused", account.key, built.message_id, text, refused, item.id)
    if outcome.status == "uncertain":
        text = f"may have been delivered: {outcome.message} (kept in the outbox, not sent again)"
        return SendResult("uncertain", account.key, built.message_id, text, (), item.id)
    text = f"queued in the outbox, to be sent later: {outcome.message}"
    return SendResult("queued", account.key, built.message_id, text, (), item.id)


def choose_account(config: Config, name: str | None, raw: bytes) -> Account:
    if name is not None:
        account = config.accounts.get(name)
        if account is None:
            known = ", ".join(config.accounts) or "none"
            raise ConfigError(f"no account named {name!r} (accounts: {known})")
        if account.smtp is None:
            raise ConfigError(f"account {name} cannot send: it has no [accounts.{name}.smtp]")
        return account
    senders = [a for a in config.accounts.values() if a.smtp is not None]
    if not senders:
        raise ConfigError("no account can send: add an [accounts.NAME.smtp] section")
    head = _Head.parse(_crlf(raw))
    for _, addr in getaddresses(head.values("from")):
        for account in senders:
            if addr.lower() in own_addresses(account):
                return account
    return senders[0]


def prepare_message(raw: bytes, account: Account, *, now: datetime | None = None) -> Built:
    """A message from a script made ready for the outbox (see ``run_send``)."""
    head = _Head.parse(_crlf(raw))
    mine = own_addresses(account)
    if not head.values("from"):
        line = address_header("From", [account_address(account)]).removesuffix(b"\r\n")
        head.fields.append(("from", line))
    if not head.values("date"):
        head.add("Date", format_datetime(now or datetime.now().astimezone()))
    message_id = normalize_msgid(" ".join(head.values("message-id")))
    if message_id is None:
        message_id = make_message_id(account.email.rpartition("@")[2])
        head.drop("message-id")
        head.add("Message-ID", message_id)
    recipients: dict[str, str] = {}
    for _, addr in getaddresses(head.values("to") + head.values("cc") + head.values("bcc")):
        if not addr:
            continue
        if not is_address(addr):
            raise ComposeError(f"{addr!r} in To, Cc or Bcc is not an email address")
        recipients.setdefault(addr.lower(), addr)
    if not recipients:
        raise ComposeError("the message has no recipient in To, Cc or Bcc")
    from_addrs = [a for _, a in getaddresses(head.values("from")) if a]
    sender = next((a for a in from_addrs if a.lower() in mine), account.email)
    every = [sender, *recipients.values()]
    smtputf8 = any(not a.rpartition("@")[0].isascii() for a in every)
    sent_copy = head.bytes() + head.body
    head.drop("bcc")
    wire = head.bytes() + head.body
    return Built(
        raw=wire,
        envelope_from=envelope_address(sender, smtputf8),
        envelope_rcpts=tuple(envelope_address(a, smtputf8) for a in recipients.values()),
        message_id=message_id,
        sent_copy=sent_copy,
        smtputf8=smtputf8,
        eightbit=any(b > 127 for b in wire),
    )


def _crlf(raw: bytes) -> bytes:
    raw = re.sub(rb"\r?\n", b"\r\n", raw)
    if raw.startswith(b"From ") and b":" not in raw.split(b"\r\n", 1)[0].split(b" ", 1)[0]:
        raw = raw.split(b"\r\n", 1)[1] if b"\r\n" in raw else b""  # an mbox "From " line
    return raw


@dataclass
class _Head:
    """A header block kept as the original lines, so nothing is refolded or re-encoded."""

    fields: list[tuple[str, bytes]]
    body: bytes

    @classmethod
    def parse(cls, raw: bytes) -> _Head:
        if raw.startswith(b"\r\n"):
            raise ComposeError("the message has no headers (it starts with an empty line)")
        head, _, body = raw.partition(b"\r\n\r\n")
        fields: list[tuple[str, bytes]] = []
        for line in head.split(b"\r\n"):
            if not line:
                continue
            if line[:1] in (b" ", b"\t") and fields:
                key, value = fields[-1]
                fields[-1] = (key, value + b"\r\n" + line)
                continue
            raw_name, colon, _ = line.partition(b":")
            if not colon or not re.fullmatch(rb"[!-9;-~]+", raw_name):
                raise ComposeError(
                    f"the message's header block has a line that is not a header: "
                    f"{line[:40].decode('utf-8', 'replace')!r}"
                )
            fields.append((raw_name.decode("ascii").lower(), line))
        if not fields:
            raise ComposeError("the message has no headers")
        return cls(fields, b"\r\n" + body)

    def values(self, name: str) -> list[str]:
        out = []
        for key, line in self.fields:
            if key == name:
                value = line.split(b":", 1)[1]
                out.append(re.sub(r"\r\n[ \t]", " ", value.decode("utf-8", "replace")).strip())
        return out

    def add(self, name: str, value: str) -> None:
        self.fields.append((name.lower(), f"{name}: {value}".encode()))

    def drop(self, name: str) -> None:
        self.fields = [(k, line) for k, line in self.fields if k != name]

    def bytes(self) -> bytes:
        return b"".join(line + b"\r\n" for _, line in self.fields)
