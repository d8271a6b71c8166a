"""A test-only program that plays a user's triage through the real engine, and can kill -9
itself at any step: ``python -m faults.journal_driver SPEC.json`` (with ``tests/`` on
``PYTHONPATH``; run by tests/faults/test_journal_crash.py and scripts/faults-long).

Kill points are counted here, not in production code: in this process only, the journal's
writes (``Journal.add``, ``mark_sent``, ``done``, ``cancel``) are wrapped to count an event
before and after each, and the IMAP connection's ``execute`` counts one when a changing
command's answer has arrived but before the engine has seen it (so the server did it and the
app never learnt it). With ``kill_at`` = N the process sends itself SIGKILL at event N, after
writing (fsync'd) how many user acts had been journaled by then: the test compares the server
with an uninterrupted run of that many acts.

Modes: ``run`` plays the scenario's acts (each followed by a flush, so the order of events is
the same in every run), ``resume`` is a restart that only syncs and sends what the journal
holds. A clean ``run`` writes the list of events it saw, which the test turns into kill points.
"""

from __future__ import annotations

import asyncio
import faulthandler
import json
import os
import signal
import subprocess
import sys
import traceback
from dataclasses import replace
from pathlib import Path
from typing import Any

from kittiwake.core.api import MailApi
from kittiwake.core.compose.drafts import LocalDraft, LocalDrafts
from kittiwake.core.config import config_from_dict
from kittiwake.core.engine import Engine
from kittiwake.core.errors import ConnectionLost
from kittiwake.core.events import ConnectionChanged, ConnState, Subscription
from kittiwake.core.imap.account import Tuning
from kittiwake.core.imap.connection import ImapConnection
from kittiwake.core.journal import Action, ActionRefused, Journal

CHANGING = ("STORE", "COPY", "MOVE", "EXPUNGE", "APPEND", "CREATE", "DELETE", "RENAME")
"""Commands that change the server (the first word after the tag, or after ``UID``)."""


def verb_of(line: str) -> str:
    words = line.split(" ")
    return words[1] if words[0] == "UID" and len(words) > 1 else words[0]


class Steps:
    """Counts events and kills this process at the chosen one."""

    def __init__(self, kill_at: int | None, out: Path) -> None:
        self.kill_at = kill_at
        self.out = out
        self.events: list[str] = []
        self.acts_journaled = 0
        self.in_act = False
        self.act_counted = False

    def event(self, name: str) -> None:
        self.events.append(name)
        if len(self.events) == self.kill_at:
            self.write({"killed_at": name, "acts_journaled": self.acts_journaled})
            os.kill(os.getpid(), signal.SIGKILL)

    def journaled(self) -> None:
        """The act being played reached the journal (or the server): it counts as done."""
        if self.in_act and not self.act_counted:
            self.act_counted = True
            self.acts_journaled += 1

    def write(self, data: dict[str, Any]) -> None:
        with self.out.open("w") as file:
            json.dump(data, file)
            file.flush()
            os.fsync(file.fileno())


def instrument(steps: Steps) -> None:
    """Wrap the journal's writes and the connection's execute (this process only)."""
    for name in ("add", "mark_sent", "done", "cancel"):
        original = getattr(Journal, name)

        def wrapped(self: Journal, *args: Any, _name: str = name, _orig: Any = original) -> Any:
            steps.event(f"before journal.{_name}")
            result = _orig(self, *args)
            if _name == "add" or (_name == "cancel" and result):
                steps.journaled()
            steps.event(f"after journal.{_name}")
            return result

        setattr(Journal, name, wrapped)

    keep = LocalDrafts.save

    def kept(self: LocalDrafts, local: LocalDraft) -> None:
        steps.event("before drafts.save")  # a draft on this machine: durable from here
        keep(self, local)
        steps.journaled()
        steps.event("after drafts.save")

    LocalDrafts.save = kept  # type: ignore[method-assign]

    execute = ImapConnection.execute

    async def counted(self: ImapConnection, line: str, *args: Any, **kwargs: Any) -> Any:
        result = await execute(self, line, *args, **kwargs)
        verb = verb_of(line)
        if verb in CHANGING:
            if verb == "RENAME":
                steps.journaled()  # not journaled: done once the server did it
            steps.event(f"answered {verb}")
        return result

    ImapConnection.execute = counted  # type: ignore[method-assign]


def make_api(spec: dict[str, Any]) -> MailApi:
    config = config_from_dict(
        {
            "accounts": {
                "me": {
                    "email": spec["login"],
                    # Only so that drafts can be written; nothing is sent.
                    "smtp": {"host": spec["host"], "port": 1, "security": "none"},
                    "imap": {
                        "host": spec["host"],
                        "port": spec["port"],
                        "security": "none",
                        "user": spec["login"],
                        "password": spec["password"],
                        "timeout": 5,
                    },
                }
            }
        }
    )
    tuning = Tuning(backoff_min=0.05, backoff_max=0.2)
    return MailApi(Engine(config, Path(spec["cache_dir"]), tuning))


async def play(api: MailApi, spec: dict[str, Any], steps: Steps) -> list[str]:
    """The scenario's first ``acts`` acts, each flushed before the next."""
    seen = {f.name: api.uidvalidity("me", f.name) for f in api.folders("me")}
    said: list[str] = []
    acts = spec["acts"][: spec.get("count", len(spec["acts"]))]
    for act in acts:
        if "doveadm" in act:  # another party changes the server: not a user act
            done = subprocess.run(act["doveadm"], capture_output=True, check=False)
            nobody = done.returncode == 68 and "kick" in act["doveadm"]  # not connected now
            if done.returncode != 0 and not nobody:
                raise SystemExit(f"{act['doveadm']}: {done.returncode} {done.stderr!r}")
            continue
        steps.in_act, steps.act_counted = True, False
        try:
            await one_act(api, act, seen, said)
        except ActionRefused as exc:
            said.append(exc.message)
        steps.journaled()  # refused at once, or not journaled: done all the same
        steps.in_act = False
        await settle(api)
    return said


async def settle(api: MailApi) -> None:
    """Send what the journal holds; a connection the fault proxy reset on the way is waited
    out (the account reconnects by itself) and the flush tried again."""
    account = api.engine.imap["me"]
    for _ in range(5):
        try:
            await account.wait_synced(20)
            await account.flush_actions()
            return
        except ConnectionLost:
            if account.state is ConnState.ONLINE:
                await WATCH[0].wait_for(ConnectionChanged, 20, state=ConnState.OFFLINE)
    raise SystemExit("the journal could not be sent after 5 connection losses")


async def recover_drafts(api: MailApi) -> None:
    """What the app does on start for drafts an earlier run left on disk, awaited here: the
    automatic recovery (started when the account came online) first, then once more for any
    it had not reached."""
    composer = api._composer
    await asyncio.gather(*list(composer._tasks), return_exceptions=True)
    await composer.recover("me")


WATCH: list[Subscription] = []
"""The run's event subscription (one per process)."""


DRAFTS: list[LocalDraft] = []
"""The draft being written in this run (a kill forgets it, as it would the composer)."""


async def one_act(
    api: MailApi, act: dict[str, Any], seen: dict[str, int | None], said: list[str]
) -> None:
    if "compose" in act:
        DRAFTS.append(api.compose.new("me", "someone@example.test", act["compose"]))
    elif "save_draft" in act:
        local = DRAFTS.pop()
        local = replace(local, draft=replace(local.draft, subject=act["save_draft"]))
        DRAFTS.append(await api.save_draft(local))
    elif "undo" in act:
        said.append(api.undo("me"))
    elif "create" in act:
        await api.create_folder_for_move("me", act["create"])
    elif "rename" in act:
        old, new = act["rename"]
        await api.rename_folder("me", old, new)
    else:
        folder = act["folder"]
        api.act(
            "me",
            Action(
                kind=act["kind"],
                folder=folder,
                uidvalidity=seen.get(folder),
                uids=tuple(act["uids"]),
                add=tuple(act.get("add", ())),
                remove=tuple(act.get("remove", ())),
                dest=act.get("dest"),
            ),
        )


async def main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    os.environ["XDG_DATA_HOME"] = spec["data_dir"]
    steps = Steps(spec.get("kill_at"), Path(spec["out"]))
    instrument(steps)
    api = make_api(spec)
    events = api.subscribe()
    WATCH.append(api.subscribe())
    api.start()
    account = api.engine.imap["me"]
    try:
        try:
            await account.wait_synced(20)
        except TimeoutError:
            raise SystemExit(f"never synced: {events.pending()[-3:]}") from None
        said: list[str] = []
        if spec["mode"] == "run":
            said = await play(api, spec, steps)
        else:
            await recover_drafts(api)
        await settle(api)
        pending = api.pending_actions("me")
    except BaseException:
        traceback.print_exc()  # now: asyncio.run's cleanup below may hang on a stuck task
        raise
    finally:
        await api.stop()
        for task in asyncio.all_tasks():
            if task is not asyncio.current_task():
                print("left running after stop:", task, file=sys.stderr, flush=True)
                task.print_stack(file=sys.stderr)
    steps.write({"events": steps.events, "said": said, "pending": pending})


def child(spec_path: str) -> None:
    """One run in a forked child: its stderr goes next to the spec; never returns."""
    code = 1
    try:
        log = os.open(Path(spec_path).with_name("stderr.txt"), os.O_WRONLY | os.O_CREAT, 0o600)
        os.dup2(log, 2)
        # A run that hangs says where, and ends (the test then fails with this traceback).
        faulthandler.dump_traceback_later(
            int(os.environ.get("KITTIWAKE_FAULTS_HANG", "90")), exit=True
        )
        spec = json.loads(Path(spec_path).read_text())
        if spec.get("driver") == "smtp":
            from faults import smtp_driver

            asyncio.run(smtp_driver.main(spec))
        elif spec.get("driver") == "pop3":
            from faults import pop3_driver

            asyncio.run(pop3_driver.main(spec))
        else:
            asyncio.run(main(spec_path))
        code = 0
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stderr.flush()
        os._exit(code)


def serve() -> None:
    """Fork one child per spec path read from stdin and answer its wait status: the import of
    Kittiwake (0.45 s) is paid once, not three times per kill point. Nothing here has opened
    a file, a socket or a thread before forking."""
    for line in sys.stdin:
        pid = os.fork()
        if pid == 0:
            child(line.strip())
        _, status = os.waitpid(pid, 0)
        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        print(code, flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "--serve":
        serve()
    else:
        asyncio.run(main(sys.argv[1]))
