"""An Exchange test server profile: a Dovecot behind a proxy that makes it answer as Exchange.

No Exchange is reachable from the test machine. What Kittiwake meets there, as Microsoft
documents and users of other clients report, is mostly in the protocol rather than in the
storage, so a TLS-terminating proxy in front of a real Dovecot's IMAPS port rewrites the answers:

- the capability list (greeting, CAPABILITY, the login's ``[CAPABILITY]``) is cut down to what
  Exchange Online advertises: ``IMAP4 IMAP4rev1 AUTH=PLAIN AUTH=XOAUTH2 SASL-IR UIDPLUS MOVE ID
  UNSELECT CHILDREN IDLE NAMESPACE LITERAL+``: no NOTIFY, QRESYNC, CONDSTORE, ENABLE,
  SPECIAL-USE, ESEARCH, LIST-STATUS, MULTIAPPEND (the ``AUTH=`` mechanisms stay Dovecot's, so a
  password login works; there is no OAuth server behind it);
- SELECT's ``[HIGHESTMODSEQ]``/``[NOMODSEQ]`` are dropped (a server without CONDSTORE says none);
- an IDLE is cut after ``idle_cut`` seconds (Exchange: 30 minutes, NAT boxes sooner), with
  ``* BYE`` and a close, or (``cut_with_bye=False``) a bare close, as a NAT box does;
- BODYSTRUCTURE's body parameters of a single text part come as ``NIL`` (Exchange leaves out
  ``("charset" "us-ascii")``; RFC 3501 allows NIL there, and us-ascii is the default).

What stays Dovecot's: folder names (Exchange's are "Sent Items", "Deleted Items", "Junk Email";
the LIST attributes ``\\Sent``... that Exchange sends without advertising SPECIAL-USE pass
through as Dovecot gives them), the separator ``/``, and every command's behaviour. Users are
Dovecot's (``add_user`` makes them there), so the profile is cheap: one per session.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

from .common import SERVER_HOST
from .dovecot import Dovecot, User

EXCHANGE_CAPABILITIES = (
    b"IMAP4 IMAP4rev1 SASL-IR UIDPLUS MOVE ID UNSELECT CHILDREN IDLE NAMESPACE LITERAL+"
).split()
"""Exchange Online's list after login, in its order (its ``AUTH=`` ones are Dovecot's here)."""

IDLE_CUT = 30 * 60.0
"""Exchange ends an IDLE after 30 minutes."""

_CAPS = re.compile(rb"^(\* CAPABILITY |\S+ OK \[CAPABILITY |\* OK \[CAPABILITY )([^\]\r\n]*)")
_MODSEQ = re.compile(rb"^\* OK \[(HIGHESTMODSEQ \d+|NOMODSEQ)\]")
_LITERAL = re.compile(rb"\{(\d+)\+?\}\r\n$")
_IDLE = re.compile(rb"^\S+ IDLE\r\n$", re.I)
_ASCII_PARAMS = b'("TEXT" "PLAIN" ("charset" "us-ascii") '


@dataclass(frozen=True)
class ExchangePorts:
    imaps: int


def exchange_capabilities(offered: bytes) -> bytes:
    """Dovecot's capability tokens narrowed to Exchange's (keeping Dovecot's AUTH= ones)."""
    tokens = offered.split()
    auth = [t for t in tokens if t.upper().startswith(b"AUTH=")]
    upper = {t.upper() for t in tokens}
    kept = [t for t in EXCHANGE_CAPABILITIES if t.upper() in upper or t == b"IMAP4"]
    return b" ".join(kept[:2] + auth + kept[2:])


class ExchangeProfile:
    """One listening proxy in front of ``dovecot``'s IMAPS port; the interface of
    harness.Dovecot that the server scenarios use (``add_user``, ``host``, ``ports.imaps``,
    ``ca``, ``ca_file``)."""

    kind = "exchange"
    inbox_prefix = ""
    separator = "/"

    def __init__(
        self, dovecot: Dovecot, *, idle_cut: float = IDLE_CUT, cut_with_bye: bool = True
    ) -> None:
        if dovecot.ports.imaps is None:
            raise ValueError("the Exchange profile needs a Dovecot with TLS (its IMAPS port)")
        self.dovecot = dovecot
        self.ca = dovecot.ca
        self.host = SERVER_HOST
        self.idle_cut = idle_cut
        self.cut_with_bye = cut_with_bye
        self._port = 0
        self._lock = threading.Lock()
        self._idle_cuts = 0
        self._idles = 0
        self._connections = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="exchange-profile", daemon=True
        )
        self._server: asyncio.base_events.Server | None = None

    @property
    def ports(self) -> ExchangePorts:
        return ExchangePorts(imaps=self._port)

    @property
    def ca_file(self) -> Path:
        return self.ca.ca_file

    @property
    def idle_cuts(self) -> int:
        """How many IDLEs the profile has cut so far."""
        with self._lock:
            return self._idle_cuts

    @property
    def idles(self) -> int:
        """How many IDLEs have started (answered ``+``) so far."""
        with self._lock:
            return self._idles

    @property
    def connection_count(self) -> int:
        with self._lock:
            return self._connections

    def add_user(self, name: str = "user", password: str | None = None) -> User:
        return self.dovecot.add_user(name, password)

    def start(self) -> ExchangeProfile:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(timeout=10)
        return self

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    close = stop

    def log_tail(self, lines: int = 40) -> str:
        return self.dovecot.log_tail(lines)

    def __repr__(self) -> str:
        return f"<ExchangeProfile {self.host}:{self._port} -> {self.dovecot!r}>"

    # -- the proxy's loop -----------------------------------------------------------------------

    async def _listen(self) -> None:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(self.ca.cert_file, self.ca.key_file)
        self._server = await asyncio.start_server(self._handle, self.host, 0, ssl=tls)
        self._port = self._server.sockets[0].getsockname()[1]

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with self._lock:
            self._connections += 1
        dovecot = self.dovecot
        try:
            up_reader, up_writer = await asyncio.open_connection(
                dovecot.host, dovecot.ports.imaps, ssl=self.ca.client_context()
            )
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        session = _Session(self, writer, up_writer)
        try:
            await asyncio.gather(
                session.pump(reader, up_writer, session.from_client),
                session.pump(up_reader, writer, session.from_server),
            )
        finally:
            session.end()
            self._writers.difference_update((writer, up_writer))

    def _count_cut(self) -> None:
        with self._lock:
            self._idle_cuts += 1

    def _count_idle(self) -> None:
        with self._lock:
            self._idles += 1


class _Session:
    """One client connection and its upstream one; knows whether an IDLE is running."""

    def __init__(
        self, profile: ExchangeProfile, client: asyncio.StreamWriter, up: asyncio.StreamWriter
    ) -> None:
        self.profile = profile
        self.client = client
        self.up = up
        self.idle_sent = False
        self.cut: asyncio.Task[None] | None = None

    async def pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        rewrite: object,
    ) -> None:
        """Forward line by line (a literal's bytes as they are), each line through
        ``rewrite``; ends both sides at the first end of either."""
        assert callable(rewrite)
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                out = rewrite(line)
                if out:
                    writer.write(out)
                    await writer.drain()
                literal = _LITERAL.search(line)
                if literal is not None:  # a synchronizing one waits for "+" after the line
                    writer.write(await reader.readexactly(int(literal.group(1))))
                    await writer.drain()
        except (ConnectionError, OSError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        self.end()

    def from_client(self, line: bytes) -> bytes:
        if _IDLE.match(line):
            self.idle_sent = True
        elif line.upper() == b"DONE\r\n" and self.cut is not None:
            self.cut.cancel()
            self.cut = None
        return line

    def from_server(self, line: bytes) -> bytes:
        if line.startswith(b"+") and self.idle_sent:
            self.idle_sent = False
            self.profile._count_idle()
            self.cut = asyncio.get_running_loop().create_task(self._cut_idle())
            return line
        if _MODSEQ.match(line):
            return b""
        caps = _CAPS.match(line)
        if caps is not None:
            head, offered = caps.group(1), caps.group(2)
            return head + exchange_capabilities(offered) + line[caps.end() :]
        if b"BODYSTRUCTURE" in line:
            line = line.replace(_ASCII_PARAMS, b'("TEXT" "PLAIN" NIL ')
        return line

    async def _cut_idle(self) -> None:
        await asyncio.sleep(self.profile.idle_cut)  # the emulated server's timer
        self.profile._count_cut()
        if self.profile.cut_with_bye:
            with contextlib.suppress(ConnectionError, OSError):
                self.client.write(b"* BYE Exchange: IDLE session timed out\r\n")
                await self.client.drain()
        self.end()

    def end(self) -> None:
        if self.cut is not None and self.cut is not asyncio.current_task():
            self.cut.cancel()
        for side in (self.client, self.up):
            if self.profile.cut_with_bye:
                side.close()
            else:
                side.transport.abort()
