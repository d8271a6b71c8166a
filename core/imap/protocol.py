"""Hardened asyncio protocol for IMAP: aioimaplib 2.0.3 stays the transport, its defects don't.

Design (after reading aioimaplib 2.0.3 in full): ``ImapProtocol`` subclasses
``aioimaplib.IMAP4ClientProtocol`` and each pending command is an ``aioimaplib.Command``
subclass. What is reused from aioimaplib, because it is sound:

* the protocol object itself (``connection_made``/``transport``/``state``, the random tag
  prefix and ``new_tag()``, and its ``connection_lost`` which calls ``conn_lost_cb``);
* ``Command``: the per-command record (tag, name, ``UID`` prefix, argument rendering via
  ``repr``), its CR/LF/NUL argument check (no command injection through arguments), its
  completion event, ``close()``/``wait()`` and the response-line collection
  (``append_to_resp``/``response``).

What is replaced, because each is one of the defects this module exists to fix:

* **Receive path** (``data_received``): aioimaplib frames recursively, one stack frame per
  line (RecursionError at ~2,000 lines, then a closed transport and a hung caller), and
  ``FetchCommand.wait_data`` re-scans the whole response on every line (quadratic: 46 s for
  20,000 lines). Here bytes go through ``framing.ResponseFramer`` (iterative, O(bytes),
  literals by byte count, bounded response size) and each complete response is dispatched
  once.
* **Untagged routing**: aioimaplib hands an untagged response to a pending command *of the
  same name* (or NOOP) and logs-and-drops the rest, so EXISTS/EXPUNGE/FETCH FLAGS/VANISHED
  arriving during another command were lost. Here EVERY untagged response goes to the
  ``on_untagged`` callback, and is also collected by the command in flight. (A command
  may take its own responses as they arrive instead: a ``sink`` sees each framed one, and
  what it takes is not collected; a ``reader`` takes runs of them straight from the
  received bytes, and those reach neither the command nor ``on_untagged``. The bulk FETCH
  of a first sync uses both, and leaves anything else to the usual path, see ``lazy.py``.)
* **Command scheduling** (``execute`` is not used): aioimaplib's sync/async split races when
  two sync commands wait for a third (both resume and overwrite ``pending_sync_command``;
  the next tagged reply raises inside ``data_received``), and untagged data cannot be
  attributed to one of several pipelined commands anyway. Here one command is in flight at a
  time (a FIFO lock); the slot is freed by the protocol when the tagged reply arrives (or the
  link dies), not by the caller, so a cancelled caller cannot desynchronise tags.
* **Connection loss**: aioimaplib only calls ``conn_lost_cb``; pending commands wait forever.
  Here the command in flight and every later one fail at once with ``ConnectionLost``.
* **Continuations**: aioimaplib appends a ``+`` line to the command and answers nothing, so
  an AUTHENTICATE XOAUTH2 error challenge hangs until timeout. Here each command may carry a
  continuation handler (SASL steps: the XOAUTH2 error challenge is answered with an empty
  line so the server replies NO), synchronizing literals are sent on ``+``, and IDLE's ``+``
  signals that idling started.
* **STARTTLS**: absent from aioimaplib. ``begin_starttls`` marks the STARTTLS command; the
  moment its tagged OK is framed, everything else already buffered or arriving in plaintext
  is discarded (response injection, CVE-2011-0411 class), then the connection layer runs
  ``loop.start_tls``.
* **Timeouts**: aioimaplib's per-command timer is reset per response line and not used by
  most of its calls; here every command has an inactivity watchdog (no byte received and
  nothing left to send for ``timeout`` seconds). On expiry the stream can no longer be
  trusted, so the connection is dropped and the command fails with ``CommandTimeout``.
* **Secrets in logs**: aioimaplib logs every sent line at DEBUG (its LOGIN scrubbing misses
  passwords that quoting changes, and AUTHENTICATE is not scrubbed at all). Our send path
  never goes through it; commands flagged ``sensitive`` log as ``<masked>``; and a filter on
  aioimaplib's logger masks LOGIN/AUTHENTICATE arguments should any of its code log them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable, Sequence
from typing import Any

import aioimaplib

from kittiwake.core.errors import (
    CommandTimeout,
    ConnectionLost,
    ImapError,
    ProtocolError,
)
from kittiwake.core.imap.codes import limit_sentence, server_limit
from kittiwake.core.imap.framing import DEFAULT_MAX_RESPONSE_SIZE, ResponseFramer

log = logging.getLogger(__name__)

CRLF = b"\r\n"

# aioimaplib's connection states, reused so ``state`` means the same as in aioimaplib.
CONNECTED: str = aioimaplib.CONNECTED
NONAUTH: str = aioimaplib.NONAUTH
AUTH: str = aioimaplib.AUTH
SELECTED: str = aioimaplib.SELECTED
LOGOUT: str = aioimaplib.LOGOUT

UntaggedCallback = Callable[[bytes], None]
ContinuationHandler = Callable[[bytes], bytes | None]
#: Takes an untagged response of the command in flight as it is framed (inside
#: ``data_received``, so the work overlaps the server's); True means consumed, not collected.
ResponseSink = Callable[[bytes], bool]
#: ``reader(data, pos, max_size)``: consumes the complete responses at ``data[pos:]`` that it
#: recognises as the command's own (each ending in CRLF, each at most ``max_size`` bytes,
#: framed exactly as ``ResponseFramer`` would frame them) and returns where it stopped. It
#: never raises. See ``ImapProtocol._receive_streaming``.
StreamReader = Callable[[bytes, int, int], int]

#: LITERAL- (RFC 7888) allows non-synchronizing literals up to this size.
LITERAL_MINUS_MAX = 4096


def _said_bye(label: str, text: str) -> str:
    """Why a connection ended with the server's BYE: Gmail's limits in plain words ("* BYE
    [ALERT] Account exceeded command or bandwidth limits"), which the supervisor backs off
    for; any other BYE with its text."""
    limit = server_limit(text)
    if limit is not None:
        return limit_sentence(limit, label)
    return f"Connection to {label} lost (the server said BYE: {text})."


class _AioimaplibSecretFilter(logging.Filter):
    """Masks LOGIN/AUTHENTICATE arguments in aioimaplib's own DEBUG lines (defence in depth)."""

    _SECRET = re.compile(r"(?i)\b(LOGIN|AUTHENTICATE)\b.*")

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is not ours to judge
            return True
        if self._SECRET.search(message):
            record.msg = self._SECRET.sub(r"\1 <masked>", message)
            record.args = ()
        return True


_aioimaplib_log = logging.getLogger(aioimaplib.aioimaplib.__name__)
if not any(isinstance(f, _AioimaplibSecretFilter) for f in _aioimaplib_log.filters):
    _aioimaplib_log.addFilter(_AioimaplibSecretFilter())


class Literal:
    """A command argument sent as an IMAP literal (``{n}`` + CRLF + bytes), or literal8."""

    __slots__ = ("binary", "data")

    def __init__(self, data: bytes, *, binary: bool = False) -> None:
        self.data = bytes(data)
        self.binary = binary

    def marker(self, non_sync: bool) -> str:
        return f"{'~' if self.binary else ''}{{{len(self.data)}{'+' if non_sync else ''}}}"

    def __repr__(self) -> str:
        return f"Literal(<{len(self.data)} bytes>)"


Arg = str | Literal


class PendingCommand(aioimaplib.Command):  # type: ignore[misc]  # aioimaplib is untyped
    """One command on the wire: aioimaplib's Command plus wire segments and our hooks.

    ``segments`` are the byte chunks to write; after each but the last the server's ``+``
    continuation is awaited (synchronizing literals). Untagged responses received while the
    command is in flight are collected through ``Command.append_to_resp`` unless
    ``collect`` is false (IDLE) or ``sink`` consumes them. The tagged status ends up in
    ``status``/``text``.
    """

    def __init__(
        self,
        name: str,
        tag: str,
        args: Sequence[Arg] = (),
        *,
        prefix: str | None = None,
        non_sync: Callable[[int], bool] = lambda _n: False,
        timeout: float | None = None,
        sensitive: bool = False,
        collect: bool = True,
        on_continuation: ContinuationHandler | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        sink: ResponseSink | None = None,
        reader: StreamReader | None = None,
    ) -> None:
        rendered: list[str] = []
        for arg in args:
            if isinstance(arg, Literal):
                rendered.append(arg.marker(non_sync(len(arg.data))))
            else:
                rendered.append(arg)
        # aioimaplib's Command rejects CR, LF and NUL in any rendered argument.
        super().__init__(name, tag, *rendered, prefix=prefix, loop=loop, timeout=None)
        self.watchdog_timeout = timeout
        self.sensitive = sensitive
        self.collect = collect
        self.on_continuation = on_continuation
        self.sink = sink
        self.reader = reader
        self.status = ""
        self.text = b""
        self.starttls = False  # discard all input after this command's tagged OK
        self.segments = self._render_segments(args, rendered)
        self._segment_index = 0

    def _render_segments(self, args: Sequence[Arg], rendered: list[str]) -> list[bytes]:
        head = f"{self.tag} {self.prefix or ''}{self.name}".encode()
        segments: list[bytes] = []
        cur = bytearray(head)
        for arg, text in zip(args, rendered, strict=True):
            cur += b" "
            cur += text.encode("utf-8")
            if isinstance(arg, Literal):
                cur += CRLF
                if not text.endswith("+}"):  # synchronizing: wait for "+" before the data
                    segments.append(bytes(cur))
                    cur = bytearray()
                cur += arg.data
        cur += CRLF
        segments.append(bytes(cur))
        return segments

    def log_form(self) -> str:
        if self.sensitive:
            return f"{self.tag} {self.prefix or ''}{self.name} <masked>"
        return repr(self)

    def next_segment(self) -> bytes | None:
        if self._segment_index >= len(self.segments):
            return None
        seg = self.segments[self._segment_index]
        self._segment_index += 1
        return seg

    @property
    def untagged(self) -> list[bytes]:
        lines: list[bytes] = self._resp_lines
        return lines[:-1] if self.status else list(lines)

    def finish(self, status: str, text: bytes) -> None:
        self.status = status
        self.text = text
        self.close(text, status)  # aioimaplib: append final line, set the event

    def fail(self, exc: BaseException) -> None:
        if self._event.is_set():
            return
        self._exception = exc
        self._event.set()

    @property
    def done(self) -> bool:
        return bool(self._event.is_set())


def _fresh(exc: ImapError) -> ImapError:
    """A new instance of a connection-level error, so each waiter gets its own traceback."""
    try:
        new = type(exc)(exc.message)
    except TypeError:  # pragma: no cover - every connection-level error takes a message
        return exc
    new.__cause__ = exc.__cause__
    return new


class ImapProtocol(aioimaplib.IMAP4ClientProtocol):  # type: ignore[misc]  # untyped base
    """aioimaplib's client protocol with the receive, dispatch and send paths replaced."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        label: str = "IMAP server",
        on_untagged: UntaggedCallback | None = None,
        conn_lost_cb: Callable[[Exception | None], None] | None = None,
        max_response_size: int = DEFAULT_MAX_RESPONSE_SIZE,
    ) -> None:
        super().__init__(loop, conn_lost_cb)
        self._loop: asyncio.AbstractEventLoop = loop
        self.label = label
        self.on_untagged: UntaggedCallback | None = on_untagged
        self.framer = ResponseFramer(max_response_size)
        self.greeting: asyncio.Future[bytes] = loop.create_future()
        self.lost: ImapError | None = None
        self.bye_text: str | None = None
        self.current: PendingCommand | None = None
        self.discarded_bytes = 0
        self.bytes_in = 0  # IMAP bytes (inside TLS): for sync statistics and benchmarks
        self.bytes_out = 0
        self._slot = asyncio.Lock()
        self._discard_input = False
        self._last_activity = loop.time()
        self._watchdog: asyncio.TimerHandle | None = None
        self._closed: asyncio.Future[None] = loop.create_future()

    # -- aioimaplib API we disable ---------------------------------------------------------

    async def execute(self, command: Any, scrub: str | None = None) -> Any:
        raise NotImplementedError("use ImapProtocol.run() (via ImapConnection)")

    def send(self, line: str, scrub: str | None = None) -> None:
        """aioimaplib's ``send`` (used by its ``idle_done``), routed through our masked path."""
        data = line.encode() + CRLF
        self.write(data, log_form="<masked>" if scrub else line)

    # -- transport events ------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        self._last_activity = self._loop.time()
        self.bytes_in += len(data)
        if self.lost is not None:
            return  # the stream is condemned; connection_lost follows
        if self._discard_input:
            self.discarded_bytes += len(data)
            log.warning("%s: discarded %d plaintext bytes after STARTTLS", self.label, len(data))
            return
        cmd = self.current
        if cmd is not None and cmd.reader is not None and self.greeting.done():
            self._receive_streaming(data)
        else:
            self._receive(data)

    def _receive(self, data: bytes) -> int | None:
        """Frame ``data`` and dispatch what it completes: how many responses, None once the
        stream must stop (connection lost, or input discarded after STARTTLS)."""
        try:
            responses = self.framer.feed(data)
        except ProtocolError as exc:
            self.abort(exc)
            return None
        for index, resp in enumerate(responses):
            self._dispatch(resp)
            if self._discard_input:
                rest = sum(len(r) + 2 for r in responses[index + 1 :]) + self.framer.buffered
                if rest:
                    self.discarded_bytes += rest
                    log.warning(
                        "%s: discarded %d bytes sent with the STARTTLS reply", self.label, rest
                    )
                self.framer.reset()
                return None
            if self.lost is not None:
                return None
        return len(responses)

    def _receive_streaming(self, data: bytes) -> None:
        """``data`` for a command with a ``reader`` (the bulk FETCH of a first sync).

        The reader takes the responses it recognises straight from ``data``, a run at a
        time, with no framing, dispatch or copy per response. Whatever it stops at (a
        response of another shape, an unsolicited one, the tagged reply, a response cut by
        the end of ``data``) goes through the framer in small windows, as usual; once the
        framer has completed a response and the command still reads, the framer's partial
        tail is taken back (those bytes are all from this window) and the reader resumes
        there. Both therefore split the stream at the same places.
        """
        framer = self.framer
        pos, end = 0, len(data)
        window = 1024
        while pos < end:
            cmd = self.current
            reader = cmd.reader if cmd is not None else None
            if reader is None:
                self._receive(data[pos:])
                return
            if not framer.buffered:
                pos = reader(data, pos, framer.max_response_size)
                if pos >= end:
                    return
            stop = min(end, pos + window)
            completed = self._receive(data[pos:stop])
            if completed is None:
                return
            if not completed:
                pos = stop  # nothing completed yet: a long response, take bigger steps
                window = min(window * 4, 1 << 20)
                continue
            if self.current is cmd:
                pos = stop - framer.buffered
                framer.reset()
            else:
                pos = stop
            window = 1024

    def eof_received(self) -> bool | None:
        return None  # let the transport close; connection_lost does the rest

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_watchdog()
        if self.lost is None:
            if self.bye_text:
                err = ConnectionLost(_said_bye(self.label, self.bye_text))
            else:
                reason = f"{exc}" if exc else "the server closed the connection"
                err = ConnectionLost(f"Connection to {self.label} lost ({reason}).")
            if exc is not None:
                err.__cause__ = exc
            self.lost = err
        self._fail_pending(self.lost)
        if not self._closed.done():
            self._closed.set_result(None)
        super().connection_lost(exc)  # aioimaplib: log and call conn_lost_cb

    async def wait_closed(self, timeout: float = 5.0) -> None:
        """Wait (bounded) until the transport has reported the connection closed."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._closed), timeout)

    # -- dispatch ----------------------------------------------------------------------------

    def _dispatch(self, resp: bytes) -> None:
        if not self.greeting.done():
            self.greeting.set_result(resp)
            return
        first = resp[:1]
        if first == b"*":
            if resp[:6].upper() == b"* BYE ":
                self.bye_text = resp[6:].decode("utf-8", "replace")
            cmd = self.current
            if cmd is not None and cmd.collect:
                sink = cmd.sink
                consumed = False
                if sink is not None:
                    try:
                        consumed = sink(resp)
                    except Exception:
                        log.exception("%s: response sink failed", self.label)
                if not consumed:
                    cmd.append_to_resp(resp)
            callback = self.on_untagged
            if callback is not None:
                try:
                    callback(resp)
                except Exception:
                    log.exception("%s: on_untagged callback failed", self.label)
            if self.bye_text is not None and (cmd is None or cmd.name != "LOGOUT"):
                # A BYE we did not ask for (Exchange ending an IDLE, a server shutting
                # down): the server is going away, whether or not it closes the socket.
                # Waiting for the close could take until the next IDLE renewal.
                self.abort(ConnectionLost(_said_bye(self.label, self.bye_text)))
            return
        if first == b"+":
            self._continuation(resp[2:] if resp[1:2] == b" " else resp[1:])
            return
        self._tagged(resp)

    def _continuation(self, text: bytes) -> None:
        cmd = self.current
        if cmd is None:
            log.warning("%s: continuation request with no command in flight", self.label)
            return
        segment = cmd.next_segment()
        if segment is not None:
            self.write(segment, log_form=f"{cmd.tag} <literal {len(segment)} bytes>")
            return
        if cmd.on_continuation is not None:
            reply = cmd.on_continuation(text)
            if reply is not None:
                self.write(reply + CRLF, log_form=f"{cmd.tag} <continuation reply masked>")
            return
        log.warning("%s: unexpected continuation for %s (ignored)", self.label, cmd.log_form())

    def _tagged(self, resp: bytes) -> None:
        tag, _, rest = resp.partition(b" ")
        status, _, text = rest.partition(b" ")
        status_s = status.decode("ascii", "replace").upper()
        cmd = self.current
        if cmd is None or tag.decode("ascii", "replace") != cmd.tag:
            self.abort(
                ProtocolError(
                    f"{self.label} sent a reply for a command that was not sent ({resp[:80]!r})."
                )
            )
            return
        if status_s not in ("OK", "NO", "BAD"):
            self.abort(ProtocolError(f"{self.label} sent a malformed reply ({resp[:80]!r})."))
            return
        log.debug("%s: S: %s %s %s", self.label, cmd.tag, status_s, text[:200])
        if cmd.starttls and status_s == "OK":
            self._discard_input = True
        self._complete(cmd)
        cmd.finish(status_s, text)

    def _complete(self, cmd: PendingCommand) -> None:
        """Free the slot: the command is off the wire."""
        if self.current is cmd:
            self.current = None
            self._cancel_watchdog()
            self._slot.release()

    # -- sending -----------------------------------------------------------------------------

    def write(self, data: bytes, *, log_form: str | None = None) -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s: C: %s", self.label, log_form if log_form is not None else data[:200])
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        self._last_activity = self._loop.time()
        self.bytes_out += len(data)
        transport.write(data)

    async def start(self, cmd: PendingCommand) -> None:
        """Wait for the slot, then put ``cmd`` on the wire (first segment)."""
        if self.lost is not None:
            raise _fresh(self.lost)
        await self._slot.acquire()
        try:
            if self.lost is not None:
                raise _fresh(self.lost)
            self.current = cmd
            first = cmd.next_segment()
            assert first is not None
            self.write(first, log_form=cmd.log_form())
            self.arm_watchdog(cmd.watchdog_timeout)
        except BaseException:
            if self.current is cmd:
                self.current = None
            self._slot.release()
            raise

    async def run(self, cmd: PendingCommand) -> PendingCommand:
        """Send ``cmd`` and wait for its tagged reply (``cmd.status``/``cmd.text``)."""
        await self.start(cmd)
        await cmd.wait()
        return cmd

    def begin_tls(self) -> None:
        """Called right before ``loop.start_tls``: drop all pre-handshake input, read again."""
        self.framer.reset()
        self._discard_input = False

    # -- timeouts and failure ----------------------------------------------------------------

    def arm_watchdog(self, timeout: float | None) -> None:
        """Fail the connection if nothing arrives (and nothing is left to send) for timeout s."""
        self._cancel_watchdog()
        if timeout is None:
            return
        self._last_activity = self._loop.time()
        self._watchdog = self._loop.call_at(
            self._last_activity + timeout, self._check_watchdog, timeout
        )

    def disarm_watchdog(self) -> None:
        self._cancel_watchdog()

    def _cancel_watchdog(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None

    def _check_watchdog(self, timeout: float) -> None:
        self._watchdog = None
        now = self._loop.time()
        transport = self.transport
        sending = transport is not None and transport.get_write_buffer_size() > 0
        if sending:
            self._last_activity = now
        deadline = self._last_activity + timeout
        if deadline > now + 1e-3:
            self._watchdog = self._loop.call_at(deadline, self._check_watchdog, timeout)
            return
        cmd = self.current
        what = cmd.name if cmd is not None else "the command"
        self.abort(
            CommandTimeout(
                f"{self.label} did not answer {what} within {timeout:g} s; "
                "the connection was dropped."
            )
        )

    def _fail_pending(self, exc: ImapError) -> None:
        cmd = self.current
        if cmd is not None:
            self.current = None
            self._slot.release()
            cmd.fail(_fresh(exc))
        if not self.greeting.done():
            self.greeting.set_exception(_fresh(exc))
            self.greeting.exception()  # mark retrieved: nobody may be waiting any more

    def abort(self, exc: ImapError) -> None:
        """Fail everything pending with ``exc`` and drop the connection at once."""
        self._cancel_watchdog()
        if self.lost is None:
            self.lost = exc
        self._fail_pending(self.lost)
        transport = self.transport
        # Never connected, or already closed under us (a failed start_tls closes the plain
        # transport without telling this protocol): nothing will call connection_lost, so
        # the connection counts as closed now.
        if (transport is None or transport.is_closing()) and not self._closed.done():
            self._closed.set_result(None)
        if transport is not None:
            transport.abort()
