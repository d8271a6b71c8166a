"""A Gmail test server profile: pymap, in a process of its own, shaped like Gmail's IMAP.

No real Gmail is reachable from the test machine, so this speaks real IMAP over a TLS socket
(the test CA's certificate, on ``SERVER_HOST``) with the extensions and folder semantics Google
documents; ``gmail_server.py`` says which, and what it leaves out. One account per instance:
starting one takes well under a second, so tests start their own.
"""

from __future__ import annotations

import json
import secrets
import select
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .ca import TestCA
from .common import SERVER_HOST, START_TIMEOUT, ServerError
from .dovecot import MAIL_DOMAIN, User

_SERVER = Path(__file__).with_name("gmail_server.py")

ALL_MAIL = "[Gmail]/All Mail"
TRASH = "[Gmail]/Trash"
SPAM = "[Gmail]/Spam"
SENT = "[Gmail]/Sent Mail"
IMPORTANT = "[Gmail]/Important"
MAX_CONNECTIONS = 15


@dataclass(frozen=True)
class GmailPorts:
    imaps: int


class GmailProfile:
    """One running profile with one user; the interface of harness.Dovecot that tests use."""

    kind = "gmail"
    inbox_prefix = ""
    separator = "/"

    def __init__(
        self, ca: TestCA, *, max_connections: int = MAX_CONNECTIONS, refuse: str = "greeting"
    ) -> None:
        """``max_connections``: the cap per account (Gmail's is 15); ``refuse``: how a
        connection over it is refused, ``"greeting"`` (``* BYE``) or ``"login"`` (``NO
        [ALERT] Too many simultaneous connections``, as Google documents)."""
        self.ca = ca
        self.max_connections = max_connections
        self.refuse = refuse
        self.host = SERVER_HOST
        login = f"gm-{secrets.token_hex(3)}@{MAIL_DOMAIN}"
        self.user = User(login=login, password=secrets.token_urlsafe(12), email=login)
        self._proc: subprocess.Popen[bytes] | None = None
        self._ports: GmailPorts | None = None
        self._given = False
        # A file, not a pipe: pymap's log can never fill it and block the server. Lives as
        # long as the profile, so log_tail works after a failed start or a stop.
        self._log = tempfile.TemporaryFile()  # noqa: SIM115

    @property
    def ports(self) -> GmailPorts:
        if self._ports is None:
            raise ServerError("the Gmail profile has not been started yet, so it has no port")
        return self._ports

    @property
    def ca_file(self) -> Path:
        return self.ca.ca_file

    def add_user(self, name: str = "user", password: str | None = None) -> User:
        """The profile's one account (as harness.Dovecot.add_user makes one): a profile per
        test, so a test gets a fresh mailbox all the same."""
        if self._given:
            raise ServerError("the Gmail profile has one account; start another profile")
        self._given = True
        return self.user

    def start(self) -> None:
        spec = {
            "host": self.host,
            "cert_file": str(self.ca.cert_file),
            "key_file": str(self.ca.key_file),
            "user": self.user.login,
            "password": self.user.password,
            "max_connections": self.max_connections,
            "refuse": self.refuse,
        }
        self._proc = proc = subprocess.Popen(
            [sys.executable, str(_SERVER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
        )
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps(spec).encode() + b"\n")
        proc.stdin.flush()
        ready, _, _ = select.select([proc.stdout], [], [], START_TIMEOUT)
        line = proc.stdout.readline() if ready else b""
        if not line:
            self.stop()
            raise ServerError(f"the Gmail profile did not start: {self.log_tail()}")
        self._ports = GmailPorts(imaps=int(json.loads(line)["port"]))

    def _control(self, asked: dict[str, object]) -> dict[str, int]:
        proc = self._proc
        if proc is None or proc.stdin is None or proc.stdout is None:
            raise ServerError("the Gmail profile is not running")
        proc.stdin.write(json.dumps(asked).encode() + b"\n")
        proc.stdin.flush()
        ready, _, _ = select.select([proc.stdout], [], [], START_TIMEOUT)
        line = proc.stdout.readline() if ready else b""
        if not line:
            raise ServerError(f"the Gmail profile did not answer {asked}: {self.log_tail()}")
        answer: dict[str, int] = json.loads(line)
        return answer

    def exceed_bandwidth(self, seconds: float) -> None:
        """Gmail's "Account exceeded command or bandwidth limits" for ``seconds``: every open
        connection is cut with ``* BYE [ALERT]``, every login meanwhile refused ``NO [ALERT]``."""
        self._control({"limit_for": seconds})

    def lift_bandwidth_limit(self) -> None:
        self._control({"limit_for": 0})

    def stats(self) -> dict[str, int]:
        """``open`` (connections now), ``logged_in`` (of them), ``logins`` (so far), ``refused``
        (connections and logins refused for the cap or the limit, so far)."""
        return self._control({"stats": True})

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        assert proc.stdin is not None
        proc.stdin.close()  # the server's signal to stop
        try:
            proc.wait(timeout=START_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    close = stop

    def log_tail(self, lines: int = 40) -> str:
        self._log.seek(0)
        text = self._log.read()
        return "\n".join(text.decode(errors="replace").splitlines()[-lines:])

    def __repr__(self) -> str:
        return f"<GmailProfile {self.host}:{self._ports}>"
