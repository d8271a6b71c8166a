"""The query language: parsing, errors, hostile input, word normalisation, evaluation of one
summary, and the IMAP SEARCH translation."""

from __future__ import annotations

import sqlite3
import tempfile
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kittiwake.core.cache import Cache
from kittiwake.core.imap.connection import Literal
from kittiwake.core.imap.search import to_imap_search
from kittiwake.core.models import ANSWERED, FLAGGED, SEEN, Address, Envelope, MessageSummary
from kittiwake.core.search import index as searchindex
from kittiwake.core.search.index import body_text, normalize, tokens
from kittiwake.core.search.query import (
    And,
    DateTerm,
    FlagName,
    HasAttachment,
    IsFlag,
    Not,
    Or,
    QueryError,
    SizeTerm,
    Text,
    TextField,
    describe,
    evaluate,
    fts_expression,
    parse_query,
    search_cache,
    to_sql,
)


def root(text: str) -> object:
    return parse_query(text).root


def word(w: str, field: TextField = TextField.ANY, prefix: bool = True) -> Text:
    return Text(field, w, tuple(tokens(w)), prefix)


# -- parsing ----------------------------------------------------------------------------


def test_free_words_are_anded_prefix_terms() -> None:
    assert root("ann invoice") == And((word("ann"), word("invoice")))
    assert root("  ann  ") == word("ann")


def test_fields_phrases_and_values() -> None:
    assert root("from:ann") == word("ann", TextField.FROM)
    assert root("to:bob@example.org") == Text(
        TextField.TO, "bob@example.org", ("bob", "example", "org"), True
    )
    assert root('subject:"weekly  report"') == Text(
        TextField.SUBJECT, "weekly report", ("weekly", "report"), False
    )
    assert root('"Grüße aus Köln"') == Text(
        TextField.ANY, "Grüße aus Köln", ("grusse", "aus", "koln"), False
    )
    assert root("CC:carol") == word("carol", TextField.CC)
    assert root("body:iban") == word("iban", TextField.BODY)
    assert root(r'"say \"hi\""') == Text(TextField.ANY, 'say "hi"', ("say", "hi"), False)


def test_states_attachments_dates_sizes() -> None:
    assert root("is:unread") == IsFlag(FlagName.UNREAD)
    assert root("is:Seen") == IsFlag(FlagName.READ)
    assert root("is:flagged is:answered is:draft is:forwarded") == And(
        (
            IsFlag(FlagName.FLAGGED),
            IsFlag(FlagName.ANSWERED),
            IsFlag(FlagName.DRAFT),
            IsFlag(FlagName.FORWARDED),
        )
    )
    assert root("has:attachment") == HasAttachment()
    assert root("before:2026-03-01") == DateTerm("before", date(2026, 3, 1))
    assert root("after:2026-1-5") == DateTerm("after", date(2026, 1, 5))
    assert root("on:2024-02-29") == DateTerm("on", date(2024, 2, 29))
    assert root("larger:1M") == SizeTerm("larger", 1024**2)
    assert root("smaller:20k") == SizeTerm("smaller", 20 * 1024)
    assert root("larger:1.5MB") == SizeTerm("larger", 1572864)
    assert root("larger:2G") == SizeTerm("larger", 2 * 1024**3)
    assert root("smaller:500") == SizeTerm("smaller", 500)


def test_negation_or_and_parentheses() -> None:
    a, b, c = word("a"), word("b"), word("c")
    assert root("-a") == Not(a)
    assert root("NOT a") == Not(a)
    assert root("--a") == a
    assert root("a OR b") == Or((a, b))
    assert root("a OR b OR c") == Or((a, b, c))
    # OR binds tighter than the implicit AND (as in Gmail).
    assert root("a OR b c") == And((Or((a, b)), c))
    assert root("a b OR c") == And((a, Or((b, c))))
    assert root("a AND b") == And((a, b))
    assert root("(a b) OR c") == Or((And((a, b)), c))
    assert root("-(a OR b) c") == And((Not(Or((a, b))), c))
    assert root("((a))") == a
    assert root("a (b c)") == And((a, b, c))
    # Lower-case or/and/not are words; a hyphen inside a word is part of it.
    assert root("a or b") == And((a, word("or"), b))
    assert root("e-mail") == word("e-mail")
    assert root("from:-x") == word("-x", TextField.FROM)


def test_urls_and_times_are_text() -> None:
    assert root("https://example.org/x") == word("https://example.org/x")
    assert root("10:30") == word("10:30")


ERRORS = [
    ("", "The query is empty.", 0),
    ("   ", "The query is empty.", 0),
    ("form:ann", "Unknown field form: at column 1 (did you mean from:?)", 0),
    ("x re:hello", "Unknown field re: at column 3", 2),
    ("from:", "from: at column 1 needs a value right after the colon, as in from:ann.", 0),
    ("a from: ann", "from: at column 3 needs a value", 2),
    ("a OR", "OR at column 3 needs a term after it.", 2),
    ("OR a", "OR at column 1 needs a term before it.", 0),
    ("a OR OR b", "OR at column 3 needs a term after it.", 2),
    ("a AND", "AND at column 3 needs a term after it.", 2),
    ("NOT", "NOT at column 1 needs a term after it.", 0),
    ("(a", "The '(' at column 1 is never closed.", 0),
    ("a (b (c)", "The '(' at column 3 is never closed.", 2),
    ("a)", "The ')' at column 2 has no matching '('.", 1),
    ("a ()", "The parentheses at column 3 are empty.", 2),
    ('"abc', "The quote at column 1 is never closed.", 0),
    ('subject:"abc', "The quote at column 9 is never closed.", 8),
    ("- a", "The '-' at column 1 must be followed by the term to leave out.", 0),
    ("a -", "The '-' at column 3 must be followed", 2),
    ("is:foo", "is:foo at column 1 is not a state", 0),
    ("has:pictures", "has:pictures at column 1 is not known; use has:attachment.", 0),
    ("before:2024-02-30", "before: at column 1 wants a real date; 2024-02-30 is not one.", 0),
    ("after:yesterday", "after: at column 1 wants a date as YYYY-MM-DD, not yesterday.", 0),
    ("on:0000-01-01", "on: at column 1 wants a real date; 0000-01-01 is not one.", 0),
    ("larger:1X", "larger: at column 1 wants a size like 500K, 1M or 2G, not 1X.", 0),
    ("smaller:-5", "smaller: at column 1 wants a size", 0),
    ("larger:99999999999999G", "The size at column 1 is too large.", 0),
    ("!!!", "!!! at column 1 has no letters or digits to search for.", 0),
    ('x "..."', '"..." at column 3 has no letters or digits to search for.', 2),
    ("from:@", "from:@ at column 1 has no letters or digits", 0),
    ("a\x07b", "The query has an invalid character (U+0007) at column 2.", 1),
    ("(" * 40 + "a" + ")" * 40, "nested too deeply", 32),
    (" ".join(["w"] * 201), "more than 200 terms", 400),
]


@pytest.mark.parametrize(("text", "message", "position"), ERRORS)
def test_errors_say_what_and_where(text: str, message: str, position: int) -> None:
    with pytest.raises(QueryError) as info:
        parse_query(text)
    assert message in info.value.message
    assert info.value.position == position
    assert "\n" not in info.value.message
    assert str(info.value) == info.value.message


_DB: list[sqlite3.Connection] = []


def _db() -> sqlite3.Connection:
    """A real (empty) cache with the index, shared by the hypothesis examples."""
    if not _DB:
        path = Path(tempfile.mkdtemp()) / "c.sqlite3"
        Cache(path).put_summaries("INBOX", [])
        db = sqlite3.connect(path, isolation_level=None)
        searchindex.ensure_schema(db)
        _DB.append(db)
    return _DB[0]


def _check_any_text(text: str) -> None:
    try:
        query = parse_query(text)
    except QueryError as exc:
        assert exc.message and "\n" not in exc.message
        assert 0 <= exc.position <= len(text)
        return
    # A query that parses can be run everywhere and written back.
    to_sql(query.root, [])
    search_cache(_db(), None, query)
    imap = to_imap_search(query)
    assert imap.args
    for arg in imap.args:
        if isinstance(arg, str):
            assert not any(c in arg for c in "\r\n\x00")
    again = parse_query(describe(query.root))
    assert describe(again.root) == describe(query.root)


@settings(max_examples=1500, deadline=None)
@given(st.text())
def test_hostile_text_parses_or_raises_query_error(text: str) -> None:
    _check_any_text(text)


QUERYISH = st.lists(
    st.sampled_from(
        [
            "a",
            "b",
            "Ünï",
            "東京",
            "x@y.z",
            " ",
            " ",
            "(",
            ")",
            '"',
            "\\",
            "-",
            "OR",
            "AND",
            "NOT",
            "from:",
            "to:",
            "subject:",
            "is:",
            "unread",
            "has:",
            "attachment",
            "before:",
            "2024-01-02",
            "larger:",
            "1M",
            ":",
            "*",
            "\t",
            "\n",
            "é",
            "é",
            "before:2024-13-01",
            "smaller:0",
            "is:read",
            "on:9999-12-31",
            "after:0001-01-01",
        ]
    ),
    max_size=25,
).map("".join)


@settings(max_examples=1500, deadline=None)
@given(QUERYISH)
def test_queryish_text_parses_or_raises_query_error(text: str) -> None:
    _check_any_text(text)


# -- words ------------------------------------------------------------------------------


def test_normalize_folds_case_accents_compatibility_and_punctuation() -> None:
    assert normalize("Hello, World!") == "hello world"
    assert normalize("Ärger über Grüße") == "arger uber grusse"
    assert normalize("ﬁle") == "file"
    assert normalize("résumé") == normalize("RESUME") == "resume"
    assert normalize("co\u00adoperate") == "cooperate"  # soft hyphen
    assert normalize("snake_case") == "snake case"
    assert normalize("ann@example.org") == "ann example org"
    assert normalize("ΕΛΛΆΔΑ") == "ελλαδα"
    assert normalize("東京タワー") == "東京タワー"
    assert normalize("Ｆｕｌｌ") == "full"
    assert normalize("") == "" and normalize("---") == ""
    assert tokens("a  b\tc") == ["a", "b", "c"]


@given(st.text())
def test_normalized_text_is_single_spaced_words(text: str) -> None:
    out = normalize(text)
    assert out == " ".join(out.split())
    assert all(t.replace("_", "").isalnum() and "_" not in t for t in out.split())


def test_body_text_plain_html_and_broken() -> None:
    plain = b"Content-Type: text/plain; charset=utf-8\r\n\r\nHello Gr\xc3\xbc\xc3\x9fe\r\n"
    assert body_text(plain).strip() == "Hello Grüße"
    html = (
        b"Content-Type: text/html\r\n\r\n<html><head><style>p {}</style></head>"
        b"<body><p>Visit&nbsp;<b>us</b></p><script>x()</script><!-- hidden --></body></html>"
    )
    assert normalize(body_text(html)) == "visit us"
    assert isinstance(body_text(b"\x00\xff garbage"), str)  # never raises
    assert body_text(b"Content-Type: image/png\r\n\r\n\x89PNG") == ""


def test_fts_expressions() -> None:
    assert fts_expression(word("ann@exa", TextField.FROM)) == 'sender : "ann exa" *'
    assert fts_expression(word("x")) == '"x" *'
    assert fts_expression(word("a b", TextField.SUBJECT, prefix=False)) == 'subject : "a b"'


# -- evaluating one summary --------------------------------------------------------------


def summary(
    subject: str = "Invoice 42 for March",
    flags: frozenset[str] = frozenset(),
    attachments: bool = False,
    size: int = 5000,
    when: datetime = datetime(2026, 3, 5, 12, 0, tzinfo=UTC),
) -> MessageSummary:
    env = Envelope(
        date=when,
        subject=subject,
        from_=(Address("Ann Example", "ann@example.org"),),
        to=(Address("", "bob@example.net"),),
        cc=(Address("Carol Ö", "carol@example.com"),),
    )
    return MessageSummary(1, flags, when, size, env, (), attachments)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("invoice", True),
        ("inv", True),
        ('"inv"', None),  # whole word: not in the headers, maybe in the body
        ("from:ann", True),
        ("from:exam", True),
        ("from:bob", False),
        ("to:bob@example.net", True),
        ("cc:carol cc:o", True),
        ("cc:ö", True),
        ('subject:"invoice 42"', True),
        ('subject:"42 invoice"', False),
        ("subject:march is:unread", True),
        ("is:read", False),
        ("-is:read", True),
        ("is:flagged OR has:attachment", False),
        ("larger:4K smaller:5K", True),
        ("larger:5000", False),
        ("on:2026-03-05", True),
        ("after:2026-03-05 before:2026-03-06", True),
        ("before:2026-03-05", False),
        ("body:anything", None),
        ("-body:anything", None),
        ("body:anything from:bob", False),  # unknown AND false is false
        ("body:anything OR from:ann", True),  # unknown OR true is true
        ("zebra", None),
    ],
)
def test_evaluate_three_valued(text: str, expected: bool | None) -> None:
    assert evaluate(parse_query(text), summary(), tz=UTC) is expected


def test_evaluate_with_body_and_flags() -> None:
    s = summary(flags=frozenset({SEEN, FLAGGED, ANSWERED}), attachments=True)
    assert evaluate(parse_query("body:iban zebra"), s, "Your IBAN: zebra-1", tz=UTC) is True
    assert evaluate(parse_query('"inv"'), s, "no", tz=UTC) is False
    assert evaluate(parse_query("is:flagged is:answered has:attachment is:read"), s) is True
    assert evaluate(parse_query("is:draft OR is:forwarded"), s) is False


# -- IMAP SEARCH ------------------------------------------------------------------------


def test_imap_fields_flags_dates_sizes() -> None:
    q = parse_query(
        'from:ann to:bob cc:carol subject:"a b" body:x is:unread is:flagged -is:draft'
        " before:2026-03-01 after:2026-01-31 on:2026-02-14 larger:1K smaller:2M is:forwarded"
    )
    s = to_imap_search(q)
    assert s.args == (
        'FROM "ann" TO "bob" CC "carol" SUBJECT "a b" BODY "x" UNSEEN FLAGGED NOT DRAFT'
        " SENTBEFORE 1-Mar-2026 SENTSINCE 31-Jan-2026 SENTON 14-Feb-2026"
        " LARGER 1024 SMALLER 2097152 KEYWORD $Forwarded",
    )
    assert s.exact and not s.matches_all and s.charset is None
    internal = to_imap_search(parse_query("before:2026-03-01 is:read"), sent_dates=False)
    assert internal.args == ("BEFORE 1-Mar-2026 SEEN",)


def test_imap_free_word_is_or_of_all_fields_and_or_nests() -> None:
    assert to_imap_search(parse_query("ann")).args == (
        'OR FROM "ann" OR TO "ann" OR CC "ann" OR SUBJECT "ann" BODY "ann"',
    )
    assert to_imap_search(parse_query("from:a OR from:b OR from:c")).args == (
        'OR FROM "a" OR FROM "b" FROM "c"',
    )
    assert to_imap_search(parse_query("(from:a to:b) OR -(cc:c OR is:read)")).args == (
        'OR (FROM "a" TO "b") NOT OR CC "c" SEEN',
    )


def test_imap_quoting_and_literals() -> None:
    s = to_imap_search(parse_query(r'subject:"say \"hi\" \\o/"'))
    assert s.args == (r'SUBJECT "say \"hi\" \\o/"',)
    s = to_imap_search(parse_query("subject:Grüße from:ann"))
    assert s.charset == "UTF-8"
    assert s.args[:3] == ("CHARSET", "UTF-8", "SUBJECT")
    lit = s.args[3]
    assert isinstance(lit, Literal) and lit.data == "Grüße".encode()
    assert s.args[4:] == ('FROM "ann"',)
    assert s.line() == 'CHARSET UTF-8 SUBJECT {7}Grüße FROM "ann"'


def test_imap_group_never_ends_with_a_literal() -> None:
    # The transport puts a space before every argument: ")" cannot follow a literal.
    s = to_imap_search(parse_query("(subject:é from:ü) OR x"))
    assert s.line().startswith("CHARSET UTF-8 OR (SUBJECT {2}é FROM {2}ü ALL) OR FROM")
    s = to_imap_search(parse_query("(subject:é from:a) OR is:read"))
    assert s.line() == 'CHARSET UTF-8 OR (SUBJECT {2}é FROM "a") SEEN'
    for arg in s.args:
        if isinstance(arg, str):
            assert not arg.startswith(")")


def test_imap_has_attachment_is_relaxed_to_a_superset() -> None:
    s = to_imap_search(parse_query("has:attachment from:ann"))
    assert s.args == ('FROM "ann"',) and not s.exact and not s.matches_all
    s = to_imap_search(parse_query("has:attachment"))
    assert s.args == ("ALL",) and s.matches_all and not s.exact
    s = to_imap_search(parse_query("has:attachment OR from:ann"))
    assert s.args == ("ALL",) and s.matches_all
    # Under NOT the term becomes false, so NOT (false) is still a superset.
    s = to_imap_search(parse_query("-has:attachment is:read"))
    assert s.args == ("SEEN",) and not s.exact
    s = to_imap_search(parse_query("-(has:attachment from:ann)"))
    assert s.args == ("ALL",)
    s = to_imap_search(parse_query("-(has:attachment OR from:ann)"))
    assert s.args == ('NOT FROM "ann"',)


def test_imap_sizes_are_clamped_to_32_bits() -> None:
    s = to_imap_search(parse_query("larger:100G"))
    assert s.args == ("LARGER 4294967295",)
