"""The fault proxy itself, against a trivial echo server: each fault does what it says, exactly.

The fault suite trusts the proxy to put a fault at a precise byte; these tests are why. The echo
server records what reached it, so "exactly N bytes went through" is checked on the far side.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from harness.common import SERVER_HOST
from harness.proxy import TcpProxy

WAIT = 5.0


@dataclass
class Echo:
    """An echo server that keeps what it received and says when more arrives."""

    server: asyncio.base_events.Server
    received: bytearray = field(default_factory=bytearray)
    arrived: asyncio.Condition = field(default_factory=asyncio.Condition)
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def port(self) -> int:
        return int(self.server.sockets[0].getsockname()[1])

    async def wait_received(self, size: int) -> bytes:
        async with self.arrived:
            await asyncio.wait_for(self.arrived.wait_for(lambda: len(self.received) >= size), WAIT)
        return bytes(self.received)


@pytest.fixture
async def echo() -> AsyncIterator[Echo]:
    holder: list[Echo] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        me = holder[0]
        try:
            while data := await reader.read(65536):
                async with me.arrived:
                    me.received += data
                    me.arrived.notify_all()
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            me.closed.set()
            writer.close()

    server = await asyncio.start_server(handle, SERVER_HOST, 0)
    holder.append(Echo(server))
    yield holder[0]
    server.close()


@pytest.fixture
def proxy(echo: Echo) -> AsyncIterator[TcpProxy]:
    with TcpProxy(SERVER_HOST, echo.port) as running:
        yield running


async def connect(proxy: TcpProxy) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(proxy.host, proxy.port)


async def read_exactly(reader: asyncio.StreamReader, size: int) -> bytes:
    return await asyncio.wait_for(reader.readexactly(size), WAIT)


async def read_to_end(reader: asyncio.StreamReader) -> bytes:
    """Everything until the connection ends (EOF or reset)."""
    got = bytearray()
    try:
        while chunk := await asyncio.wait_for(reader.read(100), WAIT):
            got += chunk
    except ConnectionError:
        pass
    return bytes(got)


async def wait_event(event: threading.Event) -> None:
    assert await asyncio.to_thread(event.wait, WAIT), "the fault never fired"


async def test_bytes_pass_both_ways_and_are_recorded(echo: Echo, proxy: TcpProxy) -> None:
    reader, writer = await connect(proxy)
    writer.write(b"hello\r\n")
    assert await read_exactly(reader, 7) == b"hello\r\n"
    assert proxy.client_bytes() == b"hello\r\n"
    assert proxy.server_bytes() == b"hello\r\n"
    writer.close()


async def test_reset_after_n_bytes_forwards_exactly_n(echo: Echo, proxy: TcpProxy) -> None:
    fired = proxy.reset_after(10, "client")
    reader, writer = await connect(proxy)
    writer.write(b"0123456789abcdefghij")
    await wait_event(fired)
    await asyncio.wait_for(echo.closed.wait(), WAIT)
    assert sum(proxy.write_sizes["client"]) == 10
    assert b"0123456789".startswith(bytes(echo.received))
    with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
        await read_exactly(reader, 20)  # a reset: the client never gets 20 bytes back
    assert proxy.open_connections == 0
    writer.close()


async def test_reset_after_counts_across_reads(echo: Echo, proxy: TcpProxy) -> None:
    fired = proxy.reset_after(5, "server")
    reader, writer = await connect(proxy)
    writer.write(b"abc")
    assert await read_exactly(reader, 3) == b"abc"
    writer.write(b"defgh")
    await wait_event(fired)
    assert b"de".startswith(await read_to_end(reader))  # ends once the proxy reset it
    assert sum(proxy.write_sizes["server"]) == 5
    writer.close()


async def test_blackhole_swallows_replies_until_healed(echo: Echo, proxy: TcpProxy) -> None:
    reader, writer = await connect(proxy)
    swallowed = proxy.blackhole("server")
    writer.write(b"lost")
    assert await echo.wait_received(4) == b"lost"  # the server got it and echoed
    await wait_event(swallowed)  # the echo reached the proxy, and went no further
    proxy.heal()
    writer.write(b"kept")
    # The swallowed reply never comes, not even after healing: the next bytes are "kept".
    assert await read_exactly(reader, 4) == b"kept"
    assert proxy.open_connections == 1  # half-open: nothing was closed
    writer.close()


async def test_chop_forwards_byte_by_byte(echo: Echo, proxy: TcpProxy) -> None:
    proxy.chop(1)
    reader, writer = await connect(proxy)
    payload = bytes(range(200))
    writer.write(payload)
    assert await read_exactly(reader, 200) == payload
    assert proxy.write_sizes["client"] == [1] * 200
    assert proxy.write_sizes["server"] == [1] * 200
    writer.close()


async def test_chop_sizes_are_seeded(echo: Echo) -> None:
    found = []
    for seed in (3, 3, 4):
        with TcpProxy(SERVER_HOST, echo.port) as proxy:
            proxy.chop(7, seed)
            reader, writer = await connect(proxy)
            writer.write(b"x" * 100)
            assert await read_exactly(reader, 100) == b"x" * 100
            writer.close()
            found.append(proxy.write_sizes["client"])
    assert found[0] == found[1]
    assert found[0] != found[2]
    assert sum(found[0]) == 100 and max(found[0]) <= 7


async def test_slow_link_takes_the_time_its_rate_says(echo: Echo, proxy: TcpProxy) -> None:
    proxy.slow(4000)  # bytes per second, each way
    proxy.chop(100)
    reader, writer = await connect(proxy)
    started = time.monotonic()
    writer.write(b"y" * 400)
    assert await read_exactly(reader, 400) == b"y" * 400
    assert time.monotonic() - started >= 0.1  # 400 bytes at 4000 B/s
    writer.close()


async def test_stall_holds_the_rest_until_released(echo: Echo, proxy: TcpProxy) -> None:
    stalled = proxy.stall_after(b"Subject: x", "client")
    _, writer = await connect(proxy)
    writer.write(b"APPEND {30}\r\nSubject: x\r\n\r\nbody")
    await wait_event(stalled)
    assert await echo.wait_received(23) == b"APPEND {30}\r\nSubject: x"
    writer.write(b" more")
    # Stalled: the server gets nothing more while the connection stays open.
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(echo.wait_received(24), 0.3)
    assert proxy.open_connections == 1
    proxy.release()
    assert await echo.wait_received(36) == b"APPEND {30}\r\nSubject: x\r\n\r\nbody more"
    writer.close()


async def test_a_reset_ends_a_stall(echo: Echo, proxy: TcpProxy) -> None:
    stalled = proxy.stall_after(b"DATA", "client")
    _, writer = await connect(proxy)
    writer.write(b"DATA\r\nrest")
    await wait_event(stalled)
    assert proxy.kill_connections() == 1
    await asyncio.wait_for(echo.closed.wait(), WAIT)
    assert sum(proxy.write_sizes["client"]) == 4
    writer.close()


async def test_rewrite_replaces_drops_and_injects_lines(echo: Echo, proxy: TcpProxy) -> None:
    replaced = proxy.rewrite_line(b"250 2.1.0", b"451 4.3.0 try later\r\n", "server")
    dropped = proxy.rewrite_line(b"DROP", b"", "server")
    proxy.rewrite_line(b"354", b"421 4.4.2 bye\r\n354 go\r\n", "server")
    reader, writer = await connect(proxy)
    # Split in the middle of a line: the rule still sees the whole line.
    writer.write(b"250 2.1")
    writer.write(b".0 Ok\r\nDROP me\r\n354 go")
    writer.write(b"\r\n250 2.1.0 Ok\r\n")
    expected = b"451 4.3.0 try later\r\n421 4.4.2 bye\r\n354 go\r\n250 2.1.0 Ok\r\n"
    assert await read_exactly(reader, len(expected)) == expected
    assert replaced.is_set() and dropped.is_set()
    writer.close()


async def test_cut_after_a_pattern_split_across_reads(echo: Echo, proxy: TcpProxy) -> None:
    proxy.chop(3)
    proxy.cut_after(b"[COPYUID", "server")
    reader, writer = await connect(proxy)
    writer.write(b"a OK [COPYUID 1 2 3] done\r\n")
    await asyncio.wait_for(echo.closed.wait(), WAIT)
    # What the client could read is racy (asyncio raises a reset before buffered data), so
    # count what the proxy wrote: exactly up to the pattern, in 3-byte pieces.
    assert sum(proxy.write_sizes["server"]) == len(b"a OK [COPYUID")
    assert b"a OK [COPYUID".startswith(await read_to_end(reader))
    writer.close()


async def test_refused_while_not_listening(echo: Echo, proxy: TcpProxy) -> None:
    proxy.refuse_new_connections()
    with pytest.raises(ConnectionRefusedError):
        await connect(proxy)
    proxy.accept_new_connections()
    reader, writer = await connect(proxy)
    writer.write(b"back")
    assert await read_exactly(reader, 4) == b"back"
    writer.close()
