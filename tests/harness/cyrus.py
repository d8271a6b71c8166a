"""A private Cyrus IMAP 3.x with all its state in one temp directory.

Runs the ``master`` process from the unpacked Debian package (harness.packages) with ``-C``/``-M``
pointing at generated configs; nothing under /etc is read. The configuration is Debian's:
``altnamespace: no`` and ``unixhierarchysep: no``, so the personal namespace is ``INBOX.`` with
separator ``.`` and a user's folders are ``INBOX.Sent``, ``INBOX.Trash``...; those are created at
first login (``autocreate_inbox_folders``) with their SPECIAL-USE attributes. Cyrus offers
CONDSTORE, QRESYNC, MOVE, UIDPLUS, SPECIAL-USE, IDLE, but not NOTIFY.

Logins are plain names (``u7-alice``): SASL's sasldb keys users by name and realm, and the realm of
a login without a domain is the server name. Mail is delivered by LMTP on a unix socket. Services
run as the system user ``mail`` (``cyrus_user``), the master as root only to bind its ports.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import secrets
import signal
import smtplib
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

from . import packages
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
from .dovecot import MAIL_DOMAIN, User

SERVER_NAME = "mx.example.test"
SPECIAL_USE_MAILBOXES = {
    "INBOX.Drafts": "\\Drafts",
    "INBOX.Sent": "\\Sent",
    "INBOX.Trash": "\\Trash",
    "INBOX.Junk": "\\Junk",
    "INBOX.Archive": "\\Archive",
}
_user_numbers = itertools.count(1)
_START_ATTEMPTS = 5


@dataclass(frozen=True)
class CyrusPorts:
    imap: int
    """IMAP with STARTTLS offered."""
    imaps: int

    def all(self) -> list[int]:
        return [self.imap, self.imaps]


class Cyrus:
    """One private Cyrus instance, with the interface of harness.Dovecot that tests use."""

    kind = "cyrus"
    inbox_prefix = "INBOX."
    separator = "."

    def __init__(self, workdir: Path, ca: TestCA) -> None:
        self.workdir = workdir
        self.ca = ca
        self.host = SERVER_HOST
        self.domain = MAIL_DOMAIN
        self.root = packages.ensure("cyrus")
        self.conf_dir = workdir / "conf"
        self.log_dir = workdir / "log"
        self.lmtp_socket = workdir / "socket" / "lmtp"
        self._ports: CyrusPorts | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        mail = pwd.getpwnam("mail")
        # conf/socket: each imapd binds its own idle.<pid> socket there, for idled to wake it
        for name in ("conf", "conf/socket", "spool", "sieve", "socket", "run", "log"):
            path = workdir / name
            path.mkdir(mode=0o750, exist_ok=True)
            os.chown(path, mail.pw_uid, mail.pw_gid)
        # imapd reads them after dropping root (pytest's temp dirs are 0700)
        for name, source in (("server.key", ca.key_file), ("server.pem", ca.cert_file)):
            copy = self.conf_dir / name
            copy.write_bytes(source.read_bytes())
            copy.chmod(0o600)
            os.chown(copy, mail.pw_uid, mail.pw_gid)
        self._mail = mail

    @property
    def ports(self) -> CyrusPorts:
        if self._ports is None:
            raise ServerError("Cyrus has not been started yet, so it has no ports")
        return self._ports

    @property
    def ca_file(self) -> Path:
        return self.ca.ca_file

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def version(self) -> str:
        return packages.version("cyrus-imapd")

    def start(self) -> None:
        if self.running:
            return
        if self._ports is not None:
            self._start_once()
            return
        for attempt in range(_START_ATTEMPTS):
            imap, imaps = pick_free_ports(2)
            self._ports = CyrusPorts(imap=imap, imaps=imaps)
            self._write_config()
            try:
                self._start_once()
                return
            except ServerError as error:
                if not is_port_collision(str(error)) or attempt == _START_ATTEMPTS - 1:
                    raise

    def stop(self) -> None:
        self._halt(graceful=True)

    def kill(self) -> None:
        self._halt(graceful=False)

    def close(self) -> None:
        self.kill()

    def restart(self) -> None:
        self._halt(graceful=True)
        self.start()

    def add_user(self, name: str = "user", password: str | None = None) -> User:
        """A fresh account; its INBOX and special-use folders appear at its first login."""
        login = f"u{next(_user_numbers)}-{name}"
        user = User(
            login=login,
            password=password or secrets.token_urlsafe(12),
            email=f"{login}@{self.domain}",
        )
        with self._lock:
            done = subprocess.run(
                ["saslpasswd2", "-p", "-c", "-f", str(self._sasldb), "-u", SERVER_NAME, login],
                input=user.password.encode(),
                capture_output=True,
            )
            if done.returncode != 0:
                raise self._error(f"saslpasswd2 failed: {done.stderr.decode(errors='replace')}")
            os.chown(self._sasldb, self._mail.pw_uid, self._mail.pw_gid)
        return user

    def deliver(self, user: User, raw: bytes, *, mail_from: str = "sender@example.net") -> None:
        """Deliver like an MTA would, by LMTP (creating the user's INBOX if need be)."""
        with smtplib.LMTP(str(self.lmtp_socket), timeout=30) as lmtp:
            refused = lmtp.sendmail(mail_from, [user.login], raw)
        if refused:
            raise self._error(f"LMTP refused {refused}")

    def log_tail(self, lines: int = 40) -> str:
        return log_tail([self.log_dir / "master.log"], lines)

    def __repr__(self) -> str:
        return f"<Cyrus {self.workdir} ports={self._ports}>"

    # -- internals --------------------------------------------------------------------------

    @property
    def _sasldb(self) -> Path:
        return self.conf_dir / "sasldb2"

    def _error(self, reason: str) -> ServerError:
        return ServerError(f"Cyrus ({self.workdir}): {reason}\n{self.log_tail()}")

    def _halt(self, *, graceful: bool, wait_for_ports: bool = True) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if graceful and proc.poll() is None:
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # master and services share its group
        proc.wait()
        if wait_for_ports and not wait_until_closed(self.ports.all(), timeout=10):
            raise self._error("ports still open after stop")

    def _start_once(self) -> None:
        log = (self.log_dir / "master.log").open("ab")
        env = {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "LD_LIBRARY_PATH": str(self.root / "usr/lib/x86_64-linux-gnu"),
        }
        try:
            self._proc = subprocess.Popen(
                [
                    str(self._bin("master")),
                    "-C",
                    str(self.conf_dir / "imapd.conf"),
                    "-M",
                    str(self.conf_dir / "cyrus.conf"),
                    "-p",
                    str(self.workdir / "run" / "master.pid"),
                    "-D",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=env,
                start_new_session=True,
            )
        finally:
            log.close()
        try:
            ports, context = self.ports, self.ca.client_context()
            wait_until_ready(
                [Probe(ports.imap, b"* OK"), Probe(ports.imaps, b"* OK", context)],
                alive=lambda: self.running,
                describe_failure=self._error,
            )
        except BaseException:
            self._halt(graceful=False, wait_for_ports=False)
            raise

    def _bin(self, name: str) -> Path:
        return self.root / "usr/lib/cyrus/bin" / name

    def _write_config(self) -> None:
        w, conf = self.workdir, self.conf_dir / "imapd.conf"
        folders = "|".join(name.removeprefix("INBOX.") for name in SPECIAL_USE_MAILBOXES)
        special = "".join(
            f"xlist-{name.removeprefix('INBOX.').lower()}: {name.removeprefix('INBOX.')}\n"
            for name in SPECIAL_USE_MAILBOXES
        )
        conf.write_text(
            f"""\
# Generated by tests/harness/cyrus.py for one test instance; nothing else reads it.
configdirectory: {w}/conf
partition-default: {w}/spool
sievedir: {w}/sieve
cyrus_user: mail
cyrus_group: mail
servername: {SERVER_NAME}
admins: admin
altnamespace: no
unixhierarchysep: no
sasl_pwcheck_method: auxprop
sasl_auxprop_plugin: sasldb
sasl_sasldb_path: {self._sasldb}
sasl_mech_list: PLAIN LOGIN
allowplaintext: no
tls_server_cert: {self.conf_dir / "server.pem"}
tls_server_key: {self.conf_dir / "server.key"}
lmtpsocket: {self.lmtp_socket}
idlesocket: {w}/conf/socket/idle
notifysocket: {w}/socket/notify
proc_path: {w}/run/proc
mboxname_lockpath: {w}/run/lock
syslog_prefix: kittiwake-cyrus
autocreate_post: 1
autocreate_quota: 0
autocreate_inbox_folders: {folders}
autocreate_subscribe_folders: {folders}
{special}"""
        )
        imapd = f"{self._bin('imapd')} -C {conf}"
        (self.conf_dir / "cyrus.conf").write_text(
            f"""\
START {{
  recover cmd="{self._bin("ctl_cyrusdb")} -C {conf} -r"
}}
SERVICES {{
  imap cmd="{imapd}" listen="{self.host}:{self.ports.imap}" prefork=0
  imaps cmd="{self._bin("imapd")} -s -C {conf}" listen="{self.host}:{self.ports.imaps}" prefork=0
  lmtpunix cmd="{self._bin("lmtpd")} -C {conf}" listen="{self.lmtp_socket}" prefork=0
}}
EVENTS {{
}}
DAEMON {{
  idled cmd="{self._bin("idled")} -C {conf}"
}}
"""
        )
        for path in (conf, self.conf_dir / "cyrus.conf"):
            os.chown(path, self._mail.pw_uid, self._mail.pw_gid)
