"""Unit tests of the IMAP response framer and of the hardened protocol's dispatch paths.

The protocol tests drive ``ImapProtocol`` through a fake transport: no network, no server.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import logging
import random
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kittiwake.core.errors import (
    AuthFailed,
    CommandTimeout,
    ConnectionLost,
    ProtocolError,
    ResponseTooLarge,
)
from kittiwake.core.imap.connection import ImapConnection, astring, quote
from kittiwake.core.imap.framing import ResponseFramer, literal_size
from kittiwake.core.imap.protocol import (
    NONAUTH,
    SELECTED,
    ImapProtocol,
    Literal,
    PendingCommand,
)

# --------------------------------------------------------------------------- framer


def feed_all(framer: ResponseFramer, chunks: list[bytes]) -> list[bytes]:
    out: list[bytes] = []
    for chunk in chunks:
        out.extend(framer.feed(chunk))
    return out


def test_lines_and_literals() -> None:
    f = ResponseFramer()
    stream = (
        b"* OK [CAPABILITY IMAP4rev1] hi\r\n"
        b"* 1 FETCH (BODY[] {5}\r\nhello UID 3)\r\n"
        b"* 2 FETCH (BODY[HEADER] {7}\r\na\r\nb\r\n\r BODY[TEXT] {0}\r\n UID 4)\r\n"
        b"* 3 FETCH (BINARY[1] ~{3}\r\n\x00\x01\x02)\r\n"
        b"* 4 FETCH (X {2+}\r\n{}\r\n"  # "+" form, and a literal whose content looks like a marker
        b"A1 OK done\r\n"
    )
    assert f.feed(stream) == [
        b"* OK [CAPABILITY IMAP4rev1] hi",
        b"* 1 FETCH (BODY[] {5}\r\nhello UID 3)",
        b"* 2 FETCH (BODY[HEADER] {7}\r\na\r\nb\r\n\r BODY[TEXT] {0}\r\n UID 4)",
        b"* 3 FETCH (BINARY[1] ~{3}\r\n\x00\x01\x02)",
        b"* 4 FETCH (X {2+}\r\n{}",
        b"A1 OK done",
    ]
    assert f.buffered == 0


def test_literal_content_with_crlf_and_markers_split_bytewise() -> None:
    body = b"line {12}\r\n* 9 EXISTS\r\nA1 OK fake\r\n"
    stream = b"* 1 FETCH (BODY[] {%d}\r\n%s)\r\nA1 OK real\r\n" % (len(body), body)
    f = ResponseFramer()
    out = feed_all(f, [stream[i : i + 1] for i in range(len(stream))])
    assert out == [b"* 1 FETCH (BODY[] {%d}\r\n%s)" % (len(body), body), b"A1 OK real"]


def test_cr_at_chunk_boundary() -> None:
    f = ResponseFramer()
    assert f.feed(b"* 1 EXISTS\r") == []
    assert f.feed(b"\n* 2 EXISTS\r\n") == [b"* 1 EXISTS", b"* 2 EXISTS"]


def test_tagged_and_continuation_lines_never_announce_literals() -> None:
    # resp-text has no literals (RFC 3501 grammar): "{5}" at the end is just text.
    f = ResponseFramer()
    assert f.feed(b"A1 NO too big {5}\r\n+ send {3}\r\n* 1 EXISTS\r\n") == [
        b"A1 NO too big {5}",
        b"+ send {3}",
        b"* 1 EXISTS",
    ]


def test_literal_size_helper() -> None:
    assert literal_size(b"* 1 FETCH (BODY[] {12}") == 12
    assert literal_size(b"x {12+}") == 12
    assert literal_size(b"x ~{0}") == 0
    assert literal_size(b"x {}") is None
    assert literal_size(b"x {a}") is None
    assert literal_size(b"x {12} y") is None


def test_hostile_literal_size_is_rejected_before_buffering() -> None:
    f = ResponseFramer(max_response_size=1024 * 1024)
    with pytest.raises(ResponseTooLarge):
        f.feed(b"* 1 FETCH (BODY[] {99999999999999999}\r\nAAAA")
    # Poisoned: the stream position is unknown, so every later feed fails too.
    with pytest.raises(ResponseTooLarge):
        f.feed(b"* 2 EXISTS\r\n")
    assert f.buffered < 1024 * 1024


def test_sum_of_literals_is_bounded() -> None:
    f = ResponseFramer(max_response_size=100)
    f.feed(b"* 1 FETCH (A {40}\r\n" + b"x" * 40)
    with pytest.raises(ResponseTooLarge):
        f.feed(b" B {60}\r\n")


def test_endless_line_is_bounded() -> None:
    f = ResponseFramer(max_response_size=1000)
    f.feed(b"* 1 FETCH (" + b"x" * 900)
    with pytest.raises(ResponseTooLarge):
        f.feed(b"x" * 200)


def test_reset_discards_everything() -> None:
    f = ResponseFramer()
    f.feed(b"* 1 FETCH (A {10}\r\nabc")
    assert f.in_literal
    f.reset()
    assert f.buffered == 0
    assert f.feed(b"* 1 EXISTS\r\n") == [b"* 1 EXISTS"]


# Responses built from parts; literal contents are arbitrary bytes (CRLF, braces, "*" ...).
_text = st.binary(max_size=30).map(
    lambda b: b.replace(b"\r", b"r").replace(b"\n", b"n").replace(b"}", b")")
)


@st.composite
def responses(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["untagged", "tagged", "cont"]))
    if kind == "tagged":
        return b"A" + str(draw(st.integers(0, 999))).encode() + b" OK " + draw(_text)
    if kind == "cont":
        return b"+ " + draw(_text)
    out = b"* " + draw(_text)
    for lit in draw(st.lists(st.binary(max_size=40), max_size=4)):
        marker = draw(st.sampled_from([b"{%d}", b"{%d+}", b"~{%d}"])) % len(lit)
        out += b" " + marker + b"\r\n" + lit + draw(_text)
    return out


@settings(max_examples=300, deadline=None)
@given(
    resps=st.lists(responses(), min_size=1, max_size=12),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=30),
)
def test_any_chunking_yields_identical_responses(resps: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(r + b"\r\n" for r in resps)
    points = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    chunks = [stream[a:b] for a, b in itertools.pairwise(points)]
    assert feed_all(ResponseFramer(), chunks) == resps
    assert feed_all(ResponseFramer(), [stream]) == resps


def _fetch_stream(n: int, *, literal_every: int = 0) -> tuple[bytes, int]:
    parts = []
    for i in range(1, n + 1):
        if literal_every and i % literal_every == 0:
            subj = b"Subject with {braces} and\r\nCRLF"
            parts.append(
                b'* %d FETCH (UID %d FLAGS (\\Seen) ENVELOPE ("Mon, 1 Jan 2024 00:00:00 +0000" '
                b'{%d}\r\n%s NIL NIL NIL NIL NIL NIL NIL "<m%d@x>"))\r\n'
                % (i, i, len(subj), subj, i)
            )
        else:
            parts.append(
                b'* %d FETCH (UID %d FLAGS (\\Seen) ENVELOPE ("Mon, 1 Jan 2024 00:00:00 +0000" '
                b'"subject %d" (("A" NIL "a" "x.org")) NIL NIL NIL NIL NIL NIL "<m%d@x>"))\r\n'
                % (i, i, i, i)
            )
    parts.append(b"A1 OK UID FETCH completed\r\n")
    return b"".join(parts), n + 1


def _random_chunks(data: bytes, rng: random.Random, max_chunk: int = 16384) -> list[bytes]:
    out, i = [], 0
    while i < len(data):
        step = rng.randint(1, max_chunk)
        out.append(data[i : i + step])
        i += step
    return out


def test_20000_line_fetch_in_random_chunks_is_fast() -> None:
    stream, count = _fetch_stream(20_000, literal_every=7)
    chunks = _random_chunks(stream, random.Random(1))
    start = time.perf_counter()
    out = feed_all(ResponseFramer(), chunks)
    elapsed = time.perf_counter() - start
    assert len(out) == count
    assert out[-1] == b"A1 OK UID FETCH completed"
    assert out[6].endswith(b'"<m7@x>"))') and b"{31}\r\nSubject" in out[6]
    assert elapsed < 1.0, f"framing 20,000 responses took {elapsed:.3f} s"


class _CountingBuffer(bytearray):
    """The framer's buffer, counting the bytes its CRLF searches pass over: a count, not a
    clock, so linearity is checked the same on a loaded machine."""

    scanned = 0

    def find(self, sub: Any, start: Any = 0, end: Any = None) -> int:  # type: ignore[override]
        stop = len(self) if end is None else end
        found = bytearray.find(self, sub, start, stop)
        _CountingBuffer.scanned += (found if found >= 0 else stop) - start
        return found


def _bytes_scanned(chunks: list[bytes]) -> tuple[int, list[bytes]]:
    framer = ResponseFramer()
    framer._buf = _CountingBuffer()  # type: ignore[assignment]
    _CountingBuffer.scanned = 0
    out = feed_all(framer, chunks)
    assert type(framer._buf) is _CountingBuffer  # still the counting one: the count is real
    return _CountingBuffer.scanned, out


@pytest.mark.parametrize("max_chunk", [1, 7, 4096])
def test_framing_scans_each_byte_a_bounded_number_of_times(max_chunk: int) -> None:
    stream, count = _fetch_stream(5_000, literal_every=5)
    scanned, out = _bytes_scanned(_random_chunks(stream, random.Random(2), max_chunk))
    assert len(out) == count
    # Each byte is passed over about once (a CR at a chunk's end is looked at again).
    assert scanned <= 2 * len(stream), f"{scanned} bytes scanned for {len(stream)}"


def test_one_huge_line_in_one_byte_chunks_is_scanned_once() -> None:
    stream = b"* SEARCH " + b" ".join(b"%d" % i for i in range(20_000)) + b"\r\n"
    scanned, out = _bytes_scanned([stream[i : i + 1] for i in range(len(stream))])
    assert out == [stream[:-2]]
    assert scanned <= 2 * len(stream), f"{scanned} bytes scanned for {len(stream)}"


def test_one_huge_literal_in_small_chunks_is_linear() -> None:
    body = b"x" * 4_000_000
    stream = b"* 1 FETCH (BODY[] {%d}\r\n%s)\r\n" % (len(body), body)
    start = time.perf_counter()
    out = feed_all(ResponseFramer(), [stream[i : i + 1500] for i in range(0, len(stream), 1500)])
    assert time.perf_counter() - start < 2.0
    assert len(out) == 1 and len(out[0]) == len(stream) - 2


def test_one_huge_line_in_small_chunks_is_linear() -> None:
    stream = b"* SEARCH " + b" ".join(b"%d" % i for i in range(400_000)) + b"\r\n"
    start = time.perf_counter()
    out = feed_all(ResponseFramer(), [stream[i : i + 1500] for i in range(0, len(stream), 1500)])
    assert time.perf_counter() - start < 2.0
    assert out == [stream[:-2]]


# ------------------------------------------------------------------------- quoting


def test_quote_and_astring() -> None:
    assert quote('a"b\\c') == '"a\\"b\\\\c"'
    assert astring("INBOX") == '"INBOX"'
    lit = astring("pässword")
    assert isinstance(lit, Literal) and lit.data == "pässword".encode()
    with pytest.raises(ValueError):
        quote("a\r\nb")


def test_command_rendering_and_injection_check() -> None:
    async def go() -> None:
        cmd = PendingCommand(
            "APPEND", "T1", ['"INBOX"', "(\\Seen)", Literal(b"hello"), Literal(b"bye")]
        )
        assert cmd.segments == [
            b'T1 APPEND "INBOX" (\\Seen) {5}\r\n',
            b"hello {3}\r\n",
            b"bye\r\n",
        ]
        plus = PendingCommand("APPEND", "T2", ['"INBOX"', Literal(b"hi")], non_sync=lambda n: True)
        assert plus.segments == [b'T2 APPEND "INBOX" {2+}\r\nhi\r\n']
        uid = PendingCommand("FETCH", "T3", ["1:*", "(FLAGS)"], prefix="UID")
        assert uid.segments == [b"T3 UID FETCH 1:* (FLAGS)\r\n"]
        with pytest.raises(ValueError):
            PendingCommand("SELECT", "T4", ['"INBOX"\r\nT5 DELETE "x"'])

    asyncio.run(go())


# ------------------------------------------------------------------- protocol paths


class FakeTransport(asyncio.Transport):
    def __init__(self, protocol: ImapProtocol) -> None:
        super().__init__()
        self.protocol = protocol
        self.written: list[bytes] = []
        self.closing = False

    def write(self, data: Any) -> None:
        self.written.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return 0

    def abort(self) -> None:
        self.close()

    def close(self) -> None:
        if not self.closing:
            self.closing = True
            asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)


def make_protocol(**kwargs: Any) -> tuple[ImapProtocol, FakeTransport, list[bytes]]:
    seen: list[bytes] = []
    proto = ImapProtocol(asyncio.get_running_loop(), on_untagged=seen.append, **kwargs)
    transport = FakeTransport(proto)
    proto.connection_made(transport)
    proto.data_received(b"* OK ready\r\n")
    proto.state = SELECTED
    return proto, transport, seen


async def wait_written(transport: FakeTransport, count: int) -> None:
    async with asyncio.timeout(2):
        while len(transport.written) < count:
            await asyncio.sleep(0)


async def test_every_untagged_goes_to_callback_and_running_command() -> None:
    proto, transport, seen = make_protocol()
    assert proto.greeting.result() == b"* OK ready"
    cmd = PendingCommand("FETCH", proto.new_tag(), ["1:*", "(FLAGS)"], prefix="UID")
    task = asyncio.create_task(proto.run(cmd))
    await wait_written(transport, 1)
    proto.data_received(
        b"* 1 FETCH (UID 1 FLAGS ())\r\n* 5 EXISTS\r\n* 3 FETCH (FLAGS (\\Seen))\r\n"
        b"* VANISHED 7\r\n" + cmd.tag.encode() + b" OK done\r\n"
    )
    await asyncio.wait_for(task, 2)
    expected = [
        b"* 1 FETCH (UID 1 FLAGS ())",
        b"* 5 EXISTS",
        b"* 3 FETCH (FLAGS (\\Seen))",
        b"* VANISHED 7",
    ]
    assert seen == expected
    assert cmd.untagged == expected
    assert (cmd.status, cmd.text) == ("OK", b"done")
    # Between commands, untagged data still reaches the callback.
    proto.data_received(b"* 6 EXISTS\r\n")
    assert seen[-1] == b"* 6 EXISTS"


async def test_20000_line_fetch_through_protocol() -> None:
    # Stock aioimaplib raised RecursionError here (one frame per line) and was quadratic.
    proto, transport, seen = make_protocol()
    cmd = PendingCommand("FETCH", proto.new_tag(), ["1:*", "(ENVELOPE)"], prefix="UID")
    task = asyncio.create_task(proto.run(cmd))
    await wait_written(transport, 1)
    stream, count = _fetch_stream(20_000, literal_every=3)
    stream = stream.replace(b"A1 OK", cmd.tag.encode() + b" OK")
    start = time.perf_counter()
    for chunk in _random_chunks(stream, random.Random(3), 65536):
        proto.data_received(chunk)
    await asyncio.wait_for(task, 2)
    elapsed = time.perf_counter() - start
    assert len(cmd.untagged) == count - 1 == len(seen)
    assert elapsed < 1.0


async def test_connection_lost_fails_pending_and_queued_commands_at_once() -> None:
    proto, transport, _ = make_protocol()
    first = PendingCommand("NOOP", proto.new_tag())
    second = PendingCommand("NOOP", proto.new_tag())
    t1 = asyncio.create_task(proto.run(first))
    t2 = asyncio.create_task(proto.run(second))
    await wait_written(transport, 1)
    proto.data_received(b"* BYE shutting down\r\n")
    proto.connection_lost(None)
    for task in (t1, t2):
        with pytest.raises(ConnectionLost, match="BYE: shutting down"):
            await asyncio.wait_for(task, 1)
    assert len(transport.written) == 1  # the second command never went out
    with pytest.raises(ConnectionLost):
        await proto.run(PendingCommand("NOOP", proto.new_tag()))


async def test_watchdog_times_out_silent_server_and_drops_link() -> None:
    proto, transport, _ = make_protocol()
    cmd = PendingCommand("NOOP", proto.new_tag(), timeout=0.05)
    with pytest.raises(CommandTimeout):
        await asyncio.wait_for(proto.run(cmd), 2)
    assert transport.closing


async def test_watchdog_is_reset_by_incoming_bytes() -> None:
    proto, transport, _ = make_protocol()
    cmd = PendingCommand("FETCH", proto.new_tag(), ["1:*", "(FLAGS)"], prefix="UID", timeout=0.2)
    task = asyncio.create_task(proto.run(cmd))
    await wait_written(transport, 1)
    loop = asyncio.get_running_loop()
    start = loop.time()
    for i in range(6):  # 6 x 0.1 s of trickle > the 0.2 s timeout, yet never 0.2 s silent
        await asyncio.sleep(0.1)
        proto.data_received(b"* %d FETCH (FLAGS ())\r\n" % (i + 1))
    proto.data_received(cmd.tag.encode() + b" OK done\r\n")
    await asyncio.wait_for(task, 1)
    assert loop.time() - start >= 0.5
    assert len(cmd.untagged) == 6


async def test_unknown_tag_is_a_protocol_error() -> None:
    proto, transport, _ = make_protocol()
    task = asyncio.create_task(proto.run(PendingCommand("NOOP", proto.new_tag())))
    await wait_written(transport, 1)
    proto.data_received(b"ZZZ9 OK surprise\r\n")
    with pytest.raises(ProtocolError):
        await asyncio.wait_for(task, 1)
    assert transport.closing


async def test_oversized_response_fails_command_and_drops_link() -> None:
    proto, transport, _ = make_protocol(max_response_size=1000)
    task = asyncio.create_task(proto.run(PendingCommand("NOOP", proto.new_tag())))
    await wait_written(transport, 1)
    proto.data_received(b"* 1 FETCH (BODY[] {5000000000}\r\n")
    with pytest.raises(ResponseTooLarge):
        await asyncio.wait_for(task, 1)
    assert transport.closing


async def test_synchronizing_literal_waits_for_continuation() -> None:
    proto, transport, _ = make_protocol()
    cmd = PendingCommand("APPEND", proto.new_tag(), ['"INBOX"', Literal(b"hello")])
    task = asyncio.create_task(proto.run(cmd))
    await wait_written(transport, 1)
    assert transport.written == [cmd.tag.encode() + b' APPEND "INBOX" {5}\r\n']
    proto.data_received(b"+ Ready\r\n")
    assert transport.written[-1] == b"hello\r\n"
    proto.data_received(cmd.tag.encode() + b" OK [APPENDUID 1 2] done\r\n")
    await asyncio.wait_for(task, 1)


async def test_starttls_reply_discards_injected_plaintext() -> None:
    proto, transport, seen = make_protocol()
    proto.state = NONAUTH
    cmd = PendingCommand("STARTTLS", proto.new_tag())
    cmd.starttls = True
    task = asyncio.create_task(proto.run(cmd))
    await wait_written(transport, 1)
    proto.data_received(cmd.tag.encode() + b" OK Begin TLS\r\n* CAPABILITY IMAP4rev1 INJECTED\r\n")
    proto.data_received(b"* 99 EXISTS\r\n")  # still plaintext, before the handshake
    await asyncio.wait_for(task, 1)
    assert seen == []
    assert proto.discarded_bytes > 0
    proto.begin_tls()
    proto.data_received(b"* 1 EXISTS\r\n")  # (would now arrive through TLS)
    assert seen == [b"* 1 EXISTS"]


async def test_cancelled_caller_does_not_desynchronise_tags() -> None:
    proto, transport, _ = make_protocol()
    first = PendingCommand("NOOP", proto.new_tag())
    t1 = asyncio.create_task(proto.run(first))
    await wait_written(transport, 1)
    t1.cancel()
    second = PendingCommand("NOOP", proto.new_tag())
    t2 = asyncio.create_task(proto.run(second))
    await asyncio.sleep(0)
    assert len(transport.written) == 1  # second waits: first is still on the wire
    proto.data_received(first.tag.encode() + b" OK a\r\n")
    await wait_written(transport, 2)
    proto.data_received(second.tag.encode() + b" OK b\r\n")
    await asyncio.wait_for(t2, 1)
    assert second.text == b"b"


# ----------------------------------------------------- authentication over fake transport


async def connected(caps: str) -> tuple[ImapConnection, FakeTransport]:
    """An ImapConnection whose protocol is wired to a FakeTransport (security "none")."""
    conn = ImapConnection(timeout=2)
    loop = asyncio.get_running_loop()
    holder: dict[str, FakeTransport] = {}

    async def fake_create_connection(factory: Any, *args: Any, **kwargs: Any) -> Any:
        proto = factory()
        holder["t"] = FakeTransport(proto)
        proto.connection_made(holder["t"])
        loop.call_soon(proto.data_received, f"* OK [CAPABILITY {caps}] hi\r\n".encode())
        return holder["t"], proto

    orig = loop.create_connection
    loop.create_connection = fake_create_connection  # type: ignore[method-assign,assignment]
    try:
        await conn.connect("fake", 143, "none")
    finally:
        loop.create_connection = orig  # type: ignore[method-assign]
    return conn, holder["t"]


async def test_xoauth2_error_challenge_gets_empty_reply_and_fails_fast() -> None:
    conn, transport = await connected("IMAP4rev1 SASL-IR AUTH=XOAUTH2")
    task = asyncio.create_task(conn.authenticate_oauth("u@x", "SECRET-TOKEN"))
    await wait_written(transport, 1)
    assert transport.written[0].startswith(b"AUTHENTICATE", transport.written[0].index(b" ") + 1)
    challenge = base64.b64encode(b'{"status":"401","schemes":"bearer"}')
    conn._protocol.data_received(b"+ " + challenge + b"\r\n")  # type: ignore[union-attr]
    assert transport.written[-1] == b"\r\n"
    tag = transport.written[0].split(b" ")[0]
    conn._protocol.data_received(tag + b" NO [AUTHENTICATIONFAILED] Invalid credentials\r\n")  # type: ignore[union-attr]
    with pytest.raises(AuthFailed) as info:
        await asyncio.wait_for(task, 1)
    assert "401" in info.value.detail
    assert "Invalid credentials" in info.value.message


async def test_secrets_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    conn, transport = await connected("IMAP4rev1 AUTH=PLAIN")  # no SASL-IR: "+" round trip
    task = asyncio.create_task(conn.login("bob", "hunter2-secret"))
    await wait_written(transport, 1)
    proto = conn._protocol
    assert proto is not None
    proto.data_received(b"+ \r\n")
    assert base64.b64decode(transport.written[-1].strip()) == b"\0bob\0hunter2-secret"
    tag = transport.written[0].split(b" ")[0]
    proto.data_received(tag + b" OK [CAPABILITY IMAP4rev1 IDLE] logged in\r\n")
    await asyncio.wait_for(task, 1)
    assert conn.state == "AUTH" and "IDLE" in conn.capabilities
    # aioimaplib's own logger is filtered too (defence in depth).
    logging.getLogger("aioimaplib.aioimaplib").debug("Sending : b'A1 LOGIN bob \"hunter2-secret\"'")
    secret_b64 = base64.b64encode(b"\0bob\0hunter2-secret").decode()
    for record in caplog.records:
        assert "hunter2-secret" not in record.getMessage()
        assert secret_b64 not in record.getMessage()


async def test_login_falls_back_to_literal_password_and_refuses_plaintext() -> None:
    conn, transport = await connected("IMAP4rev1 LITERAL+")
    task = asyncio.create_task(conn.login("bob", "pässwörd"))
    await wait_written(transport, 1)
    pw = "pässwörd".encode()
    assert transport.written[0].endswith(b' LOGIN "bob" {%d+}\r\n%s\r\n' % (len(pw), pw))
    tag = transport.written[0].split(b" ")[0]
    conn._protocol.data_received(tag + b" NO [AUTHENTICATIONFAILED] nope\r\n")  # type: ignore[union-attr]
    with pytest.raises(AuthFailed):
        await asyncio.wait_for(task, 1)
