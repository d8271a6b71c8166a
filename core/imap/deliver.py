"""Exactly-once delivery into a folder of an IMAP account (POP3's ``deliver_to``): what a
delivery records before its APPEND, and how it is found again after a crash.

The mark is the folder's "UIDVALIDITY:UIDNEXT" before the APPEND: a message appended since
has a UID at or above that UIDNEXT while the UIDVALIDITY stands. After a crash between the
APPEND and the ledger's write, only those messages with the right size are fetched and
compared (the caller's ``matches``): no marker header or keyword is added to the user's
mail. Both run on whatever ``ImapClient`` the account gives them (its command connection,
or a one-off connection while it is not running) and leave no folder selected read-only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection

from kittiwake.core.errors import CommandFailed, KittiwakeError
from kittiwake.core.imap.client import ImapClient
from kittiwake.core.imap.parser import Search, Untagged

log = logging.getLogger(__name__)

__all__ = ["append_mark", "find_appended"]


async def _validity_and_next(client: ImapClient, folder: str) -> tuple[int, int]:
    status = await client.status(folder)
    validity, uidnext = status.values.get("UIDVALIDITY"), status.values.get("UIDNEXT")
    if not validity or not uidnext:
        raise KittiwakeError(f"{client.conn.label} did not report UIDNEXT for {folder}")
    return validity, uidnext


async def _status_or_create(client: ImapClient, folder: str) -> tuple[int, int]:
    try:
        return await _validity_and_next(client, folder)
    except CommandFailed:
        log.info("%s: creating %s for deliver_to", client.conn.label, folder)
        await client.create(folder)
        return await _validity_and_next(client, folder)


async def append_mark(client: ImapClient, folder: str) -> str:
    """ "UIDVALIDITY:UIDNEXT" of ``folder`` now, creating the folder when it is missing."""
    validity, uidnext = await _status_or_create(client, folder)
    return f"{validity}:{uidnext}"


async def find_appended(
    client: ImapClient,
    folder: str,
    mark: str,
    sizes: Collection[int],
    matches: Callable[[bytes], bool],
) -> str | None:
    """ "UIDVALIDITY:UID" of a message appended to ``folder`` after ``mark`` whose size is one
    of ``sizes`` and whose content ``matches``; None when there is none, or when the
    folder's UIDVALIDITY changed (nothing can be told then: the message is fetched again)."""
    try:
        validity_text, _, next_text = mark.partition(":")
        validity, uidnext = int(validity_text), int(next_text)
    except ValueError:
        log.warning("unreadable deliver_to mark %r; downloading again", mark)
        return None
    now_validity, now_next = await _status_or_create(client, folder)
    if now_validity != validity:
        log.warning("%s: UIDVALIDITY changed; cannot tell whether a message arrived", folder)
        return None
    if now_next <= uidnext or not sizes:
        return None
    if client.selected != folder:
        await client.select(folder)  # read-write, as the account's own commands expect

    def claim(r: Untagged) -> bool:
        return isinstance(r, Search)

    found, _ = await client.run(
        f"UID SEARCH UID {uidnext}:* LARGER {min(sizes) - 1} SMALLER {max(sizes) + 1}",
        claim=claim,
    )
    candidates = sorted(u for r in found if isinstance(r, Search) for u in r.uids if u >= uidnext)
    for uid in candidates:
        body = await client.uid_fetch_body(uid)  # BODY.PEEK: the message stays unread
        if body is not None and matches(body):
            return f"{validity}:{uid}"
    return None
