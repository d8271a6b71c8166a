"""Fuzz targets for Kittiwake's parsers of hostile input, shared by the quick form
(tests/faults/test_fuzz_parsers.py, hypothesis, in CI) and the long form
(benches/fuzz_parsers.py: atheris when it is installed, else hypothesis, timed).

A target takes bytes and returns normally when the code under test either parsed them or
refused them with its documented error; anything else escaping is a crash. Targets also check
what must hold of any output (no terminal control left after ``core.sanitize``).
"""

from __future__ import annotations

import contextlib
import itertools
import re
from collections.abc import Callable
from pathlib import Path

from kittiwake.core.errors import ProtocolError
from kittiwake.core.imap.decode import (
    bodystructure_from_value,
    envelope_from_value,
    summary_from_fetch,
)
from kittiwake.core.imap.framing import ResponseFramer
from kittiwake.core.imap.lazy import decode_raw, extract
from kittiwake.core.imap.parseerror import ParseError
from kittiwake.core.imap.parser import Fetch, parse_response
from kittiwake.core.message import utf7
from kittiwake.core.message.body import analyse
from kittiwake.core.message.charset import decode_bytes, from_8bit
from kittiwake.core.message.headers import addresses, decode_words, header_text
from kittiwake.core.message.html import html_to_text
from kittiwake.core.message.mime import parse_message, safe_filename
from kittiwake.core.pop3.client import (
    DotUnstuffer,
    parse_capa,
    parse_scan_line,
    parse_status,
    parse_uidl_line,
)
from kittiwake.core.sanitize import clean_line, clean_text

CORPUS = Path(__file__).parent / "corpus"
#: What may reach a terminal cell: no C0/C1 control (tab and newline aside), no escape, no
#: bidi control, no line or paragraph separator.
DANGEROUS = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c\u2028\u2029]"
)
FRAME_LIMIT = 1 << 20


def assert_clean(text: str) -> None:
    for out in (clean_text(text), clean_line(text)):
        found = DANGEROUS.search(out)
        assert found is None, f"{found.group()!r} survives sanitizing in {out[:80]!r}"


def imap_responses(data: bytes, chunks: int = 1) -> tuple[list[bytes], bool]:
    """``data`` framed as the connection frames it, fed in ``chunks`` pieces, and whether a
    framing refusal (ProtocolError: oversized, absurd literal) ended the stream (the
    connection then drops, losing the responses completed in that same piece)."""
    framer = ResponseFramer(max_response_size=FRAME_LIMIT)
    step = max(1, len(data) // max(1, chunks))
    out: list[bytes] = []
    try:
        for at in range(0, len(data), step):
            out += framer.feed(data[at : at + step])
    except ProtocolError:
        return out, True
    return out, False


def imap(data: bytes) -> None:
    """Framing, the response parser, ENVELOPE/BODYSTRUCTURE decoding and the lazy fast path
    (which must agree with the full decoder or step aside)."""
    for resp in imap_responses(data)[0]:
        try:
            item = parse_response(resp)
        except ParseError:
            continue
        if not isinstance(item, Fetch):
            continue
        with contextlib.suppress(ParseError):  # DecodeError included
            summary_from_fetch(item)
        with contextlib.suppress(ParseError):
            envelope_from_value(item.envelope)
        with contextlib.suppress(ParseError):
            bodystructure_from_value(item.bodystructure)
        row = extract(resp)
        if row is not None:
            decode_raw(row[-1])


def imap_chunking(data: bytes) -> None:
    """Every split of the byte stream frames (and so parses) to the same responses; a stream
    refused somewhere is refused whatever the split, with the same responses before it."""
    whole, refused = imap_responses(data)
    for chunks in (2, 3, 7, len(data) or 1):
        split, split_refused = imap_responses(data, chunks)
        assert split_refused == refused, chunks
        if refused:  # those completed in the refused piece never reach anyone
            assert whole == split[: len(whole)], chunks
        else:
            assert split == whole, chunks


def mime(data: bytes) -> None:
    """A whole message as the reader parses it: never raises; what it shows is sanitizable."""
    parsed = parse_message(data)
    assert_clean(parsed.subject)
    for name, value in parsed.headers[:50]:
        assert_clean(name + value)
    for att in parsed.attachments[:50]:
        assert DANGEROUS.search(att.filename) is None and "/" not in att.filename
    if parsed.text is not None:
        analyse(parsed.text[:20000])
    if parsed.html is not None:
        html_to_text(parsed.html[:20000])


def words(data: bytes) -> None:
    """RFC 2047 words, header text, addresses, RFC 2231-ish file names, modified UTF-7."""
    text = data.decode("utf-8", "surrogateescape")  # 8-bit bytes as ``email`` leaves them
    # decode_words is only ever handed text without surrogates (from_8bit undoes them first).
    for out in (decode_words(from_8bit(text)), header_text(text), decode_bytes(data, "utf-8")):
        assert isinstance(out, str)
        assert_clean(out)
    for addr in addresses(text):
        assert_clean(addr.name + addr.addr)
    name = safe_filename(text)
    assert DANGEROUS.search(name) is None and "/" not in name and name not in ("", ".", "..")
    assert isinstance(utf7.decode(data), str)
    with contextlib.suppress(ValueError):
        utf7.decode_strict(text)


def pop3(data: bytes) -> None:
    """Status, LIST/UIDL lines, CAPA, and multi-line unstuffing in any chunking."""
    lines = data.split(b"\r\n")
    for line in lines[:200]:
        for parse in (parse_status, parse_scan_line, parse_uidl_line):
            with contextlib.suppress(ValueError):
                parse(line)
    parse_capa(lines[:200])
    whole = DotUnstuffer()
    expected = b"".join(whole.feed(data))
    for step in (1, 2, 3, 5, 64):
        unstuff = DotUnstuffer()
        got = bytearray()
        for at in range(0, len(data), step):
            for piece in unstuff.feed(data[at : at + step]):
                got += piece
        assert bytes(got) == expected, step
        assert unstuff.done == whole.done and bytes(unstuff.rest) == bytes(whole.rest), step


TARGETS: dict[str, Callable[[bytes], None]] = {
    "imap": imap,
    "imap_chunking": imap_chunking,
    "mime": mime,
    "words": words,
    "pop3": pop3,
}
#: Which seed folder feeds which target.
SEEDS = {
    "imap": "imap",
    "imap_chunking": "imap",
    "mime": "mime",
    "words": "words",
    "pop3": "pop3",
}


def seeds(target: str) -> list[bytes]:
    """The kept corpus for ``target`` (tests/faults/corpus/<kind>/), sorted by name."""
    folder = CORPUS / SEEDS[target]
    return [p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()]


def splices(seed: bytes) -> list[bytes]:
    """A few deterministic hostile variants of a seed (cut at every eighth of its length,
    doubled, a literal announced but short) for the quick form's explicit examples."""
    cuts = [seed[: len(seed) * i // 8] for i in range(1, 8)]
    tricks = [seed + seed, seed.replace(b"\r\n", b"\n"), seed.replace(b"(", b"((", 50)]
    return list(itertools.chain(cuts, tricks))
