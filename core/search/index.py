"""The full-text index of the cache: one SQLite FTS5 row per cached message.

The cache keeps each envelope as a msgpack blob, which SQL cannot look into, so the words to
search are written here, next to the message, when the cache stores it (``index_summaries``
from ``Cache.put_summaries``, ``index_body`` from ``Cache.put_body``, ``remove`` and
``remove_folder`` when messages or folders go away). ``core.search.query`` reads the table.

Design:

* **One FTS5 table that stores its own text** (neither contentless nor external-content).
  Contentless tables can only forget a row when handed back its exact original text
  (``contentless_delete=1`` needs SQLite 3.43; Debian 12 ships 3.40), and an external-content
  table needs a plain table holding the same text anyway, since the envelope is a blob: a
  normal FTS5 table is that, in one place, with plain ``DELETE`` and ``INSERT OR REPLACE``.
  It costs the normalised header words (about 100 bytes a message) plus the index (about
  160 bytes: 100,000 messages add ~27 MB to a 31 MB cache), and the text of the few bodies
  that are cached (the ones the user opened).
* **rowid = folder_id << 32 | uid** (UIDs are 32-bit), so a row needs no mapping table and a
  whole folder is one rowid range.
* **Words are normalised in Python, not by the tokenizer**: :func:`normalize` folds case,
  compatibility forms and diacritics ("Ärger" → "arger", "ﬁle" → "file", "ß" → "ss"), deletes
  marks and invisible format characters, and turns every other non-letter, non-digit into a
  space. The table's ``ascii`` tokenizer then only splits on those spaces (it keeps every
  non-ASCII character inside a token), so what is a word is decided by one Python function,
  used for the index, for queries and for ``core.search.evaluate`` alike, independent of the
  Unicode tables compiled into the SQLite at hand. Scripts without spaces between words
  (Chinese, Japanese, Thai) are indexed as runs, matched by prefix only.
* Body text: the first text/plain part, else the first text/html part with its tags
  stripped (a regular expression, not ``core.message.html``: the index needs words, not layout, and
  inscriptis takes tens of milliseconds a message). Attachments are not indexed. At most
  ``MAX_BODY_CHARS`` characters of a body are indexed.
* Rows a first sync stores undecoded (``messages.raw``) have no envelope yet: they are
  indexed when the background decode pass fills them (``Cache.set_decoded``);
  ``core.search.search_cache`` judges them in Python meanwhile, ``pending`` counts them.
"""

from __future__ import annotations

import html
import re
import sqlite3
import sys
import unicodedata
from collections.abc import Iterable, Sequence

import msgspec

from kittiwake.core.models import Address, Envelope, MessageSummary
from kittiwake.core.sqltx import transaction

__all__ = [
    "AUTOMERGE",
    "COLUMNS",
    "MAX_BODY_CHARS",
    "SCHEMA",
    "SET_AUTOMERGE",
    "TABLE",
    "body_text",
    "body_words",
    "ensure_schema",
    "envelope_columns",
    "index_body",
    "index_body_words",
    "index_envelopes",
    "index_summaries",
    "key",
    "normalize",
    "pending",
    "prune",
    "rebuild",
    "remove",
    "remove_folder",
    "tokens",
]

TABLE = "search_fts"

#: The indexed columns, in table order.
COLUMNS = ("subject", "sender", "rcpt_to", "rcpt_cc", "body")

#: The DDL of schema version 2 (see ``ensure_schema``). ``prefix='2 3'`` keeps short prefix
#: queries (every unquoted word is a prefix) off a scan of the whole term list.
SCHEMA = f"""
CREATE VIRTUAL TABLE IF NOT EXISTS {TABLE} USING fts5(
    subject, sender, rcpt_to, rcpt_cc, body,
    tokenize = 'ascii',
    prefix = '2 3',
    columnsize = 0
);
"""

#: FTS5 merges a level's segments once this many are there (its default: 4). The decode pass
#: adds a segment every 1,000 messages; merging them 4 at a time rewrote each row's terms
#: about twice as often: indexing 100,000 rows cost 13 µs a row, and 8 µs so. Queries read
#: at most 16 segments a level instead of 4 (measured at 100,000: no slower). Stored in the
#: table (cache schema 7).
AUTOMERGE = 16
SET_AUTOMERGE = f"INSERT INTO {TABLE}({TABLE}, rank) VALUES ('automerge', {AUTOMERGE});"  # noqa: S608

MAX_BODY_CHARS = 256 * 1024
_UID_MASK = 0xFFFFFFFF
_CHUNK = 500

# -- words ------------------------------------------------------------------------------

_SEPARATORS = re.compile(r"[\W_]+")
#: ASCII punctuation, controls and "_" to spaces (str.translate: 5x a regex on long text).
_ASCII_SEPARATORS = str.maketrans({chr(c): " " for c in range(128) if not chr(c).isalnum()})
_BEYOND_BMP = re.compile("[\U00010000-\U0010ffff]")
_marks: tuple[re.Pattern[str], dict[int, None]] | None = None


def _mark_tables() -> tuple[re.Pattern[str], dict[int, None]]:
    """Marks (Mn, Mc, Me) and format characters (Cf: soft hyphen, ZWJ, bidi controls), to
    delete so "re\u0301sume\u0301" stays one word: a regex class for the BMP (fast), a
    ``str.translate`` table for the few beyond it. Built on first non-ASCII text (~20 ms)."""
    global _marks
    if _marks is None:
        ranges: list[tuple[int, int]] = []
        beyond: dict[int, None] = {}
        planes = (range(0x80, 0x20000), range(0xE0000, min(0xE1000, sys.maxunicode + 1)))
        for plane in planes:
            for cp in plane:
                cat = unicodedata.category(chr(cp))
                if cat[0] != "M" and cat != "Cf":
                    continue
                if cp > 0xFFFF:
                    beyond[cp] = None
                elif ranges and ranges[-1][1] == cp - 1:
                    ranges[-1] = (ranges[-1][0], cp)
                else:
                    ranges.append((cp, cp))
        body = "".join(
            re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}"
            for a, b in ranges
        )
        _marks = (re.compile(f"[{body}]+"), beyond)
    return _marks


def normalize(text: str) -> str:
    """``text`` as the index sees it: folded words separated by single spaces."""
    if text.isascii():
        return " ".join(text.lower().translate(_ASCII_SEPARATORS).split())
    folded = unicodedata.normalize("NFKD", text).casefold()
    if not unicodedata.is_normalized("NFKD", folded):
        folded = unicodedata.normalize("NFKD", folded)
    bmp, beyond = _mark_tables()
    folded = bmp.sub("", folded)
    if _BEYOND_BMP.search(folded) is not None:
        folded = folded.translate(beyond)
    return _SEPARATORS.sub(" ", folded).strip()


def tokens(text: str) -> list[str]:
    """The words of ``text`` as the index sees them."""
    return normalize(text).split()


#: Entries a table of remembered addresses holds before it starts again (~100 KB a thousand):
#: enough for the correspondents a folder keeps coming back to, little to keep in memory.
_MEMO_MAX = 4096
_ADDRESS_WORDS: dict[Address, str] = {}


def _address_words(a: Address) -> str:
    """``normalize`` of one address's name and addr, remembered: correspondents repeat, and
    a list's words are its addresses' words joined (``normalize`` works a character at a
    time and splits at blanks)."""
    words = _ADDRESS_WORDS.get(a)
    if words is None:
        words = normalize(f"{a.name} {a.addr}")
        if len(_ADDRESS_WORDS) > _MEMO_MAX:
            _ADDRESS_WORDS.clear()
        _ADDRESS_WORDS[a] = words
    return words


def _addresses(addrs: Sequence[Address]) -> str:
    if len(addrs) == 1:
        return _address_words(addrs[0])
    return " ".join(w for w in map(_address_words, addrs) if w)


def envelope_columns(env: Envelope) -> tuple[str, str, str, str]:
    """(subject, sender, rcpt_to, rcpt_cc) as indexed: names and addresses of From, To, Cc."""
    return (normalize(env.subject), _addresses(env.from_), _addresses(env.to), _addresses(env.cc))


_SCRIPT_STYLE = re.compile(r"(?is)<(script|style|head)\b.*?</\1\s*>")
_COMMENT = re.compile(r"(?s)<!--.*?-->")
_TAG = re.compile(r"<[^>]*>")


def _strip_html(markup: str) -> str:
    text = _COMMENT.sub(" ", markup)
    text = _SCRIPT_STYLE.sub(" ", text)
    text = _TAG.sub(" ", text)
    return html.unescape(text)


def body_text(raw: bytes) -> str:
    """The searchable text of a whole message: its text part, else its HTML part's words."""
    # MIME parsing (the email package) loads when a first body is indexed, not at start.
    from kittiwake.core.message.mime import parse_message

    try:
        parsed = parse_message(raw)
    except Exception:  # parse_message is not meant to raise; the index must never stop sync
        return ""
    if parsed.text is not None:
        text = parsed.text
    elif parsed.html is not None:
        text = _strip_html(parsed.html)
    else:
        return ""
    return text[:MAX_BODY_CHARS]


# -- maintenance ------------------------------------------------------------------------


def key(folder_id: int, uid: int) -> int:
    """The FTS rowid of a message."""
    return (folder_id << 32) | (uid & _UID_MASK)


def ensure_schema(db: sqlite3.Connection) -> None:
    """Create the table if missing (idempotent; one statement, so it can run inside the
    migration's transaction: ``executescript`` would commit that first)."""
    db.execute(SCHEMA)


def index_summaries(
    db: sqlite3.Connection, folder_id: int, summaries: Iterable[MessageSummary]
) -> None:
    """(Re)index the headers of ``summaries``; a body already indexed for a UID is kept.

    Call inside the transaction that stores the summaries (about 3 µs a message, plus
    ~1 µs a non-ASCII header to normalise).
    """
    index_envelopes(db, folder_id, [(s.uid, s.envelope) for s in summaries])


def index_envelopes(
    db: sqlite3.Connection, folder_id: int, envelopes: Iterable[tuple[int, Envelope]]
) -> None:
    """``index_summaries`` for (uid, envelope) pairs (what the decode pass has at hand)."""
    rows = [(key(folder_id, uid), *envelope_columns(env)) for uid, env in envelopes]
    if not rows:
        return
    # In rowid order: FTS5 flushes its pending terms to a new segment whenever a rowid is not
    # above the previous one of the transaction, so the decode pass's newest-first rows made
    # one segment a row, and merging those cost ~30 µs a row (3 µs in order).
    rows.sort()
    keys = [r[0] for r in rows]
    existing: dict[int, str] = {}
    for i in range(0, len(keys), _CHUNK):
        chunk = keys[i : i + _CHUNK]
        # FTS5's own content table (id = rowid, c4 = body): a plain rowid table, looked up
        # in a third of the time a rowid IN (...) through the virtual table takes.
        existing.update(
            db.execute(
                f"SELECT id, c4 FROM {TABLE}_content WHERE id IN"  # noqa: S608
                f" ({','.join('?' * len(chunk))})",
                chunk,
            ).fetchall()
        )
    columns = "(rowid, subject, sender, rcpt_to, rcpt_cc, body) VALUES (?,?,?,?,?,?)"
    # A plain INSERT where no row is (the usual case: cheaper than INSERT OR REPLACE).
    db.executemany(
        f"INSERT INTO {TABLE}{columns}",
        [(*r, "") for r in rows if r[0] not in existing],
    )
    if existing:
        db.executemany(
            f"INSERT OR REPLACE INTO {TABLE}{columns}",
            [(*r, existing[r[0]]) for r in rows if r[0] in existing],
        )


def body_words(raw: bytes) -> str:
    """The normalised words of a message's body, ready for ``index_body_words``. The slow
    half of indexing a body (MIME parsing: milliseconds for big messages): run it off the
    event loop."""
    return normalize(body_text(raw))


def index_body_words(db: sqlite3.Connection, folder_id: int, uid: int, words: str) -> None:
    """Store a body's words (from ``body_words``); its headers stay as ``index_summaries``
    left them, and a body that arrives first gets a row with empty headers, filled later."""
    k = key(folder_id, uid)
    row = db.execute(
        f"SELECT subject, sender, rcpt_to, rcpt_cc FROM {TABLE} WHERE rowid=?",  # noqa: S608
        (k,),
    ).fetchone()
    head = tuple(row) if row is not None else ("", "", "", "")
    db.execute(
        f"INSERT OR REPLACE INTO {TABLE}(rowid, subject, sender, rcpt_to, rcpt_cc, body)"  # noqa: S608
        " VALUES (?,?,?,?,?,?)",
        (k, *head, words),
    )


def index_body(db: sqlite3.Connection, folder_id: int, uid: int, raw: bytes) -> None:
    """Index the text of a whole message (``body_words`` + ``index_body_words``)."""
    index_body_words(db, folder_id, uid, body_words(raw))


def remove(db: sqlite3.Connection, folder_id: int, uids: Iterable[int]) -> None:
    """Forget ``uids`` of a folder (expunged messages)."""
    keys = [key(folder_id, u) for u in uids]
    for i in range(0, len(keys), _CHUNK):
        chunk = keys[i : i + _CHUNK]
        db.execute(
            f"DELETE FROM {TABLE} WHERE rowid IN ({','.join('?' * len(chunk))})",  # noqa: S608
            chunk,
        )


def remove_folder(db: sqlite3.Connection, folder_id: int) -> None:
    """Forget every message of a folder (UIDVALIDITY changed, or the folder is gone: folder
    ids can be reused by SQLite, so this must run whenever a folder row is deleted)."""
    db.execute(
        f"DELETE FROM {TABLE} WHERE rowid BETWEEN ? AND ?",  # noqa: S608
        (key(folder_id, 0), key(folder_id, _UID_MASK)),
    )


def prune(db: sqlite3.Connection) -> int:
    """Delete index rows whose message is no longer cached; return how many (a safety net)."""
    cur = db.execute(
        f"DELETE FROM {TABLE} WHERE rowid NOT IN"  # noqa: S608
        " (SELECT (folder_id << 32) | uid FROM messages)"
    )
    return cur.rowcount


class _IndexEnvelope(msgspec.Struct):
    """The indexed fields of a cached envelope blob; msgspec skips the rest undecoded."""

    subject: str = ""
    from_: tuple[Address, ...] = ()
    to: tuple[Address, ...] = ()
    cc: tuple[Address, ...] = ()


def rebuild(db: sqlite3.Connection) -> int:
    """Index every cached message (but those stored undecoded, see ``pending``) and body from
    scratch; return the number of messages indexed.

    For the schema migration that adds the table to an existing cache (100,000 messages take
    a few seconds, once). One transaction (the caller's, if one is open).
    """
    with transaction(db):
        return _rebuild(db)


def _has_raw_column(db: sqlite3.Connection) -> bool:
    return any(row[1] == "raw" for row in db.execute("PRAGMA table_info(messages)"))


def pending(db: sqlite3.Connection, folder_ids: Iterable[int] | None = None) -> int:
    """Messages stored undecoded by a first sync (``messages.raw``): not in the index until
    the background decode pass fills their envelope and calls ``index_summaries``."""
    if not _has_raw_column(db):
        return 0
    if folder_ids is None:
        row = db.execute("SELECT count(*) FROM messages WHERE raw IS NOT NULL").fetchone()
        return int(row[0])
    ids = ",".join(str(int(f)) for f in folder_ids) or "NULL"
    row = db.execute(
        f"SELECT count(*) FROM messages WHERE folder_id IN ({ids}) AND raw IS NOT NULL"  # noqa: S608
    ).fetchone()
    return int(row[0])


def _rebuild(db: sqlite3.Connection) -> int:
    decode = msgspec.msgpack.Decoder(_IndexEnvelope).decode
    db.execute(f"DELETE FROM {TABLE}")  # noqa: S608
    count = 0
    # Rows stored undecoded have no envelope yet: the decode pass indexes them.
    decoded = " WHERE raw IS NULL" if _has_raw_column(db) else ""
    cur = db.execute(f"SELECT folder_id, uid, envelope FROM messages{decoded}")  # noqa: S608
    while True:
        batch = cur.fetchmany(2000)
        if not batch:
            break
        rows = []
        for fid, uid, blob in batch:
            env = decode(blob)
            rows.append(
                (
                    key(fid, uid),
                    normalize(env.subject),
                    _addresses(env.from_),
                    _addresses(env.to),
                    _addresses(env.cc),
                )
            )
        db.executemany(
            f"INSERT INTO {TABLE}(rowid, subject, sender, rcpt_to, rcpt_cc, body)"  # noqa: S608
            " VALUES (?,?,?,?,?,'')",
            rows,
        )
        count += len(rows)
    for fid, uid in db.execute("SELECT folder_id, uid FROM bodies").fetchall():
        row = db.execute(
            "SELECT raw FROM bodies WHERE folder_id=? AND uid=?", (fid, uid)
        ).fetchone()
        if row is not None:
            index_body(db, fid, uid, bytes(row[0]))
    return count
