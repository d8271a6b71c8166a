"""``DemoServers``: the demo account's IMAP and SMTP servers, from the app's asyncio loop.

The servers themselves (pymap's in-memory backend and aiosmtpd, see ``backend``) run in a
child process of this one, started and stopped from the app's loop; ``backend``'s docstring
says why they cannot share the app's loop or interpreter without freezing the UI for seconds.
They listen on free ports of 127.0.0.1 with implicit TLS from a throwaway CA when
``cryptography`` is importable (see ``tls``), else in plain text (loopback only, random
password per run).

Usage::

    async with DemoServers() as demo:        # listening within ~0.3 s; mail loads behind it
        config = demo.config()               # one account, "demo", ready for Engine(config)
        engine = Engine(config, cache_dir=demo.cache_dir)
        feed = asyncio.create_task(run_demo_mail_feed(demo, every=20))

A client may connect at once: a folder still being filled holds SELECT/STATUS until it is
complete (INBOX first, about two seconds for 3,000 messages). Mail submitted over SMTP is
filed into Sent by the server (so the account says ``save_sent = false``) and, when addressed
to the demo user, into INBOX too; anyone else the demo user writes to answers after
``auto_reply_after`` seconds, in the thread. Nothing touches the user's own files:
everything lives in a temporary directory that ``stop()`` removes (``xdg_environment()``
gives XDG_* variables pointing into it, ``cache_dir`` a cache directory inside it).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import importlib.util
import json
import logging
import random
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from kittiwake.core.config import Config, config_from_dict
from kittiwake.core.errors import KittiwakeError
from kittiwake.demo.mailgen import ARCHIVE, DEMO_USER, DemoUser

log = logging.getLogger(__name__)

#: The account's name in ``DemoServers.config()``.
ACCOUNT = "demo"

_BACKEND = "kittiwake.demo.backend"

#: What the server process (``backend``) needs beyond Kittiwake: the ``demo`` extra.
SERVER_PACKAGES = ("pymap", "aiosmtpd")


def check_servers_installed() -> None:
    """Raise ``ModuleNotFoundError`` (its ``name`` the package) when a server package is not
    installed. The servers run in a child process, where a failed import shows only as an
    exit status and a traceback on its stderr; this asks before starting anything, without
    importing them into the app's process."""
    for name in SERVER_PACKAGES:
        if importlib.util.find_spec(name) is None:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)


class DemoError(KittiwakeError):
    """The demo servers could not start, or stopped under us."""


class DemoServers:
    """An IMAP + SMTP server pair holding one generated demo account (an async context
    manager). ``start()`` returns once both listen; ``wait_seeded()`` until every folder is
    full; ``stop()`` ends the server process and deletes the temporary directory. One use:
    make a new one to start again."""

    def __init__(
        self,
        *,
        seed: int = 1,
        inbox: int = 3000,
        host: str = "127.0.0.1",
        tls: bool | None = None,
        user: DemoUser = DEMO_USER,
        now: datetime | None = None,
        auto_reply_after: float | None = 8.0,
        workdir: Path | None = None,
        start_timeout: float = 30.0,
    ) -> None:
        """``seed`` and ``now`` fix the generated mail (``now`` defaults to the current time:
        the mail spans the two years before it). ``inbox``: messages in INBOX (the other
        folders scale with it). ``tls``: None uses TLS when it can be had, True insists, False
        refuses. ``auto_reply_after``: seconds before someone the demo user wrote to answers
        (None: nobody answers). ``workdir``: use and keep this directory instead of a
        temporary one."""
        self.seed = seed
        self.inbox_size = inbox
        self.host = host
        self.user = user
        self.now = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
        self.auto_reply_after = auto_reply_after
        self.start_timeout = start_timeout
        self.password = secrets.token_urlsafe(18)
        self.tls = False
        """Whether the servers use TLS (known once started)."""
        self.imap_port = 0
        self.smtp_port = 0
        self.ca_file: Path | None = None
        self.startup_seconds = 0.0
        """Seconds ``start()`` took (process start, imports, certificates, listening)."""
        self.generate_seconds = 0.0
        """Seconds the server spent generating the mail (set once seeded)."""
        self.inbox_seconds = 0.0
        """Seconds from the server's start until INBOX was generated and loaded."""
        self.seed_seconds = 0.0
        """Seconds from the server's start until every folder was generated and loaded."""
        self.message_count = 0
        self.folder_counts: dict[str, tuple[int, int]] = {}
        """(total, unread) per folder as seeded; live mail comes on top."""
        self._want_tls = tls
        self._own_workdir = workdir is None
        self._workdir = workdir
        self._proc: asyncio.subprocess.Process | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._listening: asyncio.Future[dict[str, Any]] | None = None
        self._seeded: asyncio.Future[None] | None = None
        self._replies: dict[int, asyncio.Future[None]] = {}
        self._next_id = 0
        self._stderr_tail: list[str] = []
        self._used = False

    # -- lifecycle ----------------------------------------------------------------------

    async def __aenter__(self) -> DemoServers:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def workdir(self) -> Path:
        if self._workdir is None:
            raise RuntimeError("DemoServers.start() has not run")
        return self._workdir

    @property
    def cache_dir(self) -> Path:
        """Where the demo account's cache should go (inside the temporary directory)."""
        return self.workdir / "cache" / "kittiwake"

    def xdg_environment(self) -> dict[str, str]:
        """XDG_CONFIG/CACHE/DATA/STATE_HOME inside the temporary directory, created."""
        env = {}
        for var, sub in (
            ("XDG_CONFIG_HOME", "config"),
            ("XDG_CACHE_HOME", "cache"),
            ("XDG_DATA_HOME", "data"),
            ("XDG_STATE_HOME", "state"),
        ):
            path = self.workdir / sub
            path.mkdir(parents=True, exist_ok=True)
            env[var] = str(path)
        return env

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    @property
    def security(self) -> Literal["tls", "none"]:
        return "tls" if self.tls else "none"

    async def start(self) -> None:
        """Start the server process; return once IMAP and SMTP both listen."""
        if self._used:
            raise RuntimeError("DemoServers can be started once; make a new one")
        self._used = True
        started = time.perf_counter()
        if self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix="kittiwake-demo-"))
        loop = asyncio.get_running_loop()
        self._listening = loop.create_future()
        self._seeded = loop.create_future()
        try:
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                _BACKEND,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,  # the terminal's signals are the app's to handle
                limit=1024 * 1024,
            )
            self._tasks = [
                loop.create_task(self._read_events(), name="demo-events"),
                loop.create_task(self._read_log(), name="demo-log"),
            ]
            spec = {
                "seed": self.seed,
                "inbox": self.inbox_size,
                "host": self.host,
                "tls": self._want_tls,
                "name": self.user.name,
                "email": self.user.email,
                "password": self.password,
                "now": self.now.isoformat(),
                "auto_reply_after": self.auto_reply_after,
                "workdir": str(self._workdir),
                "remove_workdir_if_orphaned": self._own_workdir,
            }
            await self._send(spec)
            where = await asyncio.wait_for(self._listening, self.start_timeout)
        except BaseException as exc:
            await self.stop()
            if isinstance(exc, DemoError | asyncio.CancelledError):
                raise
            if isinstance(exc, TimeoutError):
                raise DemoError(
                    f"the demo servers did not start within {self.start_timeout:g} seconds"
                ) from None
            raise DemoError(f"the demo servers could not start ({exc})") from exc
        self.imap_port = int(where["imap_port"])
        self.smtp_port = int(where["smtp_port"])
        self.tls = bool(where["tls"])
        self.ca_file = Path(where["ca_file"]) if where.get("ca_file") else None
        self.startup_seconds = time.perf_counter() - started
        log.info(
            "demo: IMAP on %s:%d, SMTP on %s:%d (%s), up in %.2fs",
            self.host,
            self.imap_port,
            self.host,
            self.smtp_port,
            "TLS" if self.tls else "plain text, loopback only",
            self.startup_seconds,
        )

    async def stop(self) -> None:
        """End the server process (closing every connection) and delete the temp dir."""
        proc = self._proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(Exception):
                await self._send({"op": "stop"})
                assert proc.stdin is not None
                proc.stdin.close()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                log.warning("demo: the server process did not stop; killing it")
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 5)
        self._tasks = []
        self._fail_pending(DemoError("the demo servers have stopped"))
        if self._own_workdir and self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    async def wait_seeded(self, timeout: float | None = None) -> None:
        """Until every folder is full (``seed_seconds``, ``folder_counts`` are then set)."""
        if self._seeded is None:
            raise RuntimeError("DemoServers.start() has not run")
        await asyncio.wait_for(asyncio.shield(self._seeded), timeout)

    # -- the account --------------------------------------------------------------------

    def config(self) -> Config:
        """A ready config with one account, ``demo``, for these servers."""
        if not self.imap_port:
            raise RuntimeError("DemoServers.start() has not run")
        common: dict[str, Any] = {
            "host": self.host,
            "security": self.security,
            "user": self.user.email,
            "password": self.password,
            "timeout": 10,
        }
        if self.ca_file is not None:
            common["ca_file"] = str(self.ca_file)
        account = {
            "email": self.user.email,
            "name": self.user.name,
            "archive_folder": ARCHIVE,
            "imap": {**common, "port": self.imap_port, "poll_every": "1m"},
            # The demo's SMTP server files what it accepts into Sent itself.
            "smtp": {**common, "port": self.smtp_port, "save_sent": False},
        }
        return config_from_dict({"accounts": {ACCOUNT: account}}, where="demo")

    # -- mail ---------------------------------------------------------------------------

    async def deliver(
        self,
        folder: str,
        raw: bytes,
        flags: Iterable[str] = (),
        when: datetime | None = None,
    ) -> None:
        """Put ``raw`` into ``folder`` as the server's own delivery (IDLE clients see it).
        A folder still being seeded is waited for, so delivered mail is always newest."""
        await self._request(
            {
                "op": "deliver",
                "folder": folder,
                "raw": base64.b64encode(raw).decode("ascii"),
                "flags": sorted(flags),
                "when": when.isoformat() if when else None,
            }
        )

    async def feed_one(self) -> None:
        """Deliver one newly generated message to INBOX."""
        await self._request({"op": "feed"})

    # -- talking to the process ---------------------------------------------------------

    async def _send(self, message: dict[str, Any]) -> None:
        proc = self._proc
        if proc is None or proc.stdin is None or proc.returncode is not None:
            raise DemoError("the demo servers are not running")
        proc.stdin.write(json.dumps(message).encode("utf-8") + b"\n")
        await proc.stdin.drain()

    async def _request(self, message: dict[str, Any]) -> None:
        self._next_id += 1
        ident = self._next_id
        reply = asyncio.get_running_loop().create_future()
        self._replies[ident] = reply
        try:
            await self._send({**message, "id": ident})
            await reply
        finally:
            self._replies.pop(ident, None)

    async def _read_events(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        while line := await proc.stdout.readline():
            try:
                event = json.loads(line)
            except ValueError:
                log.warning("demo: unreadable line from the server process: %r", line[:200])
                continue
            self._on_event(event)
        await proc.wait()
        tail = " / ".join(self._stderr_tail[-3:])
        self._fail_pending(
            DemoError(
                f"the demo servers stopped (exit status {proc.returncode})"
                + (f": {tail}" if tail else "")
            )
        )

    def _on_event(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "listening" and self._listening is not None and not self._listening.done():
            self._listening.set_result(event)
        elif kind == "start-failed" and self._listening is not None:
            if not self._listening.done():
                self._listening.set_exception(
                    DemoError(f"the demo servers could not start: {event.get('message')}")
                )
        elif kind == "seeded" and self._seeded is not None and not self._seeded.done():
            self.generate_seconds = float(event["generate_seconds"])
            self.inbox_seconds = float(event["inbox_seconds"])
            self.seed_seconds = float(event["seed_seconds"])
            self.message_count = int(event["message_count"])
            self.folder_counts = {
                f: (int(t), int(u)) for f, (t, u) in event["folder_counts"].items()
            }
            log.info(
                "demo: %d messages generated in %.2fs; INBOX ready after %.2fs, all after %.2fs",
                self.message_count,
                self.generate_seconds,
                self.inbox_seconds,
                self.seed_seconds,
            )
            self._seeded.set_result(None)
        elif kind == "seed-failed" and self._seeded is not None and not self._seeded.done():
            self._seeded.set_exception(
                DemoError(f"the demo mailbox could not be filled: {event.get('message')}")
            )
        elif kind == "reply":
            future = self._replies.get(int(event["id"]))
            if future is not None and not future.done():
                if event.get("ok"):
                    future.set_result(None)
                else:
                    future.set_exception(DemoError(f"demo server: {event.get('message')}"))

    async def _read_log(self) -> None:
        """The server process's log, into ours (and its last lines, for error messages)."""
        proc = self._proc
        assert proc is not None and proc.stderr is not None
        while line := await proc.stderr.readline():
            text = line.decode("utf-8", "replace").rstrip()
            self._stderr_tail = [*self._stderr_tail[-19:], text]
            log.info("demo server: %s", text)

    def _fail_pending(self, error: DemoError) -> None:
        futures = [self._listening, self._seeded, *self._replies.values()]
        for future in futures:
            if future is not None and not future.done():
                future.set_exception(error)
                future.exception()  # retrieved: nobody may be waiting for it


async def run_demo_mail_feed(servers: DemoServers, every: float = 20.0) -> None:
    """Deliver a newly generated message to INBOX every ``every`` seconds (give or take a
    third), until cancelled: run it as a task beside the app."""
    pace = random.Random(servers.seed)  # noqa: S311 - timing, not secrets
    while True:
        await asyncio.sleep(every * pace.uniform(0.67, 1.33))
        await servers.feed_one()


__all__ = [
    "ACCOUNT",
    "SERVER_PACKAGES",
    "DemoError",
    "DemoServers",
    "check_servers_installed",
    "run_demo_mail_feed",
]
