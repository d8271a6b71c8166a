"""A private Dovecot (IMAP, POP3, LMTP, SASL auth) with all its state in one temp directory.

Runs ``dovecot -c CONF -F`` as a child process; nothing from /etc/dovecot is read. The instance speaks
what a modern client uses: IDLE, CONDSTORE/QRESYNC, MOVE, UIDPLUS, SPECIAL-USE, and NOTIFY (advertised
only with ``mailbox_list_index = yes``). Plaintext authentication is allowed only after TLS, except in
the ``tls=False`` variant, which offers no TLS at all (to prove a client then refuses to log in).

Mail is stored as the system user ``mail`` (Dovecot refuses root as a mail uid); users live in a
passwd-file per user (``users/<login>``) that ``add_user`` writes at run time, so every test gets
fresh users and never sees another test's mail. One file per user, not one shared file, because
Dovecot re-checks a passwd-file at most once per second: a user appended to a shared file can stay
unknown for up to a second, while a file at a new path is read at first use.
"""

from __future__ import annotations

import contextlib
import grp
import itertools
import os
import pwd
import re
import secrets
import shutil
import signal
import ssl
import subprocess
import threading
from base64 import b64encode
from dataclasses import dataclass
from pathlib import Path

from .ca import TestCA
from .common import (
    SERVER_HOST,
    Probe,
    ServerError,
    is_port_collision,
    log_tail,
    pick_free_ports,
    wait_until_closed,
    wait_until_ready,
)

MAIL_DOMAIN = "example.test"
SPECIAL_USE_MAILBOXES = {
    "Drafts": "\\Drafts",
    "Sent": "\\Sent",
    "Trash": "\\Trash",
    "Junk": "\\Junk",
    "Archive": "\\Archive",
}
"""Mailboxes every user has from the first login (``auto = subscribe``), with their attribute."""

_user_numbers = itertools.count(1)
_NAME_RE = re.compile(r"[a-z0-9][a-z0-9.-]*")
_START_ATTEMPTS = 5


@dataclass(frozen=True)
class User:
    """A mail account on a test Dovecot."""

    login: str
    """What the client sends as the user name (here equal to the address)."""
    password: str
    email: str

    def secret_forms(self) -> tuple[bytes, ...]:
        """Byte strings that would reveal the password on the wire, in any common encoding.

        Covers the raw password (POP3 PASS, IMAP LOGIN as a literal), its IMAP quoted-string form,
        and the base64 forms of AUTH PLAIN and AUTH LOGIN. Tests assert that none occurs in a
        proxy's recording.
        """
        login, password = self.login.encode(), self.password.encode()
        quoted = password.replace(b"\\", b"\\\\").replace(b'"', b'\\"')
        return (
            password,
            quoted,
            b64encode(password),
            b64encode(b"\0" + login + b"\0" + password),
            b64encode(login + b"\0" + login + b"\0" + password),
        )


@dataclass(frozen=True)
class DovecotPorts:
    """Listen ports on ``Dovecot.host``. The implicit-TLS ports are None when TLS is off."""

    imap: int
    """IMAP with STARTTLS offered (143-style)."""
    imaps: int | None
    pop3: int
    """POP3 with STLS offered (110-style)."""
    pop3s: int | None
    lmtp: int
    auth: int
    """Dovecot SASL auth protocol, for Postfix ``smtpd_sasl_type = dovecot``."""

    def all(self) -> list[int]:
        ports = (self.imap, self.imaps, self.pop3, self.pop3s, self.lmtp, self.auth)
        return [port for port in ports if port is not None]


class Dovecot:
    """One private Dovecot instance. ``start``/``stop``/``restart`` keep ports and mail."""

    kind = "dovecot"
    inbox_prefix = ""
    separator = "/"

    def __init__(
        self,
        workdir: Path,
        ca: TestCA,
        *,
        tls: bool = True,
        extra_conf: str = "",
        certificate: tuple[Path, Path] | None = None,
        oauth2_introspection: str | None = None,
    ) -> None:
        """Prepare (but do not start) an instance in ``workdir``, which must be traversable.

        ``extra_conf`` is appended to the generated config (later settings win), e.g.
        ``imap_capability = IMAP4rev1 IDLE`` to hide extensions for fallback tests.
        ``certificate`` (chain file, key file) replaces the good server certificate with a
        deliberately wrong one (``TestCA.issue``: another host name, expired); readiness is
        then checked without verifying it.
        """
        self.workdir = workdir
        self.ca = ca
        self.tls = tls
        self.certificate = certificate
        self.oauth2_introspection = oauth2_introspection
        """An RFC 7662 introspection URL: XOAUTH2 and OAUTHBEARER are then offered, and the
        access tokens clients present are checked there (harness.oauth.OAuthServer)."""
        self.extra_conf = extra_conf
        self.host = SERVER_HOST
        self.domain = MAIL_DOMAIN
        self.conf_path = workdir / "dovecot.conf"
        self.users_dir = workdir / "users"
        self.mail_dir = workdir / "mail"
        self.log_dir = workdir / "log"
        self._ports: DovecotPorts | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._users: dict[User, Path] = {}
        self._lock = threading.Lock()
        self._mail_uid = pwd.getpwnam("mail").pw_uid
        self._mail_gid = grp.getgrnam("mail").gr_gid
        self._dovecot_gid = grp.getgrnam("dovecot").gr_gid
        for path in (workdir / "run", workdir / "state", self.log_dir):
            path.mkdir(mode=0o755, exist_ok=True)
        self.mail_dir.mkdir(mode=0o700, exist_ok=True)
        os.chown(self.mail_dir, self._mail_uid, self._mail_gid)
        self.users_dir.mkdir(mode=0o750, exist_ok=True)
        os.chown(self.users_dir, 0, self._dovecot_gid)  # the auth process runs as dovecot

    # -- public API -------------------------------------------------------------------------

    @property
    def ports(self) -> DovecotPorts:
        if self._ports is None:
            raise ServerError("Dovecot has not been started yet, so it has no ports")
        return self._ports

    @property
    def ca_file(self) -> Path:
        """The CA certificate a client must trust to talk to this server."""
        return self.ca.ca_file

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start and wait until every listener answers. Ports are chosen on the first start."""
        if self.running:
            return
        if self._ports is not None:
            self._start_once()
            return
        for attempt in range(_START_ATTEMPTS):
            self._ports = self._choose_ports()
            self._write_config()
            try:
                self._start_once()
                return
            except ServerError as error:
                collided = is_port_collision(str(error))
                if not collided or attempt == _START_ATTEMPTS - 1:
                    raise

    def stop(self) -> None:
        """Shut down gracefully (IMAP clients get ``* BYE``); return once every port is closed.

        Dovecot's master takes about a second to exit; use ``kill`` where grace is not the point.
        """
        self._halt(graceful=True)

    def kill(self) -> None:
        """Kill the master and all its children at once, like a crash or power loss. Fast."""
        self._halt(graceful=False)

    def restart(self, *, graceful: bool = True) -> None:
        """Stop (or kill) and start again on the same ports, with the same users and mail."""
        self._halt(graceful=graceful)
        self.start()

    def add_user(self, name: str = "user", password: str | None = None) -> User:
        """Create a fresh account, e.g. ``u7-alice@example.test``, usable at once (no reload)."""
        if not _NAME_RE.fullmatch(name):
            raise ValueError(f"user name {name!r} must match {_NAME_RE.pattern}")
        login = f"u{next(_user_numbers)}-{name}@{self.domain}"
        user = User(login=login, password=password or secrets.token_urlsafe(12), email=login)
        if ":" in user.password or "\n" in user.password:
            raise ValueError("passwd-file passwords cannot contain ':' or newlines")
        home = self.mail_dir / self.domain / login.split("@")[0]
        line = f"{login}:{{PLAIN}}{user.password}:{self._mail_uid}:{self._mail_gid}::{home}::\n"
        tmp = self.users_dir / f".new-{login}"
        tmp.write_text(line, encoding="utf-8")
        os.chown(tmp, 0, self._dovecot_gid)
        tmp.chmod(0o640)
        os.replace(tmp, self.users_dir / login)  # atomic: never seen half-written
        with self._lock:
            self._users[user] = home
        return user

    def maildir(self, user: User) -> Path:
        """The user's Maildir on disk (for assertions; tests should prefer IMAP)."""
        with self._lock:
            return self._users[user]

    def log_tail(self, lines: int = 40) -> str:
        names = ("stderr.log", "dovecot.log", "dovecot.info.log")
        return log_tail([self.log_dir / name for name in names], lines)

    def close(self) -> None:
        """Tear down for good: no grace needed, the mail is about to be deleted."""
        self.kill()

    def __repr__(self) -> str:
        return f"<Dovecot {self.workdir} ports={self._ports} tls={self.tls}>"

    # -- internals --------------------------------------------------------------------------

    def _halt(self, *, graceful: bool, wait_for_ports: bool = True) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if graceful and proc.poll() is None:
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        # The children share the master's process group (start_new_session in _start_once);
        # this ends any straggler, or everything at once when not graceful.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        if wait_for_ports and not wait_until_closed(self.ports.all(), timeout=10):
            raise self._error("ports still open after stop")

    def _error(self, reason: str) -> ServerError:
        return ServerError(f"Dovecot ({self.conf_path}): {reason}\n{self.log_tail()}")

    def _choose_ports(self) -> DovecotPorts:
        imap, imaps, pop3, pop3s, lmtp, auth = pick_free_ports(6)
        return DovecotPorts(
            imap=imap,
            imaps=imaps if self.tls else None,
            pop3=pop3,
            pop3s=pop3s if self.tls else None,
            lmtp=lmtp,
            auth=auth,
        )

    def _start_once(self) -> None:
        dovecot = shutil.which("dovecot", path="/usr/sbin:/usr/bin:/sbin:/bin")
        if dovecot is None:
            raise ServerError("dovecot is not installed (apt-get install dovecot-imapd ...)")
        stderr = (self.log_dir / "stderr.log").open("ab")
        try:
            self._proc = subprocess.Popen(
                [dovecot, "-c", str(self.conf_path), "-F"],
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
                start_new_session=True,  # own process group: stop() can reap every child
            )
        finally:
            stderr.close()
        try:
            wait_until_ready(
                self._probes(), alive=lambda: self.running, describe_failure=self._error
            )
        except BaseException:
            # After a failed start a port may belong to someone else: don't wait for it to close.
            self._halt(graceful=False, wait_for_ports=False)
            raise

    def _probes(self) -> list[Probe]:
        ports, context = self.ports, self.ca.client_context()
        if self.certificate is not None:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        probes = [
            Probe(ports.imap, b"* OK"),
            Probe(ports.pop3, b"+OK"),
            Probe(ports.lmtp, b"220"),
            Probe(ports.auth, b"VERSION"),
        ]
        if ports.imaps is not None and ports.pop3s is not None:
            probes += [Probe(ports.imaps, b"* OK", context), Probe(ports.pop3s, b"+OK", context)]
        return probes

    def _write_config(self) -> None:
        self.conf_path.write_text(self._render_config())

    def _render_config(self) -> str:
        oauth2_mechs, oauth2_passdb, password_mechs = "", "", ""
        if self.oauth2_introspection is not None:
            oauth_conf = self.workdir / "dovecot-oauth2.conf.ext"
            ca_copy = self.workdir / "oauth2-ca.pem"  # the auth process runs as dovecot
            ca_copy.write_bytes(self.ca.ca_file.read_bytes())
            ca_copy.chmod(0o644)
            oauth_conf.write_text(
                "introspection_mode = post\n"
                f"introspection_url = {self.oauth2_introspection}\n"
                "username_attribute = username\n"
                "active_attribute = active\n"
                "active_value = true\n"
                "force_introspection = yes\n"
                f"tls_ca_cert_file = {ca_copy}\n"
            )
            oauth2_mechs = " xoauth2 oauthbearer"
            oauth2_passdb = (
                "passdb {\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n"
                f"  args = {oauth_conf}\n}}\n"
            )
            password_mechs = "  mechanisms = plain login\n"
        w, ports = self.workdir, self.ports
        mailboxes = "".join(
            f"  mailbox {name} {{\n    special_use = {flag}\n    auto = subscribe\n  }}\n"
            for name, flag in SPECIAL_USE_MAILBOXES.items()
        )
        if self.tls:
            tls = (
                "ssl = yes\n"
                f"ssl_cert = <{self.certificate[0] if self.certificate else self.ca.cert_file}\n"
                f"ssl_key = <{self.certificate[1] if self.certificate else self.ca.key_file}\n"
                "ssl_min_protocol = TLSv1.2\n"
                "disable_plaintext_auth = yes\n"
            )
            imaps = f"  inet_listener imaps {{\n    port = {ports.imaps}\n    ssl = yes\n  }}\n"
            pop3s = f"  inet_listener pop3s {{\n    port = {ports.pop3s}\n    ssl = yes\n  }}\n"
        else:
            tls = "ssl = no\ndisable_plaintext_auth = no\n"
            imaps = pop3s = ""
        return f"""\
# Generated by tests/harness/dovecot.py for one test instance; nothing else reads it.
instance_name = kittiwake-{w.name}
base_dir = {w}/run
state_dir = {w}/state
log_path = {w}/log/dovecot.log
info_log_path = {w}/log/dovecot.info.log
protocols = imap pop3 lmtp
listen = {self.host}
hostname = mx.{self.domain}
default_login_user = dovenull
default_internal_user = dovecot
shutdown_clients = yes

mail_uid = mail
mail_gid = mail
first_valid_uid = {self._mail_uid}
first_valid_gid = {self._mail_gid}
mail_location = maildir:~
mailbox_list_index = yes
mail_fsync = never
# (CONDSTORE, QRESYNC, MOVE, UIDPLUS, SPECIAL-USE, IDLE are built in; NOTIFY needs the list index.)

{tls}auth_mechanisms = plain login{oauth2_mechs}
auth_verbose = yes
{oauth2_passdb}passdb {{
  driver = passwd-file
{password_mechs}  args = scheme=PLAIN username_format=%u {self.users_dir}/%u
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {self.users_dir}/%u
}}

namespace inbox {{
  inbox = yes
  separator = /
{mailboxes}}}

service imap-login {{
  inet_listener imap {{
    port = {ports.imap}
  }}
{imaps}}}
service pop3-login {{
  inet_listener pop3 {{
    port = {ports.pop3}
  }}
{pop3s}}}
service lmtp {{
  inet_listener lmtp {{
    port = {ports.lmtp}
  }}
}}
service auth {{
  inet_listener auth {{
    port = {ports.auth}
  }}
}}
protocol lmtp {{
  postmaster_address = postmaster@{self.domain}
}}

{self.extra_conf}
"""
