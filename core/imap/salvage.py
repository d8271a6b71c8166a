"""Per-message isolation: a message the server describes wrongly, or refuses, alone.

Two ways one message used to hide others: a FETCH response that cannot be parsed (the
parser now returns it ``degraded``, see ``parser.QUIRKS``) and a tagged ``NO`` for a whole
FETCH because one message in it is broken (Yahoo and Exchange do this: the other messages'
responses arrive, then ``NO``). Both end here: a degraded message is shown from its raw
header block (``BODY.PEEK[HEADER]``: what the server failed to describe, read by our own
parser), and the messages a ``NO`` left out are fetched again one at a time, so only the
broken one can be missing. Nothing here gives up the batch.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from kittiwake.core.imap.parser import Fetch
from kittiwake.core.imap.uidset import UidSet
from kittiwake.core.message.envelope import envelope_from_fields, first_fields
from kittiwake.core.message.ids import msgids
from kittiwake.core.models import MessageSummary

if TYPE_CHECKING:
    from kittiwake.core.imap.client import ImapClient

__all__ = ["HEADER_ITEMS", "MAX_ALONE", "header_summaries", "summary_from_header"]

log = logging.getLogger(__name__)

#: What a degraded message is shown from: no ENVELOPE, no BODYSTRUCTURE, our own parsing.
HEADER_ITEMS = "UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[HEADER]"
#: At most this many messages of one refused FETCH are retried one by one (a server that
#: refuses a whole folder is answered by the next sync, not by thousands of round trips).
MAX_ALONE = 200

_MULTIPART_MIXED = re.compile(r"multipart/(?!alternative\b)", re.IGNORECASE)


def summary_from_header(fetch: Fetch) -> MessageSummary | None:
    """The summary of a ``HEADER_ITEMS`` response; None without a UID."""
    uid = fetch.uid
    if uid is None:
        return None
    first = first_fields(fetch.section("HEADER") or b"")
    return MessageSummary(
        uid=uid,
        flags=(fetch.flags or frozenset()) - {"\\Recent"},
        internal_date=fetch.internal_date,
        size=fetch.size or 0,
        envelope=envelope_from_fields(first),
        references=msgids(first.get("references", "")),
        # Without a structure, a mixed multipart may carry attachments: say so.
        has_attachments=bool(_MULTIPART_MIXED.match(first.get("content-type", "").strip())),
        modseq=fetch.modseq,
        degraded=True,
    )


async def header_summaries(client: ImapClient, uids: Iterable[int]) -> list[MessageSummary]:
    """Summaries of ``uids`` from their raw headers. A message refused even so is logged
    and left out (it has no UID the cache could keep otherwise)."""
    wanted = sorted(set(uids))
    if not wanted:
        return []
    out: list[MessageSummary] = []
    for uid in wanted:
        responses, result = await client.run(
            f"UID FETCH {uid} ({HEADER_ITEMS})",
            claim=lambda r: isinstance(r, Fetch),
            refused_ok=True,
        )
        found = [
            s
            for r in responses
            if isinstance(r, Fetch) and r.uid == uid and not r.degraded
            if (s := summary_from_header(r)) is not None
        ]
        if found:
            out.append(found[0])
        else:
            log.warning(
                "%s: message UID %d cannot be read at all (%s)",
                client.selected,
                uid,
                result.text or "unreadable response",
            )
    return out


async def uids_in(client: ImapClient, seq_lo: int, seq_hi: int) -> set[int]:
    """The UIDs of messages ``seq_lo``..``seq_hi`` (cheap: UID only)."""
    responses, _ = await client.run(
        f"FETCH {seq_lo}:{seq_hi} (UID)", claim=lambda r: isinstance(r, Fetch), refused_ok=True
    )
    return {r.uid for r in responses if isinstance(r, Fetch) and r.uid is not None}


async def fetch_alone(
    client: ImapClient, uids: Sequence[int], items: str
) -> tuple[list[Fetch], list[int]]:
    """``UID FETCH uid (items)`` for each of ``uids`` alone (at most ``MAX_ALONE``): the
    responses, and the UIDs refused again (for ``header_summaries``)."""
    got: list[Fetch] = []
    refused: list[int] = []
    if len(uids) > MAX_ALONE:
        log.warning(
            "%s: %d messages refused; retrying the first %d one by one",
            client.selected,
            len(uids),
            MAX_ALONE,
        )
    for uid in uids[:MAX_ALONE]:
        responses, result = await client.run(
            f"UID FETCH {UidSet.from_iterable([uid]).format()} ({items})",
            claim=lambda r: isinstance(r, Fetch),
            refused_ok=True,
        )
        mine = [r for r in responses if isinstance(r, Fetch) and r.uid == uid]
        if result.ok and mine:
            got.extend(mine)
        else:
            refused.append(uid)
    return got, refused
