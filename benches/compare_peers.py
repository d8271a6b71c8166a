#!/usr/bin/env python3
"""Kittiwake against aerc and neomutt, side by side, in one interleaved run (issue 19).

    .venv/bin/python benches/compare_peers.py --messages 10000 --messages 100000

For each folder size (and each ``--security``: IMAPS, or plain IMAP on Dovecot's plain port
with no STARTTLS; ``both`` runs the size once for each, plaintext first): a private Dovecot
(the test harness, on 127.0.0.2) gets an INBOX of generated mail
(``bench_imap_sync.fill_maildir``) plus one newest message whose subject is the marker. Each client runs in its own tmux pane (100x30); the figures are

- start to list drawn: from spawning the client to the marker on screen (``capture-pane``
  polled every 5 ms), warm (Kittiwake: a full cache; neomutt: a full header cache) and cold
  (no cache; aerc 0.14 keeps none, so its two rows are the same measurement kind);
- key to screen: ``send-keys`` to a changed screen (colours included), polled every 2 ms, for
  one line down, one page down, and to the last and first message (``G``/``g``; neomutt has
  them on ``*``/``=``), after a warm start and one quiet second;
- peak memory: the client's VmHWM (``/proc``) when it is closed, after the keys.

Runs are interleaved client by client (the order rotates each round) so a machine that slows
down slows all three alike; medians are printed, with ratios Kittiwake/peer (below 1 is
Kittiwake ahead). Needs root (Dovecot, as for the server tests), tmux, and the Debian packages
``neomutt`` and ``aerc`` (installed with apt-get when missing).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benches"))

MARKER = "Kwbench newest marker"
# Per process: two runs at once (several people on one machine) never share a tmux server.
SESSION = f"kwpeers{os.getpid()}"
KEYS = ("j", "PageDown", "end", "home")


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def ensure_peers() -> None:
    missing = [p for p in ("neomutt", "aerc", "tmux") if shutil.which(p) is None]
    if missing:
        log(f"installing {', '.join(missing)} (apt-get)")
        subprocess.run(["apt-get", "install", "-y", "-q", *missing], check=True)


@dataclass
class Client:
    name: str
    home: Path
    command: str
    env: dict[str, str]
    keys: dict[str, str]
    clear_cache: Callable[[], None]
    fill_cache: Callable[[], None]
    warm: list[float] = field(default_factory=list)
    cold: list[float] = field(default_factory=list)
    latency: dict[str, list[float]] = field(default_factory=dict)
    rss_mb: list[float] = field(default_factory=list)
    live: LiveFigures | None = None


def base_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "KITTIWAKE"))}
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / "config"),
        XDG_CACHE_HOME=str(home / "cache"),
        XDG_STATE_HOME=str(home / "state"),
        XDG_DATA_HOME=str(home / "data"),
        TERM="xterm-256color",
    )
    return env


def kittiwake_client(
    top: Path,
    dovecot: Any,
    user: Any,
    security: str = "tls",
    checkout: Path = ROOT,
    name: str = "Kittiwake",
) -> Client:
    home = top / name.replace(" ", "-").lower()
    home.mkdir()
    config = home / "config.toml"
    server = (
        f'port = {dovecot.ports.imaps}\nca_file = "{dovecot.ca_file}"\n'
        if security == "tls"
        else f'port = {dovecot.ports.imap}\nsecurity = "none"\n'
    )
    config.write_text(
        f'[accounts.bench]\nemail = "{user.email}"\n[accounts.bench.imap]\n'
        f'host = "{dovecot.host}"\nuser = "{user.login}"\n'
        f'password = "{user.password}"\n{server}'
    )
    config.chmod(0o600)
    exe = checkout / ".venv" / "bin" / "kittiwake"
    env = base_env(home)

    def fill() -> None:
        subprocess.run(
            [str(exe), "--config", str(config), "sync"], env=env, check=True, capture_output=True
        )

    return Client(
        name,
        home,
        f"{exe} --config {config}",
        env,
        {"j": "j", "PageDown": "PageDown", "end": "G", "home": "g"},
        lambda: shutil.rmtree(home / "cache", ignore_errors=True),
        fill,
    )


def neomutt_client(top: Path, dovecot: Any, user: Any, security: str = "tls") -> Client:
    home = top / "neomutt"
    home.mkdir()
    rc = home / "muttrc"
    hcache = home / "hcache"
    login = quote(user.login, safe="")
    if security == "tls":
        url = f"imaps://{login}@{dovecot.host}:{dovecot.ports.imaps}/"
        tls = f'set ssl_ca_certificates_file="{dovecot.ca_file}"\n'
    else:  # Dovecot offers STARTTLS on its plain port: neomutt must not take it up
        url = f"imap://{login}@{dovecot.host}:{dovecot.ports.imap}/"
        tls = "set ssl_starttls=no\nset ssl_force_tls=no\n"
    rc.write_text(
        f'set folder="{url}"\nset spoolfile="+INBOX"\n'
        f'set imap_pass="{user.password}"\n{tls}'
        f'set header_cache="{hcache}"\nset sort=reverse-date\n'
        "set mail_check_stats=no\nset imap_check_subscribed=no\nset imap_idle=yes\n"
        "set sidebar_visible=no\nset move=no\nset confirmappend=no\n"
        # neomutt waits $sleep_time (1 s) after showing some messages, among them "SSL/TLS
        # connection using ...": every TLS start was 1 s longer than its work (the header
        # cache was warm: after SELECT only UID FETCH 1:N (UID FLAGS) went out).
        "set sleep_time=0\n"
        # neomutt reads what IDLE brought only when a key wait times out (600 s by default):
        # the live rows would never see it. One second, as a user wanting live mail sets.
        "set timeout=1\n"
    )
    rc.chmod(0o600)
    env = base_env(home)

    def fill() -> None:  # one start fills the header cache; the caller closes it
        pass

    return Client(
        "neomutt",
        home,
        f"neomutt -n -F {rc}",
        env,
        {"j": "j", "PageDown": "PageDown", "end": "*", "home": "="},
        lambda: shutil.rmtree(hcache, ignore_errors=True),
        fill,
    )


def aerc_client(top: Path, dovecot: Any, user: Any, security: str = "tls") -> Client:
    home = top / "aerc"
    conf = home / "config" / "aerc"
    conf.mkdir(parents=True)
    login, password = quote(user.login, safe=""), quote(user.password, safe="")
    # imap+insecure: plain IMAP, no STARTTLS (aerc-imap(5)).
    source = (
        f"imaps://{login}:{password}@{dovecot.host}:{dovecot.ports.imaps}"
        if security == "tls"
        else f"imap+insecure://{login}:{password}@{dovecot.host}:{dovecot.ports.imap}"
    )
    (conf / "accounts.conf").write_text(
        f"[bench]\nsource = {source}\nfrom = Bench <{user.email}>\ndefault = INBOX\n"
    )
    (conf / "accounts.conf").chmod(0o600)
    env = base_env(home)
    env["SSL_CERT_FILE"] = str(dovecot.ca_file)  # Go's TLS reads its roots from here
    return Client(
        "aerc",
        home,
        "aerc",
        env,
        {"j": "j", "PageDown": "PageDown", "end": "G", "home": "g"},
        lambda: None,
        lambda: None,
    )


def tmux(*args: str, check: bool = True) -> str:
    # A server of our own (-L): other tmux users on the machine neither see nor disturb it.
    return subprocess.run(
        ["tmux", "-L", SESSION, *args], capture_output=True, text=True, check=check
    ).stdout


def capture(escapes: bool = False) -> str:
    return tmux("capture-pane", "-p", "-t", SESSION, *(["-e"] if escapes else []), check=False)


def start(client: Client, timeout: float = 60.0) -> tuple[float, int]:
    """Spawn ``client`` in a fresh tmux session; seconds to the marker on screen, and its pid."""
    tmux("kill-session", "-t", SESSION, check=False)
    env = " ".join(
        f"{k}={quote(v, safe='/:._-,=@')}"
        for k, v in client.env.items()
        if k in ("HOME", "TERM", "SSL_CERT_FILE") or k.startswith("XDG_")
    )
    began = time.perf_counter()
    tmux(
        "new-session",
        "-d",
        "-s",
        SESSION,
        "-x",
        "100",
        "-y",
        "30",
        f"exec env -i PATH={os.environ['PATH']} {env} {client.command}",
    )
    while MARKER not in capture():
        if time.perf_counter() - began > timeout:
            screen = capture()
            tmux("kill-session", "-t", SESSION, check=False)
            raise SystemExit(f"{client.name}: no list within {timeout:.0f} s:\n{screen}")
        time.sleep(0.005)
    took = time.perf_counter() - began
    pid = int(tmux("display-message", "-p", "-t", SESSION, "#{pane_pid}").strip())
    return took, pid


def peak_rss_mb(pid: int) -> float:
    """VmHWM of ``pid`` and its children (the largest), in MB."""
    best = 0
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    for p in pids:
        try:
            text = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        found = re.search(r"VmHWM:\s+(\d+) kB", text)
        if found:
            best = max(best, int(found.group(1)))
    return best / 1024


def key_latency(key: str) -> float:
    before = capture(True)
    began = time.perf_counter()
    tmux("send-keys", "-t", SESSION, key)
    while capture(True) == before:
        if time.perf_counter() - began > 10:
            raise SystemExit(f"the screen did not change after {key}")
        time.sleep(0.002)
    took = time.perf_counter() - began
    time.sleep(0.1)  # let the client go idle before the next key
    return took


def stop() -> None:
    tmux("kill-session", "-t", SESSION, check=False)
    time.sleep(0.2)


# -- live updates: a change made on another device, on screen (issue 19) -------------------

LIVE_PREFIX = "Kwlive"
#: How a listening connection opens the folder and waits (the raw sockets; Kittiwake's own
#: watch connection is whatever the engine does).
LISTEN_MODES = ("select-idle", "examine-idle", "select-notify", "examine-notify")


def raw_listener(host: str, port: int, login: str, password: str, ca: str, mode: str) -> None:
    """A raw IMAPS connection that opens INBOX as ``mode`` says and prints ``ready`` once
    waiting, then ``EXISTS <t>`` / ``FETCH <t>`` (``time.monotonic()``, which is one clock for
    every process on Linux) for each untagged response of those kinds. Run in a process of its
    own (``--raw-listener``), so it never waits for the bench's GIL."""
    import socket
    import ssl

    opener, waiter = mode.split("-")
    ctx = ssl.create_default_context(cafile=ca)
    sock = ctx.wrap_socket(socket.create_connection((host, port)), server_hostname=host)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = b""

    def line() -> bytes:
        nonlocal buf
        while b"\r\n" not in buf:
            data = sock.recv(65536)
            if not data:
                raise SystemExit("connection closed")
            buf += data
        out, buf = buf.split(b"\r\n", 1)
        return out

    def command(tag: str, text: str) -> None:
        sock.sendall(f"{tag} {text}\r\n".encode())
        while not line().startswith(tag.encode() + b" "):
            pass

    line()  # greeting
    command("a", f'LOGIN "{login}" "{password}"')
    command("b", "ENABLE CONDSTORE")
    command("c", f"{'EXAMINE' if opener == 'examine' else 'SELECT'} INBOX")
    if waiter == "notify":
        events = "(MessageNew MessageExpunge FlagChange)"
        command("d", f"NOTIFY SET (selected {events})")
    sock.sendall(b"e IDLE\r\n")
    while not line().startswith(b"+"):
        pass
    print("ready", flush=True)
    while True:
        got = line()
        t = time.monotonic()
        found = re.match(rb"\* \d+ (EXISTS|FETCH)", got)
        if found:
            print(f"{found.group(1).decode()} {t:.6f}", flush=True)


class Listener:
    """A ``raw_listener`` process and the timestamps it has printed."""

    def __init__(self, dovecot: Any, user: Any, mode: str) -> None:
        import threading

        self.mode = mode
        self.proc = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--raw-listener",
                dovecot.host,
                str(dovecot.ports.imaps),
                user.login,
                user.password,
                str(dovecot.ca_file),
                mode,
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "ready":
            raise SystemExit(f"raw listener ({mode}) did not start")
        self.seen: list[tuple[str, float]] = []
        self._cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for text in self.proc.stdout:
            kind, t = text.split()
            with self._cond:
                self.seen.append((kind, float(t)))
                self._cond.notify_all()

    def first(self, kind: str, after: float, timeout: float = 10.0) -> float | None:
        """When the first ``kind`` response came after ``after`` (monotonic), or None."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for k, t in self.seen:
                    if k == kind and t >= after:
                        return t
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


def live_message(user: Any, subject: str) -> bytes:
    return (
        f"From: Live <live@example.org>\r\nTo: {user.email}\r\nSubject: {subject}\r\n"
        f"Date: {format_datetime(datetime.now().astimezone())}\r\n"
        f"Message-ID: <{subject.replace(' ', '.')}@example.org>\r\n\r\nNew mail.\r\n"
    ).encode()


def wait_settled(pid: int, timeout: float = 120.0) -> None:
    """Until the client (and its children) use under 3% of a core over half a second: a
    background pass after start (Kittiwake's decode pass) is not what live changes compete
    with."""

    def cpu() -> float:
        total = 0
        pids = [pid]
        children = Path(f"/proc/{pid}/task/{pid}/children")
        if children.exists():
            pids += [int(p) for p in children.read_text().split()]
        for p in pids:
            try:
                fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])
        return total / os.sysconf("SC_CLK_TCK")

    began = time.monotonic()
    before = cpu()
    while time.monotonic() - began < timeout:
        time.sleep(0.5)
        now = cpu()
        if now - before < 0.015:
            return
        before = now


def row_of(screen: str, subject: str) -> str | None:
    for text in screen.splitlines():
        if subject in text:
            return text
    return None


def screen_wait(done: Callable[[str], bool], timeout: float = 10.0) -> float | None:
    """Poll the pane (every 2 ms, escapes included) until ``done``; the monotonic time."""
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        if done(capture(True)):
            return time.monotonic()
        time.sleep(0.002)
    return None


@dataclass
class LiveFigures:
    """Seconds from the other device's command, per round: the raw socket's response and
    the client's screen."""

    new_raw: list[float] = field(default_factory=list)
    new_screen: list[float] = field(default_factory=list)
    seen_raw: list[float] = field(default_factory=list)
    seen_screen: list[float] = field(default_factory=list)


def live_rounds(
    client: Client, dovecot: Any, user: Any, listener: Listener, rounds: int, tag: str
) -> LiveFigures:
    """With ``client`` showing INBOX: each round another device APPENDs a message with a new
    subject (timed to that subject on screen), then sets ``\\Seen`` on the previous round's
    message (timed to its row changing, colours included). Neither is under the cursor in
    Kittiwake or neomutt: the cursor stays on the newest message or on the marker."""
    from harness.clients import imap_device

    figures = LiveFigures()
    device = imap_device(dovecot, user)
    device.select("INBOX")
    previous: str | None = None
    try:
        for r in range(rounds + 1):
            subject = f"{LIVE_PREFIX} {tag} {r}"
            began = time.monotonic()
            device.append("INBOX", "", None, live_message(user, subject))
            shown = screen_wait(lambda screen, s=subject: s in screen)
            raw = listener.first("EXISTS", began)
            if r > 0 and shown is not None and raw is not None:
                figures.new_raw.append(raw - began)
                figures.new_screen.append(shown - began)
            if shown is None:
                log(f"{client.name}: {subject!r} not on screen within 10 s")
            time.sleep(0.3)
            if previous is not None:
                _, data = device.uid("SEARCH", "HEADER", "Subject", f'"{previous}"')
                uid = data[0].split()[-1].decode()
                before = row_of(capture(True), previous)
                began = time.monotonic()
                device.uid("STORE", uid, "+FLAGS.SILENT", "(\\Seen)")
                changed = screen_wait(
                    lambda screen, s=previous, b=before: row_of(screen, s) not in (b, None)
                )
                raw = listener.first("FETCH", began)
                if changed is not None and raw is not None:
                    figures.seen_raw.append(raw - began)
                    figures.seen_screen.append(changed - began)
                elif changed is None:
                    log(f"{client.name}: \\Seen on {previous!r} not on screen within 10 s")
                time.sleep(0.3)
            previous = subject
    finally:
        device.logout()
    return figures


def forget_live_mail(dovecot: Any, user: Any) -> None:
    """Expunge what earlier live rounds appended: every start finds the marker on top."""
    from harness.clients import imap_device

    device = imap_device(dovecot, user)
    device.select("INBOX")
    _, data = device.uid("SEARCH", "HEADER", "Subject", LIVE_PREFIX)
    if data[0]:
        device.uid("STORE", b",".join(data[0].split()).decode(), "+FLAGS.SILENT", "(\\Deleted)")
        device.expunge()
    device.logout()


def listen_modes(dovecot: Any, user: Any, rounds: int = 7) -> dict[str, tuple[float, float]]:
    """Which way of listening the server tells first: one raw connection per mode
    (``LISTEN_MODES``) at once, the device APPENDs and sets ``\\Seen``; medians in seconds
    from the device's command, (new mail, flag)."""
    from harness.clients import imap_device

    listeners = [Listener(dovecot, user, mode) for mode in LISTEN_MODES]
    new: dict[str, list[float]] = {m: [] for m in LISTEN_MODES}
    flag: dict[str, list[float]] = {m: [] for m in LISTEN_MODES}
    device = imap_device(dovecot, user)
    device.select("INBOX")
    try:
        for r in range(rounds):
            subject = f"{LIVE_PREFIX} modes {r}"
            began = time.monotonic()
            device.append("INBOX", "", None, live_message(user, subject))
            for listener in listeners:
                t = listener.first("EXISTS", began)
                if t is not None:
                    new[listener.mode].append(t - began)
            _, data = device.uid("SEARCH", "HEADER", "Subject", f'"{subject}"')
            began = time.monotonic()
            device.uid("STORE", data[0].split()[-1].decode(), "+FLAGS.SILENT", "(\\Seen)")
            for listener in listeners:
                t = listener.first("FETCH", began)
                if t is not None:
                    flag[listener.mode].append(t - began)
    finally:
        device.logout()
        for listener in listeners:
            listener.close()
    forget_live_mail(dovecot, user)
    return {
        m: (
            statistics.median(new[m]) if new[m] else float("nan"),
            statistics.median(flag[m]) if flag[m] else float("nan"),
        )
        for m in LISTEN_MODES
    }


def run_live(
    clients: list[Client], dovecot: Any, user: Any, runs: int, rounds: int
) -> dict[str, tuple[float, float]]:
    """Live rounds for every client (warm start, then quiet), interleaved, against one raw
    SELECT + IDLE socket; and first which way of listening the server tells first."""
    modes = listen_modes(dovecot, user)
    for r in range(runs):
        order = clients[r % len(clients) :] + clients[: r % len(clients)]
        for c in order:
            forget_live_mail(dovecot, user)
            listener = Listener(dovecot, user, "select-idle")
            try:
                _, pid = start(c, timeout=300)
                wait_settled(pid)
                time.sleep(1.0)
                got = live_rounds(c, dovecot, user, listener, rounds, f"{c.name} {r}")
            finally:
                stop()
                listener.close()
            mine = c.live = c.live or LiveFigures()
            mine.new_raw += got.new_raw
            mine.new_screen += got.new_screen
            mine.seen_raw += got.seen_raw
            mine.seen_screen += got.seen_screen
        log(f"live round {r + 1}/{runs} done")
    forget_live_mail(dovecot, user)
    return modes


def live_table(count: int, clients: list[Client], modes: dict[str, tuple[float, float]]) -> str:
    """Medians of the live rounds: from the device's command to the screen, the raw
    SELECT + IDLE socket's response in the same rounds, screen minus raw per round, and
    screen/raw; then the listening modes."""

    def med(values: list[float]) -> str:
        return f"{statistics.median(values) * 1000:.0f} ms" if values else "-"

    def after(screen: list[float], raw: list[float]) -> list[float]:
        return [s - r for s, r in zip(screen, raw, strict=True)]

    def ratio(screen: list[float], raw: list[float]) -> str:
        if not screen or not raw:
            return "-"
        return f"{statistics.median(screen) / statistics.median(raw):.2f}x"

    lines = [
        f"| {count:,} messages, live | " + " | ".join(c.name for c in clients) + " |",
        "|---" * (1 + len(clients)) + "|",
    ]
    for label, screen_of, raw_of in (
        ("new mail", lambda f: f.new_screen, lambda f: f.new_raw),
        ("\\Seen set elsewhere", lambda f: f.seen_screen, lambda f: f.seen_raw),
    ):
        figs = [c.live or LiveFigures() for c in clients]
        lines += [
            f"| {label}: on screen after the device's command | "
            + " | ".join(med(screen_of(f)) for f in figs)
            + " |",
            f"| {label}: raw SELECT+IDLE socket, same rounds | "
            + " | ".join(med(raw_of(f)) for f in figs)
            + " |",
            f"| {label}: screen minus raw socket (per round) | "
            + " | ".join(med(after(screen_of(f), raw_of(f))) for f in figs)
            + " |",
            f"| {label}: screen / raw socket | "
            + " | ".join(ratio(screen_of(f), raw_of(f)) for f in figs)
            + " |",
        ]
    lines += ["", "| raw listener (no client running) | new mail | \\Seen |", "|---|---|---|"]
    for mode, (new, flag) in modes.items():
        lines.append(f"| {mode} | {new * 1000:.0f} ms | {flag * 1000:.0f} ms |")
    return "\n".join(lines)


def run_size(
    count: int,
    runs: int,
    key_reps: int,
    security: str = "tls",
    live_runs: int = 0,
    live_rounds_n: int = 5,
    against: Path | None = None,
    peers: bool = True,
) -> tuple[list[Client], dict[str, tuple[float, float]]]:
    from bench_imap_sync import fill_maildir  # type: ignore[import-not-found]
    from harness import Dovecot, ServerRoot, make_test_ca
    from harness.clients import imap_device

    root = ServerRoot()
    top = Path(tempfile.mkdtemp(prefix="kw-peers-"))
    try:
        dovecot = Dovecot(
            root.instance_dir("dovecot"),
            make_test_ca(root.instance_dir("ca")),
            extra_conf="disable_plaintext_auth = no\n",  # the plain port logs in (--security)
        )
        dovecot.start()
        user = dovecot.add_user("bench", "bench-password")
        t = time.perf_counter()
        fill_maildir(dovecot, user, count, 1)
        device = imap_device(dovecot, user)
        newest = (
            f"From: Marker <marker@example.org>\r\nTo: {user.email}\r\n"
            f"Subject: {MARKER}\r\nDate: {format_datetime(datetime.now().astimezone())}\r\n"
            "Message-ID: <marker@example.org>\r\n\r\nThe newest message.\r\n"
        ).encode()
        device.select("INBOX")  # UIDs for the filled files first: the marker gets the highest
        device.append("INBOX", "", None, newest)
        device.select("INBOX")  # Dovecot builds its index and cache before anything is timed
        device.uid("FETCH", "1:*", "(UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODYSTRUCTURE)")
        device.logout()
        log(f"{count:,} messages + marker in {time.perf_counter() - t:.0f} s")
        clients = [kittiwake_client(top, dovecot, user, security)]
        if peers:
            clients += [
                aerc_client(top, dovecot, user, security),
                neomutt_client(top, dovecot, user, security),
            ]
        if against is not None:  # another checkout's Kittiwake (its .venv), A/B in one run
            clients.insert(
                1, kittiwake_client(top, dovecot, user, security, against, "Kittiwake other")
            )
        # Warm-up: every client once (page cache, Dovecot's cache), and the caches filled.
        for c in clients:
            c.clear_cache()
            c.fill_cache()
            start(c, timeout=300)
            time.sleep(1)
            stop()
        for mode in ("warm", "cold"):
            for r in range(runs):
                order = clients[r % len(clients) :] + clients[: r % len(clients)]
                for c in order:
                    if mode == "cold":
                        c.clear_cache()
                    took, pid = start(c, timeout=300)
                    (c.warm if mode == "warm" else c.cold).append(took)
                    if mode == "warm" and r == runs - 1:
                        time.sleep(1.0)
                        for _ in range(key_reps):
                            for name in KEYS:
                                c.latency.setdefault(name, []).append(key_latency(c.keys[name]))
                    if mode == "warm":
                        c.rss_mb.append(peak_rss_mb(pid))
                    stop()
                    if mode == "cold":
                        c.fill_cache()  # leave a full cache for the next warm start
                log(f"{count:,} {mode} round {r + 1}/{runs} done")
        modes = run_live(clients, dovecot, user, live_runs, live_rounds_n) if live_runs else {}
        if live_runs:  # now: removing 100,000 message files afterwards takes minutes
            print(live_table(count, clients, modes), flush=True)
            print(flush=True)
        dovecot.close()
        return clients, modes
    finally:
        stop()
        shutil.rmtree(top, ignore_errors=True)
        root.cleanup()


# -- scale: a 1M-message INBOX and a 200-folder account (issue 19 "Scale") ------------------

MARKER_RAW = (
    "From: Marker <marker@example.org>\nTo: bench@example.test\n"
    f"Subject: {MARKER}\nDate: @DATE@\nMessage-ID: <marker@example.org>\n\n"
    "The newest message.\n"
).encode()


def scale_recipe(messages: int, folders: int) -> tuple[str, dict[str, int]]:
    """(directory name, {folder: count}): one INBOX of ``messages``, or with ``folders`` > 1 an
    account of that many folders, INBOX 2,000 and the others 500-5,000 (log-uniform)."""
    if folders <= 1:
        return f"inbox-{messages}", {"INBOX": messages}
    import math
    import random

    rng = random.Random(folders)
    groups = ("Archive", "Lists", "Projects", "Clients", "Receipts")
    recipe = {"INBOX": 2000}
    for i in range(1, folders):
        group = groups[i % len(groups)]
        recipe[f"{group}/{group.lower()}-{i:03d}"] = int(
            math.exp(rng.uniform(math.log(500), math.log(5000)))
        )
    return f"folders-{folders}", recipe


def build_scale(messages: int, folders: int) -> Path:
    from bench_imap_sync import persistent_maildir  # type: ignore[import-not-found]

    name, recipe = scale_recipe(messages, folders)
    return persistent_maildir(name, recipe, 1, MARKER_RAW)


def cpu_of(pid: int) -> float:
    """User + system CPU seconds of ``pid`` (and its threads) so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_quiet(pid: int, limit: float, still: float = 3.0) -> tuple[float, float]:
    """Wait until ``pid`` has used under 2% of a core for ``still`` seconds (sync and
    background passes done); (seconds waited, CPU seconds of the process in all)."""
    began = time.perf_counter()
    last, last_t = cpu_of(pid), began
    while time.perf_counter() - began < limit:
        time.sleep(still)
        cpu, t = cpu_of(pid), time.perf_counter()
        if cpu - last < 0.02 * (t - last_t):
            return t - began - still, cpu
        last, last_t = cpu, t
    return float("inf"), cpu_of(pid)


@dataclass
class ScaleRow:
    label: str
    cells: dict[str, str]

    def __post_init__(self) -> None:
        log(f"  {self.label}: {self.cells}")  # as it comes: a run of an hour may die later


def run_scale(messages: int, folders: int, runs: int, peer_timeout: float) -> list[ScaleRow]:
    """The "Scale" figures: a reusable 1M-message INBOX or a ``folders``-folder account."""
    import bench_imap_sync as bis  # type: ignore[import-not-found]
    from harness import Dovecot, ServerRoot, imap_device, make_test_ca

    from kittiwake.core.imap.account import Tuning
    from kittiwake.core.imap.client import SUMMARY_ITEMS

    name, recipe = scale_recipe(messages, folders)
    maildir = build_scale(messages, folders)
    inbox = recipe["INBOX"] + 1  # the marker
    root = ServerRoot()
    top = Path(tempfile.mkdtemp(prefix="kw-scale-"))
    rows: list[ScaleRow] = []
    kw_cell: dict[str, str] = {}
    try:
        # Dovecot's default 256 MB address space is too small for a first look at 1M files.
        dovecot = Dovecot(
            root.instance_dir("dovecot"),
            make_test_ca(root.instance_dir("ca")),
            extra_conf="service imap {\n  vsz_limit = 4G\n}\n",
        )
        dovecot.start()
        user = dovecot.add_user("bench", "bench-password")
        bis.adopt_maildir(dovecot, user, maildir)
        t = time.perf_counter()
        device = imap_device(dovecot, user)
        device.socket().settimeout(3600)
        for folder in recipe:  # Dovecot indexes (once: its index stays in the maildir)
            device.select(f'"{folder}"')
            device.uid("FETCH", "1:*", f"({SUMMARY_ITEMS})")
        device.logout()
        log(f"{name}: Dovecot indexed in {time.perf_counter() - t:.0f} s")
        tuning = Tuning()
        kw = kittiwake_client(top, dovecot, user)
        cache_file = kw.home / "cache" / "kittiwake" / "bench.sqlite3"
        params = {
            "host": dovecot.host,
            "port": dovecot.ports.imaps,
            "ca_file": str(dovecot.ca_file),
            "login": user.login,
            "password": user.password,
            "messages": inbox,
            "items": bis.ENVELOPE_ITEMS,
            "raw": False,
            "folders": list(recipe),
            "first_window": tuning.first_window,
            "batch": tuning.batch,
        }
        plain: list[dict[str, Any]] = []
        cold: list[dict[str, Any]] = []
        for r in range(runs):  # interleaved: plain fetch, engine cold sync, ...
            plain.append(bis.run_child("plainall", params))
            engine_cache = top / f"engine-{r}.sqlite3"
            cold.append(bis.run_child("cold", {**params, "cache": str(engine_cache)}))
            engine_cache.unlink()
            log(f"{name}: plain {plain[-1]['total']:.1f} s, engine cold {cold[-1]['total']:.1f} s")

        def med(key: str, items: list[dict[str, Any]]) -> float:
            return statistics.median(float(i[key]) for i in items)

        ratio = med("total", cold) / med("total", plain)
        rows += [
            ScaleRow(
                "plain UID FETCH of every folder (imaplib), wall / CPU",
                {"Kittiwake": f"{med('total', plain):.1f} s / {med('cpu', plain):.1f} s"},
            ),
            ScaleRow(
                "full summary index, engine (connect + sync_all), wall / CPU",
                {
                    "Kittiwake": f"{med('total', cold):.1f} s / {med('cpu', cold):.1f} s "
                    f"= {ratio:.2f}x the plain fetch"
                },
            ),
            ScaleRow(
                "engine cold sync: first screenful / peak RSS",
                {"Kittiwake": f"{med('first', cold):.2f} s / {max(c['rss'] for c in cold):.0f} MB"},
            ),
        ]
        # The app, cold: list drawn, then until quiet (sync + decode pass), memory.
        kw.clear_cache()
        took, pid = start(kw, timeout=900)
        quiet, cpu = wait_quiet(pid, limit=3600)
        rss = peak_rss_mb(pid)
        stop()
        kw_cell["cold"] = f"{took:.2f} s"
        rows.append(
            ScaleRow(
                "app cold: list drawn / quiet after / CPU / peak RSS",
                {"Kittiwake": f"{took:.2f} s / {took + quiet:.0f} s / {cpu:.0f} s / {rss:.0f} MB"},
            )
        )
        log(f"{name}: app cold {took:.2f} s, quiet after {quiet:.0f} s, CPU {cpu:.0f} s")
        warm: list[float] = []
        warm_rss: list[float] = []
        warm_cpu: list[float] = []
        latency: dict[str, list[float]] = {}
        for r in range(runs + 1):
            took, pid = start(kw, timeout=300)
            warm.append(took)
            _quiet, cpu = wait_quiet(pid, limit=600)
            warm_cpu.append(cpu)
            if r == runs:
                for _ in range(3):
                    for key in KEYS:
                        latency.setdefault(key, []).append(key_latency(kw.keys[key]))
            warm_rss.append(peak_rss_mb(pid))
            stop()
        rows.append(
            ScaleRow(
                "app warm: list drawn / CPU to quiet / peak RSS (after keys)",
                {
                    "Kittiwake": f"{statistics.median(warm):.2f} s / "
                    f"{statistics.median(warm_cpu):.1f} s / {max(warm_rss):.0f} MB"
                },
            )
        )
        rows.append(
            ScaleRow(
                "keys j / PgDn / G / g (median of 3)",
                {
                    "Kittiwake": " / ".join(
                        f"{statistics.median(latency[k]) * 1000:.0f}" for k in KEYS
                    )
                    + " ms"
                },
            )
        )
        found = bis.run_child(
            "search",
            {
                "cache": str(cache_file),
                "folder": "INBOX",
                "queries": ["from:walter", "itinerary", "cupidatat"],
            },
        )
        rows.append(
            ScaleRow(
                "rows the decode pass had left raw when searched",
                {"Kittiwake": f"{found['undecoded']:,}"},
            )
        )
        for q, v in found["queries"].items():
            rows.append(
                ScaleRow(
                    f"search {q} in INBOX (engine, off the loop)",
                    {
                        "Kittiwake": f"{v['seconds']:.2f} s / CPU {v['cpu']:.2f} s, "
                        f"{v['hits']:,} hits"
                    },
                )
            )
        for attempt in ("first", "again"):
            v = found[f"threads ({attempt})"]
            rows.append(
                ScaleRow(
                    f"conversations of INBOX ({attempt})",
                    {
                        "Kittiwake": f"{v['seconds']:.2f} s / CPU {v['cpu']:.2f} s, "
                        f"{v['threads']:,} rows"
                    },
                )
            )
        # The peers start on the same INBOX: a cap, since neomutt reads every header.
        for peer in (aerc_client(top, dovecot, user), neomutt_client(top, dovecot, user)):
            cells = []
            for mode in ("cold", "warm"):
                if mode == "cold":
                    peer.clear_cache()
                try:
                    took, pid = start(peer, timeout=peer_timeout)
                    time.sleep(1)
                    cells.append(f"{mode} {took:.2f} s, {peak_rss_mb(pid):.0f} MB")
                except SystemExit:
                    cells.append(f"{mode} > {peer_timeout:.0f} s")
                    stop()
                    break
                stop()
            rows.append(
                ScaleRow(
                    f"{peer.name}: start to list drawn, peak RSS", {peer.name: "; ".join(cells)}
                )
            )
        dovecot.close()
        return rows
    finally:
        stop()
        shutil.rmtree(top, ignore_errors=True)
        root.cleanup()


def scale_table(messages: int, folders: int, rows: list[ScaleRow]) -> str:
    what = f"{messages:,}-message INBOX" if folders <= 1 else f"{folders}-folder account"
    lines = [f"| {what} | figure |", "|---|---|"]
    for row in rows:
        lines += [f"| {row.label} | {'; '.join(f'{k}: {v}' for k, v in row.cells.items())} |"]
    return "\n".join(lines)


def fmt_s(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} s" if values else "-"


def table(count: int, clients: list[Client], security: str = "tls") -> str:
    kw, peers = clients[0], clients[1:]

    def row(label: str, get: Callable[[Client], float | None], unit: str, scale: float) -> str:
        cells, ratios = [], []
        mine = get(kw)
        for c in clients:
            v = get(c)
            cells.append(
                "-"
                if v is None
                else f"{v * scale:.{0 if unit == 'MB' else 2 if unit == 's' else 1}f} {unit}"
            )
        for p in peers:
            v = get(p)
            ratios.append("-" if v is None or mine is None or v == 0 else f"{mine / v:.2f}x")
        return f"| {label} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |"

    def med(values: list[float]) -> float | None:
        return statistics.median(values) if values else None

    lines = [
        f"| {count:,} messages, {'TLS' if security == 'tls' else 'plaintext'} | "
        + " | ".join(c.name for c in clients)
        + " | "
        + " | ".join(f"Kittiwake/{p.name}" for p in peers)
        + " |",
        "|---" * (1 + len(clients) + len(peers)) + "|",
        row("start to list drawn, warm", lambda c: med(c.warm), "s", 1),
        row("start to list drawn, cold", lambda c: med(c.cold), "s", 1),
    ]
    for name in KEYS:
        label = {
            "j": "key: one down (j)",
            "PageDown": "key: page down",
            "end": "key: to the last (G)",
            "home": "key: to the first (g)",
        }[name]
        lines.append(row(label, lambda c, n=name: med(c.latency.get(n, [])), "ms", 1000))
    lines.append(
        row(
            "peak memory (RSS) after the keys",
            lambda c: max(c.rss_mb) if c.rss_mb else None,
            "MB",
            1,
        )
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--messages",
        type=int,
        action="append",
        help="folder size (repeat for several; default 10000 and 100000)",
    )
    parser.add_argument("--runs", type=int, default=5, help="timed starts per client and mode")
    parser.add_argument("--key-reps", type=int, default=10, help="presses of each key")
    parser.add_argument(
        "--security",
        choices=("tls", "plain", "both"),
        default="tls",
        help="IMAPS, plain IMAP on Dovecot's plain port (no STARTTLS), or a table of each",
    )
    parser.add_argument(
        "--scale",
        action="store_true",
        help="the Scale figures on one INBOX of --messages (built once under /work/bench-data)",
    )
    parser.add_argument(
        "--folders", type=int, default=0, help="with --scale: an account of this many folders"
    )
    parser.add_argument(
        "--peer-timeout", type=float, default=300, help="with --scale: cap on a peer's start"
    )
    parser.add_argument(
        "--live-runs",
        type=int,
        default=0,
        help="warm starts per client for the live rows (new mail, \\Seen); 0: none",
    )
    parser.add_argument("--live-rounds", type=int, default=5, help="changes per live run")
    parser.add_argument(
        "--against",
        type=Path,
        help="another checkout (with its .venv): its Kittiwake runs too, as 'Kittiwake other'",
    )
    parser.add_argument(
        "--no-peers",
        action="store_true",
        help="Kittiwake alone (and --against): no aerc or neomutt, for A/B runs",
    )
    parser.add_argument("--raw-listener", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.raw_listener:
        host, port, login, password, ca, mode = args.raw_listener
        raw_listener(host, int(port), login, password, ca, mode)
        return
    ensure_peers()
    if args.scale or args.folders:
        global SESSION
        SESSION = "kwscale"  # a tmux server apart from a 10k/100k comparison running beside
        for count in args.messages or [1_000_000]:
            rows = run_scale(count, args.folders, args.runs, args.peer_timeout)
            print(scale_table(count, args.folders, rows), flush=True)
        return
    securities = ("plain", "tls") if args.security == "both" else (args.security,)
    for count in args.messages or [10_000, 100_000]:
        for security in securities:
            clients, _modes = run_size(
                count,
                args.runs,
                args.key_reps,
                security,
                args.live_runs,
                args.live_rounds,
                args.against,
                not args.no_peers,
            )
            if args.runs:
                print(table(count, clients, security), flush=True)
            print(flush=True)


if __name__ == "__main__":
    main()
