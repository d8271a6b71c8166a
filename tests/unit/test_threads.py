"""JWZ threading on crafted sets: shapes, missing parents, loops, duplicates, subject fallback,
deep chains, ordering, unread counts, and properties over random forests."""

from __future__ import annotations

import random
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from kittiwake.core.cache import Cache, LazySummaries
from kittiwake.core.imap.lazy import extract
from kittiwake.core.message.ids import normalize_msgid
from kittiwake.core.message.subjects import base_subject, is_reply_subject
from kittiwake.core.models import SEEN, Envelope, MessageSummary
from kittiwake.core.search.threads import (
    ThreadColumns,
    Threading,
    ThreadInput,
    columns_from_cache,
    join_groups,
    keep_threads,
    thread_cached,
    thread_messages,
)


def msg(
    key: str,
    date: float,
    refs: tuple[str, ...] = (),
    irt: str | None = None,
    subject: str | None = None,
    mid: str | None = "",
) -> ThreadInput[str]:
    """A message whose Message-ID is <key> (unless ``mid`` says otherwise)."""
    message_id = f"<{key}>" if mid == "" else mid
    return ThreadInput(
        key, message_id, irt, tuple(f"<{r}>" for r in refs), subject or f"s {key}", date
    )


def draw(t: Threading[str]) -> list[str]:
    return [f"{p}{k if k is not None else '*'}" for k, p in zip(t.keys, t.prefixes, strict=True)]


def parents(t: Threading[str]) -> dict[str, str | None]:
    """Each message's parent row key (None at the top; '*' for a placeholder)."""
    out: dict[str, str | None] = {}
    stack: list[str | None] = []
    for key, depth in zip(t.keys, t.depths, strict=True):
        del stack[depth:]
        parent = stack[-1] if stack else None
        label = key if key is not None else "*"
        if key is not None:
            out[key] = parent
        stack.append(label)
    return out


def test_tree_shape_connectors_and_order() -> None:
    t = thread_messages(
        [
            msg("c", 3, refs=("a",)),
            msg("a", 1),
            msg("d", 4, refs=("a", "b")),
            msg("b", 2, refs=("a",)),
            msg("e", 5, refs=("a", "b", "d")),
            msg("x", 2.5),
        ]
    )
    assert draw(t) == [
        "a",
        "├─b",
        "│ └─d",
        "│   └─e",
        "└─c",
        "x",
    ]
    assert t.depths == [0, 1, 2, 3, 1, 0]
    assert [(th.first_row, th.rows, th.messages, th.newest) for th in t.threads] == [
        (0, 5, 5, 5),
        (5, 1, 1, 2.5),
    ]
    assert t.thread_of == [0, 0, 0, 0, 0, 1]
    assert t.threads[0].first_key == "a"
    assert t.row(1).prefix == "├─" and t.rows()[1].key == "b"


def test_threads_sorted_by_newest_message_siblings_by_date() -> None:
    t = thread_messages(
        [
            msg("old", 1),
            msg("old-reply", 100, refs=("old",)),  # makes the old thread the newest
            msg("mid", 50),
            msg("r2", 30, refs=("mid",)),
            msg("r1", 20, refs=("mid",)),
        ]
    )
    assert draw(t) == ["old", "└─old-reply", "mid", "├─r1", "└─r2"]


def test_missing_parent_several_children_keep_a_placeholder() -> None:
    t = thread_messages([msg("b", 2, refs=("gone",)), msg("c", 3, refs=("gone",))])
    assert draw(t) == ["*", "├─b", "└─c"]
    assert t.threads[0].messages == 2 and t.threads[0].rows == 3
    assert t.threads[0].first_key == "b"


def test_missing_parent_single_child_is_promoted() -> None:
    t = thread_messages([msg("b", 2, refs=("gone",)), msg("c", 3, refs=("gone", "b"))])
    assert draw(t) == ["b", "└─c"]


def test_missing_middle_is_pruned_children_promoted() -> None:
    t = thread_messages([msg("a", 1), msg("c", 3, refs=("a", "b")), msg("d", 4, refs=("a", "b"))])
    assert draw(t) == ["a", "├─c", "└─d"]


def test_in_reply_to_without_references() -> None:
    t = thread_messages([msg("a", 1), msg("b", 2, irt="<a>"), msg("c", 3, irt="junk <b> (x)")])
    assert draw(t) == ["a", "└─b", "  └─c"]


def test_in_reply_to_appended_after_references() -> None:
    t = thread_messages(
        [msg("a", 1), msg("b", 2, refs=("a",)), msg("c", 3, refs=("a",), irt="<b>")]
    )
    assert draw(t) == ["a", "└─b", "  └─c"]


def test_loop_in_references_is_ignored() -> None:
    # a says b is its parent, b says a is: the second link would close a loop.
    t = thread_messages(
        [
            msg("a", 1, refs=("b",)),
            msg("b", 2, refs=("a",)),
            msg("c", 3, refs=("a", "b", "a")),  # a loop inside one list
            msg("d", 4, refs=("d",)),  # refers to itself
        ]
    )
    assert sorted(k for k in t.keys if k is not None) == ["a", "b", "c", "d"]
    assert len(t) == 4
    p = parents(t)
    assert p["d"] is None
    # Whatever was kept, it is a tree: every message once, depths consistent.
    assert _is_forest(t)


def test_long_loop_across_messages() -> None:
    n = 50
    msgs = [msg(f"m{i}", i, refs=(f"m{(i + 1) % n}",)) for i in range(n)]
    t = thread_messages(msgs)
    assert sorted(k for k in t.keys if k is not None) == sorted(f"m{i}" for i in range(n))
    assert _is_forest(t)


def test_duplicate_message_ids_both_shown_reply_goes_to_first() -> None:
    t = thread_messages(
        [
            msg("a1", 1, mid="<same>"),
            msg("a2", 2, mid="<same>"),
            msg("r", 3, refs=("same",)),
        ]
    )
    assert draw(t) == ["a1", "└─r", "a2"] or draw(t) == ["a2", "a1", "└─r"]
    assert sorted(k for k in t.keys if k is not None) == ["a1", "a2", "r"]
    assert parents(t)["r"] == "a1"


def test_messages_without_message_id() -> None:
    t = thread_messages([msg("a", 1, mid=None), msg("b", 2, mid=None), msg("c", 3, mid="  ")])
    assert sorted(draw(t)) == ["a", "b", "c"]


def test_subject_fallback_for_reply_without_references() -> None:
    t = thread_messages(
        [
            msg("orig", 1, subject="Lunch on Friday?"),
            msg("reply", 2, subject="Re: Lunch on Friday?"),  # Outlook dropped the references
            msg("aw", 3, subject="AW: SV: RE[2]: [team] lunch  on friday?"),
            msg("fwd", 4, subject="Fwd: Lunch on Friday?"),
            msg("other", 5, subject="Hello"),
            msg("other2", 6, subject="Hello"),  # same subject, no prefix: stays apart
        ]
    )
    assert draw(t) == [
        "other2",
        "other",
        "orig",
        "├─reply",
        "├─aw",
        "└─fwd",
    ]


def test_subject_fallback_not_for_messages_with_references() -> None:
    t = thread_messages(
        [
            msg("orig", 1, subject="Plans"),
            msg("reply", 2, refs=("elsewhere",), subject="Re: Plans"),
        ]
    )
    assert draw(t) == ["reply", "orig"]


def test_subject_fallback_picks_latest_earlier_thread() -> None:
    t = thread_messages(
        [
            msg("w1", 1, subject="Weekly status"),
            msg("w2", 100, subject="Weekly status"),
            msg("re", 150, subject="Re: Weekly status"),
            msg("w3", 200, subject="Weekly status"),
        ]
    )
    assert parents(t)["re"] == "w2"


def test_subject_fallback_groups_orphan_replies_and_can_be_disabled() -> None:
    msgs = [msg("r1", 1, subject="Re: gone"), msg("r2", 2, subject="RE: Gone")]
    assert draw(thread_messages(msgs)) == ["*", "├─r1", "└─r2"]
    assert draw(thread_messages(msgs, subject_fallback=False)) == ["r2", "r1"]
    single = [msg("r1", 1, subject="Re: gone")]
    assert draw(thread_messages(single)) == ["r1"]


def test_subject_helpers() -> None:
    assert base_subject("Re: Fwd: [list] Hello   World") == "hello world"
    assert base_subject("AW: WG: Antwort") == "antwort"
    assert base_subject("Re[3]: x") == "x"
    assert base_subject("Re (2): x") == "x"
    assert base_subject("Réf. : x") == "réf. : x"  # not a prefix form we know
    assert base_subject("Regarding: x") == "regarding: x"
    assert is_reply_subject("SV: x") and is_reply_subject("[list] Re: x")
    assert not is_reply_subject("Rex: x") and not is_reply_subject("Hello")
    # the forward prefixes compose knew too (one table since core/message/subjects.py)
    assert base_subject("RV: Re: x") == "x" and base_subject("I: x") == "x"
    assert is_reply_subject("RV: x") and is_reply_subject("i : x")
    assert not is_reply_subject("If: x") and base_subject("Iris: x") == "iris: x"
    assert normalize_msgid("<a@b>") == "<a@b>"
    assert normalize_msgid(" <a @b> ") == "<a@b>"
    assert normalize_msgid("x@y") == "<x@y>"
    assert normalize_msgid("<>") is None
    assert normalize_msgid("") is None and normalize_msgid(None) is None


def test_unread_counts_with_set_and_with_predicate() -> None:
    msgs = [msg("a", 1), msg("b", 2, refs=("a",)), msg("c", 3, refs=("a",)), msg("x", 0)]
    by_set = thread_messages(msgs, unread={"b", "c", "x"})
    by_pred = thread_messages(msgs, seen=lambda k: k == "a")
    for t in (by_set, by_pred):
        assert [(th.first_key, th.unread, th.messages) for th in t.threads] == [
            ("a", 2, 3),
            ("x", 1, 1),
        ]
    assert [th.unread for th in thread_messages(msgs).threads] == [0, 0]


def _chain(n: int) -> list[ThreadInput[str]]:
    out = [msg("c0", 0)]
    for i in range(1, n):
        # References trimmed as mailers do: the first and the last few ancestors.
        refs = ("c0", *(f"c{j}" for j in range(max(1, i - 5), i)))
        out.append(msg(f"c{i}", i, refs=refs, irt=f"<c{i - 1}>"))
    return out


def test_deep_chain_10000_any_order_no_recursion() -> None:
    chain = _chain(10_000)
    for order in ("forward", "reverse", "shuffled"):
        msgs = list(chain)
        if order == "reverse":
            msgs.reverse()
        elif order == "shuffled":
            random.Random(7).shuffle(msgs)
        started = time.perf_counter()
        t = thread_messages(msgs)
        elapsed = time.perf_counter() - started
        assert t.depths == list(range(10_000)), order
        assert t.keys == [f"c{i}" for i in range(10_000)]
        assert len(t.threads) == 1 and t.threads[0].messages == 10_000
        assert elapsed < 5, f"{order}: {elapsed:.2f} s"
        # Indentation stops at MAX_INDENT levels; the text stays short.
        assert max(len(p) for p in t.prefixes) <= 2 * 12
        assert t.prefixes[1] == "└─" and t.prefixes[2] == "  └─"


def test_deep_indent_is_capped_but_siblings_still_drawn() -> None:
    msgs = [msg("a", 0), msg("b", 1, refs=("a",)), msg("c", 2, refs=("a", "b"))]
    msgs += [msg("d", 3, refs=("a", "b")), msg("e", 4, refs=("a", "b", "d"))]
    t = thread_messages(msgs, max_indent=1)
    assert draw(t) == ["a", "└─b", "├─c", "└─d", "└─e"]
    assert t.depths == [0, 1, 2, 2, 3]


def test_empty_input() -> None:
    t = thread_messages([])
    assert len(t) == 0 and t.threads == []


def _is_forest(t: Threading[str]) -> bool:
    """Depths step down by at most one; every thread starts at depth 0."""
    prev = -1
    for i, depth in enumerate(t.depths):
        if depth > prev + 1:
            return False
        if t.prefixes[i] == "" and depth != 0:
            return False
        prev = depth
    return all(t.depths[th.first_row] == 0 for th in t.threads)


@st.composite
def forests(
    draw_: st.DrawFn,
) -> tuple[list[ThreadInput[str]], dict[str, str | frozenset[str] | None]]:
    """A random forest with consistent References (ancestors, trimmed), shuffled; some
    ancestors missing. Returns the inputs and each present message's expected parent."""
    n = draw_(st.integers(1, 60))
    parent_of: list[int | None] = [None]
    for i in range(1, n):
        parent_of.append(draw_(st.one_of(st.none(), st.integers(0, i - 1))))
    missing = draw_(st.sets(st.integers(0, n - 1), max_size=n // 3))
    trim = draw_(st.integers(1, 6))
    msgs = []
    for i in range(n):
        if i in missing:
            continue
        chain: list[int] = []
        p = parent_of[i]
        while p is not None:
            chain.append(p)
            p = parent_of[p]
        chain.reverse()
        refs = (
            chain
            if len(chain) <= trim
            else [chain[0], *chain[-(trim - 1) :]]
            if trim > 1
            else chain[-1:]
        )
        msgs.append(msg(f"m{i}", float(i), refs=tuple(f"m{r}" for r in refs)))
    order = draw_(st.permutations(msgs))
    # The direct parent when it is present; else the set of acceptable ancestors: the
    # references may not say more (trimmed), so any present ancestor, or none, is right.
    expected: dict[str, str | frozenset[str] | None] = {}
    for i in range(n):
        if i in missing:
            continue
        p = parent_of[i]
        if p is None:
            expected[f"m{i}"] = None
        elif p not in missing:
            expected[f"m{i}"] = f"m{p}"
        else:
            ancestors = set()
            while p is not None:
                if p not in missing:
                    ancestors.add(f"m{p}")
                p = parent_of[p]
            expected[f"m{i}"] = frozenset(ancestors)
    return list(order), expected


@settings(max_examples=300, deadline=None)
@given(forests())
def test_random_forests_thread_as_built_in_any_order(
    case: tuple[list[ThreadInput[str]], dict[str, str | frozenset[str] | None]],
) -> None:
    msgs, expected = case
    t = thread_messages(msgs, subject_fallback=False)
    assert sorted(k for k in t.keys if k is not None) == sorted(expected)
    assert _is_forest(t)
    got = parents(t)
    for key, parent in expected.items():
        if isinstance(parent, str):
            assert got[key] == parent, key
        elif parent is None:
            assert got[key] is None, key
        else:  # its parent is missing: a present ancestor, the top, or a placeholder
            assert got[key] in parent or got[key] in (None, "*"), key
    # Threads are contiguous, sorted by their newest message.
    newest = [th.newest for th in t.threads]
    assert newest == sorted(newest, reverse=True)
    assert sum(th.rows for th in t.threads) == len(t)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "c", "d", "e", None]),
            st.lists(st.sampled_from(["a", "b", "c", "d", "e", "", "zz"]), max_size=6),
            st.sampled_from([None, "<a>", "<b>", "junk", "<c> <d>"]),
            st.sampled_from(["x", "Re: x", "AW: x", "y"]),
        ),
        max_size=25,
    )
)
def test_hostile_inputs_never_crash_and_show_every_message_once(
    items: list[tuple[str | None, list[str], str | None, str]],
) -> None:
    msgs = [
        ThreadInput(
            str(i),
            f"<{mid}>" if mid else None,
            irt,
            tuple(f"<{r}>" if r else "" for r in refs),
            subject,
            float(i % 5),
        )
        for i, (mid, refs, irt, subject) in enumerate(items)
    ]
    t = thread_messages(msgs)
    assert sorted(k for k in t.keys if k is not None) == sorted(str(i) for i in range(len(msgs)))
    assert _is_forest(t)
    assert sum(th.messages for th in t.threads) == len(msgs)


def test_columns_from_cache_threads_inbox_with_sent(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c.sqlite3")

    def summary(
        uid: int, mid: str, refs: tuple[str, ...], subject: str, seen: bool
    ) -> MessageSummary:
        when = datetime.fromtimestamp(1_700_000_000 + uid * 60, UTC)
        env = Envelope(
            date=when, subject=subject, message_id=mid, in_reply_to=refs[-1] if refs else None
        )
        flags = frozenset({SEEN}) if seen else frozenset()
        return MessageSummary(uid, flags, when, 100, env, refs)

    cache.put_summaries(
        "INBOX",
        [
            summary(1, "<q@x>", (), "Question", False),
            summary(3, "<a2@x>", ("<q@x>", "<a1@me>"), "Re: Question", False),
        ],
    )
    cache.put_summaries("Sent", [summary(2, "<a1@me>", ("<q@x>",), "Re: Question", True)])
    db = sqlite3.connect(cache.path)
    ids = dict(db.execute("SELECT name, id FROM folders").fetchall())
    cols, unread = columns_from_cache(db, [ids["INBOX"], ids["Sent"]])
    assert isinstance(cols, ThreadColumns) and len(cols) == 3
    t = thread_messages(cols, unread=unread)
    inbox, sent = ids["INBOX"], ids["Sent"]
    assert t.keys == [(inbox, 1), (sent, 2), (inbox, 3)]
    assert t.prefixes == ["", "└─", "  └─"]
    assert t.threads[0].unread == 2
    db.close()
    cache.close()


def test_columns_from_cache_decodes_rows_stored_undecoded(tmp_path: Path) -> None:
    from test_search_cache import lazy_fetch

    cache = Cache(tmp_path / "c.sqlite3")
    when = datetime(2026, 11, 25, tzinfo=UTC)
    env = Envelope(date=when, subject="Root", message_id="<r@x>")
    cache.put_summaries("INBOX", [MessageSummary(1, frozenset({SEEN}), when, 10, env, ())])
    row = extract(lazy_fetch(2, "Re: Root", "ann"))  # References: <r@x>, unread
    assert row is not None
    cache.put_summaries("INBOX", LazySummaries([row]))
    db = sqlite3.connect(cache.path)
    fid = db.execute("SELECT id FROM folders").fetchone()[0]
    cols, unread = columns_from_cache(db, [fid])
    t = thread_messages(cols, unread=unread)
    assert t.keys == [(fid, 1), (fid, 2)] and t.prefixes == ["", "└─"]
    assert t.threads[0].unread == 1
    db.close()
    cache.close()
    assert thread_cached(cache.path, [fid]).keys == t.keys


def test_keep_threads_keeps_whole_threads_with_a_wanted_message() -> None:
    """A folder's view over folder + Sent: conversations only in Sent go, the user's own
    replies inside the folder's conversations stay, rows and numbering stay consistent."""
    t = thread_messages(
        [
            msg("in1", 1),
            msg("sent1", 2, refs=("in1",)),
            msg("in2", 3, refs=("in1", "sent1")),
            msg("sent-only", 9),
            msg("sent-reply", 10, refs=("sent-only",)),
            msg("in-alone", 5),
        ],
        unread={"in2"},
    )
    kept = keep_threads(t, lambda key: not key.startswith("sent"))
    assert draw(t)[:2] == ["sent-only", "└─sent-reply"]
    assert draw(kept) == ["in-alone", "in1", "└─sent1", "  └─in2"]
    assert kept.thread_of == [0, 1, 1, 1]
    assert [(i.first_row, i.rows, i.messages, i.unread) for i in kept.threads] == [
        (0, 1, 1, 0),
        (1, 3, 3, 1),
    ]
    assert keep_threads(t, lambda key: False).keys == []


def test_a_server_s_conversations_join_what_the_headers_leave_apart() -> None:
    """``join_groups`` (Gmail's X-GM-THRID): a and c (no headers linking them) join under the
    earliest, b keeps its place under a (its own References), d's group stays its own."""
    cols = ThreadColumns.from_inputs(
        [
            msg("a", 1),
            msg("b", 2, refs=("a",)),
            msg("c", 3),
            msg("d", 4),
            msg("e", 5, mid=None),  # no Message-ID: joins under the earliest all the same
        ]
    )
    join_groups(cols, {"a": 1, "b": 1, "c": 1, "e": 1, "d": 2})
    assert parents(thread_messages(cols)) == {"a": None, "b": "a", "c": "a", "e": "a", "d": None}
    alone = ThreadColumns.from_inputs([msg("x", 1), msg("y", 2)])
    join_groups(alone, {})
    assert parents(thread_messages(alone)) == {"x": None, "y": None}
