"""IMAP SEARCH: a query of the search language (``core.search.query``) as SEARCH criteria
for the server (:func:`to_imap_search`), and running them in a folder (:func:`server_search`).

The server finds what the cache cannot (bodies never downloaded, messages not yet synced). It
compares substrings, so it may find a little more than the cache does for the same words; a
term with no IMAP equivalent makes the criteria a superset (``ImapSearch.exact`` is False) that
``core.search.query.evaluate`` narrows down.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

from kittiwake.core.imap.connection import Literal, quote
from kittiwake.core.imap.parser import ESearch, Search, parse_untagged
from kittiwake.core.imap.uidset import UidSet
from kittiwake.core.search.query import (
    And,
    DateTerm,
    FlagName,
    HasAttachment,
    IsFlag,
    Node,
    Not,
    Query,
    SizeTerm,
    Text,
    TextField,
)

if TYPE_CHECKING:
    from kittiwake.core.imap.client import ImapClient
    from kittiwake.core.models import MessageSummary

__all__ = ["ImapSearch", "search_and_fetch", "server_search", "to_imap_search"]

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_IMAP_MAX_NUMBER = 2**32 - 1
_IMAP_TEXT_KEYS = {
    TextField.FROM: "FROM",
    TextField.TO: "TO",
    TextField.CC: "CC",
    TextField.SUBJECT: "SUBJECT",
    TextField.BODY: "BODY",
}
_IMAP_FLAG_KEYS = {
    FlagName.UNREAD: ["UNSEEN"],
    FlagName.READ: ["SEEN"],
    FlagName.FLAGGED: ["FLAGGED"],
    FlagName.ANSWERED: ["ANSWERED"],
    FlagName.DRAFT: ["DRAFT"],
    FlagName.FORWARDED: ["KEYWORD", "$Forwarded"],
}


class _Paren:
    """An opening or closing parenthesis of a search-key list (glued to its neighbours)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


_OPEN = _Paren("(")
_CLOSE = _Paren(")")
_Atom = str | Literal | _Paren
_Key = list[_Atom]


@dataclass(frozen=True)
class ImapSearch:
    """IMAP SEARCH criteria for a query.

    ``args`` go after ``UID SEARCH`` (after ``RETURN (...)`` for ESEARCH), one command
    argument each, as ``ImapConnection.command("UID SEARCH", *args)`` takes them; they start
    with ``CHARSET UTF-8`` when a string is non-ASCII, and such strings are literals.
    ``exact`` is False when a term has no IMAP equivalent (``has:attachment``): the server
    was asked for a superset, so keep only what :func:`evaluate` does not rule out.
    ``matches_all``: the criteria are ``ALL`` (nothing for the server to narrow down).
    """

    args: tuple[str | Literal, ...]
    charset: str | None
    exact: bool
    matches_all: bool

    @property
    def has_literals(self) -> bool:
        return any(isinstance(a, Literal) for a in self.args)

    def line(self) -> str:
        """The criteria as one line, literals shown inline (for logs and tests; to send
        them use ``args``: a literal cannot be sent as part of a line)."""
        parts = []
        for a in self.args:
            if isinstance(a, Literal):
                parts.append(f"{{{len(a.data)}}}" + a.data.decode("utf-8", "replace"))
            else:
                parts.append(a)
        return " ".join(parts)


def _imap_string(value: str) -> _Atom:
    if value.isascii():
        return quote(value)
    return Literal(value.encode("utf-8"))


def _imap_date(day: date) -> str:
    return f"{day.day}-{_MONTHS[day.month - 1]}-{day.year:04d}"


def _or_keys(keys: list[_Key]) -> _Key:
    """OR is binary in IMAP: ``OR a OR b c``."""
    out: _Key = []
    for k in keys[:-1]:
        out += ["OR", *k]
    return out + keys[-1]


def _group(keys: list[_Key]) -> _Key:
    """Several keys as one: ``(a b c)``. The protocol puts a space before every argument, so a
    literal cannot be directly followed by ``)``: a key ending in a literal is moved away from
    the end, or ``ALL`` (true) is appended."""
    ordered = sorted(keys, key=lambda k: isinstance(k[-1], Literal), reverse=True)
    if isinstance(ordered[-1][-1], Literal):
        ordered.append(["ALL"])
    out: _Key = [_OPEN]
    for k in ordered:
        out += k
    return [*out, _CLOSE]


def _imap(node: Node, positive: bool, state: dict[str, bool], sent: bool) -> _Key | bool:
    """Criteria for ``node``, or True/False when it reduces to a constant. Terms IMAP cannot
    say become True where the answer may be a superset (``positive``), False under NOT."""
    if isinstance(node, Text):
        value = _imap_string(node.value)
        if node.field is TextField.ANY:
            return _or_keys([[k, value] for k in ("FROM", "TO", "CC", "SUBJECT", "BODY")])
        return [_IMAP_TEXT_KEYS[node.field], value]
    if isinstance(node, IsFlag):
        return list(_IMAP_FLAG_KEYS[node.flag])
    if isinstance(node, HasAttachment):
        state["inexact"] = True
        return positive
    if isinstance(node, DateTerm):
        names = {"before": "BEFORE", "after": "SINCE", "on": "ON"}
        return [("SENT" if sent else "") + names[node.op], _imap_date(node.day)]
    if isinstance(node, SizeTerm):
        return [
            "LARGER" if node.op == "larger" else "SMALLER",
            str(min(node.size, _IMAP_MAX_NUMBER)),
        ]
    if isinstance(node, Not):
        inner = _imap(node.term, not positive, state, sent)
        return (not inner) if isinstance(inner, bool) else ["NOT", *inner]
    is_and = isinstance(node, And)
    keys: list[_Key] = []
    for t in node.terms:
        part = _imap(t, positive, state, sent)
        if isinstance(part, bool):
            if part is not is_and:  # False in AND, True in OR: decides the whole
                return part
            continue
        keys.append(part)
    if not keys:
        return is_and
    if len(keys) == 1:
        return keys[0]
    return _group(keys) if is_and else _or_keys(keys)


def _render(atoms: _Key) -> list[str | Literal]:
    """Atoms to command arguments: words joined by spaces, parentheses glued on."""
    out: list[str | Literal] = []
    buf = ""
    glue = False  # the next word follows "(" directly
    for a in atoms:
        if isinstance(a, _Paren):
            if a is _OPEN:
                buf = buf + ("(" if glue or not buf else " (")
                glue = True
            else:
                buf += ")"
            continue
        if isinstance(a, Literal):
            if buf:
                out.append(buf)
            buf = ""
            glue = False
            out.append(a)
            continue
        buf = buf + a if glue or not buf else buf + " " + a
        glue = False
    if buf:
        out.append(buf)
    return out


def to_imap_search(query: Query, *, sent_dates: bool = True) -> ImapSearch:
    """IMAP SEARCH criteria (RFC 3501 section 6.4.4) for ``query``.

    Words become FROM/TO/CC/SUBJECT/BODY (a free word is the OR of all five, like the
    cache's match, rather than TEXT which also searches every other header); dates become
    SENTBEFORE/SENTSINCE/SENTON, the Date header, which is what the list shows and the cache
    compares (``sent_dates=False``: BEFORE/SINCE/ON, the arrival date).
    """
    state = {"inexact": False}
    crit = _imap(query.root, True, state, sent_dates)
    matches_all = crit is True
    if isinstance(crit, bool):
        atoms: _Key = ["ALL"] if crit else ["NOT", "ALL"]
    elif crit and crit[0] is _OPEN and _matching_close(crit) == len(crit) - 1:
        atoms = crit[1:-1]  # the top level is a list already
    else:
        atoms = crit
    args = _render(atoms)
    charset = "UTF-8" if any(isinstance(a, Literal) for a in args) else None
    if charset:
        args = ["CHARSET", charset, *args]
    return ImapSearch(tuple(args), charset, not state["inexact"], matches_all)


def _matching_close(atoms: _Key) -> int:
    depth = 0
    for i, a in enumerate(atoms):
        if a is _OPEN:
            depth += 1
        elif a is _CLOSE:
            depth -= 1
            if depth == 0:
                return i
    return -1


async def server_search(
    client: ImapClient, folder: str, search: ImapSearch, *, esearch: bool = True
) -> UidSet:
    """Run ``search`` in ``folder`` on an ``ImapClient`` (selecting the folder if needed);
    the matching UIDs. ESEARCH (``RETURN (ALL)``: UID ranges, not every number) is used where
    the server offers it, unless ``esearch`` is False.

    Hold the account's command lock (``ImapAccount.run_locked``). Other untagged responses
    the command brings (EXISTS, EXPUNGE, FETCH FLAGS) reach the account's ``on_unsolicited``
    through the client's raw handler, as for every command not sent through ``run``.
    """
    if client.selected != folder:
        await client.select(folder)
    else:
        # A server leaves out messages it has not announced yet (Dovecot announces at the
        # end of a command): NOOP first, so mail that arrived since the last command counts.
        await client.noop()
    args: list[str | Literal] = list(search.args)
    if esearch and client.has("ESEARCH"):
        args = ["RETURN", "(ALL)", *args]
    result = await client.conn.command("UID SEARCH", *args)
    found: list[int] = []
    out = UidSet()
    for raw in result.untagged:
        try:
            item = parse_untagged(raw)
        except ValueError:
            continue
        if isinstance(item, Search):
            found.extend(item.uids)
        elif isinstance(item, ESearch) and item.all is not None:
            out = out | item.all
    return out | UidSet.from_iterable(found)


async def search_and_fetch(
    client: ImapClient, folder: str, search: ImapSearch, cached: Callable[[], Iterable[int]]
) -> tuple[UidSet, Sequence[MessageSummary]]:
    """``server_search``, then the summaries of the found UIDs ``cached()`` lacks (read after
    the search: a sync may have stored some meanwhile). Hold the command lock."""
    uids = await server_search(client, folder, search)
    have = set(cached())
    missing = UidSet.from_iterable(u for u in uids if u not in have)
    if not len(missing):
        return uids, ()
    return uids, await client.uid_fetch_summaries(missing)
