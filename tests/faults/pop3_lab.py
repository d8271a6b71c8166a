"""Kill -9 a POP3 download into a Maildir at every step (``pop3_driver``), restart it twice,
and count what the user's Maildir ends with; used by tests/faults/test_pop3_crash.py and
scripts/faults-long.

Each run gets a fresh user on a private Dovecot (plain POP3, reached through the fault
proxy), with the same seeded messages delivered over LMTP. The proxy can give the messages
hostile unique-ids in flight (``../x``, ``a/b``, ``.``, a NUL, 1 KiB), which the real Dovecot
cannot emit: every UIDL line is rewritten, the same way in every run.

A run's figures (``Outcome``): messages *lost* (on neither the server nor in the Maildir),
*duplicated* (two files with one message), *partial* (a file in ``new/`` or ``cur/`` that is
not a whole message), *outside* (a file anywhere but the Maildir, the ledger and the lab's
own files), *left on the server* (the download deletes, ``keep_on_server = false``), and
whether the second restart downloaded anything again.
"""

from __future__ import annotations

import json
import poplib
import random
import re
import shutil
import signal
import smtplib
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faults.journal_lab import Zygote
from harness import Dovecot, TcpProxy, User, make_message

SEEDED = 5

HOSTILE_UIDLS = [b"../x", b"a/b", b".", b"nul\0here", b"K" * 1024]
"""Unique-ids a hostile server might send: a path, a separator, a dot, a NUL, 1 KiB."""

SUBJECT = re.compile(rb"^Subject: (.*?)\r?$", re.M)

LAB_FILES = {"spec.json", "out.json", "stderr.txt"}


def seeded(i: int) -> bytes:
    return make_message(
        sender="a@example.net",
        to=["b@example.test"],
        subject=f"pop {i}",
        body=f"body {i}\r\n.a line with a leading dot\r\n" + ("x" * 70 + "\r\n") * (i * 40),
    )


@dataclass
class Outcome:
    kill_at: int
    event: str
    lost: int = 0
    duplicated: int = 0
    partial: int = 0
    outside: list[str] = field(default_factory=list)
    left_on_server: int = 0
    second_restart_downloaded: int = 0
    cut_by_reset: bool = False
    """The killed run's download was cut by the proxy's reset and tried again."""

    @property
    def consistent(self) -> bool:
        return not (
            self.lost
            or self.duplicated
            or self.partial
            or self.outside
            or self.left_on_server
            or self.second_restart_downloaded
        )


@dataclass
class Pop3Lab:
    server: Dovecot
    workdir: Path
    hostile: bool = False
    zygote: Zygote | None = None
    _runs: int = 0
    _originals: dict[bytes, bytes] = field(default_factory=dict)
    server_bytes: int = 0
    connections: int = 0
    """How many connections the last run opened through the proxy."""
    """What the server sent in the last clean run, through the proxy (for random resets)."""

    def fresh(self) -> tuple[User, Path]:
        self._runs += 1
        user = self.server.add_user(f"pop{self._runs}")
        assert self.server.ports.lmtp is not None
        with smtplib.LMTP(self.server.host, self.server.ports.lmtp, timeout=60) as lmtp:
            for i in range(1, SEEDED + 1):
                assert not lmtp.sendmail("a@example.net", [user.email], seeded(i))
        home = self.workdir / f"run{self._runs}"
        home.mkdir()
        return user, home

    def device(self, user: User) -> poplib.POP3:
        pop = poplib.POP3(self.server.host, self.server.ports.pop3, timeout=30)
        pop.user(user.login)
        pop.pass_(user.password)
        return pop

    def server_messages(self, user: User) -> list[bytes]:
        pop = self.device(user)
        try:
            count, _ = pop.stat()
            out = []
            for n in range(1, count + 1):
                _, lines, _ = pop.retr(n)
                out.append(b"".join(line + b"\r\n" for line in lines))
            return out
        finally:
            pop.quit()

    def uidls(self, user: User) -> list[bytes]:
        pop = self.device(user)
        try:
            _, lines, _ = pop.uidl()
            return [line.split()[1] for line in lines]
        finally:
            pop.quit()

    def arm(self, proxy: TcpProxy, uidls: list[bytes]) -> list[threading.Event]:
        """Give every message a hostile unique-id in the next UIDL listing (this run's)."""
        return [
            proxy.rewrite_line(b"%d %s\r\n" % (n, real), b"%d %s\r\n" % (n, fake))
            for n, (real, fake) in enumerate(zip(uidls, HOSTILE_UIDLS, strict=False), start=1)
        ]

    def drive(
        self, user: User, home: Path, *, kill_at: int | None = None, reset_at: int | None = None
    ) -> tuple[int, dict[str, Any]]:
        """One download in a child. ``reset_at``: the proxy resets the connection once the
        server has sent that many bytes (inside a message, a listing, a reply), and the
        driver tries again as the poller would."""
        out = home / "out.json"
        out.unlink(missing_ok=True)
        uidls = self.uidls(user) if self.hostile else []
        with TcpProxy(self.server.host, self.server.ports.pop3) as proxy:
            # The rewrites are one-shot: a download tried again after a reset lists the ids
            # again, and a hostile server sends the same ones every time (as many sets as
            # the driver makes attempts).
            attempts = 7 if reset_at is not None else 1
            fired = (
                [e for _ in range(attempts) for e in self.arm(proxy, uidls)] if self.hostile else []
            )
            if reset_at is not None:
                proxy.reset_after(reset_at, "server")
            spec = {
                "driver": "pop3",
                "host": proxy.host,
                "port": proxy.port,
                "login": user.login,
                "password": user.password,
                "maildir": str(home / "mail"),
                "ledger": str(home / "pop3.sqlite3"),
                "kill_at": kill_at,
                "out": str(out),
                "retry": reset_at is not None,
            }
            spec_path = home / "spec.json"
            spec_path.write_text(json.dumps(spec))
            code = self._zygote().run(spec_path)
            self.connections = proxy.connection_count
            if kill_at is None and reset_at is None:
                assert all(e.is_set() for e in fired), "a hostile unique-id was not sent"
                self.server_bytes = len(proxy.server_bytes())
        if code not in (0, -signal.SIGKILL):
            log = (home / "stderr.txt").read_text(errors="replace")
            raise AssertionError(f"driver failed ({code}):\n{log[-3000:]}")
        return code, json.loads(out.read_text()) if out.exists() else {}

    def _zygote(self) -> Zygote:
        if self.zygote is None:
            self.zygote = Zygote()
        return self.zygote

    def close(self) -> None:
        if self.zygote is not None:
            self.zygote.close()
            self.zygote = None
        shutil.rmtree(self.workdir, ignore_errors=True)

    def kill_points(self) -> list[str]:
        user, home = self.fresh()
        code, out = self.drive(user, home)
        assert code == 0 and out["new"] == SEEDED, out
        return list(out["events"])

    def random_run(self, seed: int, steps: int) -> tuple[Outcome, bool]:
        """Killed at a random step; half of the runs also get their connection reset after a
        random number of the server's bytes (before or after the kill point; the download is
        tried again after a reset). Returns whether a reset was armed. Needs ``kill_points``
        run first (for the number of the server's bytes)."""
        assert self.server_bytes > 0, "kill_points() first"
        rng = random.Random(seed)
        kill_at = rng.randint(1, steps)
        reset_at = rng.randint(1, self.server_bytes) if rng.random() < 0.5 else None
        return self.crash(kill_at, reset_at=reset_at), reset_at is not None

    def crash(self, kill_at: int, *, reset_at: int | None = None) -> Outcome:
        user, home = self.fresh()
        originals = {subject_of(m): m for m in self.server_messages(user)}
        code, killed = self.drive(user, home, kill_at=kill_at, reset_at=reset_at)
        cut = reset_at is not None and self.connections > 1
        if code == 0:  # a reset changed the run's events: it ended before kill_at
            assert reset_at is not None, f"not killed at {kill_at}: {killed}"
            killed = {"killed_at": "(ran to the end)"}
        event = killed.get("killed_at", "(not reached)")
        self.drive(user, home)
        _, second = self.drive(user, home)
        outcome = Outcome(kill_at, event, cut_by_reset=cut)
        outcome.second_restart_downloaded = int(second.get("new", 0))
        files = maildir_files(home / "mail")
        got: Counter[bytes] = Counter()
        for path in files:
            data = path.read_bytes()
            subject = subject_of(data)
            if originals.get(subject) != data:
                outcome.partial += 1
            got[subject] += 1
        remaining = {subject_of(m) for m in self.server_messages(user)}
        outcome.left_on_server = len(remaining)
        outcome.lost = sum(1 for s in originals if not got[s] and s not in remaining)
        outcome.duplicated = sum(n - 1 for n in got.values() if n > 1)
        outcome.outside = stray_files(home)
        return outcome


def subject_of(message: bytes) -> bytes:
    found = SUBJECT.search(message)
    return found.group(1) if found else b""


def maildir_files(root: Path) -> list[Path]:
    """Every message file in ``new/`` and ``cur/`` of every folder."""
    return [p for p in root.rglob("*") if p.is_file() and p.parent.name in ("new", "cur")]


def stray_files(home: Path) -> list[str]:
    """Files in the run's directory that are neither the Maildir's nor the ledger's."""
    out = []
    for path in home.rglob("*"):
        if path.is_dir():
            continue
        rel = path.relative_to(home)
        parts = rel.parts
        if parts[0] == "mail" and (
            path.parent.name in ("new", "cur", "tmp") or path.name == "maildirfolder"
        ):
            continue
        if len(parts) == 1 and (parts[0] in LAB_FILES or parts[0].startswith("pop3.sqlite3")):
            continue
        out.append(str(rel))
    return out
