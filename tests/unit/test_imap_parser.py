"""The IMAP response reader and the typed untagged/tagged decoders.

Samples follow what Dovecot, Gmail and Exchange/Office 365 really send.
"""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kittiwake.core.imap.parser import (
    MAX_DEPTH,
    AppendUid,
    Bad,
    Bye,
    Capability,
    Continuation,
    CopyUid,
    Enabled,
    ESearch,
    Exists,
    Expunge,
    Fetch,
    Flags,
    ListItem,
    Namespace,
    No,
    Ok,
    ParseError,
    PreAuth,
    Recent,
    Search,
    Status,
    Tagged,
    UidSet,
    Unknown,
    Vanished,
    _read_values_slow,
    parse_internaldate,
    parse_response,
    parse_tagged,
    parse_untagged,
    read_values,
)
from kittiwake.core.models import FolderRole


def lit(data: bytes) -> bytes:
    """A literal in wire form."""
    return b"{%d}\r\n%s" % (len(data), data)


def fetch(resp: bytes) -> Fetch:
    r = parse_untagged(resp)
    assert isinstance(r, Fetch)
    return r


# --- the reader ---------------------------------------------------------------------------


def test_reader_value_kinds() -> None:
    assert read_values(b'ATOM 42 "quoted" NIL nil (a (b c) ()) \\Seen $Forwarded') == [
        "ATOM",
        42,
        b"quoted",
        None,
        None,
        ["a", ["b", "c"], []],
        "\\Seen",
        "$Forwarded",
    ]


def test_quoted_escapes_and_8bit() -> None:
    assert read_values(rb'"a \"b\" c\\d" "" "caf' + b'\xc3\xa9"') == [
        b'a "b" c\\d',
        b"",
        "café".encode(),
    ]
    assert read_values(rb'"\\"') == [b"\\"]
    assert read_values(b'"tab\there"') == [b"tab\there"]


def test_numbers_atoms_and_leading_zeros() -> None:
    assert read_values(b"0 7 007 12:34 1,2 4294967295 18446744073709551615") == [
        0,
        7,
        "007",  # could be a mailbox name: keep it as written
        "12:34",
        "1,2",
        4294967295,
        18446744073709551615,  # 20 digits (X-GM-MSGID range)
    ]
    assert read_values(b"9" * 21) == ["9" * 21]  # too long for a number: an atom
    assert read_values(b"1(2)") == [1, [2]]


def test_literals_and_literal8() -> None:
    body = b'line (one)\r\n"two" {3}\r\n)'
    assert read_values(b"BODY[] " + lit(body) + b" UID 3") == ["BODY[]", body, "UID", 3]
    assert read_values(b"BINARY[1] ~" + lit(b"\x00\xff")) == ["BINARY[1]", b"\x00\xff"]
    assert read_values(b"X {3+}\r\nabc") == ["X", b"abc"]
    assert read_values(b"(" + lit(b"") + b")") == [[b""]]
    # An empty literal ending the response leaves the response ending in CRLF.
    assert read_values(b"A " + lit(b"")) == ["A", b""]
    assert read_values(b"A " + lit(b"\r\n")) == ["A", b"\r\n"]


def test_trailing_crlf_is_tolerated() -> None:
    assert read_values(b"A B\r\n") == ["A", "B"]
    assert read_values(b"A B  ") == ["A", "B"]


def test_sections_are_one_atom() -> None:
    assert read_values(b"BODY[HEADER.FIELDS (SUBJECT FROM)]<0> {2}\r\nab X") == [
        "BODY[HEADER.FIELDS (SUBJECT FROM)]<0>",
        b"ab",
        "X",
    ]
    assert read_values(b"BODY[] BODY[1.2.MIME] BINARY.SIZE[3]") == [
        "BODY[]",
        "BODY[1.2.MIME]",
        "BINARY.SIZE[3]",
    ]
    # "[" and "]" are atom characters (mailbox names such as Gmail's).
    assert read_values(b"[Gmail]/Sent foo] bar[baz") == ["[Gmail]/Sent", "foo]", "bar[baz"]
    assert read_values(b'BODY[HEADER.FIELDS ("X-Y")]') == ['BODY[HEADER.FIELDS ("X-Y")]']


@pytest.mark.parametrize(
    "bad",
    [
        b"(a",
        b"a)",
        b"((a)",
        b'"unterminated',
        b'"unterminated \\"',
        b"stray {",
        b"{5}",  # a literal marker not followed by CRLF
        b"a {10}\r\nshort",  # literal overruns
        b"a\r\nb",  # line break outside a literal
        b"a\rb",
        b"a\nb",
        b"ctl\x01char",
        b"del\x7f",
        b"a\tb",
        b"\x00",
    ],
)
def test_malformed_input_raises_parse_error(bad: bytes) -> None:
    with pytest.raises(ParseError):
        read_values(bad)
    with pytest.raises(ParseError):
        _read_values_slow(bad)


def test_parse_error_is_a_value_error_and_a_protocol_error() -> None:
    from kittiwake.core.errors import ProtocolError

    with pytest.raises(ValueError):
        read_values(b"(")
    with pytest.raises(ProtocolError):
        read_values(b"(")


def test_deep_nesting_is_bounded_not_recursive() -> None:
    with pytest.raises(ParseError):
        read_values(b"(" * 100_000)
    with pytest.raises(ParseError):
        read_values(b"(" * 100_000 + b")" * 100_000)
    deep = parse_untagged(b"* 1 FETCH " + b"(" * 100_000 + b")" * 100_000)
    assert isinstance(deep, Fetch) and deep.degraded and deep.items == {}
    ok = read_values(b"(" * MAX_DEPTH + b")" * MAX_DEPTH)
    assert isinstance(ok[0], list)
    assert read_values(b"((x))", max_depth=2) == [[["x"]]]
    with pytest.raises(ParseError):
        read_values(b"((x))", max_depth=1)


@pytest.mark.parametrize(
    "hostile",
    [
        b"[" * 500_000,
        b"[" + b"a" * 500_000,
        b'"' + b"\\" * 500_000,
        b'"' + b"\\a" * 250_000,
        b" " * 500_000 + b"x",
        b"x" + b" " * 500_000,
        b"a" * 500_000,
        b'"a" ' * 100_000,
        b"{" * 500_000,
        b"1" * 500_000,
        b"(" * 200 + b"a " * 200_000,
        b"[" + b" (" * 200_000,
        b"x {1}\r\n" * 50_000,
    ],
)
def test_hostile_large_inputs_stay_linear(hostile: bytes) -> None:
    # Quadratic behaviour would take minutes here (the suite's timeout catches it).
    for reader in (read_values, _read_values_slow):
        with contextlib.suppress(ParseError):
            reader(hostile)


_IMAPISH = st.lists(
    st.sampled_from(
        [
            b"(",
            b")",
            b" ",
            b"  ",
            b"NIL",
            b'"',
            b'"q"',
            b'"a\\"b"',
            b"\\",
            b"\\\\",
            b"[",
            b"]",
            b"BODY[HEADER.FIELDS (A B)]",
            b"<0>",
            b"{3}\r\nabc",
            b"~{2}\r\n\x00\xff",
            b"{0}\r\n",
            b"\r\n",
            b"{",
            b"}",
            b"0",
            b"12",
            b"007",
            b"atom",
            b"\xc3\xa9",
            b"\x00",
            b"\t",
            b"\x01",
            b"*",
            b"%",
        ]
    ),
    max_size=30,
).map(b"".join)


@settings(max_examples=800, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=200), _IMAPISH))
def test_reader_raises_only_parse_error_and_fast_path_matches_reference(data: bytes) -> None:
    try:
        fast = read_values(data)
    except ParseError:
        fast = None
    try:
        slow = _read_values_slow(data)
    except ParseError:
        slow = None
    assert fast == slow


@settings(max_examples=500)
@given(
    st.sampled_from(
        [
            b"* ",
            b"* 1 FETCH ",
            b"* 3 ",
            b"* LIST ",
            b"* LSUB ",
            b"* STATUS ",
            b"* SEARCH ",
            b"* ESEARCH ",
            b"* VANISHED ",
            b"* FLAGS ",
            b"* OK ",
            b"* NO [",
            b"* CAPABILITY ",
            b"* NAMESPACE ",
            b"A1 OK ",
            b"A1 NO [",
            b"+ ",
            b"",
        ]
    ),
    st.one_of(st.binary(max_size=120), _IMAPISH),
)
def test_response_decoders_raise_only_parse_error(prefix: bytes, rest: bytes) -> None:
    with contextlib.suppress(ParseError):
        parse_response(prefix + rest)


# --- FETCH --------------------------------------------------------------------------------

DOVECOT_SUMMARY = (
    b'* 12 FETCH (UID 40 FLAGS (\\Seen $Forwarded) INTERNALDATE "17-Jul-1996 02:44:25 -0700" '
    b"RFC822.SIZE 4286 MODSEQ (12121231000) "
    b'ENVELOPE ("Wed, 17 Jul 1996 02:23:25 -0700 (PDT)" "IMAP4rev1 WG mtg summary and minutes" '
    b'(("Terry Gray" NIL "gray" "cac.washington.edu")) '
    b'(("Terry Gray" NIL "gray" "cac.washington.edu")) '
    b'(("Terry Gray" NIL "gray" "cac.washington.edu")) '
    b'((NIL NIL "imap" "cac.washington.edu")) '
    b'((NIL NIL "minutes" "CNRI.Reston.VA.US")("John Klensin" NIL "KLENSIN" "MIT.EDU")) '
    b'NIL NIL "<B27397-0100000@cac.washington.edu>") '
    b'BODYSTRUCTURE ("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 3028 92 NIL NIL NIL) '
    b"BODY[HEADER.FIELDS (REFERENCES)] " + lit(b"References: <a@x>\r\n <b@y>\r\n\r\n") + b")"
)


def test_fetch_summary_items() -> None:
    f = fetch(DOVECOT_SUMMARY)
    assert f.seq == 12
    assert f.uid == 40
    assert f.flags == frozenset({"\\Seen", "$Forwarded"})
    assert f.size == 4286
    assert f.modseq == 12121231000
    d = f.internal_date
    assert d is not None and d.isoformat() == "1996-07-17T02:44:25-07:00"
    env = f.envelope
    assert isinstance(env, list) and env[1] == b"IMAP4rev1 WG mtg summary and minutes"
    assert isinstance(f.bodystructure, list)
    assert f.section("HEADER.FIELDS (REFERENCES)") == b"References: <a@x>\r\n <b@y>\r\n\r\n"
    assert f.section('header.fields ("References")') is not None
    assert f.section("TEXT") is None
    assert f.get("uid") == 40


def test_fetch_body_literal_with_parens_quotes_and_crlf() -> None:
    body = b'From: a@b\r\nSubject: (x) "y" {5}\r\n\r\n)))((( \\ "\r\n'
    f = fetch(b"* 3 FETCH (UID 9 BODY[] " + lit(body) + b" FLAGS (\\Seen \\Answered))")
    assert f.section() == body
    assert f.section("") == body
    assert f.flags == frozenset({"\\Seen", "\\Answered"})


def test_equal_flag_sets_are_one_object() -> None:
    """UID FETCH 1:* FLAGS of a big folder: a handful of distinct sets, not one per message."""
    a = fetch(b"* 1 FETCH (UID 1 FLAGS (\\Seen $Junk))").flags
    b = fetch(b"* 2 FETCH (UID 2 FLAGS ($Junk \\SEEN))").flags
    assert a == frozenset({"\\Seen", "$Junk"}) and a is b
    assert fetch(b"* 3 FETCH (UID 3 FLAGS ($Junk))").flags == frozenset({"$Junk"})


def test_fetch_partial_and_binary() -> None:
    f = fetch(b"* 3 FETCH (UID 9 BODY[]<0> " + lit(b"abc") + b" BINARY[2] ~" + lit(b"\x00") + b")")
    assert f.section() == b"abc"
    assert f.section("2", binary=True) == b"\x00"
    assert fetch(b"* 3 FETCH (BODY[1] NIL)").section("1") is None


def test_fetch_literal_subject_and_8bit() -> None:
    subj = b'He said "hi" (twice)'
    f = fetch(
        b"* 1 FETCH (UID 2 ENVELOPE (NIL "
        + lit(subj)
        + b' NIL NIL NIL NIL NIL NIL NIL NIL) X-ODD "caf\xc3\xa9")'
    )
    env = f.envelope
    assert isinstance(env, list) and env[1] == subj
    assert f.get("X-ODD") == "café".encode()


def test_fetch_gmail_extensions() -> None:
    f = fetch(
        b"* 1 FETCH (X-GM-THRID 1278455344230334865 X-GM-MSGID 1278455344230334865 "
        b'X-GM-LABELS (\\Inbox \\Sent Important "Muy Importante" "&BB4EQgQ,BEAEMAQyBDsENQQ9BD0ESwQ1-" '
        b'"[Gmail]/Starred") UID 4 FLAGS (\\Seen))'
    )
    assert f.gm_thrid == 1278455344230334865
    assert f.gm_msgid == 1278455344230334865
    assert f.gm_labels == (
        "\\Inbox",
        "\\Sent",
        "Important",
        "Muy Importante",
        "Отправленные",
        "[Gmail]/Starred",
    )
    assert fetch(b"* 1 FETCH (UID 4)").gm_labels is None


def test_fetch_flag_update_and_key_case() -> None:
    f = fetch(b"* 7 fetch (flags (\\SEEN \\flagged Junk) modseq (5) uid 70)")
    assert f.uid == 70
    assert f.flags == frozenset({"\\Seen", "\\Flagged", "Junk"})
    assert f.modseq == 5
    assert f.internal_date is None and f.size is None and f.envelope is None


def test_fetch_non_extensible_body_is_used_as_structure() -> None:
    f = fetch(b'* 1 FETCH (BODY ("text" "plain" NIL NIL NIL "7bit" 3 1))')
    assert f.bodystructure == [b"text", b"plain", None, None, None, b"7bit", 3, 1]


@pytest.mark.parametrize(
    "bad",
    [
        b"* 1 FETCH (UID)",
        b"* 1 FETCH UID 4",
        b"* 1 FETCH (UID 4) extra",
        b"* 1 FETCH ((UID) 4)",
        b"* 1 FETCH (UID 4",
        b"* 1 FETCH (BODY[] {99}\r\nshort)",
    ],
)
def test_malformed_fetch_is_degraded_not_raised(bad: bytes) -> None:
    """One message the server describes wrongly must not stop the command's other
    responses: the FETCH comes back marked degraded, with what could be salvaged."""
    item = parse_untagged(bad)
    assert isinstance(item, Fetch) and item.seq == 1 and item.degraded
    assert item.uid == (4 if b"UID 4" in bad and b"((UID) 4)" not in bad else None)


# --- mailbox state ------------------------------------------------------------------------


def test_counts_and_expunge() -> None:
    assert parse_untagged(b"* 23 EXISTS") == Exists(23)
    assert parse_untagged(b"* 0 RECENT") == Recent(0)
    assert parse_untagged(b"* 5 EXPUNGE") == Expunge(5)
    assert parse_untagged(b"* 5 EXPUNGE\r\n") == Expunge(5)


def test_vanished() -> None:
    assert parse_untagged(b"* VANISHED (EARLIER) 300:310,405,411") == Vanished(
        UidSet.parse("300:310,405,411"), earlier=True
    )
    assert parse_untagged(b"* VANISHED 405") == Vanished(UidSet.parse("405"), earlier=False)
    v = parse_untagged(b"* VANISHED (EARLIER) 1:4294967295")
    assert isinstance(v, Vanished) and len(v.uids) == 4294967295
    with pytest.raises(ParseError):
        parse_untagged(b"* VANISHED")
    with pytest.raises(ParseError):
        parse_untagged(b"* VANISHED 0:3")


def test_flags() -> None:
    assert parse_untagged(b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Junk)") == (
        Flags(frozenset({"\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft", "$Junk"}))
    )
    with pytest.raises(ParseError):
        parse_untagged(b"* FLAGS \\Seen")


# --- LIST / LSUB / STATUS -----------------------------------------------------------------


def list_item(resp: bytes, **kw: bool) -> ListItem:
    r = parse_untagged(resp, **kw)
    assert isinstance(r, ListItem)
    return r


def test_list_dovecot_special_use() -> None:
    item = list_item(b'* LIST (\\HasNoChildren \\Sent) "/" "Sent Messages"')
    assert item.attributes == frozenset({"\\HasNoChildren", "\\Sent"})
    assert item.delimiter == "/"
    assert item.name_decoded == item.name_raw == "Sent Messages"
    assert item.role is FolderRole.SENT
    assert item.selectable
    info = item.folder_info()
    assert (
        info.name == "Sent Messages" and info.role is FolderRole.SENT and info.subscribed is False
    )


def test_list_gmail() -> None:
    item = list_item(b'* LIST (\\All \\HasNoChildren) "/" "[Gmail]/All Mail"')
    assert item.name_decoded == "[Gmail]/All Mail" and item.role is FolderRole.ALL
    item = list_item(b'* LIST (\\HasChildren \\Noselect) "/" "[Gmail]"')
    assert not item.selectable and item.role is None
    xl = list_item(b'* XLIST (\\HasNoChildren \\Inbox) "/" "Inbox"')
    assert xl.command == "XLIST" and xl.name_decoded == "INBOX" and xl.role is FolderRole.INBOX
    spam = list_item(b'* XLIST (\\HasNoChildren \\Spam) "/" "[Gmail]/Spam"')
    assert spam.role is FolderRole.JUNK


def test_list_inbox_any_case_nil_delimiter_atom_and_literal_names() -> None:
    item = list_item(b"* LIST (\\HasNoChildren) NIL inbox")
    assert item.delimiter is None and item.name_decoded == "INBOX" and item.name_raw == "inbox"
    assert item.role is FolderRole.INBOX
    name = b'Projects/2024 (Q1) "draft"'
    item = list_item(b'* LIST () "/" ' + lit(name))
    assert item.name_decoded == name.decode()
    assert list_item(b'* LIST () "." 2024').name_raw == "2024"
    assert list_item(b'* LIST () "." 007').name_raw == "007"
    assert list_item(b'* LIST () "/" NIL').name_decoded == "NIL"
    assert list_item(b'* LIST () "\\\\" Foo').delimiter == "\\"
    assert list_item(b'* LIST (\\Noselect) "/" ""').name_decoded == ""


def test_list_modified_utf7_and_utf8_names() -> None:
    item = list_item(b'* LIST (\\HasNoChildren) "." "INBOX.Entw&APw-rfe"')
    assert item.name_decoded == "INBOX.Entwürfe"
    assert item.name_raw == "INBOX.Entw&APw-rfe"
    bad = list_item(b'* LIST () "." "Bad&Name"')
    assert bad.name_decoded == "Bad&Name"
    raw = list_item(b'* LIST () "/" "Entw\xc3\xbcrfe"')  # raw UTF-8 from a lax server
    assert raw.name_decoded == "Entwürfe"
    utf8 = list_item(b'* LIST () "/" "R&D \xc3\xa9t\xc3\xa9"', utf8_names=True)
    assert utf8.name_decoded == "R&D été"
    nonutf8 = list_item(b'* LIST () "/" "x\xff"')
    assert nonutf8.name_raw.encode("utf-8", "surrogateescape") == b"x\xff"


def test_list_extended_childinfo_and_lsub() -> None:
    item = list_item(b'* LIST (\\Subscribed) "/" "Foo" ("CHILDINFO" ("SUBSCRIBED"))')
    assert item.childinfo == frozenset({"SUBSCRIBED"})
    assert item.subscribed
    assert item.extended["CHILDINFO"] == [b"SUBSCRIBED"]
    old = list_item(b'* LIST () "/" "New" ("OLDNAME" ("Old"))')
    assert old.extended["OLDNAME"] == [b"Old"]
    lsub = list_item(b'* LSUB () "." "#news.comp.mail.misc"')
    assert lsub.command == "LSUB" and lsub.subscribed


@pytest.mark.parametrize(
    "bad", [b"* LIST", b'* LIST "/" "x"', b"* LIST () (x) y", b'* LIST () "/" (x)']
)
def test_malformed_list_raises(bad: bytes) -> None:
    with pytest.raises(ParseError):
        parse_untagged(bad)


def test_status() -> None:
    s = parse_untagged(
        b'* STATUS "INBOX" (MESSAGES 231 UIDNEXT 44292 UIDVALIDITY 1 UNSEEN 3 '
        b"HIGHESTMODSEQ 7011231777 RECENT 0 SIZE 1234 APPENDLIMIT NIL)"
    )
    assert isinstance(s, Status)
    assert s.mailbox == "INBOX"
    assert (s.messages, s.uidnext, s.uidvalidity, s.unseen, s.highestmodseq, s.recent) == (
        231,
        44292,
        1,
        3,
        7011231777,
        0,
    )
    assert s.values["SIZE"] == 1234 and "APPENDLIMIT" not in s.values
    lit_status = parse_untagged(b"* STATUS " + lit(b"Entw&APw-rfe") + b" (MESSAGES 2)")
    assert isinstance(lit_status, Status) and lit_status.mailbox == "Entwürfe"
    assert lit_status.mailbox_raw == "Entw&APw-rfe"
    with pytest.raises(ParseError):
        parse_untagged(b"* STATUS INBOX")


# --- SEARCH / ESEARCH ---------------------------------------------------------------------


def test_search() -> None:
    assert parse_untagged(b"* SEARCH") == Search(())
    assert parse_untagged(b"* SEARCH 2 84 882") == Search((2, 84, 882))
    assert parse_untagged(b"* SEARCH 2 5 6 7 11 12 18 19 20 23 (MODSEQ 917162500)") == Search(
        (2, 5, 6, 7, 11, 12, 18, 19, 20, 23), 917162500
    )
    with pytest.raises(ParseError):
        parse_untagged(b"* SEARCH 1 two")
    with pytest.raises(ParseError):
        parse_untagged(b"* SEARCH 1 (FOO 2)")
    big = parse_untagged(b"* SEARCH " + b" ".join(b"%d" % i for i in range(1, 20001)))
    assert isinstance(big, Search) and len(big.uids) == 20000


def test_esearch() -> None:
    r = parse_untagged(b'* ESEARCH (TAG "A282") UID MIN 2 COUNT 3 ALL 2,10:11')
    assert r == ESearch(tag="A282", uid=True, all=UidSet.parse("2,10:11"), count=3, min=2)
    r = parse_untagged(b'* ESEARCH (TAG "A285") UID MIN 7 MAX 3800')
    assert isinstance(r, ESearch) and (r.min, r.max, r.all) == (7, 3800, None)
    r = parse_untagged(b'* ESEARCH (TAG "A284") MIN 4 ALL 4 MODSEQ 1236')
    assert isinstance(r, ESearch) and not r.uid and r.all == UidSet.parse("4")
    assert r.modseq == 1236
    r = parse_untagged(b"* ESEARCH (TAG A1) UID COUNT 0")
    assert isinstance(r, ESearch) and r.tag == "A1" and r.count == 0
    r = parse_untagged(b"* ESEARCH")
    assert r == ESearch()
    r = parse_untagged(b'* ESEARCH (TAG "A1") UID PARTIAL (-1:-100 200:250) COUNT 5')
    assert isinstance(r, ESearch) and r.extra == {"PARTIAL": ["-1:-100", "200:250"]}
    with pytest.raises(ParseError):
        parse_untagged(b"* ESEARCH UID COUNT")
    with pytest.raises(ParseError):
        parse_untagged(b"* ESEARCH COUNT many")


# --- capabilities, namespace --------------------------------------------------------------


def test_capability_and_enabled() -> None:
    r = parse_untagged(
        b"* CAPABILITY IMAP4rev1 LITERAL+ SASL-IR LOGIN-REFERRALS ID ENABLE IDLE "
        b"SORT SPECIAL-USE condstore QRESYNC AUTH=PLAIN"
    )
    assert isinstance(r, Capability)
    assert {"IMAP4REV1", "CONDSTORE", "QRESYNC", "AUTH=PLAIN", "LITERAL+"} <= r.capabilities
    assert parse_untagged(b"* ENABLED CONDSTORE QRESYNC") == Enabled(
        frozenset({"CONDSTORE", "QRESYNC"})
    )
    assert parse_untagged(b"* ENABLED") == Enabled(frozenset())


def test_namespace() -> None:
    r = parse_untagged(b'* NAMESPACE (("" "/")) (("~" "/")) (("#shared/" "/")("#public/" "/"))')
    assert r == Namespace(
        personal=(("", "/"),), other=(("~", "/"),), shared=(("#shared/", "/"), ("#public/", "/"))
    )
    assert parse_untagged(b'* NAMESPACE (("INBOX." ".")) NIL NIL') == Namespace(
        personal=(("INBOX.", "."),)
    )


# --- status responses and codes -----------------------------------------------------------


def test_ok_with_codes() -> None:
    cases: list[tuple[bytes, str, object]] = [
        (b"* OK [UIDVALIDITY 3857529045] UIDs valid", "UIDVALIDITY", 3857529045),
        (b"* OK [UIDNEXT 4392] Predicted next UID", "UIDNEXT", 4392),
        (b"* OK [UNSEEN 12] Message 12 is first unseen", "UNSEEN", 12),
        (b"* OK [HIGHESTMODSEQ 715194045007] Highest", "HIGHESTMODSEQ", 715194045007),
        (
            b"* OK [NOMODSEQ] Sorry, this mailbox format doesn't support modsequences",
            "NOMODSEQ",
            None,
        ),
        (b"* OK [CLOSED] Previous mailbox closed.", "CLOSED", None),
        (
            b"* OK [PERMANENTFLAGS (\\Deleted \\Seen \\*)] Limited",
            "PERMANENTFLAGS",
            frozenset({"\\Deleted", "\\Seen", "\\*"}),
        ),
        (b"* OK [PERMANENTFLAGS ()] No permanent flags permitted", "PERMANENTFLAGS", frozenset()),
        (b"* OK [MODIFIED 7,9] Conditional STORE failed", "MODIFIED", UidSet.parse("7,9")),
        (b'* NO [BADCHARSET (UTF-8 "US-ASCII")] nope', "BADCHARSET", ("UTF-8", "US-ASCII")),
        (b"* OK [READ-WRITE] SELECT completed", "READ-WRITE", None),
        (b"* OK [URLMECH INTERNAL] x", "URLMECH", "INTERNAL"),
        (
            b"* OK [REFERRAL imap://user;AUTH=*@SERVER2/] Try",
            "REFERRAL",
            "imap://user;AUTH=*@SERVER2/",
        ),
        (b"* OK [UIDNEXT lots] odd", "UIDNEXT", "lots"),
    ]
    for resp, name, value in cases:
        r = parse_untagged(resp)
        assert isinstance(r, Ok | No), resp
        assert r.code is not None and r.code.name == name, resp
        assert r.code.value == value, resp
    r = parse_untagged(b"* OK [UIDVALIDITY 3857529045] UIDs valid")
    assert isinstance(r, Ok) and r.text == "UIDs valid" and r.code_name == "UIDVALIDITY"
    assert r.code is not None and r.code.int_value == 3857529045


def test_capability_code_in_greeting() -> None:
    r = parse_untagged(
        b"* OK [CAPABILITY IMAP4rev1 SASL-IR ID ENABLE IDLE AUTH=PLAIN] Dovecot ready."
    )
    assert isinstance(r, Ok)
    assert r.code is not None and isinstance(r.code.value, frozenset)
    assert "AUTH=PLAIN" in r.code.value
    assert r.text == "Dovecot ready."


def test_copyuid_and_appenduid() -> None:
    r = parse_tagged(b"A003 OK [COPYUID 38505 304,319:320 3956:3958] Done")
    assert r.tag == "A003" and r.ok
    code = r.result.code
    assert code is not None and isinstance(code.value, CopyUid)
    assert code.value.uidvalidity == 38505
    assert list(code.value.pairs()) == [(304, 3956), (319, 3957), (320, 3958)]
    r = parse_tagged(b"A004 OK [COPYUID 1 5,3 11:12] Moved")  # correspondence order kept
    code = r.result.code
    assert code is not None and isinstance(code.value, CopyUid)
    assert list(code.value.pairs()) == [(5, 11), (3, 12)]
    assert code.value.source == UidSet.parse("3,5")
    r = parse_tagged(b"A003 OK [APPENDUID 38505 3955] APPEND completed")
    assert r.result.code is not None
    assert r.result.code.value == AppendUid(38505, UidSet.parse("3955"))
    # A broken COPYUID keeps its raw text rather than failing the command.
    r = parse_tagged(b"A5 OK [COPYUID 1 0 x] Done")
    assert r.result.code is not None and r.result.code.value == "1 0 x"


def test_conditions_without_code_or_text() -> None:
    assert parse_untagged(b"* OK") == Ok(None, "")
    assert parse_untagged(b"* OK \r\n") == Ok(None, "")
    assert parse_untagged(b"* BYE Autologout; idle for too long") == Bye(
        None, "Autologout; idle for too long"
    )
    assert parse_untagged(b"* PREAUTH IMAP4rev1 server logged in as Smith") == PreAuth(
        None, "IMAP4rev1 server logged in as Smith"
    )
    assert parse_untagged(b"* BAD Command line too long") == Bad(None, "Command line too long")
    r = parse_untagged(b"* NO [ALERT] System shutdown in 10 minutes")
    assert (
        isinstance(r, No) and r.code_name == "ALERT" and r.text == "System shutdown in 10 minutes"
    )


def test_odd_resp_text_is_text() -> None:
    # Unterminated or odd brackets: no code, the text survives.
    assert parse_untagged(b"* OK [ALERT oops") == Ok(None, "[ALERT oops")
    assert parse_untagged(b"* OK [] empty") == Ok(None, "[] empty")
    assert parse_untagged(b"* OK [x(y)] z") == Ok(None, "[x(y)] z")
    r = parse_untagged(b"* OK [ALERT]no space")
    assert isinstance(r, Ok) and r.code_name == "ALERT" and r.text == "no space"
    r = parse_untagged(b"* OK text with \xff bytes")
    assert isinstance(r, Ok) and "\ufffd" in r.text


def test_tagged() -> None:
    r = parse_tagged(b"a001 OK [READ-WRITE] SELECT completed")
    assert r == Tagged("a001", Ok(r.result.code, "SELECT completed"))
    r = parse_tagged(b"A2 NO [TRYCREATE] Mailbox doesn't exist: Foo")
    assert not r.ok and isinstance(r.result, No) and r.result.code_name == "TRYCREATE"
    r = parse_tagged(b"A3 BAD Error in IMAP command: Unknown command")
    assert isinstance(r.result, Bad)
    assert parse_tagged(b"A4 ok").ok
    for bad in (b"A1", b"A1 MAYBE done", b"* OK", b"+ go", b"A1 OKAY"):
        with pytest.raises(ParseError):
            parse_tagged(bad)


def test_parse_response_dispatch() -> None:
    assert parse_response(b"* 3 EXISTS") == Exists(3)
    assert parse_response(b"+ idling") == Continuation(None, "idling")
    assert parse_response(b"+ ") == Continuation(None, "")
    assert parse_response(b"+") == Continuation(None, "")
    assert parse_response(b"+ eyJzdGF0dXMiOiI0MDAifQ==") == Continuation(
        None, "eyJzdGF0dXMiOiI0MDAifQ=="
    )
    r = parse_response(b"A1 OK done")
    assert isinstance(r, Tagged) and r.ok


def test_unknown_untagged_responses() -> None:
    r = parse_untagged(b'* ID ("name" "Dovecot")')
    assert r == Unknown(b'* ID ("name" "Dovecot")', "ID")
    assert parse_untagged(b'* QUOTA "" (STORAGE 10 512)') == Unknown(
        b'* QUOTA "" (STORAGE 10 512)', "QUOTA"
    )
    assert parse_untagged(b"* 3 FOO") == Unknown(b"* 3 FOO", "FOO")
    assert parse_untagged(b"*") == Unknown(b"*")
    assert parse_untagged(b"* (garbage") == Unknown(b"* (garbage")
    assert parse_untagged(b"* 12") == Unknown(b"* 12")
    with pytest.raises(ParseError):
        parse_untagged(b"A1 OK")


# --- INTERNALDATE -------------------------------------------------------------------------


def test_internaldate() -> None:
    d = parse_internaldate(b"17-Jul-1996 02:44:25 -0700")
    assert d is not None and d.isoformat() == "1996-07-17T02:44:25-07:00"
    d = parse_internaldate(" 7-Feb-2024 23:59:59 +0530")
    assert d is not None and d.isoformat() == "2024-02-07T23:59:59+05:30"
    d = parse_internaldate("07-feb-2024 00:00:00 +0000")
    assert d is not None and d.utcoffset() is not None
    for bad in (
        "31-Feb-2024 00:00:00 +0000",
        "1-Foo-2024 00:00:00 +0000",
        "",
        "garbage",
        "1-Jan-2024 25:00:00 +0000",
        "1-Jan-2024 00:00:00 +9999",
        None,
        5,
        [b"x"],
    ):
        assert parse_internaldate(bad) is None  # type: ignore[arg-type]


def test_responses_are_hashable_despite_dict_fields() -> None:
    items = {
        parse_untagged(b'* LIST (\\Sent) "/" Sent'),
        parse_untagged(b'* LIST (\\Sent) "/" Sent'),
        parse_untagged(b"* STATUS x (MESSAGES 1)"),
        parse_untagged(b"* ESEARCH COUNT 1"),
    }
    assert len(items) == 3
    assert isinstance(hash(fetch(b"* 1 FETCH (UID 1)")), int)


@pytest.mark.parametrize("data", [b'["]"', b'* OK [x "]" y', b'BODY["a]" "b"'])
def test_fast_path_agrees_when_a_bracket_is_left_open_before_a_quote(data: bytes) -> None:
    """Found by hypothesis: the fast path split '["]"' at its quotes and read ['[', b']'],
    where the reference reads a section '["]' and then an unterminated quote."""
    try:
        fast = read_values(data)
    except ParseError:
        fast = None
    try:
        slow = _read_values_slow(data)
    except ParseError:
        slow = None
    assert fast == slow
