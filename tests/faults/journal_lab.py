"""Crash consistency of the action journal: canonical scenarios, kill -9 at every step, and the
checks that the server ends as an uninterrupted run left it and that a second run changes
nothing. Shared by tests/faults/test_journal_crash.py (quick form) and scripts/faults-long.

A run is ``faults.journal_driver`` in a child process (the venv's python), through a recording
``TcpProxy`` in front of a private Dovecot without TLS (so the proxy reads the commands). Every
run gets a fresh user whose mailbox is seeded the same way, so runs compare by content: each
folder's messages as (subject, flags), counted (a message applied twice shows up twice).
"""

from __future__ import annotations

import imaplib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import Dovecot, TcpProxy, User
from harness.mail import append_many

TESTS_DIR = Path(__file__).resolve().parent.parent
SEEDED = 4
"""Messages in INBOX before every scenario: "Message 1" .. "Message 4" (UIDs 1..4)."""

State = dict[str, Counter[tuple[str, frozenset[str]]]]

CHANGING_LINE = re.compile(
    rb"^\S+ (UID )?(STORE|COPY|MOVE|EXPUNGE|APPEND|CREATE|DELETE|RENAME|SUBSCRIBE)\b",
    re.MULTILINE,
)


def scenarios(doveadm_conf: Path | None = None) -> dict[str, list[dict[str, Any]]]:
    """The canonical scenarios: each a list of user acts (and one server-side change).
    ``{"doveadm": ...}`` is filled per user by ``Lab`` (it names the login)."""
    return {
        "flag": [
            {"kind": "flags", "folder": "INBOX", "uids": [1, 2], "add": ["\\Flagged"]},
            {"kind": "flags", "folder": "INBOX", "uids": [3], "add": ["\\Seen"]},
        ],
        "move": [{"kind": "move", "folder": "INBOX", "uids": [1, 2], "dest": "Archive"}],
        "copy": [{"kind": "copy", "folder": "INBOX", "uids": [1, 3], "dest": "Archive"}],
        "delete": [{"kind": "expunge", "folder": "INBOX", "uids": [2]}],
        "undo": [
            {"kind": "move", "folder": "INBOX", "uids": [1], "dest": "Archive"},
            {"undo": True},
        ],
        "folders": [
            {"create": "Projects"},
            {"kind": "move", "folder": "INBOX", "uids": [4], "dest": "Projects"},
            {"rename": ["Projects", "Done"]},
        ],
        # A draft is written (its local copy exists before the editor opens), saved to
        # Drafts, edited and saved again: Drafts must end with one copy, the latest.
        "draft": [
            {"compose": "plans"},
            {"save_draft": "plans v1"},
            {"save_draft": "plans v2"},
        ],
        "uidvalidity": [
            {"kind": "flags", "folder": "INBOX", "uids": [1], "add": ["\\Flagged"]},
            {"doveadm": "INBOX"},
            {"kind": "move", "folder": "INBOX", "uids": [2], "dest": "Archive"},
        ],
    }


BARE_SCENARIOS = {
    # On a server without MOVE a move is COPY + \Deleted + UID EXPUNGE: three changing commands.
    "move-without-MOVE": [{"kind": "move", "folder": "INBOX", "uids": [1, 2], "dest": "Archive"}],
}


FLAGS = ("\\Flagged", "\\Seen", "$Label1")


def random_acts(rng: random.Random, count: int = 6) -> list[dict[str, Any]]:
    """A seeded run of triage on the seeded INBOX: flags on and off, copies and moves to
    Archive, a delete for good, undo, and now and then the server kicking the account's
    connections (``doveadm kick``). Acts on messages gone by then are refused at once (as
    the app refuses them), which is part of what is checked."""
    acts: list[dict[str, Any]] = []
    for _ in range(count):
        uids = sorted(rng.sample(range(1, SEEDED + 1), rng.randint(1, 2)))
        roll = rng.random()
        if roll < 0.45:
            op = "add" if rng.random() < 0.6 else "remove"
            acts.append({"kind": "flags", "folder": "INBOX", "uids": uids, op: [rng.choice(FLAGS)]})
        elif roll < 0.6:
            acts.append({"kind": "copy", "folder": "INBOX", "uids": uids, "dest": "Archive"})
        elif roll < 0.75:
            acts.append({"kind": "move", "folder": "INBOX", "uids": uids[:1], "dest": "Archive"})
        elif roll < 0.8:
            acts.append({"kind": "expunge", "folder": "INBOX", "uids": uids[:1]})
        else:
            acts.append({"undo": True})
        if rng.random() < 0.15:  # the server drops the account's connections (doveadm kick)
            acts.append({"doveadm": "kick"})
    return acts


def user_acts(acts: list[dict[str, Any]]) -> int:
    return sum(1 for act in acts if "doveadm" not in act)


@dataclass
class Outcome:
    """What one kill point gave."""

    scenario: str
    kill_at: int
    event: str
    acts_journaled: int
    lost: int
    doubled: int
    changing_on_second_run: list[bytes]

    @property
    def consistent(self) -> bool:
        return not (self.lost or self.doubled or self.changing_on_second_run)


class Zygote:
    """``journal_driver --serve``: the venv's python with Kittiwake imported, forking one
    child per run (each a real process, killed for real)."""

    def __init__(self) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS_DIR), env.get("PYTHONPATH")]))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "faults.journal_driver", "--serve"],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def run(self, spec_path: Path) -> int:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"{spec_path}\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline()
        if not answer:
            raise AssertionError(f"the driver's zygote died ({self.proc.poll()})")
        return int(answer)

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)


@dataclass
class Lab:
    """Runs scenarios on one Dovecot (plain IMAP, reached through a fresh proxy per run)."""

    server: Dovecot
    workdir: Path
    _references: dict[tuple[str, int], State] = field(default_factory=dict)
    _runs: int = 0
    zygote: Zygote | None = None

    # -- one run --------------------------------------------------------------------------

    def fresh(self, name: str) -> tuple[User, Path]:
        """A user with the seeded mailbox, and an empty directory for the app's files."""
        user = self.server.add_user(name)
        device = self.device(user)
        append_many(device, SEEDED)
        device.logout()
        self._runs += 1
        home = self.workdir / f"run{self._runs}"
        home.mkdir()
        return user, home

    def device(self, user: User) -> imaplib.IMAP4:
        assert self.server.ports.imap is not None
        device = imaplib.IMAP4(self.server.host, self.server.ports.imap, timeout=30)
        device.login(user.login, user.password)
        return device

    def drive(
        self,
        user: User,
        home: Path,
        proxy: TcpProxy,
        acts: list[dict[str, Any]],
        *,
        mode: str,
        count: int | None = None,
        kill_at: int | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """Run the driver once; its exit status and what it wrote."""
        out = home / "out.json"
        out.unlink(missing_ok=True)
        spec = {
            "host": proxy.host,
            "port": proxy.port,
            "login": user.login,
            "password": user.password,
            "cache_dir": str(home / "cache"),
            "data_dir": str(home / "data"),
            "mode": mode,
            "acts": [self._bind(act, user) for act in acts],
            "count": len(acts) if count is None else count,
            "kill_at": kill_at,
            "out": str(out),
        }
        spec_path = home / "spec.json"
        spec_path.write_text(json.dumps(spec))
        code = self._zygote().run(spec_path)
        if code not in (0, -signal.SIGKILL):
            log = (home / "stderr.txt").read_text(errors="replace")
            raise AssertionError(f"driver failed ({code}):\n{log[-3000:]}")
        return code, json.loads(out.read_text())

    def _zygote(self) -> Zygote:
        if self.zygote is None:
            self.zygote = Zygote()
        return self.zygote

    def close(self) -> None:
        if self.zygote is not None:
            self.zygote.close()
            self.zygote = None
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _bind(self, act: dict[str, Any], user: User) -> dict[str, Any]:
        if "doveadm" not in act:
            return act
        doveadm = ["doveadm", "-c", str(self.server.conf_path)]
        if act["doveadm"] == "kick":
            return {"doveadm": [*doveadm, "kick", user.login]}
        folder = act["doveadm"]
        update = [*doveadm, "mailbox", "update", "-u", user.login]
        return {"doveadm": [*update, "--uid-validity", "777", folder]}

    # -- the server's state -----------------------------------------------------------------

    def state(self, user: User) -> State:
        device = self.device(user)
        try:
            _, listed = device.list()
            names = sorted(
                line.decode().rsplit(" ", 1)[1].strip('"')
                for line in listed
                if isinstance(line, bytes)
            )
            found: State = {}
            for name in names:
                _, count = device.select(f'"{name}"', readonly=True)
                if count[0] == b"0":
                    found[name] = Counter()
                    continue
                _, data = device.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
                found[name] = Counter(_row(item) for item in data if isinstance(item, tuple))
            return found
        finally:
            device.logout()

    def reference(self, name: str, acts: list[dict[str, Any]], count: int) -> State:
        """The server after an uninterrupted run of the first ``count`` user acts, then a
        restart (which files drafts the run left on this machine, as any restart does)."""
        key = (name, count)
        if key not in self._references:
            user, home = self.fresh("ref")
            with TcpProxy(self.server.host, self.server.ports.imap or 0) as proxy:
                upto = _through(acts, count)
                code, _ = self.drive(user, home, proxy, acts, mode="run", count=upto)
                assert code == 0
                code, _ = self.drive(user, home, proxy, acts, mode="resume")
                assert code == 0
            self._references[key] = self.state(user)
        return self._references[key]

    def kill_points(self, acts: list[dict[str, Any]]) -> list[str]:
        """The events of a clean run: kill point N is the N-th (1-based)."""
        return self.clean_run(acts)[0]

    def clean_run(self, acts: list[dict[str, Any]]) -> tuple[list[str], int]:
        """A clean run's events and how many bytes the client sent."""
        user, home = self.fresh("clean")
        with TcpProxy(self.server.host, self.server.ports.imap or 0) as proxy:
            code, result = self.drive(user, home, proxy, acts, mode="run")
            sent = len(proxy.client_bytes())
        assert code == 0 and result["pending"] == 0, result
        return list(result["events"]), sent

    def random_run(self, seed: int) -> tuple[Outcome, bool]:
        """A seeded triage run killed at a random point; half of the runs also get their
        connection reset after a random number of bytes. Returns whether a reset was armed."""
        rng = random.Random(seed)
        acts = random_acts(rng)
        events, sent = self.clean_run(acts)
        kill_at = rng.randint(1, len(events))
        reset_at = rng.randint(1, sent) if rng.random() < 0.5 else None
        return self.crash(f"random-{seed}", acts, kill_at, reset_at=reset_at), reset_at is not None

    def crash(
        self,
        name: str,
        acts: list[dict[str, Any]],
        kill_at: int,
        *,
        reset_at: int | None = None,
    ) -> Outcome:
        """Kill -9 at event ``kill_at``, restart, resume; then a second restart through a
        fresh proxy must send no changing command. ``reset_at``: the proxy also resets the
        connection after that many bytes from the client (before or after the kill)."""
        user, home = self.fresh("crash")
        with TcpProxy(self.server.host, self.server.ports.imap or 0) as proxy:
            if reset_at is not None:
                proxy.reset_after(reset_at, "client")
            code, killed = self.drive(user, home, proxy, acts, mode="run", kill_at=kill_at)
            if code == 0:  # a reset changed the run's events: it ended before kill_at
                assert reset_at is not None, f"not killed at {kill_at}: {killed}"
                killed = {"killed_at": "(ran to the end)", "acts_journaled": user_acts(acts)}
            proxy.heal()
            code, resumed = self.drive(user, home, proxy, acts, mode="resume")
            assert code == 0 and resumed["pending"] == 0, resumed
        with TcpProxy(self.server.host, self.server.ports.imap or 0) as second:
            code, _ = self.drive(user, home, second, acts, mode="resume")
            assert code == 0
            changing = CHANGING_LINE.findall(second.client_bytes())
        got = self.state(user)
        expected = self.reference(name, acts, killed["acts_journaled"])
        lost, doubled = compare(expected, got)
        return Outcome(
            name,
            kill_at,
            killed["killed_at"],
            killed["acts_journaled"],
            lost,
            doubled,
            [b" ".join(filter(None, m)) for m in changing],
        )


def _row(item: tuple[bytes, bytes]) -> tuple[str, frozenset[str]]:
    head, body = item
    flags = re.search(rb"FLAGS \(([^)]*)\)", head)
    names = frozenset(flags.group(1).decode().split() if flags else []) - {"\\Recent"}
    subject = body.decode().strip().removeprefix("Subject: ")
    return subject, names


def _through(acts: list[dict[str, Any]], count: int) -> int:
    """How many entries of ``acts`` make the first ``count`` user acts (a server-side change
    right after them is included: it happened before the next act in every run)."""
    seen = 0
    for index, act in enumerate(acts):
        if "doveadm" in act:
            continue
        if seen == count:
            return index
        seen += 1
    return len(acts)


def compare(expected: State, got: State) -> tuple[int, int]:
    """(lost, doubled): messages (subject, flags) the uninterrupted run has and this one
    lacks, and ones this one has more of; a folder present in one only counts whole."""
    lost = doubled = 0
    for folder in expected.keys() | got.keys():
        want, have = expected.get(folder, Counter()), got.get(folder, Counter())
        lost += sum((want - have).values()) + (folder in expected and folder not in got)
        doubled += sum((have - want).values()) + (folder in got and folder not in expected)
    return lost, doubled


def new_workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="kittiwake-faults-"))
