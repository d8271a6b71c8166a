"""A power cut, checked on a trace of the system calls (strace) of a real run: what a power
cut keeps is what was fsync'd (a file's bytes by an fsync of the file, a name in a directory
by an fsync of that directory), so a record is safe from a power cut at the moment of a
network write only if, before that write, its bytes were fsync'd after they were written and
its name (every entry created on the way to it) was fsync'd in its directory after it was
made. Used by tests/faults/test_power_cut.py.

The trace is read in order (``strace -f``: one line per call, all threads; a call that
blocks is split into "unfinished" and "resumed", and counts at its start for a write, at its
end for an fsync). Descriptors are followed through ``openat``/``close``; sockets through
``connect`` (the server's port says which protocol).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

TRACED = (
    "openat,close,write,pwrite64,fsync,fdatasync,rename,renameat,renameat2,mkdir,mkdirat,"
    "unlink,unlinkat,rmdir,connect,sendto,sendmsg"
)
"""``strace -e trace=`` for ``check``."""

WRITES = ("write", "pwrite64", "sendto", "sendmsg")
LINE = re.compile(r"^(?P<pid>\d+) +(?P<rest>.*)$")
CALL = re.compile(r"^(?P<name>\w+)\((?P<args>.*)\) += (?P<ret>-?\d+|\?)")
STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')


@dataclass
class Event:
    index: int
    kind: str  # write, fsync, create, remove, send
    path: str = ""
    data: str = ""
    port: int = 0


@dataclass
class Trace:
    events: list[Event] = field(default_factory=list)

    def sends(self, port: int, pattern: str) -> list[Event]:
        """Writes to a socket connected to ``port`` whose bytes match ``pattern``."""
        found = re.compile(pattern)
        return [
            e for e in self.events if e.kind == "send" and e.port == port and found.search(e.data)
        ]


def _strings(args: str) -> list[str]:
    return [bytes(s, "utf-8").decode("unicode_escape") for s in STRING.findall(args)]


def parse(text: str) -> Trace:
    trace = Trace()
    fds: dict[int, str] = {}
    socks: dict[int, int] = {}
    pending: dict[str, str] = {}
    for raw in text.splitlines():
        m = LINE.match(raw)
        if not m:
            continue
        pid, rest = m["pid"], m["rest"]
        if rest.endswith("<unfinished ...>"):
            head = pending[pid] = rest[: -len("<unfinished ...>")].rstrip()
            if head.split("(", 1)[0] not in WRITES:
                continue  # counted when it has returned
            rest = head + ") = ?"  # a write counts at its start
        elif rest.startswith("<... "):
            head = pending.pop(pid, "")
            if not head or head.split("(", 1)[0] in WRITES or "resumed>" not in rest:
                continue
            rest = head + rest.split("resumed>", 1)[1]
        call = CALL.match(rest)
        if not call:
            continue
        name, args, ret = call["name"], call["args"], call["ret"]
        value = int(ret) if ret != "?" else None
        first = args.split(",", 1)[0].strip()
        index = len(trace.events)
        add = trace.events.append
        if name in WRITES:
            fd = int(first) if first.isdigit() else -1
            data = " ".join(_strings(args))
            if fd in socks:
                add(Event(index, "send", data=data, port=socks[fd]))
            elif fd in fds:
                add(Event(index, "write", fds[fd], data))
        elif name in ("fsync", "fdatasync"):
            fd = int(first) if first.isdigit() else -1
            if fd in fds and value == 0:
                add(Event(index, "fsync", fds[fd]))
        elif name == "openat":
            if value is None or value < 0:
                continue
            paths = _strings(args)
            if not paths or not paths[0].startswith("/"):
                continue
            path = os.path.normpath(paths[0])
            fds[value] = path
            socks.pop(value, None)
            if "O_CREAT" in args:
                add(Event(index, "create", path))
        elif name == "close":
            if first.isdigit():
                fds.pop(int(first), None)
                socks.pop(int(first), None)
        elif name == "connect":
            port = re.search(r"sin_port=htons\((\d+)\)", args)
            if port and first.isdigit() and (value == 0 or "EINPROGRESS" in raw):
                socks[int(first)] = int(port.group(1))
                fds.pop(int(first), None)
        elif name in ("mkdir", "mkdirat") and value == 0:
            paths = _strings(args)
            if paths and paths[0].startswith("/"):
                add(Event(index, "create", os.path.normpath(paths[0])))
        elif name in ("rename", "renameat", "renameat2") and value == 0:
            paths = [os.path.normpath(p) for p in _strings(args) if p.startswith("/")]
            if len(paths) == 2:
                add(Event(index, "remove", paths[0]))
                add(Event(len(trace.events), "create", paths[1]))
        elif name in ("unlink", "unlinkat", "rmdir") and value == 0:
            paths = _strings(args)
            if paths and paths[0].startswith("/"):
                add(Event(index, "remove", os.path.normpath(paths[0])))
    return trace


def unsafe_at(trace: Trace, send: Event, root: str, records: str = "") -> list[str]:
    """What under ``root`` a power cut at ``send`` could lose although it was written or
    made before it: bytes written and not fsync'd since, an entry made (a file created, a
    directory made, a rename's target) whose directory was not fsync'd since. Entries gone
    again before ``send`` (temporary files) do not count. ``records``: only writes whose
    bytes match it count (the action journal's rows in the cache's write-ahead log)."""
    root = os.path.normpath(root)
    before = trace.events[: send.index]

    def inside(path: str) -> bool:
        return path == root or path.startswith(root + os.sep)

    def synced_after(path: str, index: int) -> bool:
        return any(e.kind == "fsync" and e.path == path for e in before[index + 1 :])

    def gone_after(path: str, index: int) -> bool:
        return any(
            e.kind == "remove" and (e.path == path or path.startswith(e.path + os.sep))
            for e in before[index + 1 :]
        )

    wanted = re.compile(records) if records else None
    out = []
    for event in before:
        if not inside(event.path) or event.path.endswith("-shm"):
            continue
        if event.kind == "write":
            if wanted is not None and not wanted.search(event.data):
                continue
            if not synced_after(event.path, event.index) and not gone_after(
                event.path, event.index
            ):
                out.append(f"bytes of {event.path} not fsync'd")
        elif event.kind == "create":
            first = next(e for e in before if e.kind == "create" and e.path == event.path)
            if first is not event:
                continue  # only a first creation makes a name (SQLite opens with O_CREAT)
            parent = os.path.dirname(event.path)
            if not synced_after(parent, event.index) and not gone_after(event.path, event.index):
                out.append(f"the name {event.path} not fsync'd in {parent}")
    return sorted(set(out))
