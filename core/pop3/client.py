"""An async POP3 client (RFC 1939, CAPA RFC 2449, STLS RFC 2595, AUTH RFC 5034) on asyncio.

No maintained async POP3 library exists and stdlib ``poplib`` blocks and keeps a whole
message in memory as a list of lines (twice, counting the joined copy), so this is our own,
with the connection rules of the IMAP side (``core/imap/connection.py``):

* ``security = "tls"``: implicit TLS; ``"starttls"``: STLS is required. A server whose CAPA
  lacks STLS, or that refuses STLS, gets no credentials: ``Pop3StartTlsUnavailable``. Plain
  text only for ``"none"``. Certificates are verified with the ``SSLContext`` passed in
  (system store plus the account's ``ca_file``: ``make_ssl_context``).
* Bytes the server sent after its ``+OK`` to STLS but before the TLS handshake are discarded
  (a man in the middle could otherwise inject responses that look as if they came over TLS),
  and CAPA is asked again over TLS.
* Login: SASL PLAIN where offered (with an initial response), else USER/PASS, else APOP. With
  ``security = "none"`` APOP comes first, as it does not put the password on the wire.
  XOAUTH2/OAUTHBEARER for OAuth2 tokens. Passwords are ``Secret`` values (registered with the
  log filter) and the command lines carrying them are never logged.
* Every read has an inactivity timeout (``timeout``): a server that stays silent longer
  drops the connection with ``Pop3Timeout``; a 50 MB RETR is fine as long as bytes flow.
* Multi-line responses are streamed: ``retr``/``top`` hand the dot-unstuffed message to a
  sink chunk by chunk (``DotUnstuffer``), so a message never sits in memory, let alone twice.
  Status and listing lines are bounded (``MAX_LINE``); message lines are not (a 10 MB line of
  base64 without breaks is legal mail) because they are never buffered whole.
* With PIPELINING (RFC 2449) ``retr_many`` and ``dele_many`` keep a window of commands in
  flight, which removes a round trip per message.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import re
import ssl
from collections.abc import AsyncGenerator, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from kittiwake.core.errors import KittiwakeError
from kittiwake.core.secrets import Secret
from kittiwake.core.transport import describe_ssl_error, open_transport

__all__ = [
    "DEFAULT_TIMEOUT",
    "MAX_LINE",
    "DotUnstuffer",
    "Pop3AuthFailed",
    "Pop3Client",
    "Pop3CommandFailed",
    "Pop3ConnectFailed",
    "Pop3ConnectionLost",
    "Pop3Error",
    "Pop3ProtocolError",
    "Pop3StartTlsUnavailable",
    "Pop3Timeout",
    "Pop3TlsError",
    "Response",
    "Security",
    "Writable",
    "apop_digest",
    "apop_timestamp",
    "parse_capa",
    "parse_scan_line",
    "parse_stat",
    "parse_status",
    "parse_uidl_line",
    "parse_uidl_listing_line",
]

log = logging.getLogger(__name__)

Security = Literal["tls", "starttls", "none"]

DEFAULT_TIMEOUT = 30.0
MAX_LINE = 8192
"""Longest status or listing line accepted (RFC 2449 allows responses of 512 octets)."""
MAX_UIDL = 512
"""Longest unique-id accepted (RFC 1939: 1 to 70 characters)."""
MAX_LISTING = 5_000_000
"""Most entries in one LIST/UIDL/CAPA listing: a server streaming forever is cut off."""
MAX_COMMAND = 255
"""RFC 2449: a command line is at most 255 octets; longer AUTH responses go on their own line."""
DEFAULT_WINDOW = 16
"""Pipelined commands in flight at most (only when the server offers PIPELINING)."""
_HIGH_WATER = 256 * 1024
"""Receive buffer size at which reading from the socket pauses until the consumer catches up."""

_TIMESTAMP = re.compile(rb"<[^<>\s@]*@[^<>\s]*>")


# -- errors ----------------------------------------------------------------------------------


class Pop3Error(KittiwakeError):
    """Base of every POP3 error; ``message`` is one sentence naming the server and port."""


class Pop3ProtocolError(Pop3Error):
    """The server sent something that is not POP3 (or too much of it); the link is dropped."""


class Pop3TlsError(Pop3Error):
    """TLS could not be set up: handshake or certificate failure, or STLS unavailable."""


class Pop3StartTlsUnavailable(Pop3TlsError):
    """``security = "starttls"`` but the server does not offer STLS: nothing was sent."""


class Pop3CommandFailed(Pop3Error):
    """The server answered ``-ERR``. ``code`` is its RFC 2449/3206 response code, if any
    (``IN-USE``, ``LOGIN-DELAY``, ``SYS/TEMP``, ``SYS/PERM``, ``AUTH``)."""

    def __init__(
        self, message: str, *, command: str = "", text: str = "", code: str | None = None
    ) -> None:
        super().__init__(message)
        self.command = command
        self.text = text
        self.code = code
        # The maildrop is locked by another session, or the server is busy: try again later.
        self.recoverable = code in ("IN-USE", "LOGIN-DELAY", "SYS/TEMP")


class Pop3AuthFailed(Pop3CommandFailed):
    """The server refused the login (or no login method can be used as configured)."""


class Pop3ConnectionLost(Pop3Error, ConnectionError):
    """The connection is gone (or was dropped because it could not be trusted any more)."""

    recoverable = True


class Pop3ConnectFailed(Pop3ConnectionLost):
    """The connection could not be opened: refused, unreachable, timed out, bad greeting."""


class Pop3Timeout(Pop3ConnectionLost, TimeoutError):
    """The server stayed silent for longer than the timeout; the connection was dropped."""


# -- pure parsing ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Response:
    """A status line: ``+OK``/``-ERR``, its response code (``[IN-USE]``) and text."""

    ok: bool
    code: str | None
    text: str


def parse_status(line: bytes) -> Response:
    """``+OK text`` or ``-ERR [CODE] text`` (line ending already removed).

    Raises ValueError for anything else (including ``+`` continuations).
    """
    if line[:3] == b"+OK" and (len(line) == 3 or line[3:4] in (b" ", b"\t")):
        ok, rest = True, line[3:]
    elif line[:4] == b"-ERR" and (len(line) == 4 or line[4:5] in (b" ", b"\t")):
        ok, rest = False, line[4:]
    else:
        raise ValueError(f"not a POP3 status line: {line[:60]!r}")
    text = rest.strip().decode("utf-8", "replace")
    code = None
    if text.startswith("["):
        end = text.find("]")
        if 1 < end <= 64:
            code, text = text[1:end].upper(), text[end + 1 :].lstrip()
    return Response(ok, code, text)


def parse_stat(text: str) -> tuple[int, int]:
    """The ``+OK`` text of STAT: message count and maildrop size in octets."""
    parts = text.split()
    if len(parts) < 2 or not (parts[0].isdigit() and parts[1].isdigit()):
        raise ValueError(f"bad STAT reply: {text[:60]!r}")
    return int(parts[0]), int(parts[1])


def parse_scan_line(line: bytes) -> tuple[int, int]:
    """One LIST line (or the ``+OK`` text of ``LIST n``): message number and size."""
    parts = line.split()
    if len(parts) < 2 or not (parts[0].isdigit() and parts[1].isdigit()):
        raise ValueError(f"bad LIST line: {line[:60]!r}")
    number = int(parts[0])
    if number < 1:
        raise ValueError(f"bad message number in LIST line: {line[:60]!r}")
    return number, int(parts[1])


def parse_uidl_line(line: bytes) -> tuple[int, bytes]:
    """One UIDL line (or the ``+OK`` text of ``UIDL n``): message number and unique-id.

    RFC 1939 allows 1-70 printable characters; any bytes but whitespace and control
    characters are accepted (up to ``MAX_UIDL``), since the unique-id is only ever a key in
    the ledger, never part of a path or a command.
    """
    parts = line.split()
    if len(parts) < 2 or not parts[0].isdigit():
        raise ValueError(f"bad UIDL line: {line[:60]!r}")
    number, uid = int(parts[0]), parts[1]
    if number < 1 or len(uid) > MAX_UIDL or any(b < 0x21 or b == 0x7F for b in uid):
        raise ValueError(f"bad UIDL line: {line[:60]!r}")
    return number, uid


def parse_uidl_listing_line(line: bytes) -> tuple[int, bytes]:
    """``parse_uidl_line`` for a line of the UIDL listing, where a unique-id that cannot be
    used as it is (a control character such as NUL, longer than ``MAX_UIDL``) gets a stable
    stand-in: ``\\0sha256:`` and the hash of what the server sent. Refusing the line would
    refuse the whole listing, so one hostile or broken id would keep every message of the
    maildrop from being downloaded; the stand-in is the same in every run (downloaded once)
    and starts with a NUL, which no usable id contains (no collision with a real one)."""
    try:
        return parse_uidl_line(line)
    except ValueError:
        parts = line.strip(b" \t\r\n").split(None, 1)
        if len(parts) < 2 or not parts[0].isdigit() or int(parts[0]) < 1:
            raise
        return int(parts[0]), b"\0sha256:" + hashlib.sha256(parts[1]).hexdigest().encode()


def parse_capa(lines: Iterable[bytes]) -> dict[str, tuple[str, ...]]:
    """CAPA lines to ``{"SASL": ("PLAIN", "LOGIN"), "STLS": (), ...}`` (names upper-cased)."""
    caps: dict[str, tuple[str, ...]] = {}
    for line in lines:
        words = line.decode("ascii", "replace").split()
        if words:
            caps[words[0].upper()] = tuple(w.upper() for w in words[1:])
    return caps


def apop_timestamp(greeting: bytes) -> bytes | None:
    """The ``<process.clock@host>`` timestamp of a greeting, which APOP needs, if any."""
    match = _TIMESTAMP.search(greeting)
    return match.group() if match else None


def apop_digest(timestamp: bytes, password: str) -> str:
    """RFC 1939 APOP: hex MD5 of the greeting's timestamp followed by the password."""
    md5 = hashlib.md5(timestamp + password.encode("utf-8"), usedforsecurity=False)
    return md5.hexdigest()


class DotUnstuffer:
    """Undo RFC 1939 byte-stuffing of a multi-line response, incrementally.

    ``feed(chunk)`` returns the message bytes in that chunk, with the stuffing dot removed
    from lines that start with one; once the terminating ``.CRLF`` line has been seen,
    ``done`` is true and ``rest`` holds the bytes after it (the next pipelined response).
    Line endings are kept exactly as sent; a bare-LF terminator (``\\n.\\n``) is accepted too.
    At most two bytes are held back between chunks, so memory does not grow with line length.
    """

    __slots__ = ("_at_line_start", "_held", "done", "rest")

    def __init__(self) -> None:
        self._at_line_start = True
        self._held: bytes | bytearray = b""
        self.done = False
        self.rest: bytes | bytearray = b""

    def feed(self, chunk: bytes | bytearray) -> list[bytes | bytearray]:
        if self.done:
            self.rest = self.rest + chunk
            return []
        buf = self._held + chunk if self._held else chunk
        self._held = b""
        out: list[bytes | bytearray] = []
        n = len(buf)
        i = 0
        at_start = self._at_line_start
        while i < n:
            if at_start and buf[i] == 0x2E:  # "." at the start of a line
                if i + 1 >= n:
                    self._held = buf[i:]
                    break
                nxt = buf[i + 1]
                if nxt == 0x0A:  # ".\n": terminator (bare LF)
                    self.done, self.rest = True, buf[i + 2 :]
                    break
                if nxt == 0x0D:
                    if i + 2 >= n:
                        self._held = buf[i:]
                        break
                    if buf[i + 2] == 0x0A:  # ".\r\n": terminator
                        self.done, self.rest = True, buf[i + 3 :]
                        break
                i += 1  # a stuffed line: drop the dot
            # Copy up to the next line that starts with a dot (the only lines that need care).
            j = buf.find(b"\n.", i)
            if j < 0:
                if i < n:
                    out.append(buf[i:])
                at_start = buf[n - 1] == 0x0A if n > i else at_start
                i = n
                break
            out.append(buf[i : j + 1])
            i = j + 1
            at_start = True
        self._at_line_start = at_start if not self._held else True
        return out


# -- transport -------------------------------------------------------------------------------


class Writable(Protocol):
    """Where ``retr``/``top`` put message bytes: a binary file, a ``bytearray`` wrapper, ..."""

    def write(self, data: bytes | bytearray, /) -> object: ...


class _Wire(asyncio.Protocol):
    """Receive buffer with flow control, EOF/loss tracking and one waiter."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.closed = False
        self.eof = False
        self.error: BaseException | None = None
        self.bytes_in = 0
        self._paused = False
        self._waiter: asyncio.Future[None] | None = None
        self.closed_future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        self.bytes_in += len(data)
        if len(self.buf) > _HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool | None:
        self.eof = True
        self._wake()
        return None  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.error = exc
        self._wake()
        if not self.closed_future.done():
            self.closed_future.set_result(None)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def consumed(self) -> None:
        """Call after taking bytes from ``buf``: resumes reading below the high-water mark."""
        if self._paused and len(self.buf) <= _HIGH_WATER // 2 and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()

    async def more(self) -> None:
        """Wait until more bytes arrive, or the connection ends (the caller checks which)."""
        if self.closed or self.eof:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiter = waiter
        try:
            await waiter
        finally:
            self._waiter = None


# -- the client --------------------------------------------------------------------------------


class Pop3Client:
    """One POP3 session: ``await connect(...)``, ``await login(...)``, commands, ``quit()``.

    Not safe for concurrent commands: one caller drives it (``retr_many``/``dele_many``
    pipeline internally).
    """

    def __init__(self, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.timeout = timeout
        self.host = ""
        self.port = 0
        self.greeting = b""
        self.bytes_out = 0
        self.discarded_bytes = 0
        """Bytes the server sent after +OK to STLS, before the handshake (thrown away)."""
        self._wire: _Wire | None = None
        self._security: Security = "tls"
        self._tls = False
        self._caps: dict[str, tuple[str, ...]] | None = None
        self._authenticated = False
        self._broken: Pop3Error | None = None

    # -- properties ------------------------------------------------------------------------------

    @property
    def label(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def capabilities(self) -> dict[str, tuple[str, ...]]:
        """What CAPA said (empty if the server does not support CAPA)."""
        return dict(self._caps or {})

    def has(self, capability: str) -> bool:
        return capability.upper() in (self._caps or {})

    @property
    def sasl_mechanisms(self) -> tuple[str, ...]:
        return (self._caps or {}).get("SASL", ())

    @property
    def tls_active(self) -> bool:
        return self._tls

    @property
    def authenticated(self) -> bool:
        return self._authenticated

    @property
    def connected(self) -> bool:
        wire = self._wire
        return wire is not None and not wire.closed and self._broken is None

    @property
    def bytes_in(self) -> int:
        return self._wire.bytes_in if self._wire is not None else 0

    @property
    def apop_timestamp(self) -> bytes | None:
        return apop_timestamp(self.greeting)

    # -- connecting ----------------------------------------------------------------------------

    async def connect(
        self,
        host: str,
        port: int,
        security: Security,
        ssl_context: ssl.SSLContext | None = None,
        *,
        server_hostname: str | None = None,
    ) -> None:
        """Open the connection, read the greeting and CAPA, set up TLS as configured.

        Raises Pop3ConnectFailed, Pop3TlsError (Pop3StartTlsUnavailable when STLS is
        required but not offered: nothing has been sent but CAPA and perhaps STLS),
        Pop3ProtocolError.
        """
        if self._wire is not None:
            raise Pop3Error("This POP3 client was already connected once; make a new one.")
        if security not in ("tls", "starttls", "none"):
            raise ValueError(f"unknown security mode {security!r}")
        self.host, self.port, self._security = host, port, security
        if security != "none" and ssl_context is None:
            ssl_context = ssl.create_default_context()
        hostname = server_hostname or host
        wire = _Wire()
        self._wire = wire
        t = self.timeout
        try:
            try:
                async with asyncio.timeout(t):
                    self._tls = await open_transport(
                        lambda: wire,
                        host,
                        port,
                        tls=ssl_context if security == "tls" else None,
                        server_hostname=hostname,
                        timeout=t,
                    )
            except ssl.SSLError as exc:
                raise Pop3TlsError(
                    f"TLS with {self.label} failed: {describe_ssl_error(exc)}."
                ) from exc
            except TimeoutError as exc:
                raise Pop3ConnectFailed(f"Timed out connecting to {self.label}.") from exc
            except OSError as exc:
                raise Pop3ConnectFailed(
                    f"Could not connect to {self.label}: {exc.strerror or exc}."
                ) from exc
            try:
                line = await self._read_line()
            except Pop3Timeout as exc:
                raise Pop3ConnectFailed(
                    f"{self.label} sent no greeting within {self.timeout:g} s."
                ) from exc
            except Pop3ConnectionLost as exc:
                raise Pop3ConnectFailed(
                    f"{self.label} closed the connection before its greeting."
                ) from exc
            try:
                greeting = parse_status(line)
            except ValueError:
                raise self._fail(
                    Pop3ProtocolError(f"{self.label} sent an invalid greeting: {line[:60]!r}.")
                ) from None
            if not greeting.ok:
                raise Pop3ConnectFailed(f"{self.label} refused the connection: {greeting.text}")
            self.greeting = line
            await self.capa()
            if security == "starttls":
                assert ssl_context is not None
                await self._starttls(ssl_context, hostname)
        except BaseException:
            self.abort()
            raise

    async def _starttls(self, ctx: ssl.SSLContext, hostname: str) -> None:
        if self._caps is not None and "STLS" not in self._caps:
            raise Pop3StartTlsUnavailable(
                f"{self.label} does not offer STLS, which this account requires "
                '(security = "starttls"); no password was sent.'
            )
        # Without CAPA support the server may still know STLS: asking reveals nothing.
        resp = await self._simple("STLS", check=False)
        if not resp.ok:
            raise Pop3StartTlsUnavailable(
                f"{self.label} refused STLS ({resp.text or 'no reason given'}), which this "
                'account requires (security = "starttls"); no password was sent.'
            )
        wire = self._require()
        if wire.buf:
            # RFC 2595 / CVE-2011-0411 style injection: whatever arrived before the handshake
            # did not come over TLS and must not be read as if it had.
            log.warning(
                "%s: discarding %d bytes sent before the TLS handshake", self.label, len(wire.buf)
            )
            self.discarded_bytes += len(wire.buf)
            wire.buf.clear()
            wire.consumed()
        transport = wire.transport
        assert transport is not None
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.timeout):
                # No await between clearing the buffer and start_tls() taking the transport
                # over: it pauses reading and installs the TLS layer before it first yields.
                tls_transport = await loop.start_tls(
                    transport,
                    wire,
                    ctx,
                    server_hostname=hostname,
                    ssl_handshake_timeout=self.timeout,
                )
        except ssl.SSLError as exc:
            raise Pop3TlsError(
                f"STLS with {self.label} failed: {describe_ssl_error(exc)}."
            ) from exc
        except (OSError, TimeoutError, ConnectionError) as exc:
            reason = str(exc) or type(exc).__name__
            raise Pop3TlsError(f"STLS with {self.label} failed: {reason}.") from exc
        if tls_transport is None:  # pragma: no cover - closed during the handshake
            raise Pop3ConnectionLost(f"Connection to {self.label} lost during STLS.")
        assert isinstance(tls_transport, asyncio.Transport)
        wire.transport = tls_transport
        self._tls = True
        # RFC 2595 4: forget what was learnt in plain text and ask again over TLS.
        self._caps = None
        await self.capa()

    # -- low level I/O -------------------------------------------------------------------------

    def _require(self) -> _Wire:
        if self._broken is not None:
            raise Pop3ConnectionLost(self._broken.message)
        wire = self._wire
        if wire is None:
            raise Pop3Error(f"Not connected to {self.label or 'a POP3 server'}.")
        return wire

    def _fail(self, err: Pop3Error) -> Pop3Error:
        """Drop the connection because of ``err`` (its stream can no longer be trusted)."""
        if self._broken is None:
            self._broken = err
        wire = self._wire
        if wire is not None and wire.transport is not None and not wire.closed:
            wire.transport.abort()
        return err

    def _lost(self) -> Pop3Error:
        wire = self._wire
        detail = ""
        if wire is not None and wire.error is not None:
            detail = f": {wire.error}"
        return self._fail(Pop3ConnectionLost(f"Connection to {self.label} lost{detail}."))

    async def _more(self) -> None:
        wire = self._require()
        if wire.closed or wire.eof:
            raise self._lost()
        try:
            async with asyncio.timeout(self.timeout):
                await wire.more()
        except TimeoutError:
            raise self._fail(
                Pop3Timeout(f"{self.label} did not answer within {self.timeout:g} s.")
            ) from None
        if not wire.buf and (wire.closed or wire.eof):
            raise self._lost()

    async def _read_line(self, limit: int = MAX_LINE) -> bytes:
        """One line without its CRLF (or bare LF)."""
        wire = self._require()
        start = 0
        while True:
            idx = wire.buf.find(b"\n", start)
            if idx >= 0:
                break
            if len(wire.buf) > limit:
                raise self._fail(
                    Pop3ProtocolError(f"{self.label} sent a line longer than {limit} bytes.")
                )
            start = len(wire.buf)
            await self._more()
        if idx > limit:
            raise self._fail(
                Pop3ProtocolError(f"{self.label} sent a line longer than {limit} bytes.")
            )
        line = bytes(wire.buf[:idx])
        del wire.buf[: idx + 1]
        wire.consumed()
        return line[:-1] if line.endswith(b"\r") else line

    async def _read_status(self, command: str) -> Response:
        line = await self._read_line()
        try:
            return parse_status(line)
        except ValueError:
            raise self._fail(
                Pop3ProtocolError(
                    f"{self.label} sent an invalid reply to {command}: {line[:60]!r}."
                )
            ) from None

    async def _read_listing(self, command: str, limit: int = MAX_LINE) -> list[bytes]:
        """The lines of a multi-line response after its +OK, unstuffed, bounded."""
        lines: list[bytes] = []
        while True:
            line = await self._read_line(limit)
            if line == b".":
                return lines
            if line.startswith(b"."):
                line = line[1:]
            lines.append(line)
            if len(lines) > MAX_LISTING:
                raise self._fail(
                    Pop3ProtocolError(
                        f"{self.label} sent more than {MAX_LISTING} lines for {command}."
                    )
                )

    async def _read_data(self, sink: Writable) -> int:
        """Stream a multi-line response body into ``sink``; return the octets written."""
        wire = self._require()
        unstuff = DotUnstuffer()
        written = 0
        while True:
            if not wire.buf:
                await self._more()
            chunk, wire.buf = wire.buf, bytearray()  # hand the buffer over: no copy
            wire.consumed()
            for piece in unstuff.feed(chunk):
                sink.write(piece)
                written += len(piece)
            if unstuff.done:
                if unstuff.rest:
                    wire.buf[0:0] = unstuff.rest
                return written

    def _send(self, line: str, *, log_as: str | None = None) -> None:
        log.debug("%s C: %s", self.label, log_as if log_as is not None else line)
        self._write([line])

    def _send_many(self, lines: Sequence[str]) -> None:
        """Pipelined commands (never credentials) in one write."""
        if lines:
            log.debug("%s C: %s .. %s (%d commands)", self.label, lines[0], lines[-1], len(lines))
            self._write(lines)

    def _write(self, lines: Sequence[str]) -> None:
        wire = self._require()
        if wire.closed or wire.transport is None or wire.transport.is_closing():
            raise self._lost()
        if any(c in line for line in lines for c in "\r\n\0"):
            raise ValueError("CR, LF and NUL cannot be sent in a POP3 command")
        data = "".join(line + "\r\n" for line in lines).encode("utf-8")
        self.bytes_out += len(data)
        wire.transport.write(data)

    async def _simple(
        self, line: str, *, check: bool = True, log_as: str | None = None
    ) -> Response:
        self._send(line, log_as=log_as)
        return await self._expect(line.split(" ", 1)[0] if log_as is None else log_as, check)

    async def _expect(self, command: str, check: bool = True) -> Response:
        resp = await self._read_status(command)
        if check and not resp.ok:
            raise self._refused(command, resp)
        return resp

    def _refused(self, command: str, resp: Response) -> Pop3CommandFailed:
        verb = command.split(" ", 1)[0]
        said = f"[{resp.code}] {resp.text}" if resp.code else resp.text
        return Pop3CommandFailed(
            f"{self.label} refused {verb}: {said or '-ERR'}",
            command=verb,
            text=resp.text,
            code=resp.code,
        )

    # -- capabilities and authentication --------------------------------------------------------

    async def capa(self) -> dict[str, tuple[str, ...]]:
        """CAPA (RFC 2449). A server without it answers -ERR: that is an empty set."""
        resp = await self._simple("CAPA", check=False)
        if not resp.ok:
            self._caps = None
            return {}
        self._caps = parse_capa(await self._read_listing("CAPA"))
        return dict(self._caps)

    def _check_can_authenticate(self) -> None:
        self._require()
        if self._authenticated:
            raise Pop3Error(f"Already logged in to {self.label}.")
        if not self._tls and self._security != "none":
            raise Pop3TlsError(
                f"Refusing to send credentials to {self.label} over an unencrypted connection."
            )

    def _auth_failed(self, how: str, resp: Response, detail: str = "") -> Pop3AuthFailed:
        said = resp.text or "-ERR"
        if detail:
            said = f"{said} ({detail})"
        return Pop3AuthFailed(
            f"{self.label} rejected the login: {said}", command=how, text=resp.text, code=resp.code
        )

    async def login(
        self,
        user: str,
        password: Secret | str,
        *,
        mechanisms: Sequence[str] | None = None,
    ) -> str:
        """Log in; returns the method used ("PLAIN", "USER", "APOP").

        ``mechanisms`` restricts and orders the methods to try (tests). By default: with TLS,
        SASL PLAIN if offered, else USER/PASS (if offered, or if CAPA is unknown), else APOP;
        without TLS (``security = "none"`` only) APOP first when the greeting allows it.
        """
        self._check_can_authenticate()
        secret = password if isinstance(password, Secret) else Secret(password)
        if any(c in user for c in "\r\n\0"):
            raise Pop3AuthFailed(f"The login name for {self.label} contains a line break.")
        wanted = mechanisms if mechanisms is not None else self._default_order()
        usable = [m for m in (w.upper() for w in wanted) if self._usable(m)]
        if not usable:
            raise Pop3AuthFailed(
                f"{self.label} offers no login method Kittiwake can use "
                f"(offered: {', '.join(self._offered()) or 'nothing'}).",
                command="AUTH",
            )
        for k, mech in enumerate(usable):
            if mech == "PLAIN":
                await self._auth_plain(user, secret)
            elif mech == "USER":
                await self._user_pass(user, secret)
            else:
                stamp = self.apop_timestamp
                assert stamp is not None
                digest = apop_digest(stamp, secret.reveal())
                resp = await self._simple(
                    f"APOP {user} {digest}", check=False, log_as="APOP ********"
                )
                if not resp.ok:
                    # Without TLS a server may show a timestamp yet not allow APOP: the
                    # account allows plain text (security = "none"), so try the next method.
                    if k == len(usable) - 1 or resp.code == "AUTH" or self._tls:
                        raise self._auth_failed("APOP", resp)
                    continue
            self._authenticated = True
            await self.capa()  # RFC 2449: capabilities may differ once logged in
            return mech
        raise AssertionError("unreachable")  # pragma: no cover

    def _usable(self, mech: str) -> bool:
        if mech == "PLAIN":
            return "PLAIN" in self.sasl_mechanisms
        if mech == "USER":
            return self._caps is None or "USER" in self._caps
        if mech == "APOP":
            return self.apop_timestamp is not None
        return False

    def _default_order(self) -> list[str]:
        if not self._tls:
            return ["APOP", "PLAIN", "USER"]
        return ["PLAIN", "USER", "APOP"]

    def _offered(self) -> list[str]:
        offered = [f"SASL {m}" for m in self.sasl_mechanisms]
        if self._caps is None or "USER" in self._caps:
            offered.append("USER")
        if self.apop_timestamp is not None:
            offered.append("APOP")
        return offered

    async def _sasl(
        self, mech: str, initial: bytes, on_challenge: Callable[[bytes], bytes]
    ) -> None:
        """AUTH ``mech`` with an initial response; ``on_challenge`` answers ``+`` lines."""
        ir = base64.b64encode(initial).decode("ascii")
        line = f"AUTH {mech} {ir}"
        if len(line) + 2 > MAX_COMMAND:
            self._send(f"AUTH {mech}")
            first = await self._read_line()
            if not first.startswith(b"+") or first.startswith(b"+OK"):
                resp = self._parse_or_fail(first, f"AUTH {mech}")
                raise self._auth_failed(f"AUTH {mech}", resp)
            self._send(ir, log_as="********")
        else:
            self._send(line, log_as=f"AUTH {mech} ********")
        for _ in range(4):
            reply = await self._read_line()
            if reply.startswith(b"+") and not reply.startswith(b"+OK"):
                self._send(on_challenge(reply[1:].strip()).decode("ascii"), log_as="(answer)")
                continue
            resp = self._parse_or_fail(reply, f"AUTH {mech}")
            if not resp.ok:
                raise self._auth_failed(f"AUTH {mech}", resp, getattr(on_challenge, "detail", ""))
            return
        raise self._fail(Pop3ProtocolError(f"{self.label} kept challenging AUTH {mech}."))

    def _parse_or_fail(self, line: bytes, command: str) -> Response:
        try:
            return parse_status(line)
        except ValueError:
            raise self._fail(
                Pop3ProtocolError(
                    f"{self.label} sent an invalid reply to {command}: {line[:60]!r}."
                )
            ) from None

    async def _auth_plain(self, user: str, secret: Secret) -> None:
        initial = f"\0{user}\0{secret.reveal()}".encode()

        def cancel(_challenge: bytes) -> bytes:
            return b"*"  # PLAIN has no second step: cancel, the server then says -ERR

        await self._sasl("PLAIN", initial, cancel)

    async def _user_pass(self, user: str, secret: Secret) -> None:
        if any(c in secret.reveal() for c in "\r\n\0"):
            raise Pop3AuthFailed(
                f"The password for {self.label} contains a line break, which USER/PASS "
                "cannot send.",
                command="PASS",
            )
        resp = await self._simple(f"USER {user}", check=False)
        if not resp.ok:
            raise self._auth_failed("USER", resp)
        self._send(f"PASS {secret.reveal()}", log_as="PASS ********")
        resp = await self._expect("PASS", check=False)
        if not resp.ok:
            raise self._auth_failed("PASS", resp)

    async def login_oauth2(self, user: str, token: Secret | str) -> str:
        """AUTH OAUTHBEARER (RFC 7628) or XOAUTH2, whichever the server offers."""
        self._check_can_authenticate()
        secret = token if isinstance(token, Secret) else Secret(token)
        mechs = self.sasl_mechanisms
        if "OAUTHBEARER" in mechs:
            mech = "OAUTHBEARER"
            gs2 = "n,a=" + user.replace("=", "=3D").replace(",", "=2C") + ","
            payload = (
                f"{gs2}\x01host={self.host}\x01port={self.port}"
                f"\x01auth=Bearer {secret.reveal()}\x01\x01"
            )
        elif "XOAUTH2" in mechs:
            mech = "XOAUTH2"
            payload = f"user={user}\x01auth=Bearer {secret.reveal()}\x01\x01"
        else:
            raise Pop3AuthFailed(
                f"{self.label} offers neither OAUTHBEARER nor XOAUTH2.", command="AUTH"
            )

        class _Answer:
            detail = ""

            def __call__(self, challenge: bytes) -> bytes:
                try:
                    self.detail = base64.b64decode(challenge, validate=True).decode(
                        "utf-8", "replace"
                    )[:200]
                except ValueError:
                    self.detail = challenge.decode("utf-8", "replace")[:200]
                # RFC 7628 3.2.3: answer the error challenge with a dummy so the server fails.
                return b"AQ==" if mech == "OAUTHBEARER" else b""

        await self._sasl(mech, payload.encode(), _Answer())
        self._authenticated = True
        await self.capa()
        return mech

    # -- transaction state commands -------------------------------------------------------------

    async def stat(self) -> tuple[int, int]:
        """STAT: (message count, maildrop size in octets)."""
        resp = await self._simple("STAT")
        try:
            return parse_stat(resp.text)
        except ValueError:
            raise self._fail(
                Pop3ProtocolError(f"{self.label} sent an invalid STAT reply: {resp.text[:60]!r}.")
            ) from None

    async def list_all(self) -> dict[int, int]:
        """LIST: message number -> size in octets."""
        await self._simple("LIST")
        out: dict[int, int] = {}
        for line in await self._read_listing("LIST"):
            try:
                number, size = parse_scan_line(line)
            except ValueError:
                raise self._fail(
                    Pop3ProtocolError(f"{self.label} sent an invalid LIST line: {line[:60]!r}.")
                ) from None
            out[number] = size
        return out

    async def list_one(self, number: int) -> int:
        resp = await self._simple(f"LIST {number:d}")
        try:
            return parse_scan_line(resp.text.encode())[1]
        except ValueError:
            raise self._fail(
                Pop3ProtocolError(f"{self.label} sent an invalid LIST reply: {resp.text[:60]!r}.")
            ) from None

    async def uidl(self) -> list[tuple[int, bytes]]:
        """UIDL: (message number, unique-id) for every message, in the server's order."""
        await self._simple("UIDL")
        out: list[tuple[int, bytes]] = []
        for line in await self._read_listing("UIDL"):
            try:
                out.append(parse_uidl_listing_line(line))
            except ValueError:
                raise self._fail(
                    Pop3ProtocolError(f"{self.label} sent an invalid UIDL line: {line[:60]!r}.")
                ) from None
        return out

    async def uidl_one(self, number: int) -> bytes:
        resp = await self._simple(f"UIDL {number:d}")
        try:
            return parse_uidl_line(resp.text.encode())[1]
        except ValueError:
            raise self._fail(
                Pop3ProtocolError(f"{self.label} sent an invalid UIDL reply: {resp.text[:60]!r}.")
            ) from None

    async def retr(self, number: int, sink: Writable) -> int:
        """RETR: stream message ``number`` (dot-unstuffed, line ends as sent) into ``sink``.

        Returns the octets written. Raises Pop3CommandFailed for -ERR (no such message).
        """
        await self._simple(f"RETR {number:d}")
        return await self._read_data(sink)

    async def top(self, number: int, lines: int, sink: Writable) -> int:
        """TOP: the header and the first ``lines`` body lines of message ``number``."""
        await self._simple(f"TOP {number:d} {lines:d}")
        return await self._read_data(sink)

    async def retr_many(
        self,
        numbers: Sequence[int],
        open_sink: Callable[[int], Writable],
        *,
        window: int = DEFAULT_WINDOW,
    ) -> AsyncGenerator[tuple[int, int | None, Response], None]:
        """RETR each of ``numbers`` in order, pipelined when the server offers PIPELINING.

        For each message, ``open_sink(number)`` is called when its data starts, and
        ``(number, octets, response)`` is yielded once it has been streamed completely
        (``octets`` is None, and ``open_sink`` not called, when the server said -ERR).
        Stopping the iteration early drops the connection (replies are still in flight).
        """
        if not self.has("PIPELINING"):
            window = 1
        sent = 0
        done = 0
        total = len(numbers)
        finished = False
        try:
            while done < total:
                if sent < total and sent - done <= window // 2:
                    # Refill the window in one write (one TLS record, one syscall).
                    more = numbers[sent : sent + window - (sent - done)]
                    self._send_many([f"RETR {n:d}" for n in more])
                    sent += len(more)
                number = numbers[done]
                resp = await self._expect("RETR", check=False)
                done += 1
                if not resp.ok:
                    yield number, None, resp
                    continue
                octets = await self._read_data(open_sink(number))
                yield number, octets, resp
            finished = True
        finally:
            if not finished and self._broken is None:
                self._fail(
                    Pop3ConnectionLost(
                        f"Connection to {self.label} dropped with replies still in flight."
                    )
                )

    async def dele(self, number: int) -> None:
        await self._simple(f"DELE {number:d}")

    async def dele_many(self, numbers: Sequence[int], *, window: int = 64) -> list[int]:
        """DELE each (pipelined when possible); returns the numbers the server refused."""
        if not self.has("PIPELINING"):
            window = 1
        refused: list[int] = []
        sent = done = 0
        while done < len(numbers):
            if sent < len(numbers) and sent - done <= window // 2:
                more = numbers[sent : sent + window - (sent - done)]
                self._send_many([f"DELE {n:d}" for n in more])
                sent += len(more)
            resp = await self._expect("DELE", check=False)
            if not resp.ok:
                log.info("%s: DELE %d refused: %s", self.label, numbers[done], resp.text)
                refused.append(numbers[done])
            done += 1
        return refused

    async def noop(self) -> None:
        await self._simple("NOOP")

    async def rset(self) -> None:
        """RSET: undo every DELE of this session."""
        await self._simple("RSET")

    async def quit(self) -> None:
        """QUIT: commits the session's DELEs (UPDATE state), then closes.

        Raises Pop3CommandFailed if the server says some deletions failed, and
        Pop3ConnectionLost if the connection went before the reply: then whether the
        deletions happened is unknown (the next session's UIDL listing tells).
        """
        try:
            resp = await self._simple("QUIT", check=False)
        finally:
            await self.close()
        if not resp.ok:
            raise self._refused("QUIT", resp)

    def abort(self) -> None:
        """Drop the connection at once (no QUIT: the server keeps every message)."""
        wire = self._wire
        if self._broken is None:
            self._broken = Pop3ConnectionLost(f"Connection to {self.label} closed.")
        if wire is not None and wire.transport is not None and not wire.closed:
            wire.transport.abort()

    async def close(self) -> None:
        """Close without QUIT and wait until the transport is gone."""
        wire = self._wire
        self.abort()
        if wire is not None and wire.transport is not None:
            try:
                async with asyncio.timeout(5):
                    await asyncio.shield(wire.closed_future)
            except TimeoutError:  # pragma: no cover - abort() closes at once
                log.debug("%s: transport did not close in time", self.label)
