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
* **Indexing can wait for a first search** (cache schema 8): the words of 100,000 decoded
  rows cost ~1 s of CPU (the FTS5 insert with its prefix indexes ~7 µs a row, the words
  ~3 µs), a quarter of a first sync's decode pass, which a user who never searches should
  not pay (issue 19). The decode pass after a first sync therefore writes only the keys of
  the rows it decoded to ``PENDING`` (``defer``); the first search judges those rows in
  Python (``search_cache``, from their envelope blobs) and asks for them to be indexed
  (``index_deferred``, in the background: ``Cache.want_decoded(index=True)``). A row
  indexed by any other way leaves ``PENDING`` (``index_envelopes``), so does a row removed.
"""

from __future__ import annotations

import re
import sqlite3
import sys
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import msgspec

from kittiwake.core.models import Address, Envelope, MessageSummary
from kittiwake.core.sqltx import transaction

__all__ = [
    "AUTOMERGE",
    "COLUMNS",
    "MAX_BODY_CHARS",
    "PENDING",
    "PENDING_SCHEMA",
    "SCHEMA",
    "SET_AUTOMERGE",
    "TABLE",
    "body_text",
    "body_words",
    "defer",
    "deferred",
    "ensure_schema",
    "envelope_columns",
    "index_body",
    "index_body_words",
    "index_deferred",
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

#: Decoded messages whose headers are not in the index yet (see the module docstring), by
#: their index rowid (``key``); cache schema 8.
PENDING = "search_pending"
PENDING_SCHEMA = f"CREATE TABLE IF NOT EXISTS {PENDING} (key INTEGER PRIMARY KEY);"

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
    return _remembered(_ADDRESS_WORDS, a, a.name, a.addr)


def _remembered(memo: dict[Any, str], key: object, name: str, addr: str) -> str:
    """``normalize`` of an address's name and addr, from ``memo`` when seen (bounded)."""
    words = memo.get(key)
    if words is None:
        words = normalize(f"{name} {addr}")
        if len(memo) > _MEMO_MAX:
            memo.clear()
        memo[key] = words
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
    import html  # indexing bodies: after the first screen

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
    _index_rows(db, [(key(folder_id, uid), *envelope_columns(env)) for uid, env in envelopes])


def _index_rows(
    db: sqlite3.Connection,
    rows: list[tuple[int, str, str, str, str]],
    forget: bool = True,
    existing: dict[int, str] | None = None,
) -> None:
    """(rowid, subject, sender, rcpt_to, rcpt_cc) into the index, a body already there kept
    (``existing``: the rows' bodies already in the index, if the caller read them);
    ``forget``: the rows leave ``PENDING`` (the caller does it otherwise)."""
    if not rows:
        return
    # In rowid order: FTS5 flushes its pending terms to a new segment whenever a rowid is not
    # above the previous one of the transaction, so the decode pass's newest-first rows made
    # one segment a row, and merging those cost ~30 µs a row (3 µs in order).
    rows.sort()
    keys = [r[0] for r in rows]
    if existing is None:
        existing = _existing(db, keys)
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
    if forget and _any_pending(db):
        _forget_pending(db, keys)


def _existing(db: sqlite3.Connection, keys: Sequence[int]) -> dict[int, str]:
    """rowid -> body of the index rows among ``keys`` that exist."""
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
    return existing


def _any_pending(db: sqlite3.Connection) -> bool:
    """Whether ``PENDING`` holds a key (false in caches older than schema 8, without it)."""
    try:
        return db.execute(f"SELECT 1 FROM {PENDING} LIMIT 1").fetchone() is not None  # noqa: S608
    except sqlite3.OperationalError:
        return False


def _forget_pending(db: sqlite3.Connection, keys: Sequence[int]) -> None:
    for i in range(0, len(keys), _CHUNK):
        chunk = keys[i : i + _CHUNK]
        db.execute(
            f"DELETE FROM {PENDING} WHERE key IN ({','.join('?' * len(chunk))})",  # noqa: S608
            chunk,
        )


def defer(db: sqlite3.Connection, folder_id: int, uids: Iterable[int]) -> None:
    """Remember decoded messages of a folder as not indexed yet (``index_deferred`` indexes
    them; ``core.search.search_cache`` judges them in Python until then): ~1 µs a row
    instead of ~10 for indexing them now."""
    db.executemany(
        f"INSERT OR IGNORE INTO {PENDING}(key) VALUES (?)",  # noqa: S608
        [(key(folder_id, uid),) for uid in uids],
    )


def deferred(db: sqlite3.Connection, folder_id: int | None = None) -> int:
    """How many messages (of one folder, or of all) ``defer`` left out of the index."""
    if folder_id is None:
        row = db.execute(f"SELECT count(*) FROM {PENDING}").fetchone()  # noqa: S608
    else:
        row = db.execute(
            f"SELECT count(*) FROM {PENDING} WHERE key BETWEEN ? AND ?",  # noqa: S608
            (key(folder_id, 0), key(folder_id, _UID_MASK)),
        ).fetchone()
    return int(row[0])


def index_deferred(db: sqlite3.Connection, folder_id: int, limit: int) -> int:
    """Index up to ``limit`` of a folder's deferred messages, lowest UID first (the index
    takes rows in rowid order best), and forget their keys; return how many keys were
    taken (0: none left). A key whose message is gone, or is stored raw again (refetched),
    is only forgotten: the decode pass indexes or defers that row again when it decodes it.
    Call inside a transaction."""
    keys = [
        int(k)
        for (k,) in db.execute(
            f"SELECT key FROM {PENDING} WHERE key BETWEEN ? AND ? ORDER BY key LIMIT ?",  # noqa: S608
            (key(folder_id, 0), key(folder_id, _UID_MASK), limit),
        )
    ]
    if not keys:
        return 0
    decode = _index_decoder()
    first, last = keys[0], keys[-1]
    wanted = set(keys)
    rows = []
    for uid, blob in db.execute(
        "SELECT uid, envelope FROM messages WHERE folder_id=? AND uid BETWEEN ? AND ?"
        " AND raw IS NULL",
        (folder_id, first & _UID_MASK, last & _UID_MASK),
    ):
        k = key(folder_id, uid)
        if k in wanted:
            rows.append((k, *_blob_columns(decode(blob))))
    # Index rows already there (a body stored first) in one range read, not a list of keys.
    existing = {
        int(i): str(b)
        for i, b in db.execute(
            f"SELECT id, c4 FROM {TABLE}_content WHERE id BETWEEN ? AND ?",  # noqa: S608
            (first, last),
        )
        if i in wanted
    }
    _index_rows(db, rows, forget=False, existing=existing)
    # The keys taken are every key of the range (taken in order, LIMIT after the first).
    db.execute(f"DELETE FROM {PENDING} WHERE key BETWEEN ? AND ?", (first, last))  # noqa: S608
    return len(keys)


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
    if _any_pending(db):
        _forget_pending(db, keys)


def remove_folder(db: sqlite3.Connection, folder_id: int) -> None:
    """Forget every message of a folder (UIDVALIDITY changed, or the folder is gone: folder
    ids can be reused by SQLite, so this must run whenever a folder row is deleted)."""
    db.execute(
        f"DELETE FROM {TABLE} WHERE rowid BETWEEN ? AND ?",  # noqa: S608
        (key(folder_id, 0), key(folder_id, _UID_MASK)),
    )
    if _any_pending(db):
        db.execute(
            f"DELETE FROM {PENDING} WHERE key BETWEEN ? AND ?",  # noqa: S608
            (key(folder_id, 0), key(folder_id, _UID_MASK)),
        )


def prune(db: sqlite3.Connection) -> int:
    """Delete index rows whose message is no longer cached; return how many (a safety net)."""
    cur = db.execute(
        f"DELETE FROM {TABLE} WHERE rowid NOT IN"  # noqa: S608
        " (SELECT (folder_id << 32) | uid FROM messages)"
    )
    return cur.rowcount


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
    """Messages whose headers are not in the index: stored undecoded by a first sync
    (``messages.raw``: indexed or deferred when the background decode pass fills their
    envelope), or decoded and deferred (``defer``: indexed by ``index_deferred``)."""
    if not _has_raw_column(db):
        return 0
    if folder_ids is None:
        row = db.execute("SELECT count(*) FROM messages WHERE raw IS NOT NULL").fetchone()
        return int(row[0]) + (deferred(db) if _any_pending(db) else 0)
    ids = [int(f) for f in folder_ids]
    row = db.execute(
        f"SELECT count(*) FROM messages WHERE folder_id IN ({','.join(map(str, ids)) or 'NULL'})"  # noqa: S608
        " AND raw IS NOT NULL"
    ).fetchone()
    later = sum(deferred(db, f) for f in ids) if _any_pending(db) else 0
    return int(row[0]) + later


class _BlobAddress(msgspec.Struct, frozen=True):
    """An ``Address`` of a blob, as a struct: hashed in C, where the dataclass's generated
    ``__hash__`` and ``__eq__`` took half the time of indexing a blob's words."""

    name: str = ""
    addr: str = ""


class _BlobEnvelope(msgspec.Struct):
    """The indexed fields of a cached envelope blob, addresses as ``_BlobAddress``."""

    subject: str = ""
    from_: tuple[_BlobAddress, ...] = ()
    to: tuple[_BlobAddress, ...] = ()
    cc: tuple[_BlobAddress, ...] = ()


_BLOB_WORDS: dict[_BlobAddress, str] = {}


def _blob_addresses(addrs: tuple[_BlobAddress, ...]) -> str:
    """``_addresses`` of a blob's addresses (the same words, remembered the same way)."""
    out = []
    for a in addrs:
        words = _remembered(_BLOB_WORDS, a, a.name, a.addr)
        if words:
            out.append(words)
    return " ".join(out)


_index_decode: Callable[[bytes], _BlobEnvelope] | None = None


def _index_decoder() -> Callable[[bytes], _BlobEnvelope]:
    global _index_decode
    if _index_decode is None:
        _index_decode = msgspec.msgpack.Decoder(_BlobEnvelope).decode
    return _index_decode


def _blob_columns(env: _BlobEnvelope) -> tuple[str, str, str, str]:
    """``envelope_columns`` of a partly decoded envelope blob."""
    return (
        normalize(env.subject),
        _blob_addresses(env.from_),
        _blob_addresses(env.to),
        _blob_addresses(env.cc),
    )


def _rebuild(db: sqlite3.Connection) -> int:
    decode = _index_decoder()
    db.execute(f"DELETE FROM {TABLE}")  # noqa: S608
    if _any_pending(db):
        db.execute(f"DELETE FROM {PENDING}")  # noqa: S608  (everything is indexed below)
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
            rows.append((key(fid, uid), *_blob_columns(decode(blob))))
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
