"""Search: the query language and its evaluation over the cache.

The language (documented for users in the help screen and README)::

    ann invoice                 free words: each must match sender, recipients, subject or body
    "weekly report"             a phrase: these words, in this order, whole
    from:ann to:bob cc:carol    names and addresses of From, To, Cc
    subject:invoice body:iban   one part of the message only
    subject:"weekly report"     a field with a phrase
    is:unread is:read is:flagged is:answered is:draft is:forwarded   (also is:seen, is:unseen)
    has:attachment
    before:2026-03-01 after:2026-01-31 on:2026-02-14   (dates of the list, local time;
                                 before: excludes the day, after: includes it, like IMAP)
    larger:1M smaller:20K       sizes in bytes, K/M/G suffixes (1K = 1024)
    -word  -from:ann  NOT x     leave out what matches
    a OR b                      either (OR binds tighter than the implicit AND, as in Gmail:
                                 ``from:ann OR from:bob invoice`` wants an invoice from either)
    (a b) OR c                  parentheses group; AND may be written but is the default

Unquoted words match word *prefixes* (``meet`` finds "meeting", ``ann@exa`` finds
"ann@example.org"); quoted phrases match whole words. Case, accents and punctuation are
ignored (see ``core.search.index.normalize``). A query that cannot be understood raises
:class:`QueryError` whose message says what is wrong and at which column; parsing never
raises anything else.

Three evaluators share one AST:

* :func:`search_cache`: SQL over the cache, FTS5 (``core.search.index``) for the words;
* :func:`evaluate`: one summary in Python, three-valued (``None`` when the answer depends
  on a body that is not cached) — to decide whether a message arriving live belongs to an
  open result view, and to post-filter a server answer that is not exact;
* ``core.imap.search`` (``to_imap_search``, ``server_search``): IMAP SEARCH criteria for the
  server, which finds what the cache cannot (bodies never downloaded, messages not yet
  synced). The server compares substrings, so it may find a little more than the cache does
  for the same words.
"""

from __future__ import annotations

import difflib
import re
import sqlite3
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from enum import StrEnum
from typing import Literal as TypingLiteral

from kittiwake.core.errors import KittiwakeError
from kittiwake.core.message.dates import sort_date
from kittiwake.core.models import ANSWERED, DRAFT, FLAGGED, FORWARDED, SEEN, MessageSummary
from kittiwake.core.search.index import PENDING, TABLE, envelope_columns, normalize, tokens

__all__ = [
    "MAX_DEPTH",
    "MAX_TERMS",
    "And",
    "DateTerm",
    "FlagName",
    "HasAttachment",
    "IsFlag",
    "Node",
    "Not",
    "Or",
    "Query",
    "QueryError",
    "SizeTerm",
    "Text",
    "TextField",
    "describe",
    "evaluate",
    "fts_expression",
    "parse_query",
    "search_cache",
    "to_sql",
]

#: Parentheses and negations nested deeper than this are refused (no recursion limits hit).
MAX_DEPTH = 32
#: Terms in one query; more is refused (keeps SQL and IMAP commands bounded).
MAX_TERMS = 200


class QueryError(KittiwakeError):
    """A query that cannot be understood. ``message`` is one sentence naming the column;
    ``position`` is the 0-based offset into the query text."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(message)
        self.position = position


# -- the AST ----------------------------------------------------------------------------


class TextField(StrEnum):
    ANY = "any"
    FROM = "from"
    TO = "to"
    CC = "cc"
    SUBJECT = "subject"
    BODY = "body"


class FlagName(StrEnum):
    UNREAD = "unread"
    READ = "read"
    FLAGGED = "flagged"
    ANSWERED = "answered"
    DRAFT = "draft"
    FORWARDED = "forwarded"


@dataclass(frozen=True, slots=True)
class Text:
    """Words to find. ``words`` are normalised; with ``prefix`` the last may be a prefix.
    ``value`` is the text as typed (without quotes), which the server is asked for."""

    field: TextField
    value: str
    words: tuple[str, ...]
    prefix: bool


@dataclass(frozen=True, slots=True)
class IsFlag:
    flag: FlagName


@dataclass(frozen=True, slots=True)
class HasAttachment:
    pass


@dataclass(frozen=True, slots=True)
class DateTerm:
    op: TypingLiteral["before", "after", "on"]
    day: date


@dataclass(frozen=True, slots=True)
class SizeTerm:
    op: TypingLiteral["larger", "smaller"]
    size: int


@dataclass(frozen=True, slots=True)
class Not:
    term: Node


@dataclass(frozen=True, slots=True)
class And:
    terms: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    terms: tuple[Node, ...]


Node = Text | IsFlag | HasAttachment | DateTerm | SizeTerm | Not | And | Or


@dataclass(frozen=True, slots=True)
class Query:
    root: Node
    text: str


# -- lexing -----------------------------------------------------------------------------

_TEXT_FIELDS = {
    "from": TextField.FROM,
    "to": TextField.TO,
    "cc": TextField.CC,
    "subject": TextField.SUBJECT,
    "body": TextField.BODY,
}
_FLAGS = {
    "unread": FlagName.UNREAD,
    "unseen": FlagName.UNREAD,
    "new": FlagName.UNREAD,
    "read": FlagName.READ,
    "seen": FlagName.READ,
    "flagged": FlagName.FLAGGED,
    "starred": FlagName.FLAGGED,
    "answered": FlagName.ANSWERED,
    "replied": FlagName.ANSWERED,
    "draft": FlagName.DRAFT,
    "forwarded": FlagName.FORWARDED,
}
_FIELDS = (*_TEXT_FIELDS, "is", "has", "before", "after", "on", "larger", "smaller")
_FIELD_RX = re.compile(r"([A-Za-z]+):")
_DATE_RX = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})")
_SIZE_RX = re.compile(r"(\d{1,15}(?:\.\d{1,6})?)\s*([kmg]?)(?:i?b)?", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
_MAX_SIZE = 2**63 - 1
_STOP = frozenset(' \t\n\r\x0b\x0c()"')


def _col(pos: int) -> str:
    return f"column {pos + 1}"


def _show(text: str, limit: int = 30) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(slots=True)
class _Tok:
    kind: str  # word, lparen, rparen, or, and, not, minus, eof
    pos: int
    field: str | None = None
    value: str = ""
    quoted: bool = False


def _check_chars(text: str) -> None:
    for i, c in enumerate(text):
        if c in "\t\n\r\x0b\x0c ":
            continue
        cat = unicodedata.category(c)
        if cat in ("Cc", "Cs"):
            raise QueryError(
                f"The query has an invalid character (U+{ord(c):04X}) at {_col(i)}.", i
            )


def _read_quoted(text: str, start: int) -> tuple[str, int]:
    """The string in quotes starting at ``text[start] == '"'``; returns (value, end)."""
    out: list[str] = []
    i = start + 1
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n and text[i + 1] in '"\\':
            out.append(text[i + 1])
            i += 2
            continue
        if c == '"':
            return " ".join("".join(out).split()), i + 1
        out.append(c)
        i += 1
    raise QueryError(f"The quote at {_col(start)} is never closed.", start)


def _lex(text: str) -> list[_Tok]:
    _check_chars(text)
    toks: list[_Tok] = []
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
            continue
        if c == "(":
            toks.append(_Tok("lparen", i))
            i += 1
            continue
        if c == ")":
            toks.append(_Tok("rparen", i))
            i += 1
            continue
        if c == "-":
            if i + 1 >= n or text[i + 1].isspace() or text[i + 1] == ")":
                raise QueryError(
                    f"The '-' at {_col(i)} must be followed by the term to leave out.", i
                )
            toks.append(_Tok("minus", i))
            i += 1
            continue
        if c == '"':
            value, end = _read_quoted(text, i)
            toks.append(_Tok("word", i, None, value, True))
            i = end
            continue
        j = i
        while j < n and text[j] not in _STOP and not text[j].isspace():
            j += 1
        word = text[i:j]
        if word in ("OR", "AND", "NOT"):
            toks.append(_Tok(word.lower(), i))
            i = j
            continue
        m = _FIELD_RX.match(word)
        if m is None or word.startswith("//", m.end()):  # a URL is text, not a field
            toks.append(_Tok("word", i, None, word))
            i = j
            continue
        name = m.group(1).lower()
        if name not in _FIELDS:
            close = difflib.get_close_matches(name, _FIELDS, n=1)
            hint = f" (did you mean {close[0]}:?)" if close else ""
            raise QueryError(
                f"Unknown field {m.group(1)}: at {_col(i)}{hint}; put the word in quotes"
                " to search for it as text.",
                i,
            )
        value = word[m.end() :]
        if value:
            toks.append(_Tok("word", i, name, value))
            i = j
        elif j < n and text[j] == '"':
            value, end = _read_quoted(text, j)
            toks.append(_Tok("word", i, name, value, True))
            i = end
        else:
            raise QueryError(
                f"{name}: at {_col(i)} needs a value right after the colon, as in"
                f" {name}:{_EXAMPLES[name]}.",
                i,
            )
    toks.append(_Tok("eof", n))
    return toks


_EXAMPLES = {
    "from": "ann",
    "to": "ann",
    "cc": "ann",
    "subject": "invoice",
    "body": "invoice",
    "is": "unread",
    "has": "attachment",
    "before": "2026-01-31",
    "after": "2026-01-31",
    "on": "2026-01-31",
    "larger": "1M",
    "smaller": "100K",
}


# -- parsing ----------------------------------------------------------------------------


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _lex(text)
        self.i = 0
        self.terms = 0

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def starts_term(self, tok: _Tok) -> bool:
        return tok.kind in ("word", "lparen", "minus", "not")

    def conj(self, depth: int) -> Node:
        terms = [self.disj(depth)]
        while True:
            tok = self.peek()
            if tok.kind == "and":
                self.take()
                if not self.starts_term(self.peek()):
                    raise QueryError(f"AND at {_col(tok.pos)} needs a term after it.", tok.pos)
                terms.append(self.disj(depth))
            elif self.starts_term(tok):
                terms.append(self.disj(depth))
            else:
                break
        return _and(terms)

    def disj(self, depth: int) -> Node:
        terms = [self.unary(depth)]
        while self.peek().kind == "or":
            tok = self.take()
            if not self.starts_term(self.peek()):
                raise QueryError(f"OR at {_col(tok.pos)} needs a term after it.", tok.pos)
            terms.append(self.unary(depth))
        return _or(terms)

    def unary(self, depth: int) -> Node:
        negate = False
        while self.peek().kind in ("minus", "not"):
            tok = self.take()
            if tok.kind == "not" and not self.starts_term(self.peek()):
                raise QueryError(f"NOT at {_col(tok.pos)} needs a term after it.", tok.pos)
            negate = not negate
        node = self.atom(depth)
        return Not(node) if negate else node

    def atom(self, depth: int) -> Node:
        tok = self.take()
        if tok.kind == "lparen":
            if depth >= MAX_DEPTH:
                raise QueryError(
                    f"The parentheses at {_col(tok.pos)} are nested too deeply.", tok.pos
                )
            if self.peek().kind == "rparen":
                raise QueryError(f"The parentheses at {_col(tok.pos)} are empty.", tok.pos)
            if not self.starts_term(self.peek()):
                bad = self.peek()
                raise self.unexpected(bad)
            node = self.conj(depth + 1)
            close = self.take()
            if close.kind != "rparen":
                raise QueryError(f"The '(' at {_col(tok.pos)} is never closed.", tok.pos)
            return node
        if tok.kind == "word":
            self.terms += 1
            if self.terms > MAX_TERMS:
                raise QueryError(
                    f"The query has more than {MAX_TERMS} terms (at {_col(tok.pos)}).", tok.pos
                )
            return _term(tok)
        raise self.unexpected(tok)

    def unexpected(self, tok: _Tok) -> QueryError:
        if tok.kind == "rparen":
            return QueryError(f"The ')' at {_col(tok.pos)} has no matching '('.", tok.pos)
        if tok.kind in ("or", "and"):
            word = tok.kind.upper()
            return QueryError(f"{word} at {_col(tok.pos)} needs a term before it.", tok.pos)
        if tok.kind == "eof":
            return QueryError(f"The query ends too early, at {_col(tok.pos)}.", tok.pos)
        return QueryError(f"Unexpected {tok.kind} at {_col(tok.pos)}.", tok.pos)


def _and(terms: list[Node]) -> Node:
    flat: list[Node] = []
    for t in terms:
        flat.extend(t.terms if isinstance(t, And) else (t,))
    return flat[0] if len(flat) == 1 else And(tuple(flat))


def _or(terms: list[Node]) -> Node:
    flat: list[Node] = []
    for t in terms:
        flat.extend(t.terms if isinstance(t, Or) else (t,))
    return flat[0] if len(flat) == 1 else Or(tuple(flat))


def _term(tok: _Tok) -> Node:
    name, value, pos = tok.field, tok.value, tok.pos
    if name is None or name in _TEXT_FIELDS:
        field = TextField.ANY if name is None else _TEXT_FIELDS[name]
        words = tuple(tokens(value))
        if not words:
            what = f'"{_show(value)}"' if tok.quoted else _show(value)
            if name is not None:
                what = f"{name}:{what}"
            raise QueryError(f"{what} at {_col(pos)} has no letters or digits to search for.", pos)
        return Text(field, value, words, prefix=not tok.quoted)
    if name == "is":
        flag = _FLAGS.get(value.lower())
        if flag is None:
            raise QueryError(
                f"is:{_show(value)} at {_col(pos)} is not a state; use is:unread, is:read,"
                " is:flagged, is:answered, is:draft or is:forwarded.",
                pos,
            )
        return IsFlag(flag)
    if name == "has":
        if value.lower() not in ("attachment", "attachments"):
            raise QueryError(
                f"has:{_show(value)} at {_col(pos)} is not known; use has:attachment.", pos
            )
        return HasAttachment()
    if name in ("before", "after", "on"):
        m = _DATE_RX.fullmatch(value)
        if m is None:
            raise QueryError(
                f"{name}: at {_col(pos)} wants a date as YYYY-MM-DD, not {_show(value)}.", pos
            )
        try:
            day = date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        except ValueError:
            raise QueryError(
                f"{name}: at {_col(pos)} wants a real date; {_show(value)} is not one.", pos
            ) from None
        return DateTerm(name, day)  # type: ignore[arg-type]  # checked just above
    assert name in ("larger", "smaller")
    m = _SIZE_RX.fullmatch(value)
    if m is None:
        raise QueryError(
            f"{name}: at {_col(pos)} wants a size like 500K, 1M or 2G, not {_show(value)}.", pos
        )
    size = round(float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()])
    if size > _MAX_SIZE:
        raise QueryError(f"The size at {_col(pos)} is too large.", pos)
    return SizeTerm(name, size)  # type: ignore[arg-type]  # checked just above


GMAIL_PREFIX = "gmail:"


def gmail_raw(text: str) -> str | None:
    """The Gmail search after a ``gmail:`` prefix (``gmail:has:attachment older_than:1y``):
    the whole rest of the query, in Gmail's own syntax, for the server to run (X-GM-RAW);
    None for a query in Kittiwake's language."""
    stripped = text.lstrip()
    if stripped[: len(GMAIL_PREFIX)].lower() != GMAIL_PREFIX:
        return None
    return stripped[len(GMAIL_PREFIX) :].strip()


def parse_query(text: str) -> Query:
    """Parse a query; raise :class:`QueryError` (and nothing else) when it is malformed."""
    if not text.strip():
        raise QueryError("The query is empty.", 0)
    parser = _Parser(text)
    first = parser.peek()
    if not parser.starts_term(first):
        raise parser.unexpected(first)
    root = parser.conj(0)
    tok = parser.peek()
    if tok.kind != "eof":
        raise parser.unexpected(tok)
    return Query(root, text)


# -- dates ------------------------------------------------------------------------------


def _day_start(day: date, tz: tzinfo | None) -> float:
    """The first second of ``day`` in ``tz`` (None: the local zone) as a timestamp."""
    try:
        if tz is None:
            return datetime(day.year, day.month, day.day).timestamp()
        return datetime(day.year, day.month, day.day, tzinfo=tz).timestamp()
    except (OverflowError, OSError, ValueError):
        return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()


def _day_range(node: DateTerm, tz: tzinfo | None) -> tuple[float, float]:
    """[start, end) of the day as timestamps; end is +inf after 9999-12-31."""
    start = _day_start(node.day, tz)
    try:
        end = _day_start(node.day + timedelta(days=1), tz)
    except OverflowError:
        end = float("inf")
    return start, end


# -- SQL over the cache -----------------------------------------------------------------

_FTS_COLUMN = {
    TextField.FROM: "sender",
    TextField.TO: "rcpt_to",
    TextField.CC: "rcpt_cc",
    TextField.SUBJECT: "subject",
    TextField.BODY: "body",
}
_FLAG_NAMES = {
    FlagName.FLAGGED: FLAGGED,
    FlagName.ANSWERED: ANSWERED,
    FlagName.DRAFT: DRAFT,
    FlagName.FORWARDED: FORWARDED,
}


def fts_expression(node: Text) -> str:
    """The FTS5 MATCH expression of a text term (words are alphanumeric: nothing to escape)."""
    phrase = '"' + " ".join(node.words) + '"' + (" *" if node.prefix else "")
    column = _FTS_COLUMN.get(node.field)
    return f"{column} : {phrase}" if column else phrase


def to_sql(node: Node, params: list[object], tz: tzinfo | None = None) -> str:
    """A WHERE condition over ``messages m`` for ``node``; appends its parameters."""
    if isinstance(node, Text):
        params.append(fts_expression(node))
        return (
            f"((m.folder_id << 32) | m.uid) IN"  # noqa: S608
            f" (SELECT rowid FROM {TABLE} WHERE {TABLE} MATCH ?)"
        )
    if isinstance(node, IsFlag):
        if node.flag is FlagName.UNREAD:
            return "m.seen = 0"
        if node.flag is FlagName.READ:
            return "m.seen = 1"
        params.append(f" {_FLAG_NAMES[node.flag]} ")
        return "instr(' ' || m.flags || ' ', ?) > 0"
    if isinstance(node, HasAttachment):
        return "m.has_attachments != 0"
    if isinstance(node, DateTerm):
        start, end = _day_range(node, tz)
        if node.op == "before":
            params.append(start)
            return "m.sort_date < ?"
        if node.op == "after":
            params.append(start)
            return "m.sort_date >= ?"
        params += [start, end]
        return "(m.sort_date >= ? AND m.sort_date < ?)"
    if isinstance(node, SizeTerm):
        params.append(node.size)
        return "m.size > ?" if node.op == "larger" else "m.size < ?"
    if isinstance(node, Not):
        return f"NOT ({to_sql(node.term, params, tz)})"
    joiner = " AND " if isinstance(node, And) else " OR "
    return "(" + joiner.join(to_sql(t, params, tz) for t in node.terms) + ")"


def search_cache(
    db: sqlite3.Connection,
    folder_ids: Sequence[int] | None,
    query: Query,
    *,
    tz: tzinfo | None = None,
    limit: int | None = None,
    undecoded: TypingLiteral["decode", "skip"] = "decode",
) -> list[tuple[int, int]]:
    """(folder_id, uid) of the cached messages matching ``query``, newest first.

    ``folder_ids`` None searches every folder. Words are looked up in the FTS index (headers
    of every cached message, bodies of the cached ones); the rest are column predicates.
    Dates are days in ``tz`` (None: the local zone).

    Rows a first sync stored undecoded (``messages.raw``, see ``core.cache``) are not in the
    index yet and have no attachment flag: with ``undecoded="decode"`` they are decoded here
    and judged by :func:`evaluate` (exact, ~18 µs a row: only until the background decode
    pass has run; ``searchindex.pending`` counts them); ``"skip"`` leaves them out. Rows the
    pass decoded without indexing them (``searchindex.defer``) are judged by
    :func:`evaluate` from their envelope blobs, always (until ``index_deferred`` has run).
    """
    params: list[object] = []
    where = to_sql(query.root, params, tz)
    scope = ""
    if folder_ids is not None:
        ids = [int(f) for f in folder_ids]
        if not ids:
            return []
        scope = f"m.folder_id IN ({','.join(str(f) for f in ids)}) AND "
    lazy = _undecoded_rows(db, scope)
    later = _deferred_rows(db, scope)
    sql = (
        f"SELECT m.sort_date, m.uid, m.folder_id FROM messages m WHERE {scope}({where})"  # noqa: S608
        # "+": sort the matches rather than walk messages_by_date in order, which costs a
        # table lookup per message of the folder when a predicate reads seen/flags/size
        # (100,000 messages: is:unread 170 ms that way, 60 ms so).
        " ORDER BY +m.sort_date DESC, +m.uid DESC, +m.folder_id DESC"
    )
    if not lazy and not later:
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [(int(f), int(u)) for _, u, f in db.execute(sql, params)]
    skip = {(r[0], r[1]) for r in lazy}
    skip.update((r[0], r[1]) for r in later)
    hits = [(d, u, f) for d, u, f in db.execute(sql, params) if (f, u) not in skip]
    if undecoded == "decode" and lazy:
        hits += _match_undecoded(db, lazy, query, tz)
    if later:
        hits += _match_deferred(db, later, query, tz)
    hits.sort(reverse=True)
    if limit is not None:
        hits = hits[: max(0, int(limit))]
    return [(int(f), int(u)) for _, u, f in hits]


_LazyRow = tuple[int, int, float, str, float | None, int, int | None, bytes]


def _undecoded_rows(db: sqlite3.Connection, scope: str) -> list[_LazyRow]:
    """The scope's rows stored undecoded (none in caches without lazy rows). "+" keeps the
    planner off the primary key, so a partial index ``ON messages(folder_id, uid) WHERE raw
    IS NOT NULL`` answers at once; without one this is a scan (~10 ms per 100,000 rows)."""
    try:
        return db.execute(
            "SELECT m.folder_id, m.uid, m.sort_date, m.flags, m.internal_date, m.size,"  # noqa: S608
            f" m.modseq, m.raw FROM messages m WHERE {'+' + scope if scope else ''}"
            "m.raw IS NOT NULL"
        ).fetchall()
    except sqlite3.OperationalError:  # a cache schema without the raw column
        return []


_DeferredRow = tuple[int, int, float, str, float | None, int, int | None, bytes, str, int]


def _deferred_rows(db: sqlite3.Connection, scope: str) -> list[_DeferredRow]:
    """The scope's rows decoded but not indexed yet (``searchindex.PENDING``; none in caches
    older than schema 8)."""
    try:
        return db.execute(
            "SELECT m.folder_id, m.uid, m.sort_date, m.flags, m.internal_date, m.size,"  # noqa: S608
            f" m.modseq, m.envelope, m.refs, m.has_attachments FROM {PENDING} p"
            " JOIN messages m ON m.folder_id = (p.key >> 32) AND m.uid = (p.key & 4294967295)"
            f" WHERE {scope}m.raw IS NULL"
        ).fetchall()
    except sqlite3.OperationalError:  # a cache schema without the table
        return []


def _bodies(db: sqlite3.Connection, keys: Sequence[int]) -> dict[int, str]:
    """The indexed body text of the given index rowids that have one."""
    bodies: dict[int, str] = {}
    for i in range(0, len(keys), 500):
        chunk = keys[i : i + 500]
        bodies.update(
            db.execute(
                f"SELECT rowid, body FROM {TABLE} WHERE rowid IN"  # noqa: S608
                f" ({','.join('?' * len(chunk))}) AND body != ''",
                chunk,
            ).fetchall()
        )
    return bodies


def _match_deferred(
    db: sqlite3.Connection, rows: list[_DeferredRow], query: Query, tz: tzinfo | None
) -> list[tuple[float, int, int]]:
    from kittiwake.core.cache import envelope_from_blob  # the cache imports this module

    keys = [(f << 32) | u for f, u, *_ in rows]
    bodies = _bodies(db, keys)
    flag_sets: dict[str, frozenset[str]] = {}
    out: list[tuple[float, int, int]] = []
    for (fid, uid, when, flags, internal, size, modseq, blob, refs, att), k in zip(
        rows, keys, strict=True
    ):
        flagset = flag_sets.get(flags)
        if flagset is None:
            flagset = flag_sets[flags] = frozenset(flags.split()) if flags else frozenset()
        summary = MessageSummary(
            uid,
            flagset,
            datetime.fromtimestamp(internal, UTC) if internal is not None else None,
            size,
            envelope_from_blob(blob),
            tuple(refs.split()),
            bool(att),
            modseq,
        )
        # A body the index does not hold counts as empty, as it does in SQL.
        if evaluate(query, summary, bodies.get(k, ""), tz=tz) is True:
            out.append((when, uid, fid))
    return out


def _match_undecoded(
    db: sqlite3.Connection, rows: list[_LazyRow], query: Query, tz: tzinfo | None
) -> list[tuple[float, int, int]]:
    from kittiwake.core.cache import decode_raw  # the cache imports this module

    keys = [(f << 32) | u for f, u, *_ in rows]
    bodies = _bodies(db, keys)  # a missing body and an empty one are judged alike below
    out: list[tuple[float, int, int]] = []
    for (fid, uid, when, flags, internal, size, modseq, raw), k in zip(rows, keys, strict=True):
        raw = bytes(raw)
        if not _may_match(query.root, raw, bodies.get(k, "")):
            continue
        envelope, refs, attachments = decode_raw(raw)
        summary = MessageSummary(
            uid,
            frozenset(flags.split()) if flags else frozenset(),
            datetime.fromtimestamp(internal, UTC) if internal is not None else None,
            size,
            envelope,
            refs,
            attachments,
            modseq,
        )
        # A body the index does not hold counts as empty, as it does in SQL.
        if evaluate(query, summary, bodies.get(k, ""), tz=tz) is True:
            out.append((when, uid, fid))
    return out


def _may_match(node: Node, raw: bytes, body: str) -> bool:
    """False only when a row stored undecoded (``raw``: its ENVELOPE and BODYSTRUCTURE as the
    server sent them) cannot match ``node``, told without decoding it (~18 µs): a first
    search after a first sync judges every such row.

    Told only for a plain ``raw`` (ASCII, no encoded word, no escape): its header texts are
    then its quoted strings as they are, so every word a header column holds once normalised
    (lower case, split at anything not a letter or digit) is a run of ``raw`` in lower case,
    and a text term whose word is not in it cannot match that column. Anything else (the
    body, flags, dates, sizes, a negation) may match."""
    if not raw.isascii() or b"=?" in raw or b"\\" in raw:
        return True
    lowered = raw.lower()

    def may(n: Node) -> bool:
        if isinstance(n, Text):
            if n.field is TextField.BODY or (n.field is TextField.ANY and body):
                return True
            return all(word.encode("utf-8") in lowered for word in n.words)
        if isinstance(n, And):
            return all(may(t) for t in n.terms)
        if isinstance(n, Or):
            return any(may(t) for t in n.terms)
        return True

    return may(node)


# -- evaluation of one summary ------------------------------------------------------------


def _phrase_in(words: tuple[str, ...], prefix: bool, column: str) -> bool:
    needle = " " + " ".join(words)
    if prefix:
        return needle in " " + column
    return needle + " " in " " + column + " "


def evaluate(
    query: Query | Node,
    summary: MessageSummary,
    body: str | None = None,
    *,
    tz: tzinfo | None = None,
) -> bool | None:
    """Does ``summary`` match? ``body`` is the message's text (``searchindex.body_text``),
    None when it is not cached: then a term that depends on it is unknown, and so may be the
    answer (``None``), in three-valued logic: unknown AND false is false, unknown OR true is
    true. Agrees with :func:`search_cache` whenever the answer is known."""
    node = query.root if isinstance(query, Query) else query
    columns: dict[str, str] = {}

    def column(name: str) -> str:
        if not columns:
            subject, sender, to, cc = envelope_columns(summary.envelope)
            columns.update(subject=subject, sender=sender, rcpt_to=to, rcpt_cc=cc)
            columns["body"] = normalize(body) if body is not None else ""
        return columns[name]

    def ev(n: Node) -> bool | None:
        if isinstance(n, Text):
            if n.field is TextField.BODY:
                return None if body is None else _phrase_in(n.words, n.prefix, column("body"))
            if n.field is TextField.ANY:
                for name in ("subject", "sender", "rcpt_to", "rcpt_cc"):
                    if _phrase_in(n.words, n.prefix, column(name)):
                        return True
                return None if body is None else _phrase_in(n.words, n.prefix, column("body"))
            return _phrase_in(n.words, n.prefix, column(_FTS_COLUMN[n.field]))
        if isinstance(n, IsFlag):
            if n.flag is FlagName.UNREAD:
                return SEEN not in summary.flags
            if n.flag is FlagName.READ:
                return SEEN in summary.flags
            return _FLAG_NAMES[n.flag] in summary.flags
        if isinstance(n, HasAttachment):
            return summary.has_attachments
        if isinstance(n, DateTerm):
            when = sort_date(summary)
            start, end = _day_range(n, tz)
            if n.op == "before":
                return when < start
            if n.op == "after":
                return when >= start
            return start <= when < end
        if isinstance(n, SizeTerm):
            return summary.size > n.size if n.op == "larger" else summary.size < n.size
        if isinstance(n, Not):
            inner = ev(n.term)
            return None if inner is None else not inner
        if isinstance(n, And):
            result: bool | None = True
            for t in n.terms:
                v = ev(t)
                if v is False:
                    return False
                if v is None:
                    result = None
            return result
        result = False
        for t in n.terms:
            v = ev(t)
            if v is True:
                return True
            if v is None:
                result = None
        return result

    return ev(node)


def describe(node: Node) -> str:
    """A canonical text form of an AST (for tests and logs); parses back to the same AST."""
    if isinstance(node, Text):
        field = "" if node.field is TextField.ANY else f"{node.field.value}:"
        if node.prefix:
            return field + "-".join(node.words)
        return field + '"' + " ".join(node.words) + '"'
    if isinstance(node, IsFlag):
        return f"is:{node.flag.value}"
    if isinstance(node, HasAttachment):
        return "has:attachment"
    if isinstance(node, DateTerm):
        return f"{node.op}:{node.day.isoformat()}"
    if isinstance(node, SizeTerm):
        return f"{node.op}:{node.size}"
    if isinstance(node, Not):
        return "-" + _paren(node.term)
    if isinstance(node, And):
        return " ".join(_paren(t) if isinstance(t, And) else describe(t) for t in node.terms)
    return " OR ".join(_paren(t) if isinstance(t, And | Or) else describe(t) for t in node.terms)


def _paren(node: Node) -> str:
    text = describe(node)
    return f"({text})" if isinstance(node, And | Or) else text
