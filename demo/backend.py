"""The demo's server process: pymap (in memory) for IMAP, aiosmtpd for SMTP, on loopback.

Run by ``DemoServers`` as ``python -m kittiwake.demo.backend``; not meant to be started by
hand. It speaks JSON lines: the first line on stdin is the spec (seed, sizes, host, TLS, the
user and the random password: never on the command line, where ``ps`` shows it), later lines
are requests (``deliver``, ``feed``, ``stop``); stdout carries events (``listening`` with the
ports, ``seeded`` with timings, ``reply`` to each request). End of stdin means the app is gone:
the process stops. Its stderr is its log, forwarded by the parent into Kittiwake's log.

Why a process of its own: pymap builds a whole FETCH response without yielding (about 1.5 ms
per message on Python 3.11, mostly in ``isinstance`` checks against typing protocols), so a
first-sync batch of 2,000 messages held the app's loop for 3.4 s when the servers shared it,
and 1.7 s even from a thread (the GIL convoy against the client's TLS reads). Here the server
has its own interpreter and, on any machine with two cores, its own core.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import email.parser
import email.policy
import json
import logging
import os
import secrets
import shutil
import signal
import ssl
import sys
import time
import warnings
from argparse import Namespace
from collections.abc import Coroutine, Iterable
from datetime import UTC, datetime
from email.headerregistry import BaseHeader, HeaderRegistry
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from proxyprotocol.reader import ProxyProtocolReader
from proxyprotocol.sock import SocketInfo
from proxyprotocol.version import ProxyProtocolVersion
from pymap.backend.dict import Config as DictConfig
from pymap.backend.dict import Identity, Login
from pymap.backend.dict.filter import FilterSet
from pymap.backend.dict.mailbox import MailboxData, MailboxSet
from pymap.concurrent import Subsystem
from pymap.imap import IMAPServer
from pymap.mime.parsed import ParsedHeaders
from pymap.parsing.message import AppendMessage
from pymap.parsing.specials.flag import Flag
from pymap.user import UserMetadata
from pysasl.hashing import Cleartext

from kittiwake.demo.mailgen import FOLDERS, INBOX, SEEN, SENT, DemoUser, MailGenerator
from kittiwake.demo.tls import make_throwaway_tls, tls_available

log = logging.getLogger("kittiwake.demo.backend")


class _GatedMailboxSet(MailboxSet):
    """pymap's in-memory folders, each held closed until the seed has filled it.

    A client that SELECTs (or STATUSes, or APPENDs to) a folder still being filled waits for
    it instead of seeing half of it. LIST answers at once: every name exists from the start.
    """

    def __init__(self) -> None:
        super().__init__()
        self.ready: dict[str, asyncio.Event] = {}

    async def get_mailbox(self, name: str) -> MailboxData:
        gate = self.ready.get("INBOX" if name.upper() == "INBOX" else name)
        if gate is not None and not gate.is_set():
            await gate.wait()
        return await super().get_mailbox(name)

    async def ungated(self, name: str) -> MailboxData:
        return await super().get_mailbox(name)

    def open_all(self) -> None:
        for gate in self.ready.values():
            gate.set()


class _PymapConfig(DictConfig):
    """pymap's dict-backend config, minus what does not fit an embedded demo server."""

    @property
    def greeting(self) -> bytes:
        # pymap's default calls socket.getfqdn() on every connection: a DNS lookup that can
        # stall for seconds on a badly configured machine.
        return b"Kittiwake demo IMAP server ready"


class DemoBackend:
    """Both servers and the mail store, on the running loop."""

    def __init__(self, spec: dict[str, Any], emit: Any) -> None:
        self.spec = spec
        self.host: str = spec["host"]
        self.user = DemoUser(spec["name"], spec["email"])
        self.password: str = spec["password"]
        self.workdir = Path(spec["workdir"])
        tls = spec.get("tls")
        self.tls: bool = tls_available() if tls is None else bool(tls)
        now = datetime.fromisoformat(spec["now"])
        self.generator = MailGenerator(seed=int(spec["seed"]), now=now, user=self.user)
        self.inbox_size = int(spec["inbox"])
        self.auto_reply_after: float | None = spec.get("auto_reply_after")
        self.emit = emit
        self.mailboxes = _GatedMailboxSet()
        self._servers: list[asyncio.AbstractServer] = []
        self._connections: set[asyncio.Task[Any]] = set()
        self._smtp_sessions: set[SMTP] = set()
        self._background: set[asyncio.Task[Any]] = set()
        self._flags: dict[str, Flag] = {}

    # -- starting and stopping ----------------------------------------------------------

    async def listen(self) -> dict[str, Any]:
        """Create the folders, start seeding, start both servers; return where they are."""
        started = time.perf_counter()
        server_ctx: ssl.SSLContext | None = None
        ca_file: Path | None = None
        if self.tls:
            throwaway = make_throwaway_tls(self.workdir / "tls", (self.host, "localhost"))
            ca_file = throwaway.ca_file
            server_ctx = throwaway.server_context()

        for folder in FOLDERS:
            if folder != INBOX:
                await self.mailboxes.add_mailbox(folder)
            await self.mailboxes.set_subscribed(folder, True)
            self.mailboxes.ready[folder] = asyncio.Event()

        config = _PymapConfig(
            Namespace(),
            host=self.host,
            port=0,
            demo_data=False,
            demo_user=self.user.email,
            demo_password=self.password,
            # Implicit TLS is done by the listener; pymap must not offer STARTTLS on top.
            tls_enabled=False,
            ssl_context=server_ctx or ssl.create_default_context(ssl.Purpose.CLIENT_AUTH),
            hash_context=Cleartext(),  # in memory, random per run: hashing buys nothing
            cpu_subsystem=Subsystem.for_asyncio(),  # no thread pool
            proxy_protocol=ProxyProtocolVersion.get(None),
            reject_dnsbl=False,
            invalid_user_sleep=0.0,
        )
        login = Login(config)
        identity = Identity(self.user.email, login, None, frozenset())
        await identity.set(UserMetadata(config, self.user.email, password=self.password))
        config.set_cache[self.user.email] = (self.mailboxes, FilterSet())
        imap = IMAPServer(login, config)

        async def on_imap(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter, info: SocketInfo
        ) -> None:
            task = asyncio.current_task()
            if task is not None:
                self._connections.add(task)
            try:
                await imap(reader, writer, info)
            finally:
                if task is not None:
                    self._connections.discard(task)

        imap_server = await asyncio.start_server(
            ProxyProtocolReader(config.proxy_protocol).get_callback(on_imap),
            self.host,
            0,
            ssl=server_ctx,
        )
        self._servers.append(imap_server)

        loop = asyncio.get_running_loop()
        handler = _SmtpHandler(self)

        def smtp_session() -> SMTP:
            with warnings.catch_warnings():
                # "Requiring AUTH while not requiring TLS": the listener does implicit TLS
                # below aiosmtpd (which cannot see it), or this is plain loopback by choice.
                warnings.simplefilter("ignore", UserWarning)
                return _TrackedSMTP(
                    self._smtp_sessions,
                    handler,
                    hostname="localhost",
                    ident="Kittiwake demo SMTP",
                    authenticator=self._smtp_authenticate,
                    auth_required=True,
                    auth_require_tls=False,
                    loop=loop,
                )

        smtp_server = await loop.create_server(smtp_session, self.host, 0, ssl=server_ctx)
        self._servers.append(smtp_server)
        self.spawn(self._seed(started))  # after listening: the app need not wait for it
        return {
            "imap_port": imap_server.sockets[0].getsockname()[1],
            "smtp_port": smtp_server.sockets[0].getsockname()[1],
            "tls": self.tls,
            "ca_file": str(ca_file) if ca_file is not None else None,
        }

    async def shutdown(self) -> None:
        for task in list(self._background):
            task.cancel()
        for server in self._servers:
            server.close()
        for session in list(self._smtp_sessions):
            if session.transport is not None:
                session.transport.close()
        for task in list(self._connections):
            task.cancel()
        pending = [*self._background, *self._connections]
        if pending:
            await asyncio.wait(pending, timeout=5)
        for server in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 5)
        self._servers = []

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- the mail -----------------------------------------------------------------------

    async def _seed(self, started: float) -> None:
        """Generate the mail and load it: INBOX first, then the rest in the order a client
        syncs them; each folder opens as soon as it is full."""
        try:
            begun = time.perf_counter()
            # In a thread, so LOGIN and LIST are answered while the mail is made up.
            mail = await asyncio.to_thread(self.generator.build, self.inbox_size)
            generated = time.perf_counter() - begun
            inbox_ready = 0.0
            for folder in sorted(mail.folders, key=lambda f: (f != INBOX, f)):
                mbx = await self.mailboxes.ungated(folder)
                for n, msg in enumerate(mail.folders[folder], start=1):
                    await self._append(mbx, msg.raw, msg.flags, msg.date)
                    if n % 100 == 0:
                        await asyncio.sleep(0)  # LOGIN, LIST and IDLE get answered meanwhile
                self.mailboxes.ready[folder].set()
                if folder == INBOX:
                    inbox_ready = time.perf_counter() - started
            counts = {
                folder: [len(msgs), sum(1 for m in msgs if SEEN not in m.flags)]
                for folder, msgs in mail.folders.items()
            }
            self.emit(
                {
                    "event": "seeded",
                    "generate_seconds": generated,
                    "inbox_seconds": inbox_ready,
                    "seed_seconds": time.perf_counter() - started,
                    "message_count": mail.total,
                    "folder_counts": counts,
                }
            )
        except Exception as exc:
            log.exception("seeding the demo mailbox failed")
            self.emit({"event": "seed-failed", "message": str(exc)})
        finally:
            self.mailboxes.open_all()  # never leave a client waiting on a folder forever

    async def deliver(
        self, folder: str, raw: bytes, flags: Iterable[str], when: datetime | None
    ) -> None:
        mbx = await self.mailboxes.get_mailbox(folder)  # waits while it is being seeded
        await self._append(mbx, raw, flags, when or datetime.now(UTC), recent=True)

    async def feed_one(self) -> None:
        await self.mailboxes.get_mailbox(INBOX)  # the generator is busy until INBOX is full
        msg = self.generator.live_message()
        await self.deliver(INBOX, msg.raw, msg.flags, msg.date)

    async def _append(
        self,
        mbx: MailboxData,
        raw: bytes,
        flags: Iterable[str],
        when: datetime,
        recent: bool = False,
    ) -> None:
        flag_set = frozenset(self._flag(f) for f in flags)
        await mbx.append(AppendMessage(raw, when, flag_set), recent=recent)

    def _flag(self, name: str) -> Flag:
        flag = self._flags.get(name)
        if flag is None:
            flag = self._flags[name] = Flag(name)
        return flag

    # -- SMTP ---------------------------------------------------------------------------

    def _smtp_authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and secrets.compare_digest(data.login, self.user.email.encode())
            and secrets.compare_digest(data.password, self.password.encode())
        )
        return AuthResult(success=ok, handled=False)

    def _is_me(self, addr: str) -> bool:
        return addr.strip().lower() == self.user.email.lower()

    async def submitted(self, envelope: Envelope) -> None:
        """Accepted mail: into Sent, into INBOX when to the demo user, answers from others."""
        content = envelope.original_content or envelope.content or b""
        raw = content if isinstance(content, bytes) else content.encode("utf-8")
        raw = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        now = datetime.now(UTC)
        await self.deliver(SENT, raw, {SEEN}, now)
        if any(self._is_me(r) for r in envelope.rcpt_tos):
            await self.deliver(INBOX, raw, (), now)
        others = [r for r in envelope.rcpt_tos if not self._is_me(r)]
        if others and self.auto_reply_after is not None:
            self.spawn(self._auto_reply(raw, others[0], self.auto_reply_after))

    async def _auto_reply(self, raw: bytes, recipient: str, after: float) -> None:
        await asyncio.sleep(after)
        original = email.parser.BytesParser(policy=email.policy.default).parsebytes(raw)
        reply = self.generator.auto_reply(original, recipient, datetime.now(UTC))
        await self.deliver(INBOX, reply.raw, reply.flags, reply.date)


class _TrackedSMTP(SMTP):
    """An aiosmtpd session that registers itself, so shutdown can cut it."""

    def __init__(self, registry: set[SMTP], *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._registry = registry

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._registry.add(self)
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        self._registry.discard(self)
        super().connection_lost(error)


class _SmtpHandler:
    def __init__(self, backend: DemoBackend) -> None:
        self.backend = backend

    async def handle_DATA(  # aiosmtpd calls it by this name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        try:
            await self.backend.submitted(envelope)
        except Exception:
            log.exception("could not file a submitted message")
            return "451 4.3.0 The demo mailbox could not store the message"
        return "250 2.0.0 Delivered to the demo mailbox"


class _MemoRegistry(HeaderRegistry):
    """``HeaderRegistry`` builds a new class on every lookup (``type(...)`` for each header
    parsed); the classes are interchangeable, so build each one once. This is a third of
    pymap's time to load a message."""

    def __init__(self) -> None:
        super().__init__()
        self._classes: dict[str, type[BaseHeader]] = {}

    def __getitem__(self, name: str) -> type[BaseHeader]:
        cls = self._classes.get(name.lower())
        if cls is None:
            cls = self._classes[name.lower()] = super().__getitem__(name)
        return cls


def memoise_header_classes() -> None:
    """Give pymap's header parser the memoising registry (same classes, same results)."""
    if not isinstance(ParsedHeaders._registry, _MemoRegistry):
        ParsedHeaders._registry = _MemoRegistry()


# -- the process ------------------------------------------------------------------------


async def serve(stdin: asyncio.StreamReader, emit: Any) -> None:
    """Read the spec, listen, then answer requests until ``stop`` or end of input."""
    line = await stdin.readline()
    if not line:
        return
    backend = DemoBackend(json.loads(line), emit)
    orphaned = False
    try:
        try:
            where = await backend.listen()
        except Exception as exc:
            log.exception("the demo servers could not start")
            emit({"event": "start-failed", "message": f"{type(exc).__name__}: {exc}"})
            return
        emit({"event": "listening", **where})
        while True:
            line = await stdin.readline()
            if not line:
                # The app is gone without saying stop (killed): tidy up after it.
                orphaned = bool(backend.spec.get("remove_workdir_if_orphaned"))
                break
            request = json.loads(line)
            if request["op"] == "stop":
                orphaned = False
                break
            backend.spawn(_answer(backend, request, emit))
    finally:
        await backend.shutdown()
    if orphaned:
        shutil.rmtree(backend.workdir, ignore_errors=True)


async def _answer(backend: DemoBackend, request: dict[str, Any], emit: Any) -> None:
    reply: dict[str, Any] = {"event": "reply", "id": request["id"], "ok": True}
    try:
        if request["op"] == "deliver":
            when = request.get("when")
            await backend.deliver(
                request["folder"],
                base64.b64decode(request["raw"]),
                request.get("flags", ()),
                datetime.fromisoformat(when) if when else None,
            )
        elif request["op"] == "feed":
            await backend.feed_one()
        else:
            raise ValueError(f"unknown request {request['op']!r}")
    except Exception as exc:
        log.exception("request %s failed", request.get("op"))
        reply.update(ok=False, message=str(exc))
    emit(reply)


def main() -> None:
    # The protocol owns the real stdout; anything a library prints goes to the log instead.
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1, encoding="utf-8")
    sys.stdout = sys.stderr
    # Ctrl-C belongs to the app: it stops us by closing our stdin.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    memoise_header_classes()

    def emit(event: dict[str, Any]) -> None:
        out.write(json.dumps(event) + "\n")

    async def run() -> None:
        loop = asyncio.get_running_loop()
        stdin = asyncio.StreamReader(limit=64 * 1024 * 1024)
        await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(stdin), os.fdopen(0, "rb", buffering=0)
        )
        await serve(stdin, emit)

    asyncio.run(run())


if __name__ == "__main__":
    main()
