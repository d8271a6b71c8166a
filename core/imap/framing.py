"""Incremental, linear framing of the IMAP server byte stream into complete responses.

Pure: no I/O, no asyncio. ``ResponseFramer.feed(chunk)`` takes whatever the transport
delivered and returns the responses completed by it, each exactly once, as bytes in wire
form with literals inlined and without the final CRLF::

    b'* 1 FETCH (BODY[] {5}\\r\\nhello UID 3)'

which is the input ``kittiwake.core.imap.parser.parse_untagged`` expects.

Why this exists: aioimaplib 2.0.3 frames recursively (one stack frame per line, so a
~2,000-line FETCH raised RecursionError inside ``data_received``) and re-scans every line of
a FETCH response on each new line (``FetchCommand.wait_data``: quadratic). This framer is a
loop over the buffer: every byte is scanned for CRLF at most once (the scan position is kept
across chunks) and copied a bounded number of times, so the cost is O(total bytes) whatever
the chunking.

Literals: a line whose tail is ``{n}``, ``{n+}`` or ``~{n}`` (literal8) announces ``n``
bytes that follow the CRLF verbatim and belong to the same response; the response continues
with the next line after them. Only untagged responses (``* ...``) are scanned for literals:
by the RFC 3501/9051 grammar, tagged status responses and continuation requests carry only
``resp-text``, which never has literals, so a server text ending in ``{5}`` cannot desync us
there.

Bounds: every response (first line through its last literal and line) is limited to
``max_response_size`` bytes. An announced literal that would exceed it is rejected when the
announcement is read, before any of it is buffered, with ``ResponseTooLarge``; so is a line
that grows past the bound without a CRLF. After an error the framer is poisoned: the stream
position is unknown, so the connection must be dropped.
"""

from __future__ import annotations

from kittiwake.core.errors import ProtocolError, ResponseTooLarge

CRLF = b"\r\n"

#: Default bound for one response (line plus literals): large enough for any real message
#: body fetched whole, small enough that a hostile ``{99999999999}`` cannot exhaust memory.
DEFAULT_MAX_RESPONSE_SIZE = 256 * 1024 * 1024

# A literal announcement is at most "~{" + 20 digits + "+}" long; look at no more of the tail.
_MAX_MARKER_DIGITS = 20


def literal_size(line: bytes | bytearray) -> int | None:
    """The size announced by a trailing ``{n}`` / ``{n+}`` / ``~{n}`` on ``line``, else None.

    Raises ProtocolError for an announcement with an absurd number of digits.
    """
    if not line.endswith(b"}"):
        return None
    start = line.rfind(b"{", max(0, len(line) - _MAX_MARKER_DIGITS - 8))
    if start < 0:
        return None
    digits = line[start + 1 : -1]
    if digits.endswith(b"+"):
        digits = digits[:-1]
    if not digits or not digits.isdigit():
        return None
    if len(digits) > _MAX_MARKER_DIGITS:  # pragma: no cover - excluded by the rfind window
        raise ProtocolError("The server announced a literal of absurd size.")
    return int(digits)


class ResponseFramer:
    """Splits a server byte stream into complete responses; see the module docstring."""

    __slots__ = (
        "_buf",
        "_error",
        "_literal_left",
        "_max",
        "_parts",
        "_pos",
        "_scan",
        "_size",
        "_untagged",
    )

    def __init__(self, max_response_size: int = DEFAULT_MAX_RESPONSE_SIZE) -> None:
        if max_response_size < 16:
            raise ValueError("max_response_size is too small")
        self._max = max_response_size
        self._buf = bytearray()
        self._pos = 0  # start of unconsumed bytes in _buf
        self._scan = 0  # CRLF search restarts here (bytes before it hold no CRLF)
        self._parts: list[bytes] = []  # pieces of the response being assembled
        self._size = 0  # bytes in _parts
        self._literal_left = 0  # literal bytes still expected
        self._untagged = False  # the response being assembled starts with "*"
        self._error: ProtocolError | None = None

    @property
    def max_response_size(self) -> int:
        return self._max

    @property
    def buffered(self) -> int:
        """Bytes received but not yet part of an emitted response."""
        return self._size + len(self._buf) - self._pos

    @property
    def in_literal(self) -> bool:
        return self._literal_left > 0

    def reset(self) -> None:
        """Forget everything buffered (used after STARTTLS: pre-handshake bytes are untrusted)."""
        self._buf = bytearray()
        self._pos = self._scan = 0
        self._parts = []
        self._size = 0
        self._literal_left = 0
        self._untagged = False
        self._error = None

    def feed(self, data: bytes) -> list[bytes]:
        """Add ``data``; return the responses it completes, in order."""
        if self._error is not None:
            raise self._error
        out: list[bytes] = []
        buf = self._buf
        buf += data
        # The state lives in locals while the loop runs (a first sync frames ~100,000
        # responses; attribute access was about a tenth of the framer's time).
        pos = self._pos
        scan = self._scan
        parts = self._parts
        size = self._size
        literal_left = self._literal_left
        limit = self._max
        find = buf.find
        emit = out.append
        try:
            while True:
                if literal_left:
                    avail = len(buf) - pos
                    if not avail:
                        break
                    take = avail if avail < literal_left else literal_left
                    parts.append(bytes(buf[pos : pos + take]))
                    size += take
                    pos += take
                    literal_left -= take
                    continue
                end = find(CRLF, scan if scan > pos else pos)
                if end < 0:
                    # Remember where to resume (a CR at the very end may pair with the next LF).
                    scan = max(pos, len(buf) - 1)
                    if size + len(buf) - pos > limit:
                        raise ResponseTooLarge(
                            f"The server sent a response line longer than {limit} bytes."
                        )
                    break
                if not parts:
                    # A response starting here: framed in place while it is all in the buffer
                    # (one slice, no pieces to join; the usual case), else in pieces below.
                    start = pos
                    self._untagged = untagged = buf.startswith(b"*", start)
                    n = None
                    if untagged and buf.endswith(b"}", start, end):
                        n = literal_size(bytes(buf[max(start, end - 28) : end]))
                    while n is not None:
                        total = end + 2 + n - start
                        if total > limit:
                            raise ResponseTooLarge(
                                f"The server announced a {n}-byte literal; responses are "
                                f"limited to {limit} bytes."
                            )
                        lit_end = end + 2 + n
                        if lit_end > len(buf):  # the literal goes on in the next data
                            parts.append(bytes(buf[start:]))
                            size = len(buf) - start
                            literal_left = lit_end - len(buf)
                            pos = len(buf)
                            break
                        end = find(CRLF, lit_end)
                        if end < 0:  # the line after the literal goes on in the next data
                            parts.append(bytes(buf[start:lit_end]))
                            size = lit_end - start
                            pos = scan = lit_end
                            break
                        n = None
                        if buf.endswith(b"}", lit_end, end):
                            n = literal_size(bytes(buf[max(lit_end, end - 28) : end]))
                    else:
                        if end - start > limit:
                            raise ResponseTooLarge(
                                f"The server sent a response larger than {limit} bytes."
                            )
                        emit(bytes(buf[start:end]))
                        pos = end + 2
                    continue
                line = bytes(buf[pos:end])
                pos = end + 2
                n = literal_size(line)
                total = size + len(line)
                if n is None:
                    if total > limit:
                        raise ResponseTooLarge(
                            f"The server sent a response larger than {limit} bytes."
                        )
                    parts.append(line)
                    emit(b"".join(parts))
                    parts = []
                    size = 0
                    continue
                total += 2 + n
                if total > limit:
                    raise ResponseTooLarge(
                        f"The server announced a {n}-byte literal; responses are limited to "
                        f"{limit} bytes."
                    )
                parts.append(line + CRLF)
                size = total - n
                literal_left = n
        except ProtocolError as exc:
            self._error = exc
            raise
        finally:
            self._parts = parts
            self._size = size
            self._literal_left = literal_left
            # Compact once per feed: amortised O(1) per byte (bytearray deletes at the front
            # cheaply, and only the unconsumed tail is kept).
            if pos:
                del buf[:pos]
                scan = max(0, scan - pos)
            self._scan = scan
            self._pos = 0
        return out
