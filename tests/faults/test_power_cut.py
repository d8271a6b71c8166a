"""A power cut at the moment each durable record is first acted on over the network: the
real engine (``power_driver``) sets a flag, saves a new draft and sends a message against
the real Dovecot and Postfix under ``strace``, and at each such network write the record must
already be on the disk as a power cut leaves it (``power.unsafe_at``: its bytes fsync'd, and
every name on the way to it fsync'd in its directory):

* the action journal's row (in the cache's write-ahead log) before the UID STORE;
* the local draft before its APPEND to Drafts;
* the outbox item before MAIL FROM;
* the journal of accepted recipients before the Sent copy's APPEND (a restart must not
  send the message again).
"""

from __future__ import annotations

import imaplib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from faults import power
from harness import Dovecot, Postfix, User
from harness.mail import append_many

TESTS = Path(__file__).resolve().parent.parent


def test_a_power_cut_loses_no_record_the_network_acted_on(
    dovecot_factory: Callable[..., Dovecot],
    postfix: Postfix,
    user: User,
    user2: User,
    tmp_path: Path,
) -> None:
    mine = dovecot_factory(tls=False)
    me = mine.add_user("power")
    assert mine.ports.imap is not None
    other = imaplib.IMAP4(mine.host, mine.ports.imap, timeout=30)
    other.login(me.login, me.password)
    append_many(other, 1)
    other.logout()
    data = tmp_path / "data"
    spec = {
        "data_dir": str(data),
        "cache_dir": str(tmp_path / "cache"),
        "host": mine.host,
        "imap_port": mine.ports.imap,
        "imap_login": me.login,
        "imap_password": me.password,
        "email": me.email,
        "smtp_port": postfix.ports.plain,
        "smtp_login": user.login,  # Postfix asks the shared Dovecot
        "smtp_password": user.password,
        "rcpt": user2.email,
        "out": str(tmp_path / "out.json"),
    }
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps(spec))
    trace_path = tmp_path / "trace.txt"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }
    command = ["strace", "-f", "-qq", "-s", "8192", "-e", f"trace={power.TRACED}"]
    command += ["-o", str(trace_path), sys.executable, "-m", "faults.power_driver"]
    done = subprocess.run(
        [*command, str(spec_path)], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    trace = power.parse(trace_path.read_text(errors="replace"))
    outbox = data / "kittiwake" / "outbox" / "me"
    checks = {
        "flag": (
            mine.ports.imap,
            r"UID STORE .*\$Power",
            str(tmp_path / "cache"),
            '"kind":"flags"',
        ),
        "draft": (mine.ports.imap, r"APPEND .*Drafts", str(data / "kittiwake" / "drafts"), ""),
        "send": (postfix.ports.plain, r"MAIL FROM", str(outbox), ""),
        "sent copy": (mine.ports.imap, r"APPEND .*Sent", str(outbox), ""),
    }
    unsafe = {}
    for name, (port, pattern, root, records) in checks.items():
        sends = trace.sends(port, pattern)
        assert sends, f"{name}: no {pattern!r} in the trace"
        found = power.unsafe_at(trace, sends[0], root, records)
        # What the server offers, remembered to build the next message: asked again if lost.
        unsafe[name] = [line for line in found if "capabilities.json" not in line]
    shown = json.dumps(unsafe, indent=1).replace(str(tmp_path), "")
    assert unsafe == {name: [] for name in checks}, shown
