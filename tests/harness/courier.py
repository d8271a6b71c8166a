"""A private Courier-IMAP 5.0 with all its state in one temp directory.

Courier's programs find their configuration and the authentication daemon's socket at paths
compiled in (/etc/courier/..., /run/courier/authdaemon/socket, modules in /usr/lib/courier-authlib).
The harness therefore starts them inside a private mount namespace (``unshare -m``) in which the
unpacked package tree (harness.packages) is layered over /usr and /etc (read-only overlays), this
instance's own directory is bind-mounted on /etc/courier, and /run is an empty tmpfs. Nothing
outside the namespace sees any of it, and other instances each get their own.

What a Courier user gets: the personal namespace ``INBOX.`` with separator ``.``, no SPECIAL-USE
(folders ``INBOX.Drafts``, ``INBOX.Sent``, ``INBOX.Trash`` as SqWebMail makes them), no CONDSTORE,
QRESYNC, MOVE or NOTIFY, and a SELECT without ``[UIDNEXT]``. Users live in a userdb (Courier's own
account database) rebuilt with ``makeuserdb`` when one is added; mail is Maildir, delivered by
writing into ``Maildir/new`` as an MDA does. IDLE re-checks the folder every second
(``IMAP_IDLE_TIMEOUT=1``; production setups use FAM/inotify for the same effect). Two ports,
as Courier's own imapd and imapd-ssl scripts set them up: implicit TLS (``imaps``, through
couriertls), and the IMAP port (``imap``) with STARTTLS required (``IMAP_TLS_REQUIRED=1``:
LOGINDISABLED and no AUTH=PLAIN until TLS is up, ``IMAP_CAPABILITY_TLS`` after).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import secrets
import signal
import subprocess
import threading
import time
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

FOLDERS = ("Drafts", "Sent", "Trash", "Junk")
"""Made for every user, as ``INBOX.<name>`` (Maildir ``.<name>``)."""
_user_numbers = itertools.count(1)
_START_ATTEMPTS = 5
_deliveries = itertools.count(1)


@dataclass(frozen=True)
class CourierPorts:
    imaps: int
    imap: int

    def all(self) -> list[int]:
        return [self.imaps, self.imap]


class Courier:
    """One private Courier-IMAP instance, with the interface of harness.Dovecot that tests use."""

    kind = "courier"
    inbox_prefix = "INBOX."
    separator = "."

    def __init__(self, workdir: Path, ca: TestCA) -> None:
        self.workdir = workdir
        self.ca = ca
        self.host = SERVER_HOST
        self.domain = MAIL_DOMAIN
        self.root = packages.ensure("courier")
        self.etc = workdir / "etc-courier"
        self.mail_dir = workdir / "mail"
        self.log_dir = workdir / "log"
        self._ports: CourierPorts | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._users: dict[User, Path] = {}
        self._mail = pwd.getpwnam("mail")
        self.mail_uid, self.mail_gid = self._mail.pw_uid, self._mail.pw_gid
        for path in (self.etc, self.log_dir, workdir / "run"):
            path.mkdir(mode=0o755, exist_ok=True)
        self.mail_dir.mkdir(mode=0o711, exist_ok=True)
        pem = self.etc / "imapd.pem"
        pem.write_bytes(ca.key_file.read_bytes() + ca.cert_file.read_bytes())
        pem.chmod(0o600)
        # Read by couriertls as root on the TLS port, and as "courier" (see below) when
        # imaplogin starts it for STARTTLS.
        os.chown(pem, self.mail_uid, self.mail_gid)
        (self.etc / "authdaemonrc").write_text(
            'authmodulelist="authuserdb"\nauthmodulelistorig="authuserdb"\ndaemons=2\n'
            'authdaemonvar=/run/courier/authdaemon\nDEBUG_LOGIN=0\nDEFAULTOPTIONS=""\n'
        )
        userdb = self.etc / "userdb"
        userdb.touch(mode=0o600)
        # imaplogin looks up the "courier" user when STARTTLS starts couriertls; the package's
        # postinst would have made it. Inside the namespace only: /etc/passwd and /etc/group
        # with that user (as "mail") layered over the system's.
        accounts = workdir / "etc-accounts"
        accounts.mkdir(mode=0o755, exist_ok=True)
        for name, line in (
            ("passwd", f"courier:x:{self.mail_uid}:{self.mail_gid}::/nonexistent:/bin/false\n"),
            ("group", f"courier:x:{self.mail_gid}:\n"),
        ):
            system = Path("/etc", name).read_text()
            if not any(entry.startswith("courier:") for entry in system.splitlines()):
                system += line
            (accounts / name).write_text(system)
        self._namespace_script = workdir / "namespace.sh"
        self._namespace_script.write_text(
            "set -e\n"
            f"mount -t overlay kittiwake-etc -o lowerdir={accounts}:{self.root}/etc:/etc /etc\n"
            f"mount --bind {self.etc} /etc/courier\n"
            f"mount -t overlay kittiwake-usr -o lowerdir={self.root}/usr:/usr /usr\n"
            "mount -t tmpfs kittiwake-run /run\n"
            "mkdir -p /run/courier/authdaemon\n"
            'exec "$@"\n'
        )

    @property
    def ports(self) -> CourierPorts:
        if self._ports is None:
            raise ServerError("Courier has not been started yet, so it has no ports")
        return self._ports

    @property
    def ca_file(self) -> Path:
        return self.ca.ca_file

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def version(self) -> str:
        return packages.version("courier-imap")

    def start(self) -> None:
        if self.running:
            return
        if self._ports is not None:
            self._start_once()
            return
        for attempt in range(_START_ATTEMPTS):
            imaps, imap = pick_free_ports(2)
            self._ports = CourierPorts(imaps=imaps, imap=imap)
            self._write_run_script()
            try:
                self._start_once()
                return
            except ServerError as error:
                if not is_port_collision(str(error)) or attempt == _START_ATTEMPTS - 1:
                    raise

    def stop(self) -> None:
        self._halt()

    def kill(self) -> None:
        self._halt()

    def close(self) -> None:
        self._halt()

    def restart(self) -> None:
        self._halt()
        self.start()

    def add_user(self, name: str = "user", password: str | None = None) -> User:
        """A fresh account with a Maildir holding INBOX and the ``FOLDERS``."""
        login = f"u{next(_user_numbers)}-{name}@{self.domain}"
        user = User(login=login, password=password or secrets.token_urlsafe(12), email=login)
        home = self.mail_dir / login.split("@")[0]
        maildir = home / "Maildir"
        for folder in ("", *(f".{name}" for name in FOLDERS)):
            for sub in ("cur", "new", "tmp"):
                (maildir / folder / sub).mkdir(parents=True, exist_ok=True)
            if folder:
                (maildir / folder / "maildirfolder").touch()
        subprocess.run(
            ["chown", "-R", f"{self._mail.pw_uid}:{self._mail.pw_gid}", str(home)], check=True
        )
        crypted = (
            subprocess.run(
                ["openssl", "passwd", "-6", "-stdin"],
                input=user.password.encode(),
                capture_output=True,
                check=True,
            )
            .stdout.decode()
            .strip()
        )
        line = (
            f"{login}\tuid={self._mail.pw_uid}|gid={self._mail.pw_gid}|home={home}"
            f"|mail={maildir}|systempw={crypted}\n"
        )
        with self._lock:
            with (self.etc / "userdb").open("a") as handle:
                handle.write(line)
            self._in_namespace(["makeuserdb"])
            self._users[user] = maildir
        return user

    def maildir(self, user: User) -> Path:
        with self._lock:
            return self._users[user]

    def deliver(self, user: User, raw: bytes, *, mail_from: str = "sender@example.net") -> None:
        """Deliver as an MDA does: write into tmp/, then rename into new/ (atomic).

        Maildir files hold LF line ends; Courier turns them into CRLF on the wire."""
        maildir = self.maildir(user)
        name = f"{time.time_ns()}.P{os.getpid()}Q{next(_deliveries)}.kittiwake"
        tmp = maildir / "tmp" / name
        tmp.write_bytes(f"Return-Path: <{mail_from}>\n".encode() + raw.replace(b"\r\n", b"\n"))
        os.chown(tmp, self._mail.pw_uid, self._mail.pw_gid)
        os.rename(tmp, maildir / "new" / name)

    def log_tail(self, lines: int = 40) -> str:
        return log_tail([self.log_dir / "courier.log"], lines)

    def __repr__(self) -> str:
        return f"<Courier {self.workdir} ports={self._ports}>"

    # -- internals --------------------------------------------------------------------------

    def _error(self, reason: str) -> ServerError:
        return ServerError(f"Courier ({self.workdir}): {reason}\n{self.log_tail()}")

    def _in_namespace(self, command: list[str]) -> None:
        done = subprocess.run(
            [
                "unshare",
                "-m",
                "--propagation",
                "private",
                "sh",
                str(self._namespace_script),
                *command,
            ],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise self._error(f"{' '.join(command)} failed: {done.stdout}{done.stderr}")

    def _session_pids(self, session: int) -> list[int]:
        """Every process of the instance: couriertcpd makes process groups of its own, but they all
        stay in the session the harness started."""
        pids = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = stat.read_text().rsplit(")", 1)[1].split()
                if int(fields[3]) == session:
                    pids.append(int(stat.parent.name))
        return pids

    def _halt(self, *, wait_for_ports: bool = True) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        for pid in self._session_pids(proc.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.wait()
        if wait_for_ports and not wait_until_closed(self.ports.all(), timeout=10):
            raise self._error("ports still open after stop")

    def _write_run_script(self) -> None:
        settings = {
            "IMAP_CAPABILITY": "IMAP4rev1 UIDPLUS CHILDREN NAMESPACE THREAD=ORDEREDSUBJECT "
            "THREAD=REFERENCES SORT QUOTA IDLE AUTH=PLAIN",
            "IMAP_KEYWORDS": "1",
            "IMAP_ACL": "1",
            "IMAP_IDLE_TIMEOUT": "1",
            "IMAP_ENHANCEDIDLE": "0",
            "IMAP_MAILBOX_SANITY_CHECK": "1",
            "IMAP_UMASK": "022",
            "IMAP_USELOCKS": "1",
            "IMAP_TRASHFOLDERNAME": "Trash",
            "IMAP_EMPTYTRASH": "",
            "IMAP_MOVE_EXPUNGE_TO_TRASH": "0",
            "IMAP_TLS": "1",
            "IMAP_STARTTLS": "NO",
            "IMAP_TLS_REQUIRED": "0",
            "COURIERTLS": "/usr/bin/couriertls",
            "TLS_CERTFILE": "/etc/courier/imapd.pem",
            "TLS_PROTOCOL": "TLS1_2:",
            "TLS_VERIFYPEER": "NONE",
            "MAILDIRPATH": "Maildir",
        }
        exports = "".join(f"export {key}='{value}'\n" for key, value in settings.items())
        # The IMAP port: plain text until STARTTLS, which it requires before any login
        # (imapd-ssl's IMAPDSTARTTLS=YES with IMAP_TLS_REQUIRED=1).
        caps = settings["IMAP_CAPABILITY"].removesuffix(" AUTH=PLAIN")
        starttls = (
            f"env -u IMAP_TLS IMAP_STARTTLS=YES IMAP_TLS_REQUIRED=1 IMAP_CAPABILITY='{caps}' "
            f"IMAP_CAPABILITY_TLS='{caps} AUTH=PLAIN' TLS_STARTTLS_PROTOCOL='TLS1_2:' "
        )
        tcpd = (
            f"/usr/sbin/couriertcpd -address={self.host} -nodnslookup -noidentlookup "
            "-maxprocs=40 -maxperip=40"
        )
        (self.workdir / "run.sh").write_text(
            "/usr/lib/courier/courier-authlib/authdaemond &\n"
            f"{exports}"
            f"{tcpd} {self.ports.imaps} /usr/bin/couriertls -server -tcpd "
            "/usr/lib/courier/courier/imaplogin /usr/bin/imapd Maildir &\n"
            f"{starttls}{tcpd} {self.ports.imap} "
            "/usr/lib/courier/courier/imaplogin /usr/bin/imapd Maildir &\n"
            "wait\n"
        )

    def _start_once(self) -> None:
        log = (self.log_dir / "courier.log").open("ab")
        try:
            self._proc = subprocess.Popen(
                [
                    "unshare",
                    "-m",
                    "--propagation",
                    "private",
                    "sh",
                    str(self._namespace_script),
                    "sh",
                    str(self.workdir / "run.sh"),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
                start_new_session=True,
            )
        finally:
            log.close()
        (self.workdir / "run" / "master.pid").write_text(f"{self._proc.pid}\n")
        try:
            wait_until_ready(
                [
                    Probe(self.ports.imaps, b"* OK", self.ca.client_context()),
                    Probe(self.ports.imap, b"* OK"),
                ],
                alive=lambda: self.running,
                describe_failure=self._error,
            )
        except BaseException:
            self._halt(wait_for_ports=False)
            raise
