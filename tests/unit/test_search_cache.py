"""Search over a real Cache: FTS5 plus SQL predicates must give exactly what a brute-force
Python filter over the same summaries gives, for a table of queries and for generated ones.

The brute force is written here from the language's definition (words as
``searchindex.normalize`` splits them; an unquoted term's last word may be a prefix; a phrase
is consecutive words within one field), not from ``core.search.query``'s code.
"""

from __future__ import annotations

import asyncio
import base64
import random
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kittiwake.core.cache import Cache, LazySummaries
from kittiwake.core.imap.lazy import decode_pass, extract, index_pass
from kittiwake.core.models import (
    ANSWERED,
    DRAFT,
    FLAGGED,
    FORWARDED,
    SEEN,
    Address,
    Envelope,
    MessageSummary,
)
from kittiwake.core.search import index as searchindex
from kittiwake.core.search.order import SortOrder, ordered_uids
from kittiwake.core.search.query import (
    And,
    DateTerm,
    FlagName,
    HasAttachment,
    IsFlag,
    Node,
    Not,
    Or,
    Query,
    SizeTerm,
    Text,
    TextField,
    evaluate,
    parse_query,
    search_cache,
)
from kittiwake.core.search.service import local_hits, local_hits_off_loop, thread_folder

VOCAB = [
    "invoice", "invoices", "meeting", "meet", "lunch", "report", "weekly", "budget", "Grüße",
    "café", "naïve", "東京", "Ελλάδα", "release", "re", "notes", "q1", "2026", "x-ray",
    "straße", "résumé", "o'neil", "c++", "foo_bar", "ÄRGER",
]  # fmt: skip
PEOPLE = [
    ("Ann Example", "ann@example.org"),
    ("Bob Müller", "bob@mueller.de"),
    ("", "carol@example.com"),
    ("Dörte Straße", "doerte@strasse.example"),
    ("Ann-Marie", "am@example.net"),
    ("李雷", "li@example.cn"),
    ("Eve O'Neil", "eve@evil.example"),
]
BODY_WORDS = ["iban", "password", "kittens", "meeting", "Zürich", "notes", "résumé", "deadline"]
FLAG_POOL = [SEEN, FLAGGED, ANSWERED, DRAFT, FORWARDED]
T0 = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class Fixture:
    cache: Cache
    db: sqlite3.Connection
    fids: dict[str, int]
    summaries: dict[tuple[int, int], MessageSummary]
    bodies: dict[tuple[int, int], str]  # the body text of messages whose body is cached


def _addresses(rng: random.Random, k: int) -> tuple[Address, ...]:
    return tuple(Address(*p) for p in rng.sample(PEOPLE, k))


def _summary(rng: random.Random, uid: int) -> MessageSummary:
    subject = " ".join(rng.choice(VOCAB) for _ in range(rng.randint(0, 5)))
    if rng.random() < 0.2:
        subject = "Re: " + subject
    arrived = T0 + timedelta(minutes=rng.randint(0, 60 * 24 * 90))
    sent: datetime | None = arrived - timedelta(minutes=rng.randint(0, 300))
    r = rng.random()
    if r < 0.05:
        sent = arrived + timedelta(days=rng.randint(2, 400))  # a Date header from the future
    elif r < 0.1:
        sent = None
    elif r < 0.2:  # exactly midnight: the edge of before:/after:/on:
        sent = arrived.replace(hour=0, minute=0, second=0, microsecond=0)
    env = Envelope(
        date=sent,
        subject=subject,
        from_=_addresses(rng, 1),
        to=_addresses(rng, rng.randint(0, 2)),
        cc=_addresses(rng, rng.choice([0, 0, 1, 2])),
        message_id=f"<{uid}@x>",
    )
    flags = frozenset(f for f in FLAG_POOL if rng.random() < 0.3)
    size = int(rng.choice([300, 2000, 1024, 20_000, 1024**2, 3 * 1024**2]) * rng.uniform(0.5, 2))
    internal = arrived if rng.random() > 0.05 else None
    return MessageSummary(uid, flags, internal, size, env, (), rng.random() < 0.25)


def _raw_body(rng: random.Random, text: str) -> bytes:
    msg = EmailMessage()
    msg["Subject"] = "x"
    if rng.random() < 0.3:
        msg.set_content(f"<html><body><p>{text}</p></body></html>", subtype="html")
    else:
        msg.set_content(text)
    if rng.random() < 0.3:
        msg.add_attachment(b"secret-word-in-attachment", maintype="application", subtype="pdf")
    return msg.as_bytes()


def _build(path: Path, seed: int = 5, per_folder: int = 250) -> Fixture:
    rng = random.Random(seed)
    cache = Cache(path)
    db = sqlite3.connect(path, isolation_level=None)
    summaries: dict[tuple[int, int], MessageSummary] = {}
    bodies: dict[tuple[int, int], str] = {}
    fids: dict[str, int] = {}
    for folder in ("INBOX", "Sent", "Archive"):
        batch = [_summary(rng, uid) for uid in range(1, per_folder + 1)]
        cache.put_summaries(folder, batch)
        fid = db.execute("SELECT id FROM folders WHERE name=?", (folder,)).fetchone()[0]
        fids[folder] = fid  # the cache indexes the batch in the same write
        for s in batch:
            summaries[(fid, s.uid)] = s
            if rng.random() < 0.35:
                text = " ".join(rng.choice(BODY_WORDS + VOCAB) for _ in range(rng.randint(1, 8)))
                raw = _raw_body(rng, text)
                cache.put_body(folder, s.uid, raw)  # and the body's text
                bodies[(fid, s.uid)] = text
    return Fixture(cache, db, fids, summaries, bodies)


@pytest.fixture(scope="module")
def fx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fixture]:
    f = _build(tmp_path_factory.mktemp("search") / "cache.sqlite3")
    yield f
    f.db.close()
    f.cache.close()


# -- the brute force ----------------------------------------------------------------------


def _words(text: str) -> list[str]:
    return searchindex.normalize(text).split()


def _people(addrs: tuple[Address, ...]) -> list[str]:
    return _words(" ".join(f"{a.name} {a.addr}" for a in addrs))


def _has_phrase(hay: list[str], words: tuple[str, ...], prefix: bool) -> bool:
    n = len(words)
    for i in range(len(hay) - n + 1):
        if hay[i : i + n - 1] != list(words[:-1]):
            continue
        last = hay[i + n - 1]
        if last == words[-1] or (prefix and last.startswith(words[-1])):
            return True
    return False


def _shown_date(s: MessageSummary) -> float:
    arrived = s.internal_date.timestamp() if s.internal_date else None
    sent = s.envelope.date.timestamp() if s.envelope.date else None
    if sent is not None and (arrived is None or sent <= arrived + 86400):
        return sent
    return arrived if arrived is not None else 0.0


def _day(d: date) -> float:
    return datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp()


def brute(node: Node, s: MessageSummary, body: str | None) -> bool:
    env = s.envelope
    if isinstance(node, Text):
        fields = {
            TextField.SUBJECT: [_words(env.subject)],
            TextField.FROM: [_people(env.from_)],
            TextField.TO: [_people(env.to)],
            TextField.CC: [_people(env.cc)],
            TextField.BODY: [_words(body or "")],
        }
        fields[TextField.ANY] = [h for v in fields.values() for h in v]
        return any(_has_phrase(h, node.words, node.prefix) for h in fields[node.field])
    if isinstance(node, IsFlag):
        wanted = {
            FlagName.UNREAD: SEEN not in s.flags,
            FlagName.READ: SEEN in s.flags,
            FlagName.FLAGGED: FLAGGED in s.flags,
            FlagName.ANSWERED: ANSWERED in s.flags,
            FlagName.DRAFT: DRAFT in s.flags,
            FlagName.FORWARDED: FORWARDED in s.flags,
        }
        return wanted[node.flag]
    if isinstance(node, HasAttachment):
        return s.has_attachments
    if isinstance(node, DateTerm):
        when = _shown_date(s)
        start = _day(node.day)
        if node.op == "before":
            return when < start
        if node.op == "after":
            return when >= start
        return start <= when < _day(node.day + timedelta(days=1))
    if isinstance(node, SizeTerm):
        return s.size > node.size if node.op == "larger" else s.size < node.size
    if isinstance(node, Not):
        return not brute(node.term, s, body)
    if isinstance(node, And):
        return all(brute(t, s, body) for t in node.terms)
    assert isinstance(node, Or)
    return any(brute(t, s, body) for t in node.terms)


def expected(fx: Fixture, query: Query, folders: list[int] | None) -> list[tuple[int, int]]:
    hits = [
        key
        for key, s in fx.summaries.items()
        if (folders is None or key[0] in folders) and brute(query.root, s, fx.bodies.get(key))
    ]
    hits.sort(key=lambda k: (_shown_date(fx.summaries[k]), k[1], k[0]), reverse=True)
    return hits


def check(fx: Fixture, text: str, folders: list[int] | None = None) -> list[tuple[int, int]]:
    query = parse_query(text)
    got = search_cache(fx.db, folders, query, tz=UTC)
    want = expected(fx, query, folders)
    assert got == want, text
    # The one-summary evaluator agrees whenever it is given the body.
    for key, s in fx.summaries.items():
        if folders is None or key[0] in folders:
            body = fx.bodies.get(key, "")
            assert evaluate(query, s, body, tz=UTC) is (key in set(want)), (text, key)
    return got


QUERIES = [
    "invoice",
    "inv",
    '"invoice"',
    "invoice report",
    '"weekly report"',
    '"report weekly"',
    "from:ann",
    "from:ann@example.org",
    "from:müller",
    "from:mueller",
    "from:dorte",
    "from:STRASSE",
    "from:李雷",
    "from:o'neil",
    "to:bob OR cc:bob",
    "cc:carol",
    "-to:carol",
    "subject:grüße",
    "subject:grusse",
    "subject:cafe",
    "subject:東京",
    "subject:ελλαδα",
    "subject:x-ray",
    "subject:c++",
    "subject:foo_bar",
    "subject:re",
    "body:iban",
    "body:zurich",
    "body:secret",  # only inside an attachment: not indexed
    "iban OR password",
    "meet",
    '"meeting"',
    "meeting -body:meeting",
    "is:unread",
    "is:read is:flagged",
    "is:answered OR is:draft",
    "is:forwarded",
    "-is:unread -is:flagged",
    "has:attachment",
    "has:attachment from:ann",
    "-has:attachment OR is:draft",
    "before:2026-02-01",
    "after:2026-03-01",
    "on:2026-01-15",
    "after:2026-01-10 before:2026-01-20",
    "before:1970-01-02",
    "after:9999-12-31",
    "larger:1M",
    "smaller:1K",
    "larger:1K smaller:30K",
    "(from:ann OR from:bob) lunch",
    "from:ann OR from:bob lunch",
    "-(invoice OR report) is:unread",
    "NOT (is:read AND has:attachment)",
    "résumé",
    "resume",
    '"re sume"',
    "2026 q1",
    "zzzz",
]


@pytest.mark.parametrize("text", QUERIES)
def test_table_of_queries_matches_brute_force(fx: Fixture, text: str) -> None:
    check(fx, text)


def test_queries_find_something_and_not_everything(fx: Fixture) -> None:
    """The table is meaningful: most queries match some but not all messages."""
    total = len(fx.summaries)
    sizes = [len(search_cache(fx.db, None, parse_query(q), tz=UTC)) for q in QUERIES]
    assert sum(1 for n in sizes if 0 < n < total) >= len(QUERIES) - 8


def test_folder_scope_and_order(fx: Fixture) -> None:
    inbox, sent = fx.fids["INBOX"], fx.fids["Sent"]
    only_inbox = check(fx, "is:unread", [inbox])
    assert only_inbox and {f for f, _ in only_inbox} == {inbox}
    both = check(fx, "from:ann", [inbox, sent])
    assert {f for f, _ in both} == {inbox, sent}
    assert search_cache(fx.db, [], parse_query("ann")) == []
    assert (
        search_cache(fx.db, None, parse_query("is:unread"), limit=3, tz=UTC)
        == check(fx, "is:unread")[:3]
    )


def _leaf() -> st.SearchStrategy[str]:
    word = st.sampled_from(VOCAB + BODY_WORDS + ["ann", "bob", "mull", "exam", "org"])
    prefix = word.map(lambda w: w[: max(1, len(w) // 2)])
    phrase = st.lists(st.sampled_from(VOCAB), min_size=2, max_size=2).map(
        lambda ws: '"' + " ".join(ws) + '"'
    )
    text = st.one_of(word, prefix, phrase)
    field = st.sampled_from(["", "from:", "to:", "cc:", "subject:", "body:"])
    day = st.dates(date(2025, 12, 20), date(2026, 4, 10)).map(date.isoformat)
    return st.one_of(
        st.tuples(field, text).map("".join),
        st.sampled_from(
            ["is:unread", "is:read", "is:flagged", "is:answered", "is:draft", "is:forwarded"]
        ),
        st.just("has:attachment"),
        st.tuples(st.sampled_from(["before:", "after:", "on:"]), day).map("".join),
        st.tuples(
            st.sampled_from(["larger:", "smaller:"]), st.sampled_from(["1K", "20K", "1M"])
        ).map("".join),
    )


QUERIES_GEN = st.recursive(
    _leaf(),
    lambda inner: st.one_of(
        inner.map(lambda q: f"-({q})"),
        st.tuples(inner, inner).map(lambda p: f"({p[0]}) OR ({p[1]})"),
        st.tuples(inner, inner).map(lambda p: f"({p[0]}) ({p[1]})"),
        st.tuples(inner, inner).map(lambda p: f"{p[0]} OR {p[1]}"),
    ),
    max_leaves=6,
)


@settings(
    max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(QUERIES_GEN, st.sampled_from([None, "INBOX", "Sent"]))
def test_generated_queries_match_brute_force(fx: Fixture, text: str, folder: str | None) -> None:
    check(fx, text, None if folder is None else [fx.fids[folder]])


# -- index maintenance ------------------------------------------------------------------


def test_reindexing_headers_keeps_the_body_and_remove_forgets(tmp_path: Path) -> None:
    f = _build(tmp_path / "c.sqlite3", seed=9, per_folder=30)
    inbox = f.fids["INBOX"]
    uid = next(u for (fid, u) in f.bodies if fid == inbox)
    word = f.bodies[(inbox, uid)].split()[0]
    s = f.summaries[(inbox, uid)]
    new = MessageSummary(
        uid, s.flags, s.internal_date, s.size, Envelope(subject="brand new subject"), ()
    )
    f.cache.put_summaries("INBOX", [new])
    searchindex.index_summaries(f.db, inbox, [new])
    hits = search_cache(f.db, [inbox], parse_query(f'subject:brand body:"{word}"'))
    assert hits == [(inbox, uid)]
    searchindex.remove(f.db, inbox, [uid])
    assert search_cache(f.db, [inbox], parse_query("subject:brand")) == []
    searchindex.remove_folder(f.db, inbox)
    assert f.db.execute(
        "SELECT count(*) FROM search_fts WHERE rowid >> 32 = ?", (inbox,)
    ).fetchone() == (0,)
    others = f.db.execute("SELECT count(*) FROM search_fts").fetchone()[0]
    assert others == 60 + 0  # Sent and Archive untouched
    f.db.close()
    f.cache.close()


def test_body_before_summary_then_summary(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c.sqlite3")
    db = sqlite3.connect(cache.path, isolation_level=None)
    searchindex.ensure_schema(db)
    cache.put_summaries("INBOX", [])
    fid = db.execute("SELECT id FROM folders").fetchone()[0]
    raw = b"Subject: x\r\nContent-Type: text/plain\r\n\r\nquokka\r\n"
    searchindex.index_body(db, fid, 7, raw)
    s = MessageSummary(7, frozenset(), T0, 10, Envelope(date=T0, subject="wombat"), ())
    cache.put_summaries("INBOX", [s])
    searchindex.index_summaries(db, fid, [s])
    assert search_cache(db, None, parse_query("wombat quokka")) == [(fid, 7)]
    db.close()
    cache.close()


def test_rebuild_and_prune_agree_with_incremental(tmp_path: Path) -> None:
    f = _build(tmp_path / "c.sqlite3", seed=3, per_folder=60)
    queries = ["invoice", "from:ann", "body:iban", "body:meeting OR subject:lunch", "re"]
    before = [search_cache(f.db, None, parse_query(q)) for q in queries]
    count = searchindex.rebuild(f.db)
    assert count == 180
    assert [search_cache(f.db, None, parse_query(q)) for q in queries] == before
    # A message dropped from the cache without telling the index: prune finds it.
    f.db.execute("DELETE FROM messages WHERE folder_id=? AND uid=1", (f.fids["Sent"],))
    assert searchindex.prune(f.db) == 1
    assert searchindex.prune(f.db) == 0
    f.db.close()
    f.cache.close()


# -- rows a first sync stored undecoded ----------------------------------------------------


def lazy_fetch(
    uid: int, subject: str, mailbox: str, *, seen: bool = False, attachment: bool = False
) -> bytes:
    """A summary FETCH response as Dovecot sends it (what the sync's bulk path stores)."""
    refs = b"References: <r@x>\r\n\r\n"
    text = b'("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "7BIT" 10 1 NIL NIL NIL NIL)'
    pdf = b'("APPLICATION" "PDF" NIL NIL NIL "BASE64" 100 NIL ("ATTACHMENT" NIL) NIL NIL)'
    body = b"(" + text + pdf + b' "MIXED" NIL NIL NIL NIL)' if attachment else text
    return (
        b'* %d FETCH (UID %d FLAGS (%s) INTERNALDATE "26-Nov-2026 10:00:00 +0000"'
        b' RFC822.SIZE 1234 ENVELOPE ("Thu, 26 Nov 2026 10:00:00 +0000" "%s"'
        b' (("Someone" NIL "%s" "example.org")) NIL NIL NIL NIL NIL NIL "<lazy%d@x>")'
        b" BODYSTRUCTURE %s BODY[HEADER.FIELDS (REFERENCES)] {%d}\r\n%s)"
        % (
            uid,
            uid,
            b"\\Seen" if seen else b"",
            subject.encode(),
            mailbox.encode(),
            uid,
            body,
            len(refs),
            refs,
        )
    )


def test_undecoded_rows_are_searched_exactly_until_decoded(tmp_path: Path) -> None:
    f = _build(tmp_path / "c.sqlite3", seed=4, per_folder=40)
    inbox = f.fids["INBOX"]
    rows = [
        extract(lazy_fetch(1001, "walrus tusks", "ann", attachment=True)),
        extract(lazy_fetch(1002, "walrus party", "zed", seen=True)),
        extract(lazy_fetch(1003, "nothing here", "ann")),
    ]
    assert all(r is not None for r in rows)
    lazy = LazySummaries([r for r in rows if r is not None])
    f.cache.put_summaries("INBOX", lazy)
    for s in lazy:
        f.summaries[(inbox, s.uid)] = s  # the brute force sees them decoded
    assert searchindex.pending(f.db) == 3
    assert searchindex.pending(f.db, [f.fids["Sent"]]) == 0
    for text in [
        "walrus",
        "from:ann",
        "-from:ann",
        "has:attachment",
        "-has:attachment is:unread",
        "walrus -is:read",
        "from:zed OR subject:nothing",
    ]:
        check(fx=f, text=text)
    assert (inbox, 1001) in search_cache(f.db, None, parse_query("walrus"))
    assert search_cache(f.db, None, parse_query("walrus"), undecoded="skip") == []
    assert search_cache(f.db, [inbox], parse_query("walrus"), limit=1) == [(inbox, 1002)]

    # The decode pass fills the rows, and the cache indexes them as it writes (set_decoded):
    # the index alone now finds them.
    asyncio.run(decode_pass(f.cache, "INBOX"))
    assert searchindex.pending(f.db) == 0
    assert search_cache(f.db, [inbox], parse_query("walrus"), undecoded="skip") == [
        (inbox, 1002),
        (inbox, 1001),
    ]
    check(fx=f, text="walrus")
    check(fx=f, text="-from:ann has:attachment")
    f.db.close()
    f.cache.close()


def test_reading_every_row_asks_for_the_raw_ones_to_be_decoded(tmp_path: Path) -> None:
    """A first sync leaves rows raw and nothing decodes them (the machine goes quiet) until
    something reads every row of a folder: a search, the conversations, one conversation, the
    order by sender or subject. Each asks the cache (``want_decoded``), which tells the
    account; the date order and reading a page do not."""
    f = _build(tmp_path / "c.sqlite3", seed=6, per_folder=20)
    rows = [extract(lazy_fetch(2001 + n, f"tusk {n}", "ann")) for n in range(3)]
    f.cache.put_summaries("INBOX", LazySummaries([r for r in rows if r is not None]))
    asked: list[str] = []
    f.cache.on_decode_wanted(lambda index: asked.append("index" if index else "asked"))
    f.cache.page("INBOX", 50)
    ordered_uids(f.cache, "INBOX", SortOrder())
    ordered_uids(f.cache, "INBOX", SortOrder("size"))
    assert asked == []
    for why, read in [
        ("search", lambda: local_hits(f.cache, ["INBOX"], "tusk")),
        ("search off the loop", lambda: asyncio.run(local_hits_off_loop(f.cache, None, "tusk"))),
        ("conversations", lambda: asyncio.run(thread_folder(f.cache, "INBOX", "Sent"))),
        ("a conversation", lambda: f.cache.conversation("INBOX", 2001)),
        ("by sender", lambda: ordered_uids(f.cache, "INBOX", SortOrder("sender"))),
        ("by subject", lambda: ordered_uids(f.cache, "INBOX", SortOrder("subject", False))),
    ]:
        before = len(asked)
        read()
        assert len(asked) == before + 1, why
        # A search wants the search index too; the others only the decoded rows.
        assert asked[-1] == ("index" if why.startswith("search") else "asked"), why
    assert len(local_hits(f.cache, ["INBOX"], "tusk")) == 3  # judged while still raw
    asyncio.run(decode_pass(f.cache, "INBOX"))
    asked.clear()
    f.cache.conversation("INBOX", 2001)  # nothing raw left: it does not ask
    assert asked == []
    f.db.close()
    f.cache.close()


@pytest.fixture(scope="module")
def raw_and_decoded(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Cache, Cache, Cache]]:
    """The same rows stored undecoded by a first sync, after the decode pass, and after the
    decode pass of a first sync (decoded, not indexed yet): plain ASCII subjects and names,
    encoded words (RFC 2047), 8-bit UTF-8, escapes."""
    rng = random.Random(11)
    subjects = [
        *(" ".join(rng.sample(VOCAB, 3)) for _ in range(30)),
        "=?utf-8?q?walrus_=C3=84rger?=",
        "=?utf-8?b?" + base64.b64encode("tusk Ärger".encode()).decode() + "?=",
        "Ärger im Büro",
        'quoted \\"walrus\\" inside',
        "exam.ple/org mull",
    ]
    fetches = [
        lazy_fetch(n, subject, rng.choice(["ann", "bob", "mull"]), seen=n % 2 == 0)
        for n, subject in enumerate(subjects * 8, 1)
    ]
    caches = []
    for name in ("raw", "decoded", "deferred"):
        cache = Cache(tmp_path_factory.mktemp(name) / "c.sqlite3")
        rows = [extract(fetch) for fetch in fetches]
        cache.put_summaries("INBOX", LazySummaries([r for r in rows if r is not None]))
        if name != "raw":
            asyncio.run(decode_pass(cache, "INBOX", index=name == "decoded"))
        caches.append(cache)
    assert searchindex.pending(caches[0].db) == len(subjects) * 8
    assert searchindex.pending(caches[1].db) == 0
    assert searchindex.pending(caches[2].db) == len(subjects) * 8
    assert searchindex.deferred(caches[2].db) == len(subjects) * 8
    assert caches[2].db.execute(f"SELECT count(*) FROM {searchindex.TABLE}").fetchone() == (0,)
    yield caches[0], caches[1], caches[2]
    for cache in caches:
        cache.close()


RAW_WORDS = ["walrus", "tusk", "arger", "Ärger", "büro", "buro", "quoted", "inside", "ple", "mull"]
RAW_QUERIES = st.recursive(
    st.one_of(
        _leaf(),
        st.tuples(
            st.sampled_from(["", "from:", "subject:", "-", "body:"]), st.sampled_from(RAW_WORDS)
        ).map("".join),
    ),
    lambda inner: st.one_of(
        inner.map(lambda q: f"-({q})"),
        st.tuples(inner, inner).map(lambda p: f"({p[0]}) OR ({p[1]})"),
        st.tuples(inner, inner).map(lambda p: f"{p[0]} {p[1]}"),
    ),
    max_leaves=4,
)


@settings(max_examples=150, deadline=None)
@given(RAW_QUERIES)
def test_undecoded_rows_skipped_without_decoding_are_the_ones_that_cannot_match(
    raw_and_decoded: tuple[Cache, Cache, Cache], text: str
) -> None:
    """A first search judges every raw row; plain ones (ASCII, no encoded word, no escape) are
    passed over without decoding when a word the query needs is not in them. Rows decoded
    but not indexed yet are judged from their envelopes. The answers are those of the index
    after the decode pass."""
    raw, decoded, deferred = raw_and_decoded
    query = parse_query(text)
    indexed = search_cache(decoded.db, None, query)
    assert search_cache(raw.db, None, query) == indexed
    assert search_cache(deferred.db, None, query) == indexed


def test_deferred_rows_are_found_before_and_after_they_are_indexed(tmp_path: Path) -> None:
    """The decode pass of a first sync leaves the search index to the first search: the rows
    it decoded are found all the same by ``search_cache`` (judged from their envelopes), a
    search of their folder indexes them first (``local_hits_off_loop``, ``local_hits``), and
    the index then answers alone; a body stored meanwhile keeps its words, a message removed
    leaves nothing behind."""
    cache = Cache(tmp_path / "c.sqlite3")
    rows = [
        extract(lazy_fetch(n, f"walrus {'party' if n % 2 else 'tusks'} {n}", "ann"))
        for n in range(1, 41)
    ]
    cache.put_summaries("INBOX", LazySummaries([r for r in rows if r is not None]))
    cache.put_summaries("Sent", [])
    assert asyncio.run(decode_pass(cache, "INBOX", index=False)) == 40
    db, fid = cache.db, cache.folder_id("INBOX")
    assert fid is not None
    assert searchindex.deferred(db, fid) == 40 and searchindex.pending(db, [fid]) == 40
    assert db.execute(f"SELECT count(*) FROM {searchindex.TABLE}").fetchone() == (0,)
    body = b"Subject: walrus\r\nContent-Type: text/plain\r\n\r\nthe zanzibar ledger\r\n"
    cache.put_body("INBOX", 7, body)  # a body indexed before its headers
    cache.remove("INBOX", [40])
    assert searchindex.deferred(db, fid) == 39

    def uids(text: str, undecoded: str = "decode") -> list[int]:
        found = search_cache(db, [fid], parse_query(text), undecoded=undecoded)  # type: ignore[arg-type]
        return [u for _, u in found]

    party = [n for n in range(39, 0, -1) if n % 2]
    assert uids("walrus party") == party
    assert uids("walrus party", "skip") == party  # decoded rows are judged either way
    assert uids("zanzibar walrus") == [7]
    assert uids("from:ann -party") == [n for n in range(38, 0, -1) if n % 2 == 0]

    # A search of another folder leaves this one's deferred rows as they are.
    assert local_hits(cache, ["Sent"], "walrus") == [] and searchindex.deferred(db) == 39
    seen: list[tuple[int, int]] = []
    hits = asyncio.run(
        local_hits_off_loop(cache, ["INBOX"], "walrus party", lambda *p: seen.append(p))
    )
    assert [h.uid for h in hits] == party
    assert seen == [(39, 39)]  # what the search screen shows while it indexes
    assert searchindex.deferred(db) == 0 and searchindex.pending(db) == 0
    keys = {k for (k,) in db.execute(f"SELECT rowid FROM {searchindex.TABLE}")}
    assert keys == {searchindex.key(fid, n) for n in range(1, 40)}
    # The index alone now answers, and the body stored first is still searchable.
    assert uids("zanzibar walrus") == [7]
    assert uids("walrus party") == party
    cache.close()


def test_index_pass_indexes_only_what_was_deferred(tmp_path: Path) -> None:
    """``index_pass`` indexes the deferred rows of a folder (those refetched raw since are
    left to the decode pass) and stops when none are left."""
    cache = Cache(tmp_path / "c.sqlite3")
    rows = [extract(lazy_fetch(n, f"tusk {n}", "bob")) for n in range(1, 11)]
    cache.put_summaries("INBOX", LazySummaries([r for r in rows if r is not None]))
    asyncio.run(decode_pass(cache, "INBOX", index=False))
    again = extract(lazy_fetch(3, "tusk refetched", "bob"))
    assert again is not None
    cache.put_summaries("INBOX", LazySummaries([again]))  # stored raw again
    assert asyncio.run(index_pass(cache, "INBOX", batch=4)) == 10
    fid = cache.folder_id("INBOX")
    assert fid is not None
    assert searchindex.deferred(cache.db) == 0
    indexed = {
        k & 0xFFFFFFFF for (k,) in cache.db.execute(f"SELECT rowid FROM {searchindex.TABLE}")
    }
    assert indexed == set(range(1, 11)) - {3}
    assert searchindex.pending(cache.db) == 1  # the raw row, for the decode pass
    asyncio.run(decode_pass(cache, "INBOX"))
    found = search_cache(cache.db, [fid], parse_query("refetched"), undecoded="skip")
    assert found == [(fid, 3)]
    cache.close()


def test_orders_sorted_by_sqlite_match_sorting_every_row_in_python(tmp_path: Path) -> None:
    """Date, arrival, size and unread are sorted by SQLite (no tuple per message held): the
    same order as sorting (uid, date, size, seen) rows in Python, ties (equal dates, sizes,
    read state) broken as the default order breaks them, newest first, then by UID."""
    from kittiwake.core.message.dates import sort_date
    from kittiwake.core.search.order import ALL_ORDERS

    cache = Cache(tmp_path / "c.sqlite3")
    rng = random.Random(7)
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    rows = []
    for uid in rng.sample(range(1, 400), 120):  # UIDs not in date order
        when = t0 + timedelta(hours=rng.randrange(30))  # many equal dates
        env = Envelope(date=when, subject=f"s{uid}", from_=(Address(None, f"a{uid}@x.org"),))
        flags = frozenset({SEEN}) if rng.random() < 0.6 else frozenset()
        rows.append(MessageSummary(uid, flags, when, rng.choice([100, 200, 300]), env, ()))
    cache.put_summaries("INBOX", rows)
    newest = sorted(rows, key=lambda s: (sort_date(s), s.uid), reverse=True)

    def python(order: SortOrder) -> list[int]:
        if order.key == "date":
            return [s.uid for s in reversed(newest)]
        if order.key == "arrival":
            return sorted((s.uid for s in rows), reverse=order.descending)
        if order.key == "size":
            return [s.uid for s in sorted(newest, key=lambda s: s.size, reverse=order.descending)]
        base = newest if order.descending else newest[::-1]  # unread first, then by date
        return [s.uid for s in sorted(base, key=lambda s: SEEN in s.flags)]

    checked = 0
    for order in ALL_ORDERS:
        if order.is_default or order.key in ("sender", "subject"):
            continue
        assert list(ordered_uids(cache, "INBOX", order)) == python(order), order
        checked += 1
    assert checked == 7


def test_deferred_rows_are_indexed_in_batches_with_the_loop_free_between(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``index_deferred`` (a list's limit awaits it before searching on the loop) indexes a
    batch at a time and lets other tasks run between batches: at 100,000 rows one step held
    the loop ~2 s. Another folder's deferred rows are left to their own search."""
    from kittiwake.core.search import service

    monkeypatch.setattr(service, "INDEX_BATCH", 4)
    cache = Cache(tmp_path / "c.sqlite3")
    for folder in ("INBOX", "Sent"):
        rows = [extract(lazy_fetch(n, f"walrus {n}", "ann")) for n in range(1, 11)]
        cache.put_summaries(folder, LazySummaries([r for r in rows if r is not None]))
        asyncio.run(decode_pass(cache, folder, index=False))
    seen: list[tuple[int, int]] = []
    ticks: list[int] = []

    async def run() -> None:
        async def other() -> None:  # a key, a live change: runs while the index is built
            while True:
                ticks.append(len(seen))
                await asyncio.sleep(0)

        beside = asyncio.create_task(other())
        await service.index_deferred(cache, ["INBOX"], lambda *p: seen.append(p))
        beside.cancel()

    asyncio.run(run())
    assert seen == [(4, 10), (8, 10), (10, 10)]
    assert {1, 2} <= set(ticks)  # the other task ran between the batches
    assert searchindex.deferred(cache.db, cache.folder_id("INBOX")) == 0
    assert searchindex.deferred(cache.db) == 10  # Sent's wait for a search of Sent
    cache.close()
