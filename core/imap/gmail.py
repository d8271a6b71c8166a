"""Gmail's IMAP extensions (``X-GM-EXT-1``), as Google documents them: the message id and
thread id that stay the same in every folder (label) a message shows in, its labels, and
label changes by ``STORE X-GM-LABELS``.

Kept apart from the sync so a server without them costs nothing: the account checks for
``GMAIL`` in the server's CAPABILITY and calls these only then.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from kittiwake.core.gmailids import GmailIds
from kittiwake.core.imap.client import ImapClient, quote
from kittiwake.core.imap.connection import Literal
from kittiwake.core.imap.parser import Fetch, Untagged
from kittiwake.core.imap.uidset import UidSet
from kittiwake.core.message import utf7

if TYPE_CHECKING:
    from kittiwake.core.imap.search import ImapSearch

GMAIL = "X-GM-EXT-1"


async def fetch_ids(client: ImapClient, uids: str = "1:*") -> list[GmailIds]:
    """X-GM-MSGID, X-GM-THRID and X-GM-LABELS of ``uids`` (every message by default) in the
    selected folder: no headers or bodies, so even All Mail's answer is small."""

    def claim(r: Untagged) -> bool:
        return isinstance(r, Fetch) and r.gm_msgid is not None

    responses, _ = await client.run(
        f"UID FETCH {uids} (UID X-GM-MSGID X-GM-THRID X-GM-LABELS)", claim=claim
    )
    out = []
    for r in responses:
        assert isinstance(r, Fetch)
        if r.uid is not None and r.gm_msgid is not None:
            out.append(GmailIds(r.uid, r.gm_msgid, r.gm_thrid, r.gm_labels or ()))
    return out


def label_atom(label: str) -> str:
    """A label as STORE X-GM-LABELS takes it: system labels (``\\\\Important``) bare, others
    quoted (modified UTF-7, like folder names)."""
    if label.startswith("\\"):
        return label
    return quote(utf7.encode(label))


async def store_labels(
    client: ImapClient, uids: UidSet, add: Sequence[str], remove: Sequence[str]
) -> None:
    """Add and remove labels of ``uids`` in the selected folder (Gmail copies the message
    into each label's folder, or takes it out)."""
    for sign, labels in (("+", add), ("-", remove)):
        if labels:
            atoms = " ".join(label_atom(x) for x in labels)
            await client.run(f"UID STORE {uids.format()} {sign}X-GM-LABELS.SILENT ({atoms})")


def raw_search(query: str) -> ImapSearch:
    """``UID SEARCH X-GM-RAW "..."``: Gmail's own search syntax, run by Gmail (a literal when
    it is not ASCII: Gmail takes UTF-8 there)."""
    from kittiwake.core.imap.search import ImapSearch  # the query language: when first used

    if query.isascii():
        arg: str | Literal = quote(query)
        return ImapSearch(args=("X-GM-RAW", arg), charset=None, exact=True, matches_all=False)
    arg = Literal(query.encode("utf-8"))
    return ImapSearch(
        args=("CHARSET", "UTF-8", "X-GM-RAW", arg), charset="UTF-8", exact=True, matches_all=False
    )
