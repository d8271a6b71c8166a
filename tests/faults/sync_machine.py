"""The model-based test of sync (issue 17, item 5): a hypothesis state machine plays a user's
triage through the real engine (``MailApi``: flags, read/unread, move, copy, delete for good,
undo, saving a draft), another client's changes over a plain IMAP connection (new mail,
flags, expunges, moves, a new UIDVALIDITY by ``doveadm``), faults (the fault proxy cuts a
changing command or its answer, resets every connection, or becomes a half-open link;
``doveadm kick``) and restarts of the engine on the same cache and journal, against a
private Dovecot. Used by test_sync_model.py (quick, derandomized) and scripts/faults-long.

Time is made explicit so the model is exact: the engine's event loop runs only inside a
rule, and each rule while "online" ends with the journal sent (``settle``); "offline" (the
proxy refuses connections) the user's actions wait in the journal while the remote side goes
on, and reach the server, in order, after every one of those remote changes. After a quiet
resync (online, journal empty, a full sync) the check is:

- the server (read over a separate connection) equals the model (``sync_model``): each
  folder's UIDVALIDITY, and UID -> (Message-ID, flags) for every message: nothing lost,
  nothing applied twice, nothing applied to another message;
- the cache equals the server: UIDVALIDITY, UIDs, flags (and Message-IDs);
- the journal is empty.
"""

from __future__ import annotations

import asyncio
import contextlib
import imaplib
import os
import re
import subprocess
import threading
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass, field, replace
from email.message import EmailMessage
from pathlib import Path
from typing import Any, TypeVar

from faults.sync_model import IGNORED_FLAGS, Act, Counts, ServerModel
from harness import Dovecot, TcpProxy, User
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from kittiwake.core.api import MailApi
from kittiwake.core.compose.drafts import LocalDraft
from kittiwake.core.config import config_from_dict
from kittiwake.core.engine import Engine
from kittiwake.core.errors import ConnectionLost, KittiwakeError
from kittiwake.core.events import ConnectionChanged, ConnState, Subscription
from kittiwake.core.imap.account import ImapAccount, Tuning
from kittiwake.core.journal import Action, ActionRefused

T = TypeVar("T")

ACTED = ("INBOX", "Archive")
"""Folders the user and the other client act in (Trash is a destination too)."""
DESTS = ("INBOX", "Archive", "Trash")
FLAGS = ("\\Flagged", "\\Seen", "$Label1")
SEEDED = 4
STEP_TIMEOUT = 60.0

# What the fault proxy cuts, by the action's kind: its command (the server never gets all of
# it) or its answer (the server did it; the engine never learnt).
COMMAND = {
    "flags": b"UID STORE ",
    "move": b"UID MOVE ",
    "copy": b"UID COPY ",
    "expunge": b"UID EXPUNGE ",
}
ANSWER = {
    "flags": b"Store completed",
    "move": b"Move completed",
    "copy": b"Copy completed",
    "expunge": b"Expunge completed",
}
FAULTS = (None, None, None, "kick", "reset", "command", "answer")
REMOTE = ("flag", "unflag", "expunge", "move") * 2 + ("uidvalidity",)


def new_message(msgid: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Ann <ann@example.org>"
    msg["To"] = "me@example.test"
    msg["Subject"] = f"model {msgid}"
    msg["Message-ID"] = msgid
    msg["Date"] = "Thu, 26 Nov 2026 10:00:00 +0000"
    msg.set_content("body\n")
    return msg.as_bytes()


def norm_id(value: str | None) -> str:
    value = (value or "").strip()
    return value if value.startswith("<") else f"<{value}>"


@dataclass
class SyncLab:
    """One Dovecot without TLS (the proxy reads and cuts commands) and a scratch directory;
    every example gets a fresh user."""

    server: Dovecot
    workdir: Path
    counts: Counts = field(default_factory=Counts)
    _runs: int = 0

    def fresh(self) -> tuple[User, Path]:
        self._runs += 1
        home = self.workdir / f"sync{self._runs}"
        home.mkdir(parents=True)
        return self.server.add_user("sync"), home

    def device(self, user: User) -> imaplib.IMAP4:
        assert self.server.ports.imap is not None
        imap = imaplib.IMAP4(self.server.host, self.server.ports.imap, timeout=30)
        imap.login(user.login, user.password)
        return imap

    def doveadm(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            ["doveadm", "-c", str(self.server.conf_path), *args], capture_output=True, check=False
        )


Snapshot = dict[str, tuple[int, dict[int, tuple[str, frozenset[str]]]]]


def server_view(imap: imaplib.IMAP4) -> Snapshot:
    """Every folder: UIDVALIDITY and UID -> (Message-ID, flags), read over ``imap``."""
    _, listed = imap.list()
    names = sorted(
        line.decode().rsplit(" ", 1)[1].strip('"') for line in listed if isinstance(line, bytes)
    )
    found: Snapshot = {}
    for name in names:
        _, data = imap.status(f'"{name}"', "(UIDVALIDITY)")
        uidvalidity = int(re.search(rb"UIDVALIDITY (\d+)", data[0] or b"").group(1))  # type: ignore[union-attr]
        typ, count = imap.select(f'"{name}"', readonly=True)
        assert typ == "OK", (name, count)
        msgs: dict[int, tuple[str, frozenset[str]]] = {}
        if count[0] != b"0":
            _, rows = imap.fetch("1:*", "(UID FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
            for item in rows:
                if not isinstance(item, tuple):
                    continue
                head, body = item
                uid = int(re.search(rb"UID (\d+)", head).group(1))  # type: ignore[union-attr]
                flags = re.search(rb"FLAGS \(([^)]*)\)", head)
                names_ = frozenset(flags.group(1).decode().split() if flags else [])
                msgid = body.decode().strip().split(":", 1)[-1].strip()
                msgs[uid] = (norm_id(msgid), names_ - IGNORED_FLAGS)
        found[name] = (uidvalidity, msgs)
        imap.unselect()
    return found


class SyncMachine(RuleBasedStateMachine):
    """One example: a fresh user with ``SEEDED`` messages in INBOX, an engine through the
    proxy, then the rules. ``lab`` is set by the runner (``run``)."""

    lab: SyncLab

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.counts = self.lab.counts
        self.counts.examples += 1
        self.user, self.home = self.lab.fresh()
        self.other = self.lab.device(self.user)
        self.next_id = 0
        assert self.lab.server.ports.imap is not None
        self.proxy = TcpProxy(self.lab.server.host, self.lab.server.ports.imap).start()
        self.online = True
        self.history: list[list[Act]] = []
        """The engine's undo steps (one action each here), newest last: gone on restart."""
        self.pending: list[Act] = []
        """Offline only: actions journaled, not sent yet, in order."""
        self.drafts: list[LocalDraft] = []
        self.uidvalidity = 1000
        self._env = os.environ.get("XDG_DATA_HOME")
        os.environ["XDG_DATA_HOME"] = str(self.home / "data")
        for _ in range(SEEDED):
            self._remote_append("INBOX")
        view = server_view(self.other)
        self.model = ServerModel({name: uv for name, (uv, _) in view.items()})
        seeded = view["INBOX"][1]
        for uid, (msgid, flags) in sorted(seeded.items()):
            assert self.model.append("INBOX", msgid, flags) == uid
        self.api: MailApi | None = None
        self.events: Subscription | None = None
        self.run(self._start())

    # -- the engine --------------------------------------------------------------------------

    def run(self, coro: Awaitable[T]) -> T:
        async def bounded() -> T:
            return await asyncio.wait_for(coro, STEP_TIMEOUT)

        return self.loop.run_until_complete(bounded())

    def _config(self) -> Any:
        imap = {
            "host": self.proxy.host,
            "port": self.proxy.port,
            "security": "none",
            "user": self.user.login,
            "password": self.user.password,
            "timeout": 2,
        }
        smtp = {"host": self.proxy.host, "port": 1, "security": "none"}  # drafts only
        return config_from_dict(
            {"accounts": {"me": {"email": self.user.email, "imap": imap, "smtp": smtp}}}
        )

    async def _start(self) -> None:
        tuning = Tuning(backoff_min=0.02, backoff_max=0.1, dead_after=2.0)
        self.api = MailApi(Engine(self._config(), self.home / "cache", tuning))
        self.events = self.api.subscribe()
        self.api.start()
        if self.online:
            await self._settle()

    @property
    def account(self) -> ImapAccount:
        assert self.api is not None
        return self.api.engine.imap["me"]

    async def _settle(self) -> None:
        """Until the account is synced and its journal is empty; a connection lost on the way
        (a fault just armed) is waited out: the account reconnects by itself."""
        for _ in range(8):
            try:
                await self.account.wait_synced(20)
                await self.account.flush_actions()
                if self.api is not None and self.api.pending_actions("me") == 0:
                    return
            except ConnectionLost:
                pass
            if self.account.state is ConnState.ONLINE:
                assert self.events is not None
                with contextlib.suppress(TimeoutError):
                    await self.events.wait_for(ConnectionChanged, 5, state=ConnState.OFFLINE)
        raise AssertionError("the journal could not be sent after 8 tries")

    async def _resync(self) -> None:
        """The quiet resync: journal sent, then the folder list and every folder synced again,
        as ctrl+r in each does (not ``sync_all``: it trusts LIST-STATUS, and Dovecot's
        LIST-STATUS of the selected folder is that session's view, which a change the watcher
        has not reported yet is not part of). Retried over a connection lost meanwhile
        (Dovecot ends a session whose selected folder got a new UIDVALIDITY)."""
        for _ in range(8):
            await self._settle()
            try:
                folders, _ = await self.account.sync_folder_list()
                for folder in folders:
                    if folder.selectable:
                        await self.account.sync_folder(folder.name)
                return
            except ConnectionLost:
                continue
        raise AssertionError("no quiet resync after 8 tries")

    def _reopen(self) -> None:
        with contextlib.suppress(imaplib.IMAP4.error, OSError):
            self.other.logout()
        self.other = self.lab.device(self.user)

    # -- picking messages ----------------------------------------------------------------------

    def _cached(self, folder: str) -> list[int]:
        assert self.api is not None
        return sorted(self.api.message_index("me", folder))

    @staticmethod
    def _pick(uids: list[int], index: int, two: bool) -> tuple[int, ...]:
        if not uids:
            return ()
        first = uids[index % len(uids)]
        if two and len(uids) > 1:
            second = uids[(index + 1) % len(uids)]
            return tuple(sorted({first, second}))
        return (first,)

    def _new_id(self) -> str:
        self.next_id += 1
        return f"<sm{self.next_id}.{uuid.uuid4().hex[:12]}@model.example>"

    # -- user actions ---------------------------------------------------------------------------

    def _act(self, action: Action, fault: str | None, *, undoable: bool = True) -> None:
        assert self.api is not None
        self.counts.actions += 1
        cache = self.api.engine.stores["me"].cache
        previous = cache.flags(action.folder, action.uids)
        try:
            submitted = self.api.act("me", action, undoable=undoable)
        except ActionRefused:
            self.counts.dropped += 1  # the cache knows them gone already: nothing journaled
            return
        act = Act(
            submitted.kind,  # type: ignore[arg-type]
            submitted.folder,
            submitted.uidvalidity,
            submitted.uids,
            frozenset(submitted.add),
            frozenset(submitted.remove),
            submitted.dest,
            previous=dict(previous),
        )
        if undoable:
            self.history.append([act])
        self._send([act], fault)

    def _send(self, acts: list[Act], fault: str | None) -> None:
        """Online: the journal goes out now (through ``fault``); offline: it waits."""
        if not self.online:
            self.pending += acts
            return
        answer_cut: threading.Event | None = None
        if fault is not None:
            self.counts.faults += 1
            kind = acts[0].kind
            if fault == "kick":
                self.lab.doveadm("kick", self.user.login)
                self._reopen()  # the other client was kicked too
            elif fault == "reset":
                self.proxy.kill_connections()
            elif fault == "command":
                self.proxy.cut_after(COMMAND[kind], "client")
            else:
                answer_cut = self.proxy.cut_after(ANSWER[kind], "server")
        try:
            self.run(self._settle())
        finally:
            self.proxy.heal()
        # The cut fires on the first answer of that kind: if one came, it was this action's.
        lost = answer_cut is not None and answer_cut.is_set() and acts[0].kind == "move"
        self._apply(acts, answer_lost=lost)

    def _apply(self, acts: list[Act], *, answer_lost: bool = False) -> None:
        """``acts`` reach the server, in order (those still waiting follow moved messages)."""
        for index, act in enumerate(acts):
            self.counts.dropped += bool(self.model.apply(act, answer_lost=answer_lost))
            waiting = {id(a): a for step in self.history for a in step}
            waiting.update({id(a): a for a in acts[index + 1 :]})
            self.model.moved_by_engine(act, list(waiting.values()))

    @rule(
        folder=st.sampled_from(ACTED),
        index=st.integers(0, 50),
        two=st.booleans(),
        flag=st.sampled_from(FLAGS),
        add=st.booleans(),
        fault=st.sampled_from(FAULTS),
    )
    def flag(
        self, folder: str, index: int, two: bool, flag: str, add: bool, fault: str | None
    ) -> None:
        uids = self._pick(self._cached(folder), index, two)
        if not uids:
            return
        assert self.api is not None
        action = Action(
            kind="flags",
            folder=folder,
            uidvalidity=self.api.uidvalidity("me", folder),
            uids=uids,
            add=(flag,) if add else (),
            remove=() if add else (flag,),
        )
        self._act(action, fault)

    @rule(folder=st.sampled_from(ACTED), index=st.integers(0, 50), seen=st.booleans())
    def mark_read(self, folder: str, index: int, seen: bool) -> None:
        """Opening a message marks it read (not undoable), as the reader does."""
        uids = self._pick(self._cached(folder), index, False)
        if not uids:
            return
        assert self.api is not None
        action = Action(
            kind="flags",
            folder=folder,
            uidvalidity=self.api.uidvalidity("me", folder),
            uids=uids,
            add=("\\Seen",) if seen else (),
            remove=() if seen else ("\\Seen",),
        )
        self._act(action, None, undoable=False)

    @rule(
        folder=st.sampled_from(ACTED),
        index=st.integers(0, 50),
        two=st.booleans(),
        kind=st.sampled_from(("move", "move", "copy", "expunge")),
        dest=st.sampled_from(DESTS),
        fault=st.sampled_from(FAULTS),
    )
    def transfer(
        self, folder: str, index: int, two: bool, kind: str, dest: str, fault: str | None
    ) -> None:
        if dest == folder and kind != "expunge":
            return
        uids = self._pick(self._cached(folder), index, two)
        if not uids:
            return
        assert self.api is not None
        action = Action(
            kind=kind,  # type: ignore[arg-type]
            folder=folder,
            uidvalidity=self.api.uidvalidity("me", folder),
            uids=uids,
            dest=None if kind == "expunge" else dest,
        )
        self._act(action, fault)

    @rule(fault=st.sampled_from(FAULTS))
    def undo(self, fault: str | None) -> None:
        assert self.api is not None
        said = self.api.undo("me")
        if not self.history:
            assert said == "Nothing to undo", said
            return
        self.counts.undos += 1
        step = self.history.pop()
        inverses: list[Act] = []
        for act in reversed(step):
            if any(a is act for a in self.pending):  # cancelled before it reached the server
                self.pending = [a for a in self.pending if a is not act]
                continue
            inverses += self.model.inverse(act)
        if not inverses:
            return
        self._send(inverses, fault)

    @precondition(lambda self: self.online)
    @rule(again=st.booleans())
    def save_draft(self, again: bool) -> None:
        """Save a new draft to Drafts, or save the last one again (its copy is replaced)."""
        assert self.api is not None
        drafts = self.model.folders["Drafts"]
        if again and self.drafts:
            local = self.drafts.pop()
            local = replace(local, draft=replace(local.draft, body=local.draft.body + "more\n"))
        else:
            local = self.api.compose.new("me", "someone@example.test", f"draft {self.next_id}")
            self.next_id += 1
        self.counts.actions += 1
        try:
            saved = self.run(self.api.save_draft(local))
        except KittiwakeError:
            # The APPEND's answer was lost (Dovecot ends a session whose selected folder got
            # a new UIDVALIDITY, answering BYE to the next command): kept on this machine,
            # perhaps on the server too. The user saves again: one copy must remain.
            self.run(self._settle())
            saved = self.run(self.api.save_draft(local))
        self.run(self._settle())
        assert saved.server_uid is not None and saved.server_uid >= drafts.uidnext, (
            saved.server_uid,
            drafts.uidnext,
        )
        msgid = norm_id(saved.draft.message_id)
        for uid in [u for u, m in drafts.msgs.items() if m.msgid == msgid]:
            self.model.expunge("Drafts", uid)  # the copy it replaces, or one whose answer was lost
        drafts.uidnext = saved.server_uid
        self.model.append("Drafts", msgid, frozenset({"\\Draft", "\\Seen"}))
        self.drafts.append(saved)

    # -- the other client --------------------------------------------------------------------

    def _remote_append(self, folder: str) -> str:
        msgid = self._new_id()
        typ, data = self.other.append(folder, "", None, new_message(msgid))
        assert typ == "OK", data
        return msgid

    @rule(folder=st.sampled_from(ACTED))
    def remote_new_mail(self, folder: str) -> None:
        self.counts.remote += 1
        self.model.append(folder, self._remote_append(folder))

    @rule(
        folder=st.sampled_from(ACTED),
        index=st.integers(0, 50),
        what=st.sampled_from(REMOTE),
        flag=st.sampled_from(FLAGS),
        dest=st.sampled_from(DESTS),
    )
    def remote_change(self, folder: str, index: int, what: str, flag: str, dest: str) -> None:
        if what == "uidvalidity":
            self.counts.remote += 1
            self._new_uidvalidity(folder)
            return
        uids = sorted(self.model.folders[folder].msgs)
        if not uids or (what == "move" and dest == folder):
            return
        uid = uids[index % len(uids)]
        self.counts.remote += 1
        typ, data = self.other.select(f'"{folder}"')
        assert typ == "OK", data
        if what in ("flag", "unflag"):
            op = "+FLAGS" if what == "flag" else "-FLAGS"
            typ, data = self.other.uid("STORE", str(uid), op, f"({flag})")
            change = frozenset({flag})
            if what == "flag":
                self.model.set_flags(folder, uid, change, frozenset())
            else:
                self.model.set_flags(folder, uid, frozenset(), change)
        elif what == "expunge":
            typ, data = self.other.uid("STORE", str(uid), "+FLAGS", "(\\Deleted)")
            assert typ == "OK", data
            typ, data = self.other.uid("EXPUNGE", str(uid))
            self.model.expunge(folder, uid)
        else:
            typ, data = self.other.uid("MOVE", str(uid), f'"{dest}"')
            self.model.remote_move(folder, uid, dest)
        assert typ == "OK", data
        self.other.unselect()

    def _new_uidvalidity(self, folder: str) -> None:
        """The folder is recreated as far as UIDs go: every UID names "another" message."""
        self.counts.uidvalidity_changes += 1
        self.uidvalidity += 1
        update = ["mailbox", "update", "-u", self.user.login]
        done = self.lab.doveadm(*update, "--uid-validity", str(self.uidvalidity), folder)
        assert done.returncode == 0, done.stderr
        self.model.new_uidvalidity(folder, self.uidvalidity)

    # -- the link and the process ----------------------------------------------------------

    @precondition(lambda self: self.online)
    @rule(half_open=st.booleans())
    def network_down(self, half_open: bool) -> None:
        """The link goes: reset, or half-open (nothing comes back; noticed by a timeout)."""
        self.counts.faults += 1
        self.counts.offline_phases += 1
        self.online = False
        self.proxy.refuse_new_connections()
        if half_open:
            self.proxy.blackhole("server")
            self.run(self._poke())
        self.proxy.kill_connections()
        self.run(self._wait_offline())
        self.proxy.heal()

    async def _poke(self) -> None:
        """A command into the half-open link, so the account notices it by its timeout."""
        with contextlib.suppress(ConnectionLost):
            await self.account.sync_folder("INBOX")

    async def _wait_offline(self) -> None:
        assert self.events is not None
        self.events.pending()  # older events are not this loss
        while self.account.state is ConnState.ONLINE:
            await self.events.wait_for(ConnectionChanged, 15, state=ConnState.OFFLINE)

    @precondition(lambda self: not self.online)
    @rule()
    def network_up(self) -> None:
        self._go_online()

    def _go_online(self) -> None:
        if self.online:
            return
        self.online = True
        self.proxy.accept_new_connections()
        self.run(self._settle())
        acts, self.pending = self.pending, []
        self._apply(acts)

    @rule()
    def restart(self) -> None:
        """The app quits and starts again on the same cache and journal (undo is per run)."""
        self.counts.restarts += 1
        assert self.api is not None
        # The composer closes with the app, its draft kept in Drafts (a draft left open by a
        # crash is filed again on the next start: the journal's kill points cover that).
        for local in self.drafts:
            self.run(self.api.compose.discard(local, keep_server_copy=True))
        self.drafts.clear()
        self.run(self.api.stop())
        self.history.clear()
        self.model.trail.clear()
        self.run(self._start())

    @rule()
    def check(self) -> None:
        """A quiet resync, then the server equals the model and the cache the server."""
        self._go_online()
        self.run(self._resync())
        self.counts.checks += 1
        assert self.api is not None
        assert self.api.pending_actions("me") == 0
        server = server_view(self.other)
        want = self.model.view()
        for name, (uidvalidity, msgs) in server.items():
            if name not in want:
                assert not msgs, f"{name}: unexpected folder with messages {msgs}"
                continue
            model_uv, model_msgs = want[name]
            assert uidvalidity == model_uv, f"{name}: UIDVALIDITY {uidvalidity} != {model_uv}"
            assert msgs == model_msgs, _diff(name, model_msgs, msgs)
        cache = self.api.engine.stores["me"].cache
        for name, (uidvalidity, msgs) in server.items():
            state = cache.folder_state(name)
            assert state is not None and state.uidvalidity == uidvalidity, (
                f"cache of {name}: UIDVALIDITY {state and state.uidvalidity} != {uidvalidity}"
            )
            cached = cache.flags(name)
            have = {u: f - IGNORED_FLAGS for u, f in cached.items()}
            server_flags = {u: f for u, (_, f) in msgs.items()}
            assert have == server_flags, _diff(f"cache of {name}", server_flags, have)
            summaries = cache.summaries(name, sorted(cached))
            ids = {u: norm_id(s.envelope.message_id) for u, s in summaries.items()}
            assert ids == {u: m for u, (m, _) in msgs.items()}, f"cache of {name}: Message-IDs"

    def teardown(self) -> None:
        try:
            if self.api is not None:
                self.check()
        finally:
            try:
                if self.api is not None:
                    self.run(self.api.stop())
            finally:
                self.loop.close()
                self.proxy.close()
                self.other.logout()
                if self._env is None:
                    os.environ.pop("XDG_DATA_HOME", None)
                else:
                    os.environ["XDG_DATA_HOME"] = self._env

    @invariant()
    def journal_sent_while_online(self) -> None:
        """After every step (and the start): online, every action has reached the server."""
        self.counts.steps += 1
        if self.online and self.api is not None:
            assert self.api.pending_actions("me") == 0


def _diff(name: str, want: dict[int, Any], got: dict[int, Any]) -> str:
    lines = [f"{name} differs from what it should be:"]
    for uid in sorted(want.keys() | got.keys()):
        if want.get(uid) != got.get(uid):
            lines.append(f"  UID {uid}: expected {want.get(uid)}, found {got.get(uid)}")
    return "\n".join(lines)


def run(lab: SyncLab, *, examples: int, steps: int, derandomize: bool) -> Counts:
    """Run the machine ``examples`` times; raises (with the shrunk steps) on a failure."""
    machine: type[SyncMachine] = type("Machine", (SyncMachine,), {"lab": lab})
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=examples,
            stateful_step_count=steps,
            deadline=None,
            derandomize=derandomize,
            database=None,
            # Tracing every line to explain a failure takes minutes with a real server.
            phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
            suppress_health_check=list(HealthCheck),
        ),
    )
    return lab.counts
