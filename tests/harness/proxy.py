"""A recording TCP pass-through proxy for fault and security tests.

Point a client at ``proxy.host:proxy.port`` instead of the real server and the proxy forwards bytes
both ways while recording them. Tests use it to prove what a client did *not* send (no credentials
before TLS), and to break the network on purpose: drop every connection at once, drop one exactly
when a given byte pattern has been forwarded (mid-FETCH), hang all traffic, or refuse new
connections. As a man in the middle it can also inject bytes right after a pattern (STARTTLS
response injection) or rewrite a pattern in passing (a greeting made PREAUTH, STARTTLS stripped
from the capabilities).

It runs its own event loop in a daemon thread, so it works the same from synchronous tests and from
async tests (whose loop is busy running the client under test).
"""

from __future__ import annotations

import asyncio
import contextlib
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


@dataclass
class _Cut:
    pattern: bytes
    direction: Direction


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
        self._tampers: list[_Tamper] = []
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

    def cut_after(self, pattern: bytes, direction: Direction = "server") -> None:
        """Arm a one-shot cut: when ``pattern`` passes in ``direction``, forward the bytes up to
        and including it, then reset that connection. E.g. ``cut_after(b"BODY[] {")`` drops the
        connection in the middle of a FETCH literal, deterministically.
        """
        if not pattern:
            raise ValueError("pattern must not be empty")
        with self._lock:
            self._cut = _Cut(pattern, direction)

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
        tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

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

    def _reset(self, conn: _Conn) -> None:
        with self._lock:
            conn.open = False
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
                writer.write(data)
                await writer.drain()
                if cut:
                    self._reset(conn)
                    return
        except (ConnectionError, OSError):
            self._reset(conn)

    def _record(self, conn: _Conn, direction: Direction, data: bytes) -> tuple[bytes, bool]:
        """Append ``data`` to the recording; return what to forward and whether to cut after."""
        with self._lock:
            buffer = conn.sent if direction == "client" else conn.received
            before = len(buffer)
            buffer += data
            data = self._tamper(conn, buffer, before, direction, data)
            cut = self._cut
            if cut is None or cut.direction != direction:
                return data, False
            found = buffer.find(cut.pattern, max(0, before - len(cut.pattern) + 1))
            if found < 0:
                return data, False
            self._cut = None
            return data[: found + len(cut.pattern) - before], True

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
