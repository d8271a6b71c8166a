"""Kill -9 the outbox at every step of sending one message through the real Postfix, restart
it twice, and count: deliveries by Message-ID in the recipient's mailbox, copies filed to
"Sent", what the outbox still holds, and whether the second restart sent anything. Shared by
tests/faults/test_smtp_crash.py and scripts/faults-long."""

from __future__ import annotations

import json
import shutil
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from faults.deliveries import deliveries, sent_copies
from faults.journal_lab import Zygote
from harness import Dovecot, Postfix, TcpProxy, User

from kittiwake.core.compose.mime import build_mime
from kittiwake.core.compose.reply import new_message
from kittiwake.core.config import config_from_dict
from kittiwake.core.models import Address
from kittiwake.core.smtp.outbox import ItemState, Outbox


@dataclass
class SendOutcome:
    kill_at: int
    delivered: int
    sent_copies: int
    held: list[str]
    """States of what the outbox still holds."""
    resent_on_second_restart: int

    @property
    def uncertain(self) -> bool:
        return ItemState.UNCERTAIN.value in self.held

    @property
    def lost(self) -> bool:
        """Neither delivered nor kept for the user."""
        return self.delivered == 0 and not self.held

    @property
    def consistent(self) -> bool:
        if self.delivered > 1 or self.resent_on_second_restart or self.lost:
            return False
        if self.uncertain:  # kept for the user; no Sent copy until the user decides
            return self.sent_copies == 0
        return self.delivered == 1 and self.held == [] and self.sent_copies == 1


class SmtpLab:
    """With ``imap`` (a Dovecot without TLS), the Sent copy is filed there by the real
    ``SentFiler`` (a fresh user each run) and its IMAP steps are kill points too; without,
    the driver records the copy in a file."""

    def __init__(
        self,
        postfix: Postfix,
        dovecot: Dovecot,
        sender: User,
        workdir: Path,
        imap: Dovecot | None = None,
    ) -> None:
        self.postfix, self.dovecot, self.sender, self.workdir = postfix, dovecot, sender, workdir
        self.imap = imap
        self.zygote = Zygote()
        self._runs = 0
        self._filer_user: User | None = None

    def close(self) -> None:
        self.zygote.close()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _run(self, spec: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        home = Path(spec["home"])
        out = home / "out.json"
        out.unlink(missing_ok=True)
        spec["out"] = str(out)
        path = home / "spec.json"
        path.write_text(json.dumps(spec))
        code = self.zygote.run(path)
        if code not in (0, -signal.SIGKILL):
            log = (home / "stderr.txt").read_text(errors="replace")
            raise AssertionError(f"smtp driver failed ({code}):\n{log[-3000:]}")
        return code, json.loads(out.read_text()) if out.exists() else {}

    def prepared(self, proxy: TcpProxy) -> tuple[dict[str, Any], User, str]:
        """A fresh recipient, and an outbox holding one message for them."""
        self._runs += 1
        home = self.workdir / f"smtp{self._runs}"
        home.mkdir(parents=True)
        rcpt = self.dovecot.add_user("rcpt")
        acct = config_from_dict(
            {
                "accounts": {
                    "me": {
                        "email": self.sender.email,
                        "imap": {"host": proxy.host},
                        "smtp": {"host": proxy.host, "port": proxy.port, "security": "none"},
                    }
                }
            }
        ).accounts["me"]
        built = build_mime(
            new_message(acct, to=[Address("", rcpt.email)], subject="crash", body="x\n"), acct
        )
        Outbox("me", home / "outbox").enqueue(
            built.raw,
            built.envelope_from,
            built.envelope_rcpts,
            message_id=built.message_id,
            save_sent=True,
        )
        spec = {
            "driver": "smtp",
            "home": str(home),
            "host": proxy.host,
            "port": proxy.port,
            "login": self.sender.login,
            "password": self.sender.password,
            "outbox_dir": str(home / "outbox"),
            "sent_file": str(home / "sent.txt"),
        }
        if self.imap is not None:
            assert self.imap.ports.imap is not None
            self._filer_user = user = self.imap.add_user("filer")
            spec.update(
                imap_host=self.imap.host,
                imap_port=self.imap.ports.imap,
                imap_login=user.login,
                imap_password=user.password,
            )
        return spec, rcpt, built.message_id

    def kill_points(self) -> int:
        return len(self.events())

    def events(self) -> list[str]:
        """The events of a clean run, in order (kill point N is the N-th)."""
        with TcpProxy(self.postfix.host, self.postfix.ports.plain) as proxy:
            spec, _, _ = self.prepared(proxy)
            code, result = self._run(spec)
        assert code == 0 and result["outcomes"] == ["accepted"], result
        events: list[str] = result["events"]
        return events

    def filing_points(self) -> list[int]:
        """The kill points of filing the Sent copy: from the save of the item as "started"
        (just before the copy is handed over) to the save of it as done."""
        events = self.events()
        first, last = events.index("before on_sent"), events.index("after on_sent")
        assert events[first - 2 : first] == ["before outbox.save", "after outbox.save"], events
        assert events[last + 1 : last + 3] == ["before outbox.save", "after outbox.save"], events
        return list(range(first - 1, last + 4))  # kill point N is event N - 1 (from 0)

    def crash(self, kill_at: int) -> SendOutcome:
        with TcpProxy(self.postfix.host, self.postfix.ports.plain) as proxy:
            spec, rcpt, message_id = self.prepared(proxy)
            code, _ = self._run({**spec, "kill_at": kill_at})
            assert code == -signal.SIGKILL, f"not killed at {kill_at}"
            code, _ = self._run(spec)  # restart: sends or files what is due
            assert code == 0
            before = proxy.client_bytes().count(b"MAIL FROM")
            code, _ = self._run(spec)  # a second restart changes nothing
            assert code == 0
            resent = proxy.client_bytes().count(b"MAIL FROM") - before
        delivered = deliveries(self.postfix, self.dovecot, rcpt, message_id)
        sent_file = Path(spec["sent_file"])
        if self.imap is not None:
            assert self._filer_user is not None
            copies = sent_copies(self.imap, self._filer_user, message_id)
        else:
            copies = sent_file.read_text().split().count(message_id) if sent_file.exists() else 0
        held = [item.state.value for item in Outbox("me", Path(spec["outbox_dir"])).items()]
        return SendOutcome(kill_at, delivered, copies, held, resent)
