"""Plumbing shared by the server wrappers: the listen address, ports, readiness probes, logs.

Every server listens on ``SERVER_HOST`` = 127.0.0.2, not 127.0.0.1. Dovecot treats a connection whose
remote IP equals its local IP as "secured" and then allows plaintext authentication without TLS, which
would hide exactly the bugs the security tests look for. A client connecting to 127.0.0.2 gets the
source address 127.0.0.1 from the kernel, so the two differ and ``disable_plaintext_auth`` really
applies. The test certificate covers 127.0.0.2 (and localhost/127.0.0.1 for completeness); clients
must use the ``host`` attribute of a server, never the literal "localhost".
"""

from __future__ import annotations

import contextlib
import os
import pty
import re
import select
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

SERVER_HOST = "127.0.0.2"
"""Address every test server listens on (see the module docstring for why not 127.0.0.1)."""

START_TIMEOUT = 10.0
"""Upper bound for a server to become ready; a healthy start takes well under a second."""


class ServerError(RuntimeError):
    """A test server failed to start or stop; the message carries the tail of its logs."""


def pick_free_ports(count: int, host: str = SERVER_HOST) -> list[int]:
    """Return ``count`` distinct ports that were free a moment ago.

    All sockets are held open until every port is chosen, so the ports are distinct. Another process
    may still take one before the server binds it; callers retry a start that fails with
    "Address already in use" (see ``is_port_collision``).
    """
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((host, 0))
            ports.append(sock.getsockname()[1])
        return ports


def is_port_collision(log_text: str) -> bool:
    """Whether a failed start was caused by a listen port taken by someone else."""
    return "Address already in use" in log_text or "address already in use" in log_text


_TROUBLE = re.compile(r"fatal|panic|error|warning", re.IGNORECASE)


def log_tail(paths: Sequence[Path], lines: int = 40) -> str:
    """For error messages: each log's first distinct trouble lines, then its last ``lines`` lines.

    The cause of a failed start is often logged once, early, and then buried under the noise of
    readiness probes; the trouble lines bring it back to the top.
    """
    chunks = []
    for path in paths:
        if not path.exists():
            continue
        text = path.read_text(errors="replace").splitlines()
        trouble: dict[str, None] = {}
        for line in text:
            if _TROUBLE.search(line):
                # drop the timestamp/pid prefix so repeats of one message collapse
                trouble.setdefault(_PREFIX.sub("", line), None)
        tail = text[-lines:]
        chunk = f"--- {path} ---\n"
        if trouble:
            chunk += "first trouble lines:\n  " + "\n  ".join(list(trouble)[:15]) + "\n"
        chunks.append(chunk + f"last {len(tail)} lines:\n" + "\n".join(tail))
    return "\n".join(chunks) or "(no log output)"


_PREFIX = re.compile(r"^\w{3} +\d+ [\d:]+ (mx )?|\[\d+\]|\(\d+\)")


@dataclass(frozen=True)
class Probe:
    """How to decide that one listener is ready: connect (optionally TLS) and read a greeting prefix.

    An empty ``greeting`` means a successful connect is enough.
    """

    port: int
    greeting: bytes = b""
    tls: ssl.SSLContext | None = None
    host: str = SERVER_HOST

    def ready(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=2.0) as raw:
                if not self.greeting:
                    return True
                if self.tls is None:
                    return _read_greeting(raw, self.greeting)
                with self.tls.wrap_socket(raw, server_hostname=self.host) as tls_sock:
                    return _read_greeting(tls_sock, self.greeting)
        except ssl.SSLCertVerificationError:
            raise  # a wrong certificate never fixes itself: fail at once, loudly
        except OSError:
            return False


def _read_greeting(sock: socket.socket, prefix: bytes) -> bool:
    data = b""
    while not data.endswith(b"\n") and len(data) < 4096:
        chunk = sock.recv(4096)
        if not chunk:
            return False
        data += chunk
    return data.startswith(prefix)


def wait_until_ready(
    probes: Sequence[Probe],
    *,
    alive: Callable[[], bool],
    describe_failure: Callable[[str], ServerError],
    timeout: float = START_TIMEOUT,
) -> None:
    """Poll every probe until all pass; raise early if the server process died.

    ``alive`` reports whether the server is still running; ``describe_failure`` turns a reason into an
    error that includes the server's log tail.
    """
    deadline = time.monotonic() + timeout
    pending = list(probes)
    interval = 0.01
    while pending:
        if not alive():
            raise describe_failure("the server exited during start-up")
        try:
            pending = [probe for probe in pending if not probe.ready()]
        except ssl.SSLCertVerificationError as error:
            raise describe_failure(f"the test CA does not verify the server: {error}") from error
        if not pending:
            return
        if time.monotonic() > deadline:
            ports = ", ".join(str(probe.port) for probe in pending)
            raise describe_failure(f"ports not ready after {timeout:.0f} s: {ports}")
        time.sleep(interval)
        interval = min(interval * 1.5, 0.25)  # each failed probe adds noise to the server log


def port_is_open(port: int, host: str = SERVER_HOST) -> bool:
    """Whether something accepts TCP connections on the port right now."""
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def wait_until_closed(ports: Sequence[int], timeout: float = 10.0, host: str = SERVER_HOST) -> bool:
    """Poll until no port accepts connections; return False if some still do at the deadline."""
    deadline = time.monotonic() + timeout
    while any(port_is_open(port, host) for port in ports):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def process_alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie awaiting its reaper counts as dead)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # The state letter follows the parenthesised command name, which may contain spaces.
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def run_with_tty(cmd: Sequence[str], timeout: float = 30.0) -> tuple[int, str]:
    """Run a command with a pseudo-terminal as its stdout/stderr and return (exit code, output).

    Postfix commands print their fatal errors only when stderr is a terminal (otherwise they log to
    /dev/log, which does not exist here), so a pipe would capture nothing.
    """
    master_fd, slave_fd = pty.openpty()
    try:
        proc = subprocess.Popen(
            list(cmd), stdin=subprocess.DEVNULL, stdout=slave_fd, stderr=slave_fd, close_fds=True
        )
    finally:
        os.close(slave_fd)
    output = bytearray()
    deadline = time.monotonic() + timeout
    try:
        # A daemon forked by the command may keep the terminal open, so stop reading shortly
        # after the command itself has exited instead of waiting for EOF.
        while True:
            exited = proc.poll() is not None
            readable, _, _ = select.select([master_fd], [], [], 0.05)
            if readable:
                try:
                    chunk = os.read(master_fd, 65536)
                except OSError:  # EIO: every writer closed the terminal
                    chunk = b""
                if chunk:
                    output += chunk
                    continue
                if exited:
                    break
            elif exited:
                break
            if time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                raise ServerError(f"{' '.join(cmd)} did not finish in {timeout:.0f} s")
    finally:
        os.close(master_fd)
    return proc.wait(), output.decode(errors="replace").replace("\r\n", "\n")
