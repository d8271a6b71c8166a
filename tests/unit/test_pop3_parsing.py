"""POP3 pure parts: status/listing parsing, APOP, dot-unstuffing, the CRLF-normalising hash."""

from __future__ import annotations

import hashlib
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kittiwake.core.pop3.client import (
    MAX_UIDL,
    DotUnstuffer,
    Response,
    apop_digest,
    apop_timestamp,
    parse_capa,
    parse_scan_line,
    parse_stat,
    parse_status,
    parse_uidl_line,
    parse_uidl_listing_line,
)
from kittiwake.core.pop3.sinks import _CrlfHasher, normalized_digest

# --------------------------------------------------------------------------- status lines


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"+OK", Response(True, None, "")),
        (b"+OK 2 320", Response(True, None, "2 320")),
        (b"+OK Dovecot (Debian) ready.", Response(True, None, "Dovecot (Debian) ready.")),
        (b"-ERR", Response(False, None, "")),
        (b"-ERR no such message", Response(False, None, "no such message")),
        (b"-ERR [IN-USE] Mailbox locked", Response(False, "IN-USE", "Mailbox locked")),
        (b"-ERR [auth] Authentication failed.", Response(False, "AUTH", "Authentication failed.")),
        (b"-ERR [SYS/TEMP] try later", Response(False, "SYS/TEMP", "try later")),
        (b"+OK\tdone", Response(True, None, "done")),
        (b"-ERR [unterminated", Response(False, None, "[unterminated")),
    ],
)
def test_parse_status(line: bytes, expected: Response) -> None:
    assert parse_status(line) == expected


@pytest.mark.parametrize(
    "line", [b"", b"+", b"+ challenge", b"+OKAY", b"-ERROR x", b"OK", b"* OK", b"+ok", b"."]
)
def test_parse_status_rejects(line: bytes) -> None:
    with pytest.raises(ValueError):
        parse_status(line)


@given(st.binary(max_size=200))
def test_parse_status_never_crashes(line: bytes) -> None:
    try:
        resp = parse_status(line)
    except ValueError:
        return
    assert resp.ok == line.startswith(b"+OK")


def test_stat_list_uidl() -> None:
    assert parse_stat("2 320") == (2, 320)
    assert parse_stat("0 0 extra words") == (0, 0)
    for bad in ("", "2", "x 3", "-1 3"):
        with pytest.raises(ValueError):
            parse_stat(bad)
    assert parse_scan_line(b"1 120") == (1, 120)
    assert parse_scan_line(b"7 5000 extension") == (7, 5000)
    for bad in (b"", b"1", b"0 12", b"a 1", b"1 -2"):
        with pytest.raises(ValueError):
            parse_scan_line(bad)
    assert parse_uidl_line(b"1 000000016b08e012") == (1, b"000000016b08e012")
    assert parse_uidl_line(b"3 QhdPYR:00WBw1Ph7x7") == (3, b"QhdPYR:00WBw1Ph7x7")
    assert parse_uidl_line(b"2 \xc3\xa9t\xc3\xa9") == (2, b"\xc3\xa9t\xc3\xa9")  # lenient
    for bad in (b"", b"1", b"0 abc", b"x abc", b"1 ab\x01c", b"1 ab\x7f", b"1 " + b"a" * 513):
        with pytest.raises(ValueError):
            parse_uidl_line(bad)


def test_a_hostile_unique_id_in_the_listing_gets_a_stable_stand_in() -> None:
    """One such line used to refuse the whole listing (nothing downloaded, ever)."""
    for uid in (b"nul\0here", b"K" * 1024, b"ab\x01c"):
        number, key = parse_uidl_listing_line(b"4 " + uid)
        assert number == 4 and key.startswith(b"\0sha256:")
        assert parse_uidl_listing_line(b"4 " + uid + b"\r\n") == (4, key)
    assert parse_uidl_listing_line(b"4 K") != parse_uidl_listing_line(b"4 " + b"K" * 1024)
    assert parse_uidl_listing_line(b"2 ../x") == (2, b"../x")
    for bad in (b"", b"1", b"0 ab\x01c", b"x ab\x01c"):
        with pytest.raises(ValueError):
            parse_uidl_listing_line(bad)


@given(st.binary(max_size=100))
def test_uidl_line_hostile(line: bytes) -> None:
    try:
        number, uid = parse_uidl_line(line)
    except ValueError:
        return
    assert number >= 1
    assert 1 <= len(uid) <= MAX_UIDL
    assert all(b >= 0x21 and b != 0x7F for b in uid)


def test_capa() -> None:
    caps = parse_capa(
        [b"CAPA", b"TOP", b"UIDL", b"RESP-CODES", b"PIPELINING", b"stls", b"SASL PLAIN login", b""]
    )
    assert caps["SASL"] == ("PLAIN", "LOGIN")
    assert caps["STLS"] == ()
    assert "PIPELINING" in caps


def test_apop_rfc1939_example() -> None:
    greeting = b"+OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>"
    stamp = apop_timestamp(greeting)
    assert stamp == b"<1896.697170952@dbc.mtview.ca.us>"
    assert apop_digest(stamp, "tanstaaf") == "c4c9334bac560ecc979e58001b3e22fb"
    assert apop_timestamp(b"+OK Dovecot ready.") is None
    assert apop_timestamp(b"+OK <no-at-sign>") is None


# --------------------------------------------------------------------------- dot-unstuffing


def stuff(content: bytes) -> bytes:
    """What a server sends for ``content``: dots doubled at line starts, then ``.CRLF``."""
    out = bytearray()
    at_start = True
    for b in content:
        if at_start and b == 0x2E:
            out.append(0x2E)
        out.append(b)
        at_start = b == 0x0A
    return bytes(out) + b".\r\n"


def feed_in_chunks(data: bytes, cuts: list[int]) -> tuple[bytes, DotUnstuffer]:
    unstuff = DotUnstuffer()
    out = bytearray()
    positions = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    for a, b in itertools.pairwise(positions):
        for piece in unstuff.feed(data[a:b]):
            out += piece
    return bytes(out), unstuff


def test_unstuff_examples() -> None:
    wire = b"a\r\n..b\r\n...\r\n.\r\nNEXT"
    out, u = feed_in_chunks(wire, [])
    assert out == b"a\r\n.b\r\n..\r\n"
    assert u.done and u.rest == b"NEXT"
    out, u = feed_in_chunks(b".\r\n+OK next", [])
    assert out == b"" and u.rest == b"+OK next"
    # bare LF ends are kept as they are; ".\n" terminates too
    out, u = feed_in_chunks(b"x\n..y\n.\n", [])
    assert out == b"x\n.y\n" and u.done
    # ".\rX" is not the terminator: the dot is dropped like any stuffing dot
    out, u = feed_in_chunks(b".\rX\r\n.\r\n", [])
    assert out == b"\rX\r\n" and u.done


def test_unstuff_every_split_point() -> None:
    wire = b"..\r\n.\r\x00\r\nline\r\n..\r\n\r\n.\r\nrest"
    expected, _ = feed_in_chunks(wire, [])
    for i in range(len(wire) + 1):
        for j in range(i, len(wire) + 1):
            out, u = feed_in_chunks(wire, [i, j])
            assert out == expected, (i, j)
            assert u.done and u.rest == b"rest", (i, j)


def test_unstuff_not_done_until_terminator() -> None:
    u = DotUnstuffer()
    assert b"".join(u.feed(b"abc\r\n.")) == b"abc\r\n"
    assert not u.done
    assert b"".join(u.feed(b"\r")) == b""
    assert not u.done
    assert u.feed(b"\n") == [] and u.done


lines = st.lists(
    st.binary(max_size=30)
    .map(lambda b: b.replace(b"\n", b""))
    .map(lambda b: b if b[-1:] != b"\r" else b + b"x"),
    max_size=30,
)


@settings(max_examples=400)
@given(lines, st.lists(st.integers(min_value=0), max_size=12), st.binary(max_size=20))
def test_unstuff_roundtrip_lines(body_lines: list[bytes], cuts: list[int], after: bytes) -> None:
    content = b"".join(line + b"\r\n" for line in body_lines)
    wire = stuff(content) + after
    out, u = feed_in_chunks(wire, cuts)
    assert out == content
    assert u.done
    assert u.rest == after


@settings(max_examples=400)
@given(st.binary(max_size=400), st.lists(st.integers(min_value=0), max_size=12))
def test_unstuff_roundtrip_binary(content: bytes, cuts: list[int]) -> None:
    if content and not content.endswith(b"\r\n"):
        content += b"\r\n"
    out, u = feed_in_chunks(stuff(content), cuts)
    assert out == content
    assert u.done and u.rest == b""


def test_unstuff_holds_back_at_most_two_bytes() -> None:
    u = DotUnstuffer()
    total = 0
    for _ in range(1000):
        total += sum(len(p) for p in u.feed(b"x" * 1000))
    assert total == 1_000_000  # a 1 MB line is passed through, not buffered
    assert b"".join(u.feed(b"\r\n.")) == b"\r\n"
    assert u.feed(b"\r\n") == [] and u.done


# --------------------------------------------------------------------------- CRLF hash


@settings(max_examples=300)
@given(
    st.binary(max_size=200).map(lambda b: b.replace(b"a", b"\n").replace(b"b", b"\r")),
    st.lists(st.integers(min_value=0), max_size=8),
)
def test_crlf_hash_is_chunking_independent(data: bytes, cuts: list[int]) -> None:
    whole = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    hasher = _CrlfHasher()
    positions = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    for a, b in itertools.pairwise(positions):
        hasher.update(data[a:b])
    assert hasher.hexdigest() == hashlib.sha256(whole).hexdigest()
    assert hasher.size == len(whole)
    assert normalized_digest(data) == (hasher.hexdigest(), hasher.size)
    # a server that stored the message with CRLF (or LF) line ends hashes the same
    assert normalized_digest(whole)[0] == hasher.hexdigest()
