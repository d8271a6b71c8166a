"""From parsed FETCH values to Envelope, BodyPart and MessageSummary."""

from __future__ import annotations

import base64
import contextlib
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kittiwake.core.imap.decode import (
    MAX_BODY_DEPTH,
    DecodeError,
    _value_has_attachments,
    bodystructure_from_value,
    envelope_from_value,
    has_attachments,
    header_fields_from_fetch,
    references_from_fetch,
    summary_from_fetch,
)
from kittiwake.core.imap.parser import Fetch, Value, parse_untagged, read_values
from kittiwake.core.message.charset import decode_bytes
from kittiwake.core.message.dates import parse_date
from kittiwake.core.message.headers import decode_words
from kittiwake.core.models import Address, Envelope


def value(raw: bytes) -> Value:
    vals = read_values(raw)
    assert len(vals) == 1
    return vals[0]


def lit(data: bytes) -> bytes:
    return b"{%d}\r\n%s" % (len(data), data)


# --- RFC 2047 and charsets ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoded", "text"),
    [
        ("=?UTF-8?B?w4lsb2RpZSBEdXBvbnQ=?=", "Élodie Dupont"),
        ("=?utf-8?q?Caf=C3=A9_meeting?= =?utf-8?q?_tomorrow?=", "Café meeting tomorrow"),
        ("=?ISO-8859-1?Q?Andr=E9?= Pirard", "André Pirard"),
        ("=?iso-8859-1?q?caf=E9?=", "café"),
        ("=?koi8-r?b?8NLJ18XU?=", "Привет"),
        ("=?gb2312?b?xOO6ww==?=", "你好"),  # decoded as GB18030, its superset
        ("=?utf-8?b?YQ?=", "a"),  # missing padding
        ("Re: =?utf-8?q?x?=y", "Re: xy"),
        ("=?utf-8*en?q?hi?=", "hi"),  # RFC 2231 language suffix
        ("=?x-unknown-charset?q?abc?=", "abc"),
        ("=?rot13?q?nop?=", "nop"),  # not a text codec: guessed as UTF-8
        ("=?utf-8?b?!!!?=", "=?utf-8?b?!!!?="),  # broken base64 stays as written
        ("a =?utf-8?b?!!!?= b", "a =?utf-8?b?!!!?= b"),
        ("=?us-ascii?q?caf=C3=A9?=", "café"),  # mislabelled UTF-8
        ("no words here", "no words here"),
        ("=?utf-8?q?a?=\r\n =?utf-8?q?b?=", "ab"),
        ("(=?ISO-8859-1?Q?a?= b)", "(a b)"),
    ],
)
def test_decode_words(encoded: str, text: str) -> None:
    assert decode_words(encoded) == text


def test_a_character_split_across_encoded_words_survives() -> None:
    first = base64.b64encode(b"\xe2\x82").decode()  # the first two bytes of "€"
    second = base64.b64encode(b"\xac!").decode()
    assert decode_words(f"=?utf-8?B?{first}?= =?UTF-8?B?{second}?=") == "€!"


def test_decode_bytes() -> None:
    assert decode_bytes(b"caf\xc3\xa9") == "café"
    assert decode_bytes(b"caf\xe9") == "café"
    assert decode_bytes(b"\x93quoted\x94") == "\u201cquoted\u201d"  # Windows-1252 guess
    assert decode_bytes(b"\x81") == "\x81"  # undefined in 1252: Latin-1
    assert decode_bytes(b"\xcf\xf0\xe8", "windows-1251") == "При"
    assert decode_bytes(b"\xff\xfe", "no-such-charset") == "ÿþ"
    assert decode_bytes(b"abc", "utf\x00-8") == "abc"
    assert decode_bytes(b"\xff", "ascii") == "ÿ"


@given(st.text(max_size=80), st.binary(max_size=40))
def test_decoders_never_raise(text: str, raw: bytes) -> None:
    assert isinstance(decode_words(text), str)
    assert isinstance(decode_words(f"=?{text[:10]}?b?{text[10:20]}?="), str)
    assert isinstance(decode_words(f"=?utf-8?q?{text}?="), str)
    assert isinstance(decode_bytes(raw, text[:20]), str)
    assert parse_date(text) is None or parse_date(text).tzinfo is not None  # type: ignore[union-attr]


# --- dates --------------------------------------------------------------------------------


def test_parse_date() -> None:
    d = parse_date(b"Mon, 7 Feb 1994 21:52:25 -0800")
    assert d is not None and d.isoformat() == "1994-02-07T21:52:25-08:00"
    d = parse_date(b"Tue, 1 Jul 2003 10:52:37 +0200 (CEST)")
    assert d is not None and d.isoformat() == "2003-07-01T10:52:37+02:00"
    d = parse_date(b"7 Feb 1994 21:52 GMT")  # obsolete zone, no seconds: the stdlib path
    assert d == datetime(1994, 2, 7, 21, 52, tzinfo=UTC)
    d = parse_date(b"Mon, 7 Feb 1994 21:52:25 -0000")  # "zone unknown": still aware (UTC)
    assert d is not None and d.tzinfo is not None and d.utcoffset() is not None
    d = parse_date(b"Mon, 07 Feb 94 21:52:25 EST")
    assert d is not None and d.year == 1994
    for bad in (
        b"garbage",
        b"",
        None,
        b"Mon, 32 Feb 1994 21:52:25 -0800",
        b"Thu, 01 Jan 99999 00:00:00 +0000",
        b"x" * 10_000,
        [b"list"],
    ):
        assert parse_date(bad) is None


# --- ENVELOPE -----------------------------------------------------------------------------


def test_envelope_rfc3501_example() -> None:
    env = envelope_from_value(
        value(
            b'("Wed, 17 Jul 1996 02:23:25 -0700 (PDT)" "IMAP4rev1 WG mtg summary and minutes" '
            b'(("Terry Gray" NIL "gray" "cac.washington.edu")) '
            b'(("Terry Gray" NIL "gray" "cac.washington.edu")) '
            b'(("Terry Gray" NIL "gray" "cac.washington.edu")) '
            b'((NIL NIL "imap" "cac.washington.edu")) '
            b'((NIL NIL "minutes" "CNRI.Reston.VA.US")("John Klensin" NIL "KLENSIN" "MIT.EDU")) '
            b'NIL NIL "<B27397-0100000@cac.washington.edu>")'
        )
    )
    terry = Address("Terry Gray", "gray@cac.washington.edu")
    assert env == Envelope(
        date=datetime.fromisoformat("1996-07-17T02:23:25-07:00"),
        subject="IMAP4rev1 WG mtg summary and minutes",
        from_=(terry,),
        sender=(terry,),
        reply_to=(terry,),
        to=(Address("", "imap@cac.washington.edu"),),
        cc=(Address("", "minutes@CNRI.Reston.VA.US"), Address("John Klensin", "KLENSIN@MIT.EDU")),
        bcc=(),
        in_reply_to=None,
        message_id="<B27397-0100000@cac.washington.edu>",
    )


def test_envelope_exchange_all_nil() -> None:
    assert envelope_from_value(value(b"(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)")) == Envelope()
    assert envelope_from_value(value(b'("" "" NIL NIL NIL NIL NIL NIL "" "")')) == Envelope()
    # Too short (a broken server): padded with NIL.
    assert envelope_from_value(value(b'(NIL "Hi")')).subject == "Hi"
    with pytest.raises(DecodeError):
        envelope_from_value(None)
    with pytest.raises(DecodeError):
        envelope_from_value(b"not a list")


def test_envelope_encoded_words_and_raw_8bit() -> None:
    env = envelope_from_value(
        value(
            b'(NIL "=?UTF-8?Q?R=C3=A9union?= =?UTF-8?Q?_demain?=" '
            b'(("=?ISO-8859-1?Q?Andr=E9?= Pirard" NIL "andre" "example.org")) NIL NIL '
            b'(("J\xc3\xbcrgen M\xc3\xbcller" NIL "jm" "example.de")("Fran\xe7ois" NIL "f" "x.fr")) '
            b"NIL NIL NIL NIL)"
        )
    )
    assert env.subject == "Réunion demain"
    assert env.from_ == (Address("André Pirard", "andre@example.org"),)
    assert env.to == (Address("Jürgen Müller", "jm@example.de"), Address("François", "f@x.fr"))


def test_envelope_literal_subject_with_folding() -> None:
    subject = b"A long subject\r\n that was folded\r\n\tagain"
    env = envelope_from_value(value(b"(NIL " + lit(subject) + b" NIL NIL NIL NIL NIL NIL NIL NIL)"))
    assert env.subject == "A long subject that was folded\tagain"


def test_envelope_group_syntax_is_flattened() -> None:
    env = envelope_from_value(
        value(
            b"(NIL NIL NIL NIL NIL "
            b'((NIL NIL "undisclosed-recipients" NIL)(NIL NIL NIL NIL)) '
            b'((NIL NIL "team" NIL)("Ann" NIL "ann" "x.org")("Bob" NIL "bob" "x.org")'
            b'(NIL NIL NIL NIL)("Cy" NIL "cy" "y.org")) '
            b'((NIL NIL "root" NIL)) NIL NIL)'
        )
    )
    assert env.to == ()
    assert env.cc == (
        Address("Ann", "ann@x.org"),
        Address("Bob", "bob@x.org"),
        Address("Cy", "cy@y.org"),
    )
    # A "group start" that never ends is a bare local part from a lax server.
    assert env.bcc == (Address("", "root"),)


def test_envelope_odd_addresses() -> None:
    env = envelope_from_value(
        value(
            b"(NIL NIL "
            b'(("\\"Quoted Name\\"" NIL "q" "x.org")("Exch" NIL "user" ".MISSING-HOST-NAME.")'
            b'("junk") NIL ((x)) (NIL NIL NIL "host.only")) '
            b"NIL NIL NIL NIL NIL NIL NIL)"
        )
    )
    assert env.from_ == (
        Address("Quoted Name", "q@x.org"),
        Address("Exch", "user"),
        Address("", "@host.only"),
    )
    assert env.sender == ()  # NIL sender is not From (only equal values are shared)


def test_envelope_ids() -> None:
    env = envelope_from_value(
        value(b'(NIL NIL NIL NIL NIL NIL NIL NIL "<a@b> <c@d>" " <id@host> ")')
    )
    assert env.in_reply_to == "<a@b> <c@d>"
    assert env.message_id == "<id@host>"


# --- BODYSTRUCTURE ------------------------------------------------------------------------


def test_single_part_is_section_1() -> None:
    part = bodystructure_from_value(
        value(b'("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 3028 92 NIL NIL NIL)')
    )
    assert part.section == "1"
    assert part.content_type == "text/plain"
    assert part.params == {"charset": "US-ASCII"}
    assert part.encoding == "7bit" and part.size == 3028
    assert not part.children and not part.has_attachments


def test_multipart_sections_nested() -> None:
    part = bodystructure_from_value(
        value(
            b'((("text" "plain" ("charset" "utf-8") NIL NIL "quoted-printable" 10 1 NIL NIL NIL '
            b'NIL)("text" "html" ("charset" "utf-8") NIL NIL "quoted-printable" 20 1 NIL NIL NIL '
            b'NIL) "alternative" ("boundary" "b2") NIL NIL NIL)("image" "jpeg" ("name" "cat.jpg") '
            b'"<cat@x>" "A cat" "base64" 3000 NIL ("inline" ("filename" "cat.jpg")) NIL NIL) '
            b'"related" ("boundary" "b1" "type" "multipart/alternative") NIL NIL NIL)'
        )
    )
    assert [(p.section, p.content_type) for p in part.walk()] == [
        ("", "multipart/related"),
        ("1", "multipart/alternative"),
        ("1.1", "text/plain"),
        ("1.2", "text/html"),
        ("2", "image/jpeg"),
    ]
    img = part.children[1]
    assert img.content_id == "<cat@x>" and img.description == "A cat"
    assert img.disposition == "inline" and img.filename == "cat.jpg"
    assert part.params["boundary"] == "b1"


def test_message_rfc822_nested_numbering() -> None:
    part = bodystructure_from_value(
        value(
            b'(("text" "plain" ("charset" "utf-8") NIL NIL "7bit" 10 1 NIL NIL NIL NIL)'
            b'("message" "rfc822" NIL NIL NIL "7bit" 500 (NIL "inner" NIL NIL NIL NIL NIL NIL '
            b'NIL NIL) (("text" "plain" NIL NIL NIL "7bit" 5 1)("image" "png" ("name" "a.png") '
            b'NIL NIL "base64" 100) "mixed") 20 NIL ("attachment" ("filename" "fwd.eml")) NIL '
            b'NIL)("message" "rfc822" NIL NIL NIL "7bit" 50 (NIL NIL NIL NIL NIL NIL NIL NIL NIL '
            b'NIL) ("text" "plain" NIL NIL NIL "7bit" 5 1) 3) "mixed")'
        )
    )
    assert [(p.section, p.content_type) for p in part.walk()] == [
        ("", "multipart/mixed"),
        ("1", "text/plain"),
        ("2", "message/rfc822"),
        ("2", "multipart/mixed"),
        ("2.1", "text/plain"),
        ("2.2", "image/png"),
        ("3", "message/rfc822"),
        ("3.1", "text/plain"),
    ]
    assert part.children[1].filename == "fwd.eml"
    assert has_attachments(part)


def test_rfc2231_and_rfc2047_filenames() -> None:
    part = bodystructure_from_value(
        value(
            b'(("application" "pdf" ("name*" "utf-8\'\'%E2%82%AC%20bill.pdf") NIL NIL "base64" '
            b'100 NIL ("attachment" ("filename*0*" "utf-8\'en\'R%C3%A9sum" "filename*1" "e.pdf"))'
            b' NIL NIL)("application" "octet-stream" ("name" "=?UTF-8?B?w6lk?=.bin") NIL NIL '
            b'"base64" 10 NIL NIL NIL)("text" "plain" NIL NIL NIL "7bit" 1 1 NIL ("attachment" '
            b'("filename*1" "two.txt" "filename*0" "part-" "filename" "plain.txt")) NIL)'
            b'("application" "x-y" NIL NIL NIL "base64" 1 NIL ("attachment" ("filename*" '
            b'"iso-8859-1\'\'caf%E9.txt")) NIL) "mixed")'
        )
    )
    a, b, c, d = part.children
    assert a.params["name"] == "€ bill.pdf"
    assert a.filename == "Résume.pdf"  # disposition filename wins over the type's name
    assert b.filename == "éd.bin"
    assert c.filename == "part-two.txt"  # continuations ordered by index, extended wins
    assert d.filename == "café.txt"


def test_lax_servers() -> None:
    # Non-extensible BODY (no extension data at all).
    part = bodystructure_from_value(value(b'("text" "plain" NIL NIL NIL "7bit" 3 1)'))
    assert part.section == "1" and part.disposition is None
    # Disposition without the md5 before it; a disposition sent as a bare string.
    part = bodystructure_from_value(
        value(
            b'(("application" "pdf" NIL NIL NIL "base64" 9 ("attachment" ("filename" "x.pdf")))'
            b'("application" "zip" NIL NIL NIL "base64" 9 NIL "ATTACHMENT") "MIXED")'
        )
    )
    assert part.subtype == "mixed"
    assert part.children[0].filename == "x.pdf" and part.children[0].is_attachment
    assert part.children[1].disposition == "attachment"
    # NIL type, string size, missing fields.
    part = bodystructure_from_value(value(b'(NIL NIL NIL NIL NIL NIL "12")'))
    assert part.content_type == "text/plain" and part.size == 12
    part = bodystructure_from_value(value(b'("image" "gif")'))
    assert part.content_type == "image/gif" and part.size == 0
    # A multipart without subtype.
    part = bodystructure_from_value(value(b'(("text" "plain" NIL NIL NIL "7bit" 1 1))'))
    assert part.content_type == "multipart/mixed"


def test_signatures_are_not_attachments() -> None:
    signed = value(
        b'(("text" "plain" ("charset" "utf-8") NIL NIL "7bit" 10 1 NIL NIL NIL NIL)'
        b'("application" "pgp-signature" ("name" "signature.asc") NIL "OpenPGP digital signature"'
        b' "7bit" 833 NIL ("attachment" ("filename" "signature.asc")) NIL NIL) "signed" '
        b'("micalg" "pgp-sha256" "protocol" "application/pgp-signature" "boundary" "x") NIL NIL '
        b"NIL)"
    )
    assert not has_attachments(bodystructure_from_value(signed))
    assert not _value_has_attachments(signed)


@pytest.mark.parametrize(
    "bad", [None, b"text", [], [[]], [b"text", b"plain", None, None, None, None, 1, 1, None, 5]]
)
def test_malformed_bodystructure(bad: Value) -> None:
    if bad == [b"text", b"plain", None, None, None, None, 1, 1, None, 5]:
        bodystructure_from_value(bad)  # odd extension data is ignored, not an error
        return
    with pytest.raises(DecodeError):
        bodystructure_from_value(bad)


def test_deep_bodystructure_ends_in_one_raw_part() -> None:
    """A message nested deeper than MAX_BODY_DEPTH (Dovecot sends 100 levels of a message
    nested 1,000 deep) is listed with its paperclip: the rest is one raw part, as the
    reader shows it, not an error that drops the paperclip."""
    leaf = b'("text" "plain" NIL NIL NIL "7bit" 1 1)'
    ok = value(b"(" * 60 + leaf + b' "mixed")' * 60)
    assert bodystructure_from_value(ok).walk()[-1].section == ".".join(["1"] * 60)
    assert not _value_has_attachments(ok)
    for levels in (MAX_BODY_DEPTH + 5, 250):
        deep = value(b"(" * levels + leaf + b' "mixed")' * levels)
        tree = bodystructure_from_value(deep)
        last = tree.walk()[-1]
        assert last.content_type == "application/octet-stream" and last.is_attachment
        assert len(tree.walk()) == MAX_BODY_DEPTH + 2  # depths 0 .. MAX_BODY_DEPTH + 1
        assert _value_has_attachments(deep) and has_attachments(tree)
    envelope = b"(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"
    chain = leaf
    for _ in range(120):  # message/rfc822 inside message/rfc822 ...
        chain = b'("message" "rfc822" NIL NIL NIL "7bit" 9 ' + envelope + b" " + chain + b" 1)"
    assert _value_has_attachments(value(chain))
    assert bodystructure_from_value(value(chain)).walk()[-1].content_type == (
        "application/octet-stream"
    )


_STR = st.sampled_from(
    [
        None,
        b"text",
        b"plain",
        b"message",
        b"rfc822",
        b"application",
        b"pgp-signature",
        b"attachment",
        b"ATTACHMENT",
        b"inline",
        b"name",
        b"filename",
        b"FILENAME*",
        b"filename*0*",
        b"utf-8''%41",
        b"",
        b" ",
        b"x.pdf",
        b"=?utf-8?q?=41?=",
        "atom",
        0,
        7,
    ]
)
_TREE = st.recursive(_STR, lambda children: st.lists(children, max_size=12), max_leaves=60)


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(_TREE)
def test_fast_attachment_check_matches_the_tree(v: Value) -> None:
    try:
        expected: bool | None = has_attachments(bodystructure_from_value(v))
    except DecodeError:
        expected = None
    try:
        got: bool | None = _value_has_attachments(v)
    except DecodeError:
        got = None
    assert got == expected


@settings(max_examples=300)
@given(_TREE)
def test_decoders_raise_only_decode_error(v: Value) -> None:
    with contextlib.suppress(DecodeError):
        envelope_from_value(v)
    with contextlib.suppress(DecodeError):
        bodystructure_from_value(v)


# --- summaries ----------------------------------------------------------------------------


def summary_fetch(extra: bytes = b"") -> Fetch:
    r = parse_untagged(
        b'* 1 FETCH (UID 7 FLAGS (\\Seen \\Flagged) INTERNALDATE " 2-Mar-2024 10:00:00 +0000" '
        b'RFC822.SIZE 2048 MODSEQ (99) ENVELOPE ("Sat, 2 Mar 2024 09:59:00 +0000" "Hello" '
        b'(("Ann" NIL "ann" "x.org")) NIL NIL NIL NIL NIL "<p@x>" "<m@x>") '
        b'BODYSTRUCTURE (("text" "plain" NIL NIL NIL "7bit" 1 1)("application" "pdf" NIL NIL NIL'
        b' "base64" 9 NIL ("attachment" ("filename" "a.pdf")) NIL NIL) "mixed")' + extra + b")"
    )
    assert isinstance(r, Fetch)
    return r


def test_summary_from_fetch() -> None:
    refs = b"References: <r1@x>\r\n\t<r2@x> <r1@x>\r\n  <broken id@x>\r\n\r\n"
    s = summary_from_fetch(summary_fetch(b" BODY[HEADER.FIELDS (REFERENCES)] " + lit(refs)))
    assert s.uid == 7
    assert s.flags == frozenset({"\\Seen", "\\Flagged"})
    assert s.internal_date == datetime(2024, 3, 2, 10, tzinfo=UTC)
    assert s.size == 2048 and s.modseq == 99
    assert s.envelope.subject == "Hello"
    assert s.envelope.from_ == (Address("Ann", "ann@x.org"),)
    assert s.has_attachments
    assert s.references == ("<r1@x>", "<r2@x>", "<brokenid@x>")


def test_summary_degrades_gracefully() -> None:
    s = summary_from_fetch(Fetch(1, {"UID": 5, "ENVELOPE": b"junk", "BODYSTRUCTURE": [[]]}))
    assert s.envelope == Envelope() and not s.has_attachments
    assert s.flags == frozenset() and s.size == 0 and s.internal_date is None
    with pytest.raises(DecodeError):
        summary_from_fetch(Fetch(1, {"FLAGS": []}))


def test_references_header_variants() -> None:
    f = Fetch(
        1,
        {
            'BODY[HEADER.FIELDS ("REFERENCES")]': b"references:<a@b><c@d>\r\nX: <no@no>\r\n\r\n",
        },
    )
    assert references_from_fetch(f) == ("<a@b>", "<c@d>")
    assert references_from_fetch(Fetch(1, {"BODY[HEADER.FIELDS (REFERENCES)]": b"\r\n"})) == ()
    assert references_from_fetch(Fetch(1, {"BODY[HEADER.FIELDS (REFERENCES)]": None})) == ()
    assert references_from_fetch(Fetch(1, {})) == ()


def test_header_fields_from_fetch_takes_its_own_item_only() -> None:
    """The extra fields (Autocrypt's) come in an item of their own beside the summary's
    REFERENCES; a folded value is unfolded, and a server may quote the field names."""
    items = {
        "BODY[HEADER.FIELDS (REFERENCES)]": b"References: <a@b>\r\n\r\n",
        'BODY[HEADER.FIELDS ("FROM" "AUTOCRYPT")]': (
            b"From: Ann <ann@example.org>\r\nAutocrypt: addr=ann@example.org;\r\n"
            b" keydata=QUJD\r\n RUY=\r\n\r\n"
        ),
    }
    assert header_fields_from_fetch(Fetch(1, items), ["From", "Autocrypt"]) == (
        ("From", "Ann <ann@example.org>"),
        ("Autocrypt", "addr=ann@example.org; keydata=QUJD RUY="),
    )
    assert header_fields_from_fetch(Fetch(1, items), ["Autocrypt"]) == ()
    assert header_fields_from_fetch(Fetch(1, {}), ["From", "Autocrypt"]) == ()
