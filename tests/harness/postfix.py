"""A private Postfix instance: submission ports in front of a test Dovecot.

Facts that shaped this (see also shared/notes/postfix.md):

* ``postfix -c DIR`` run as root does *not* need DIR in the default main.cf's
  ``alternate_config_directories``: Postfix checks that list only for non-root (set-gid) callers
  (``mail_conf_suck``: ``geteuid() != 0``). What makes ``postfix start`` exit 1 in silence is a missing
  ``queue_directory``. So this module never edits /etc/postfix.
* Postfix prints errors only to a terminal and otherwise logs to /dev/log (absent here); commands run
  under a pty (``run_with_tty``) and daemons log to ``maillog_file`` in the instance directory.
* ``inet_interfaces`` must name a configured address (127.0.0.2 is not one, only 127.0.0.0/8 is
  routed to lo), but a master.cf service may bind ``127.0.0.2:PORT`` explicitly.
* Mail from the submission ports is never rewritten (``local_header_rewrite_clients`` empty) and
  missing Date/Message-ID headers are not added, so tests see the client's bytes as it sent them.
  Anything not for ``example.test`` bounces: nothing can leave the machine.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import time
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
    process_alive,
    run_with_tty,
    wait_until_closed,
    wait_until_ready,
)
from .dovecot import Dovecot

_START_ATTEMPTS = 5
MESSAGE_SIZE_LIMIT = 64 * 1024 * 1024
"""Large enough for a 25 MB attachment after base64 (x 4/3) plus headers."""


@dataclass(frozen=True)
class PostfixPorts:
    """Listen ports on ``Postfix.host``."""

    submission: int
    """STARTTLS offered; AUTH offered only after STARTTLS (``smtpd_tls_auth_only``)."""
    submissions: int
    """Implicit TLS (``smtpd_tls_wrappermode``)."""
    plain: int
    """No STARTTLS offered, AUTH offered anyway: for "STARTTLS required but missing" tests."""

    def all(self) -> list[int]:
        return [self.submission, self.submissions, self.plain]


class Postfix:
    """One private Postfix whose local deliveries go to ``dovecot`` over LMTP."""

    def __init__(
        self, workdir: Path, ca: TestCA, dovecot: Dovecot, *, extra_main_cf: str = ""
    ) -> None:
        """Prepare (but do not start) an instance in ``workdir``, which must be traversable.

        ``extra_main_cf`` holds main.cf settings that replace the generated ones or are added.
        """
        self.workdir = workdir
        self.ca = ca
        self.dovecot = dovecot
        self.extra_main_cf = extra_main_cf
        self.host = SERVER_HOST
        self.config_dir = workdir / "etc"
        self.queue_dir = workdir / "spool"
        self.data_dir = workdir / "data"
        self.maillog = workdir / "log" / "maillog"
        self._ports: PostfixPorts | None = None
        self._master_pid: int | None = None
        self._make_directories()

    # -- public API -------------------------------------------------------------------------

    @property
    def ports(self) -> PostfixPorts:
        if self._ports is None:
            raise ServerError("Postfix has not been started yet, so it has no ports")
        return self._ports

    @property
    def ca_file(self) -> Path:
        return self.ca.ca_file

    @property
    def running(self) -> bool:
        return self._master_pid is not None and process_alive(self._master_pid)

    def start(self) -> None:
        """Start and wait until every port greets with 220. Ports are chosen on the first start.

        Needs its Dovecot running: smtpd refuses to start without Dovecot's SASL auth.
        """
        if self.running:
            return
        if self._ports is not None:
            self._start_once()
            return
        for attempt in range(_START_ATTEMPTS):
            self._ports = PostfixPorts(*pick_free_ports(3))
            self._write_config()
            try:
                self._start_once()
                return
            except ServerError as error:
                if not is_port_collision(str(error)) or attempt == _START_ATTEMPTS - 1:
                    raise

    def stop(self) -> None:
        """``postfix stop``, then wait until the master is gone and the ports are closed.

        Whatever is still alive after that is killed by process group (the master is a session
        leader, its children share its group).
        """
        self._halt(wait_for_ports=True)

    def restart(self) -> None:
        """Stop and start on the same ports; queued mail survives and is retried within seconds."""
        self.stop()
        self.start()

    def flush(self) -> None:
        """Retry deferred mail now (``postqueue -f``), e.g. after Dovecot came back."""
        code, output = run_with_tty(["postqueue", "-c", str(self.config_dir), "-f"])
        if code != 0:
            raise self._error(f"postqueue -f exited with {code}", output)

    def log_tail(self, lines: int = 40) -> str:
        return log_tail([self.maillog], lines)

    def close(self) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<Postfix {self.workdir} ports={self._ports}>"

    # -- internals --------------------------------------------------------------------------

    def _error(self, reason: str, output: str = "") -> ServerError:
        shown = f"postfix said:\n{output.strip()}\n" if output.strip() else ""
        return ServerError(f"Postfix ({self.config_dir}): {reason}\n{shown}{self.log_tail()}")

    def _make_directories(self) -> None:
        """Create the instance's directories with the owners and modes Postfix insists on.

        The queue directory and all its parents must be root-owned and traversable (``postfix
        start`` exits 1 in silence when it is missing, and creates the subdirectories itself);
        data_directory must belong to the postfix user.
        """
        postfix = pwd.getpwnam("postfix")
        for path in (self.config_dir, self.queue_dir, self.data_dir, self.maillog.parent):
            path.mkdir(mode=0o755, exist_ok=True)
        os.chown(self.data_dir, postfix.pw_uid, postfix.pw_gid)

    def _halt(self, *, wait_for_ports: bool) -> None:
        pid = self._master_pid or self._read_master_pid()
        self._master_pid = None
        if pid is None:
            return
        run_with_tty(["postfix", "-c", str(self.config_dir), "stop"])
        deadline = time.monotonic() + 10
        while process_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        closed = not wait_for_ports or wait_until_closed(
            self.ports.all(), timeout=max(0.0, deadline - time.monotonic())
        )
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        if not closed and not wait_until_closed(self.ports.all(), timeout=5):
            raise self._error("ports still open after stop")

    def _read_master_pid(self) -> int | None:
        try:
            pid = int((self.queue_dir / "pid" / "master.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if process_alive(pid) else None

    def _start_once(self) -> None:
        if shutil.which("postfix", path="/usr/sbin:/usr/bin:/sbin:/bin") is None:
            raise ServerError("postfix is not installed (apt-get install postfix)")
        code, output = run_with_tty(["postfix", "-c", str(self.config_dir), "start"])
        self._master_pid = self._read_master_pid()
        if code != 0 or self._master_pid is None:
            self._halt(wait_for_ports=False)  # a port may belong to someone else
            raise self._error(f"postfix start exited with {code}", output)
        context = self.ca.client_context()
        ports = self.ports
        try:
            wait_until_ready(
                [
                    Probe(ports.submission, b"220"),
                    Probe(ports.submissions, b"220", context),
                    Probe(ports.plain, b"220"),
                ],
                alive=lambda: self.running,
                describe_failure=self._error,
            )
        except BaseException:
            self._halt(wait_for_ports=False)
            raise

    def _write_config(self) -> None:
        # Postfix re-reads a config file that changed within the last couple of seconds (300 ms
        # naps until it looks stable): backdating the files cuts ~1.8 s from every start.
        an_hour_ago = time.time() - 3600
        main_cf = _merge_settings(self._render_main_cf(), self.extra_main_cf)
        for name, text in (("main.cf", main_cf), ("master.cf", self._render_master_cf())):
            path = self.config_dir / name
            path.write_text(text)
            os.utime(path, (an_hour_ago, an_hour_ago))

    def _render_main_cf(self) -> str:
        dovecot, ca = self.dovecot, self.ca
        return f"""\
# Generated by tests/harness/postfix.py for one test instance.
compatibility_level = 3.6
queue_directory = {self.queue_dir}
data_directory = {self.data_dir}
meta_directory = /etc/postfix
maillog_file = {self.maillog}
maillog_file_prefixes = {self.workdir}

myhostname = mx.{dovecot.domain}
mydomain = {dovecot.domain}
myorigin = $mydomain
mydestination = $mydomain
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_banner = $myhostname ESMTP
biff = no

# Local mail goes to Dovecot; every recipient is accepted here (Dovecot LMTP may still refuse).
local_transport = lmtp:inet:{dovecot.host}:{dovecot.ports.lmtp}
local_recipient_maps =
alias_maps =
alias_database =
# Never send anything off this machine.
default_transport = error:outbound mail is disabled in tests
relay_transport = error:outbound mail is disabled in tests

# Keep the client's message as sent.
local_header_rewrite_clients =
disable_mime_output_conversion = yes

message_size_limit = {MESSAGE_SIZE_LIMIT}
mailbox_size_limit = 0

smtpd_tls_cert_file = {ca.cert_file}
smtpd_tls_key_file = {ca.key_file}
smtpd_tls_security_level = may
smtpd_tls_auth_only = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = inet:{dovecot.host}:{dovecot.ports.auth}
smtpd_relay_restrictions = permit_sasl_authenticated, reject_unauth_destination

# Fault tests stop Dovecot: retry deferred mail within seconds, not minutes. And smtpd exits
# at start-up ("no SASL authentication mechanisms") while Dovecot's auth is down, after which the
# master throttles the service for service_throttle_time (default 60 s).
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
service_throttle_time = 1s
"""

    def _render_master_cf(self) -> str:
        ports = self.ports
        submission_opts = (
            "  -o smtpd_sasl_auth_enable=yes\n"
            "  -o smtpd_client_restrictions=permit_sasl_authenticated,reject\n"
        )
        # Internal services: the Debian defaults with chroot off (5th column "n").
        internal = """\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""
        return (
            "# Generated by tests/harness/postfix.py; no public smtp listener.\n"
            f"{self.host}:{ports.submission} inet n - n - - smtpd\n"
            "  -o syslog_name=postfix/submission\n"
            f"{submission_opts}"
            f"{self.host}:{ports.submissions} inet n - n - - smtpd\n"
            "  -o syslog_name=postfix/submissions\n"
            "  -o smtpd_tls_wrappermode=yes\n"
            f"{submission_opts}"
            f"{self.host}:{ports.plain} inet n - n - - smtpd\n"
            "  -o syslog_name=postfix/plain\n"
            "  -o smtpd_tls_security_level=none\n"
            "  -o smtpd_tls_auth_only=no\n"
            f"{submission_opts}"
            f"{internal}"
        )


def _merge_settings(base: str, extra: str) -> str:
    """Apply ``name = value`` settings from ``extra`` to a generated main.cf.

    A setting already present is replaced in place (Postfix warns about duplicates in every
    process's log); new ones are appended. Indented lines continue the previous setting.
    """
    settings: list[list[str]] = []
    for line in extra.splitlines():
        if line.strip().startswith("#") or not line.strip():
            continue
        if line[0].isspace() and settings:
            settings[-1].append(line)
        else:
            settings.append([line])
    lines = base.splitlines()
    for setting in settings:
        name = setting[0].split("=", 1)[0].strip()
        matches = [i for i, line in enumerate(lines) if line.split("=", 1)[0].strip() == name]
        if matches:
            lines[matches[0] : matches[0] + 1] = setting
        else:
            lines.extend(setting)
    return "\n".join(lines) + "\n"
