"""The decode pass's fast path (``core/imap/rawdecode.py``) against the general decoder.

Every raw row the bulk path stores is also decoded through ``lazy.decode_raw`` in
``test_imap_lazy.py``; here the fast path is compared with the parser directly, on rows of
the usual shape built from awkward values (escapes, 8-bit literals, encoded words, group
syntax, attachments told by name or type, non-ASCII structure), and it must take the rows a
real server sends.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kittiwake.core.imap import rawdecode
from kittiwake.core.imap.decode import decoded_parts
from kittiwake.core.imap.lazy import decode_raw, extract
from kittiwake.core.imap.parser import Fetch, parse_untagged
from kittiwake.core.message.dates import parse_date
from kittiwake.core.models import Address, Envelope


def lit(data: bytes) -> bytes:
    return b"{%d}\r\n%s" % (len(data), data)


def general(raw: bytes) -> tuple[Envelope, tuple[str, ...], bool]:
    item = parse_untagged(b"* 0 FETCH (" + raw)
    assert isinstance(item, Fetch)
    return decoded_parts(item)


def row(envelope: bytes, body: bytes, refs: bytes = b"\r\n") -> bytes:
    return (
        b"ENVELOPE " + envelope + b" BODYSTRUCTURE " + body
        + b" BODY[HEADER.FIELDS (REFERENCES)] " + lit(refs) + b")"
    )  # fmt: skip


PLAIN = b'("text" "plain" ("charset" "utf-8") NIL NIL "7bit" 10 1 NIL NIL NIL NIL)'
USUAL = [
    row(
        b'("Tue, 21 Apr 2026 21:14:22 +0530" "Weekly digest [urgent]"'
        b' (("Judy Nguyen" NIL "judy.nguyen" "mail.example.net"))'
        b' (("Judy Nguyen" NIL "judy.nguyen" "mail.example.net"))'
        b' (("Judy Nguyen" NIL "judy.nguyen" "mail.example.net"))'
        b' (("Me Myself" NIL "me" "example.test")) NIL NIL NIL "<7901.01d07d2e4442@x.net>")',
        PLAIN,
    ),
    row(
        b'("Wed, 22 Apr 2026 06:49:04 +0100" '
        + lit('Grüße "aus" Köln, a long subject \\ that the server sent as a literal'.encode())
        + b' ((NIL NIL "noreply135" "example.com")) ((NIL NIL "noreply135" "example.com"))'
        b' ((NIL NIL "noreply135" "example.com")) (("Me Myself" NIL "me" "example.test"))'
        b' (("=?ISO-8859-1?Q?Bj=F6rk_Gu=F0mundsd=F3tt?= =?ISO-8859-1?Q?ir?=" NIL "u26" "x.net")'
        b'("=?UTF-8?B?w4dhxJ9yxLEgWcSxbG1heg==?=" NIL "u1" "x.org")) NIL'
        b' "<a@x>" "<7906.d2cd701df7f2@example.com>")',
        b'(("text" "plain" ("charset" "utf-8") NIL NIL "7bit" 1119 20 NIL NIL NIL NIL)'
        b'("application" "zip" ("name" "logs-978.zip") NIL NIL "base64" 3042 NIL'
        b' ("attachment" ("filename" "logs-978.zip")) NIL NIL) "mixed" ("boundary" "b") NIL NIL'
        b" NIL)",
        b"References: <7755.cc4eaa82afa2@university.example.edu>\r\n <a@x>\r\n\r\n",
    ),
]


def test_usual_rows_take_the_fast_path_and_agree() -> None:
    for raw in USUAL:
        fast = rawdecode.fast_parts(raw)
        assert fast is not None, raw
        assert fast == general(raw)
    assert rawdecode.fast_parts(USUAL[1])[2] is True  # type: ignore[index]
    assert rawdecode.fast_parts(USUAL[1])[1] == (  # type: ignore[index]
        "<7755.cc4eaa82afa2@university.example.edu>",
        "<a@x>",
    )


def test_rows_stored_from_real_responses_take_the_fast_path() -> None:
    resp = b"* 1 FETCH (UID 7 FLAGS (\\Seen) RFC822.SIZE 5 " + USUAL[1] + b"\r\n"
    stored = extract(resp[:-2])
    assert stored is not None
    assert rawdecode.fast_parts(stored[7]) is not None
    assert decode_raw(stored[7]) == general(stored[7])


def test_a_remembered_address_is_the_one_decoded() -> None:
    rawdecode._ADDRESS_MEMO.clear()
    first = rawdecode.fast_parts(USUAL[0])
    again = rawdecode.fast_parts(USUAL[0])
    assert first is not None and again == first
    assert first[0].from_ == (Address("Judy Nguyen", "judy.nguyen@mail.example.net"),)


def test_other_shapes_are_left_to_the_parser() -> None:
    assert (
        rawdecode.fast_parts(USUAL[0].replace(b" BODY[HEADER", b" MODSEQ (5) BODY[HEADER")) is None
    )
    assert rawdecode.fast_parts(b"ENVELOPE " + USUAL[0][9:].replace(b'"Me Myself"', b"nil")) is None
    assert rawdecode.fast_parts(USUAL[0][:-1]) is None


_STRINGS = [
    b'"Hello"',
    b'"=?UTF-8?B?w4lsb2RpZQ==?="',
    b'"=?utf-8?q?caf=C3=A9?= =?utf-8?q?_au_lait?="',
    b'"=?broken?x?y?="',
    b'"with \\"quotes\\" and \\\\"',
    b"NIL",
    b'""',
    b'"  padded  "',
    b'"\\"Quoted Name\\""',
    lit("Grüße".encode()),
    lit(b"caf\xe9 latin-1"),
    lit(b'has "quote" and \\ backslash'),
    lit(b"line\r\n break"),
    lit(b""),
    '"Ünïcødé"'.encode(),
]
_DATES = [b'"Tue, 28 Nov 2023 06:43:05 +0530"', b'"1 Jan 2020 10:11 EST"', b"NIL", b'"junk"']
_ADDRESS = st.builds(
    lambda n, a, m, h: b"(" + b" ".join((n, a, m, h)) + b")",
    st.sampled_from(_STRINGS),
    st.sampled_from([b"NIL", b'"route"']),
    st.sampled_from([b'"ann"', b"NIL", b'"grp"', lit("jöhn".encode())]),
    st.sampled_from([b'"x.org"', b"NIL", b'"missing_domain"', b'""']),
)
_LISTS = st.one_of(
    st.just(b"NIL"),
    st.lists(_ADDRESS, min_size=1, max_size=4).map(lambda xs: b"(" + b"".join(xs) + b")"),
)
_BODIES = [
    PLAIN,
    USUAL[1].split(b" BODYSTRUCTURE ")[1].split(b" BODY[HEADER")[0],
    b'("message" "rfc822" NIL NIL NIL "7bit" 5 (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)'
    b' ("text" "plain" NIL NIL NIL "7bit" 1 1) 1)',
    b'("text" "plain" ("NAME" "") NIL NIL "7bit" 1 1 NIL ("inline" NIL) NIL NIL)',
    b'("text" "plain" ("name" "=?utf-8?q?r=C3=A9sum=C3=A9.txt?=") NIL NIL "7bit" 1 1)',
    b'("application" "pgp-signature" ("name" "sig.asc") NIL NIL "7bit" 1 NIL'
    b' ("ATTACHMENT" NIL) NIL NIL)',
    '("text" "plain" ("charset" "ütf") NIL NIL "7bit" 1 1 NIL ("attachmenT" NIL) NIL NIL)'.encode(),
    b'("text" "plain" NIL NIL NIL "7bit" 1 1 NIL "attachment" NIL NIL)',
    b'(("text" "plain" NIL NIL NIL "7bit" 1 1)("message" "global" NIL NIL NIL "8bit" 9 NIL NIL)'
    b' "mixed")',
]
_REFS = [b"\r\n", b"", b"References: <a@b>\r\n <c@d> <a@b>\r\n\r\n", b"references:<x@y>\r\n"]


@st.composite
def raw_row(draw: st.DrawFn) -> bytes:
    fields = [
        draw(st.sampled_from(_DATES)),
        draw(st.sampled_from(_STRINGS)),
        *(draw(_LISTS) for _ in range(6)),
        draw(st.sampled_from(_STRINGS)),
        draw(st.sampled_from(_STRINGS)),
    ]
    if draw(st.booleans()):
        fields[3] = fields[4] = fields[2]  # Sender and Reply-To as From: the usual case
    envelope = b"(" + b" ".join(fields) + b")"
    return row(envelope, draw(st.sampled_from(_BODIES)), draw(st.sampled_from(_REFS)))


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw_row())
def test_generated_rows_agree_with_the_parser(raw: bytes) -> None:
    fast = rawdecode.fast_parts(raw)
    if fast is not None:
        assert fast == general(raw)


def test_most_generated_rows_take_the_fast_path() -> None:
    """The property test above would pass with a fast path that refuses everything."""
    taken = sum(
        rawdecode.fast_parts(row(b"(" + b" ".join([d, s, *[b'(("A" NIL "a" "b"))'] * 6, s, s]) + b")",
                                 body)) is not None
        for d in _DATES for s in _STRINGS for body in _BODIES
    )  # fmt: skip
    assert taken >= len(_DATES) * len(_STRINGS) * len(_BODIES) * 0.8


def test_dates_of_the_usual_form_agree_with_parse_date_also_when_remembered() -> None:
    # The day and zone of a usual Date are remembered; a second row with the same day and
    # zone (or the same day spelled another way) must still get its own time, and values
    # parse_date refuses or reads its own way (31 Feb, a 25th hour, a +2400 zone, an unknown
    # month) must go to it.
    dates = [
        "Tue, 21 Apr 2026 21:14:22 +0530",
        "Tue, 21 Apr 2026 08:01:59 +0530",
        "21 Apr 2026 08:01:59 -0530",
        "Tue, 21 apr 2026 23:59:59 -0000",
        "Sat, 31 Feb 2026 10:00:00 +0000",
        "Sat, 31 Feb 2026 11:00:00 +0000",
        "Fri, 20 Feb 2026 25:00:00 +0000",
        "Fri, 20 Feb 2026 10:00:00 +2400",
        "Fri, 20 Feb 2026 10:00:00 +2359",
        "Fri, 20 Foo 2026 10:00:00 +0100",
        "Fri, 20 Feb 2026 10:00:61 +0100",
        "1 Jan 1970 00:00:00 +0000",
    ]
    for _ in range(2):  # the second time from the remembered days and zones
        for text in dates:
            token = b'"' + text.encode() + b'"'
            assert rawdecode._date(token) == parse_date(text), text
            got = rawdecode._date(token)
            want = parse_date(text)
            assert (got.utcoffset() if got else None) == (want.utcoffset() if want else None)
