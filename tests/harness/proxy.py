"""A recording TCP pass-through proxy for fault and security tests.

Point a client at ``proxy.host:proxy.port`` instead of the real server and the proxy forwards bytes
both ways while recording them. Tests use it to prove what a client did *not* send (no credentials
before TLS), and to break the network on purpose: drop every connection at once, drop one exactly
when a given byte pattern has been forwarded (mid-FETCH), hang all traffic, or refuse new
connections. The fault suite (tests/faults/) adds one-shot faults armed on the next connection
that reaches them: reset after N bytes (``reset_after``), stall one connection after a pattern
until released (``stall_after``: the middle of an APPEND literal or of SMTP DATA), rewrite, drop
or inject one line (``rewrite_line``: a 421 or a 5xx the server never said); and link
properties: a blackhole (half-open: one direction delivers nothing), slicing into chunks of
seeded random sizes down to 1 byte (``chop``), and a slow link (``slow``). As a man in the
middle it can also inject bytes right after a pattern (``inject_after``: STARTTLS response
injection) or rewrite a pattern in passing (``rewrite``: a greeting made PREAUTH, STARTTLS
stripped from the capabilities).

It runs its own event loop in a daemon thread, so it works the same from synchronous tests and from
async tests (whose loop is busy running the client under test).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from .common import SERVER_HOST

Direction = Literal["client", "server"]
"""Who sent the bytes: "client" means client to server, "server" means server to client."""

_T = TypeVar("_T")


@dataclass(frozen=True)
class ConnectionRecord:
    """What one proxied connection carried so far."""

    client_to_server: bytes
    """Everything the client sent, recorded on receipt (even if cut before it was forwarded)."""
    server_to_client: bytes
    open: bool


@dataclass
class _Conn:
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter | None = None
    sent: bytearray = field(default_factory=bytearray)
    received: bytearray = field(default_factory=bytearray)
    open: bool = True
    forwarded: dict[Direction, int] = field(default_factory=lambda: {"client": 0, "server": 0})
    """Bytes passed on (after rewriting) per direction: where ``reset_after`` counts."""
    lines: dict[Direction, bytearray] = field(
        default_factory=lambda: {"client": bytearray(), "server": bytearray()}
    )
    """A partial line held back while a ``rewrite_line`` rule waits in that direction."""
    tail: dict[Direction, bytes] = field(default_factory=lambda: {"client": b"", "server": b""})
    """The last bytes passed on, so a pattern split across reads is still found."""
    held: bytes = b""
    """What a stalled connection received after the stall point, forwarded on release."""
    released: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class _Cut:
    """A one-shot trigger: at ``pattern`` (or after ``count`` bytes) in ``direction``, forward
    up to it, then reset the connection (``stall`` False) or hold it until released."""

    direction: Direction
    pattern: bytes = b""
    count: int | None = None
    stall: bool = False
    fired: threading.Event = field(default_factory=threading.Event)


@dataclass
class _Rewrite:
    """Replace the next complete line containing ``match`` in ``direction``."""

    direction: Direction
    match: bytes
    replacement: bytes | Callable[[bytes], bytes]
    fired: threading.Event = field(default_factory=threading.Event)


@dataclass
class _Tamper:
    """One-shot: after ``pattern`` insert ``insert``, or put ``replace`` in its place."""

    pattern: bytes
    direction: Direction
    insert: bytes | Callable[[bytes], bytes] = b""
    replace: bytes | None = None


class TcpProxy:
    """Forwards ``host:port`` to ``upstream_host:upstream_port``, recording every byte."""

    def __init__(self, upstream_host: str, upstream_port: int, *, host: str = SERVER_HOST) -> None:
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.host = host
        self.port = 0
        self._conns: list[_Conn] = []
        self._lock = threading.Lock()
        self._cut: _Cut | None = None
        self._rewrites: list[_Rewrite] = []
        self._tampers: list[_Tamper] = []
        self._blackhole: set[Direction] = set()
        self._chop: tuple[int, random.Random] | None = None
        self._rate: float | None = None
        self._swallowed = threading.Event()
        self.write_sizes: dict[Direction, list[int]] = {"client": [], "server": []}
        """The size of every write the proxy made, per direction (for ``chop`` tests)."""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="tcp-proxy", daemon=True
        )
        self._server: asyncio.base_events.Server | None = None
        self._flowing: asyncio.Event | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> TcpProxy:
        """Start listening (on a free port the first time). Returns self for chaining."""
        self._thread.start()
        self._call(self._setup())
        return self

    def close(self) -> None:
        """Stop listening, drop all connections, stop the thread."""
        if not self._thread.is_alive():
            return
        self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- recordings ---------------------------------------------------------------------------

    def connections(self) -> list[ConnectionRecord]:
        """A snapshot of every connection accepted so far, oldest first."""
        with self._lock:
            return [ConnectionRecord(bytes(c.sent), bytes(c.received), c.open) for c in self._conns]

    def client_bytes(self) -> bytes:
        """Everything any client sent through the proxy, connections concatenated in order."""
        return b"".join(record.client_to_server for record in self.connections())

    def server_bytes(self) -> bytes:
        """Everything the server sent back, connections concatenated in order."""
        return b"".join(record.server_to_client for record in self.connections())

    @property
    def connection_count(self) -> int:
        """Connections accepted so far (open or not)."""
        with self._lock:
            return len(self._conns)

    @property
    def open_connections(self) -> int:
        with self._lock:
            return sum(1 for c in self._conns if c.open)

    # -- faults -------------------------------------------------------------------------------

    def kill_connections(self) -> int:
        """Reset every open connection at once (both sides see a RST); return how many."""
        return self._call(self._kill_all())

    def cut_after(self, pattern: bytes, direction: Direction = "server") -> threading.Event:
        """Arm a one-shot cut: when ``pattern`` passes in ``direction``, forward the bytes up to
        and including it, then reset that connection. E.g. ``cut_after(b"BODY[] {")`` drops the
        connection in the middle of a FETCH literal, deterministically. The event is set when
        it fired.
        """
        if not pattern:
            raise ValueError("pattern must not be empty")
        cut = _Cut(direction, pattern=pattern)
        with self._lock:
            self._cut = cut
        return cut.fired

    def reset_after(self, count: int, direction: Direction = "client") -> threading.Event:
        """Arm a one-shot reset of the first connection that has passed ``count`` bytes in
        ``direction`` (counted from its start): exactly ``count`` are forwarded. The event is
        set when it fired."""
        if count < 0:
            raise ValueError("count must not be negative")
        cut = _Cut(direction, count=count)
        with self._lock:
            self._cut = cut
        return cut.fired

    def stall_after(self, pattern: bytes, direction: Direction = "client") -> threading.Event:
        """Arm a one-shot stall: forward up to and including ``pattern``, then hold that
        connection in that direction (it stays open) until ``release`` or a reset. The event
        is set when the stall began: tests wait on it, never on time."""
        if not pattern:
            raise ValueError("pattern must not be empty")
        cut = _Cut(direction, pattern=pattern, stall=True)
        with self._lock:
            self._cut = cut
        return cut.fired

    def release(self) -> None:
        """Let every stalled connection go on."""
        self._call(self._release_all())

    def rewrite_line(
        self,
        match: bytes,
        replacement: bytes | Callable[[bytes], bytes],
        direction: Direction = "server",
    ) -> threading.Event:
        """Replace the next complete line (up to and including LF) containing ``match`` in
        ``direction`` by ``replacement``: ``b""`` drops it, ``b"X\r\n" + line`` injects a
        line before it; a function gets the line (to keep its IMAP tag). Several rules apply
        in the order armed, each once."""
        if not match:
            raise ValueError("match must not be empty")
        rule = _Rewrite(direction, match, replacement)
        with self._lock:
            self._rewrites.append(rule)
        return rule.fired

    def blackhole(self, direction: Direction = "server") -> threading.Event:
        """Swallow everything in ``direction`` (recorded, never delivered, not even later):
        a half-open link. ``heal`` ends it. The event is set once something was swallowed."""
        with self._lock:
            self._blackhole.add(direction)
            self._swallowed = threading.Event()
            return self._swallowed

    def chop(self, max_size: int = 1, seed: int = 0) -> None:
        """Forward in chunks of 1..``max_size`` bytes (seeded random sizes; 1: byte by byte),
        each written and drained on its own, so the peer's reads see every split."""
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        with self._lock:
            self._chop = (max_size, random.Random(seed))

    def slow(self, bytes_per_second: float) -> None:
        """Limit every connection to about ``bytes_per_second`` in each direction."""
        if bytes_per_second <= 0:
            raise ValueError("bytes_per_second must be positive")
        with self._lock:
            self._rate = bytes_per_second

    def heal(self) -> None:
        """End the link faults (blackhole, chop, slow) and disarm pending one-shot faults."""
        with self._lock:
            self._blackhole.clear()
            self._chop = None
            self._rate = None
            self._cut = None
            self._rewrites.clear()

    def inject_after(
        self,
        pattern: bytes,
        data: bytes | Callable[[bytes], bytes],
        direction: Direction = "server",
    ) -> None:
        """Arm a one-shot injection: the next time ``pattern`` passes in ``direction``, ``data``
        is forwarded right after it, in the same write (so the client reads both together, as a
        man in the middle appending to the server's STARTTLS reply would arrange). The recording
        keeps what the real peer sent, not what was added. ``data`` may be a function of what
        the client sent so far on that connection (to forge a reply with the next IMAP tag).
        """
        if not pattern:
            raise ValueError("pattern must not be empty")
        with self._lock:
            self._tampers.append(_Tamper(pattern, direction, insert=data))

    def rewrite(self, pattern: bytes, replacement: bytes, direction: Direction = "server") -> None:
        """Arm a one-shot rewrite: the next ``pattern`` seen within one read in ``direction`` is
        forwarded as ``replacement`` (e.g. ``b"* OK"`` -> ``b"* PREAUTH"``)."""
        if not pattern:
            raise ValueError("pattern must not be empty")
        with self._lock:
            self._tampers.append(_Tamper(pattern, direction, replace=replacement))

    def armed(self) -> int:
        """Injections and rewrites not yet triggered (a test asserts they all fired)."""
        with self._lock:
            return len(self._tampers)

    def pause(self) -> None:
        """Stop forwarding on all connections (they stay open: a hung network). Data is kept."""
        self._call(self._set_flowing(False))

    def resume(self) -> None:
        """Forward again, including whatever arrived while paused."""
        self._call(self._set_flowing(True))

    def refuse_new_connections(self) -> None:
        """Close the listening socket: new connections get "connection refused"."""
        self._call(self._stop_listening())

    def accept_new_connections(self) -> None:
        """Listen again on the same port."""
        self._call(self._listen())

    # -- event-loop side ----------------------------------------------------------------------

    def _call(self, coro: Coroutine[Any, Any, _T]) -> _T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    async def _setup(self) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()
        await self._listen()

    async def _listen(self) -> None:
        if self._server is not None:
            return
        self._server = await asyncio.start_server(
            self._handle, self.host, self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _stop_listening(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    async def _shutdown(self) -> None:
        await self._stop_listening()
        await self._kill_all()
        if self._flowing is not None:
            self._flowing.set()  # a paused pump wakes up, sees its connection closed, ends
        tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        # Reset connections end their handlers; cancelling a handler that asyncio's stream
        # callback still watches logs a spurious CancelledError, so only stragglers are.
        _, pending = await asyncio.wait(tasks, timeout=2) if tasks else (set(), set())
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _set_flowing(self, flowing: bool) -> None:
        assert self._flowing is not None
        if flowing:
            self._flowing.set()
        else:
            self._flowing.clear()

    async def _kill_all(self) -> int:
        with self._lock:
            victims = [c for c in self._conns if c.open]
        for conn in victims:
            self._reset(conn)
        return len(victims)

    async def _release_all(self) -> None:
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            conn.released.set()

    def _reset(self, conn: _Conn) -> None:
        with self._lock:
            conn.open = False
        conn.released.set()
        for writer in (conn.client, conn.upstream):
            if writer is None or writer.transport.is_closing():
                continue
            sock = writer.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):  # linger 0: close sends RST, not FIN
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = _Conn(client=writer)
        with self._lock:
            self._conns.append(conn)
        try:
            up_reader, conn.upstream = await asyncio.open_connection(
                self.upstream_host, self.upstream_port
            )
        except OSError:
            self._reset(conn)
            return
        await asyncio.gather(
            self._pump(conn, reader, conn.upstream, "client"),
            self._pump(conn, up_reader, writer, "server"),
        )
        with self._lock:
            conn.open = False
        for side in (writer, conn.upstream):
            side.close()

    async def _pump(
        self,
        conn: _Conn,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        direction: Direction,
    ) -> None:
        assert self._flowing is not None
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    if conn.open and writer.can_write_eof():
                        writer.write_eof()  # pass a half-close on, as a real network would
                    return
                data, cut = self._record(conn, direction, data)
                await self._flowing.wait()
                if not conn.open:
                    return
                await self._forward(conn, writer, direction, data)
                if cut is not None and cut.stall:
                    await conn.released.wait()
                    rest, cut = self._held(conn, direction)
                    if not conn.open:
                        return
                    await self._forward(conn, writer, direction, rest)
                if cut is not None and not cut.stall:
                    self._reset(conn)
                    return
        except (ConnectionError, OSError):
            self._reset(conn)

    async def _forward(
        self, conn: _Conn, writer: asyncio.StreamWriter, direction: Direction, data: bytes
    ) -> None:
        """Write ``data`` as the link faults say: swallowed, chopped, slowed, or whole."""
        with self._lock:
            if direction in self._blackhole:
                self._swallowed.set()
                return
            chop, rate = self._chop, self._rate
            pieces: list[bytes] = []
            if chop is None:
                pieces = [data] if data else []
            else:
                at = 0
                while at < len(data):
                    size = chop[1].randint(1, chop[0])
                    pieces.append(data[at : at + size])
                    at += size
        for piece in pieces:
            if not conn.open:
                return
            with self._lock:  # before the write: its echo may reach the test before drain()
                self.write_sizes[direction].append(len(piece))
            writer.write(piece)
            await writer.drain()
            if rate is not None:  # simulating a slow link, not waiting for something
                await asyncio.sleep(len(piece) / rate)

    def _held(self, conn: _Conn, direction: Direction) -> tuple[bytes, _Cut | None]:
        """What a stalled connection kept back, once released."""
        with self._lock:
            data, conn.held = conn.held, b""
            return self._cut_point(conn, direction, data)

    def _record(self, conn: _Conn, direction: Direction, data: bytes) -> tuple[bytes, _Cut | None]:
        """Append ``data`` to the recording; return what to forward now and the one-shot
        fault that fires at its end (a stall keeps the rest in ``conn.held``)."""
        with self._lock:
            buffer = conn.sent if direction == "client" else conn.received
            before = len(buffer)
            buffer += data
            data = self._tamper(conn, buffer, before, direction, data)
            return self._cut_point(conn, direction, self._rewrite(conn, direction, data))

    def _cut_point(
        self, conn: _Conn, direction: Direction, data: bytes
    ) -> tuple[bytes, _Cut | None]:
        """Where the armed one-shot fault fires in ``data`` (called with the lock held)."""
        cut = self._cut
        if cut is None or cut.direction != direction or not data:
            conn.forwarded[direction] += len(data)
            return data, None
        done = conn.forwarded[direction]
        if cut.count is not None:
            end = max(0, cut.count - done) if done + len(data) >= cut.count else -1
        else:
            tail = conn.tail[direction]
            window = tail + data
            found = window.find(cut.pattern)
            end = found + len(cut.pattern) - len(tail) if found >= 0 else -1
            keep = len(cut.pattern) - 1
            conn.tail[direction] = window[-keep:] if keep else b""
        if end < 0:
            conn.forwarded[direction] += len(data)
            return data, None
        self._cut = None
        cut.fired.set()
        conn.forwarded[direction] += end
        if cut.stall:
            conn.released.clear()
            conn.held = data[end:]
        return data[:end], cut

    def _rewrite(self, conn: _Conn, direction: Direction, data: bytes) -> bytes:
        """Apply armed ``rewrite_line`` rules to complete lines; hold a partial one back."""
        pending = conn.lines[direction]
        rules = [r for r in self._rewrites if r.direction == direction]
        if not rules and not pending:
            return data
        pending += data
        out = bytearray()
        while rules:
            end = pending.find(b"\n")
            if end < 0:
                break
            line = bytes(pending[: end + 1])
            del pending[: end + 1]
            rule = next((r for r in rules if r.match in line), None)
            if rule is None:
                out += line
                continue
            out += rule.replacement(line) if callable(rule.replacement) else rule.replacement
            rule.fired.set()
            self._rewrites.remove(rule)
            rules.remove(rule)
        if not rules:
            out += pending
            pending.clear()
        return bytes(out)

    def _tamper(
        self, conn: _Conn, buffer: bytearray, before: int, direction: Direction, data: bytes
    ) -> bytes:
        """Apply armed injections and rewrites to ``data`` (the bytes of ``buffer`` from
        ``before`` on). Called with the lock held. A cut's offsets are the recording's, so a test
        arms a cut or a tamper in one direction, not both at once."""
        for tamper in list(self._tampers):
            if tamper.direction != direction:
                continue
            if tamper.replace is not None:
                at = data.find(tamper.pattern)
                if at < 0:
                    continue
                data = data[:at] + tamper.replace + data[at + len(tamper.pattern) :]
            else:
                found = buffer.find(tamper.pattern, max(0, before - len(tamper.pattern) + 1))
                if found < 0:
                    continue
                end = found + len(tamper.pattern) - before
                insert = tamper.insert
                if callable(insert):
                    insert = insert(bytes(conn.sent))
                data = data[:end] + insert + data[end:]
            self._tampers.remove(tamper)
        return data
