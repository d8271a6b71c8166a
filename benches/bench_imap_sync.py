#!/usr/bin/env python3
"""IMAP sync benchmark: Kittiwake's engine against a private Dovecot holding N messages.

Run by hand (as root, like the server tests; Dovecot must be installed):

    .venv/bin/python benches/bench_imap_sync.py                   # 100,000 messages
    .venv/bin/python benches/bench_imap_sync.py --messages 10000  # quick run

What it does (see benches/README.md for the details and how to read the table):

1. Starts a private Dovecot through the test harness (``tests/harness``) and fills one
   user's INBOX with N generated, realistic messages written straight into the Maildir
   (varied senders with RFC 2047 names, threads with In-Reply-To/References, some
   multipart with attachments, 1-20 KB each), UIDs in date order.
2. Lets Dovecot index everything (one full FETCH of Kittiwake's item list), then measures,
   each in a fresh child process so that peak RSS is per measurement:

   * baseline: stdlib imaplib over TLS, ``UID FETCH 1:* (UID FLAGS INTERNALDATE
     RFC822.SIZE ENVELOPE)``, and the same with Kittiwake's own item list; run twice,
     the warm run is reported. Also the raw wire ceiling (bytes read, nothing parsed).
   * Kittiwake cold: empty cache, ``connect_once()`` + ``sync_all()``: login, first
     ``MessagesAdded`` (the newest screenful), full INBOX index, total, traffic, RSS.
   * a profiled cold run (pyinstrument if installed, else cProfile): top hotspots and
     self time per layer (TLS, framing, parsing, decoding, SQLite, events, asyncio).
   * Kittiwake warm restart on the same cache with nothing changed.
   * live latency with the engine running: another device STOREs a flag / APPENDs a
     message; compared are (a) when a raw IDLE connection (its own process) sees the
     server's notification, (c) when the engine's watch connection gets it, and (b) when
     the engine publishes ``FlagsChanged`` / ``MessagesAdded``.
3. Prints a table of figures against the goals of the issue.

The script is not a test and never runs in CI; nothing here is imported by the suite.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import functools
import grp
import imaplib
import io
import json
import math
import os
import platform
import pwd
import queue
import random
import re
import resource
import shutil
import ssl
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))  # the harness (parent process only uses it)

ENVELOPE_ITEMS = "UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE"

GOAL_FIRST_SCREEN = 0.5  # s after login start
GOAL_FULL_RATIO = 1.5  # x the plain fetch
GOAL_WARM_TIME = 0.3  # s
GOAL_WARM_BYTES = 2048  # IMAP bytes beyond login
GOAL_LIVE = 0.050  # s after the server's notification


def now() -> float:
    return time.monotonic()


def peak_rss_mb() -> float:
    """This process's peak RSS: VmHWM, not ``ru_maxrss``, which after fork and exec carries
    the parent's RSS at the fork (a parent that had held a 1M-message FETCH showed 892 MB)."""
    try:
        status = Path("/proc/self/status").read_text()
        return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024.0  # type: ignore[union-attr]
    except (OSError, AttributeError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# =========================================================================================
# Realistic message generation
# =========================================================================================

_ASCII_NAMES = [
    "Alice Johnson", "Bob Martin", "Carol White", "Dave O'Brien", "Eve Torres", "Frank Li",
    "Grace Park", "Heidi Schmidt", "Ivan Petrov", "Judy Nguyen", "Mallory Quinn",
    "Niaj Patel", "Olivia Brown", "Peggy Sue Miller", "Rupert Giles", "Sybil Trelawney",
    "Trent Walker", "Victor Hugo", "Walter Bishop", "Smith, John", "Jane Doe (Support)",
    "GitHub", "Kittiwake CI", "Amazon Web Services", "The Newsletter Team",
]  # fmt: skip
_NON_ASCII_NAMES = [
    "Jörg Müller", "Zoë Faßbender", "François Lefèvre", "Łukasz Wróbel", "Søren Ødegård",
    "José Martínez", "Ángel Núñez", "Björk Guðmundsdóttir", "Renée Brückner", "山田太郎",
    "Дмитрий Иванов", "Νίκος Παπαδόπουλος", "김민준", "محمد علي", "Đặng Thị Hương",
    "Chloé Dubois", "Çağrı Yılmaz",
]  # fmt: skip
_DOMAINS = [
    "example.org", "example.com", "mail.example.net", "lists.example.org", "corp.example",
    "university.example.edu", "shop.example.co.uk", "notifications.example.io",
]  # fmt: skip
_TOPICS = [
    "Quarterly report", "Meeting on Thursday", "Invoice", "Your order", "Build failed",
    "Build fixed", "Weekly digest", "Lunch plans", "Travel itinerary", "Security alert",
    "Pull request review", "Design doc feedback", "Release notes", "Budget 2026",
    "Team offsite", "Password reset", "Welcome aboard", "Re-org announcement",
    "Conference talk proposal", "Bug in IMAP IDLE handling", "Holiday schedule",
    "Server maintenance window", "Contract renewal", "Photos from the weekend",
]  # fmt: skip
_SUFFIXES = [
    "", "", "", " (draft 3)", " - action required", " for Q3", " #4521", " update",
    " [urgent]", ": please read", " and next steps", " v2", ", part 2",
]  # fmt: skip
_NON_ASCII_SUBJECTS = [
    "Grüße aus Köln", "Café meeting tomorrow ☕", "日本語の件名テスト", "Отчёт за квартал",
    "Réunion d'équipe à 14h", "Ελληνικά θέματα", "Zażółć gęślą jaźń", "회의 일정 안내",
    "Fête de fin d'année 🎉", "Año nuevo, vida nueva", "Überweisung bestätigt",
]  # fmt: skip
_LIST_TAGS = ["[kittiwake-dev] ", "[python-ideas] ", "[ops] ", "[announce] "]
_WORDS = (  # noqa: SIM905 - prose is easier to edit as one string
    "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt "
    "ut labore et dolore magna aliqua enim ad minim veniam quis nostrud exercitation "
    "ullamco laboris nisi aliquip ex ea commodo consequat duis aute irure in reprehenderit "
    "voluptate velit esse cillum fugiat nulla pariatur excepteur sint occaecat cupidatat non "
    "proident sunt culpa qui officia deserunt mollit anim id est laborum mail server client "
    "sync cache index thread reply forward attachment invoice meeting schedule release"
).split()
_ATTACHMENTS = [
    ("application/pdf", "report-{n}.pdf"),
    ("application/pdf", "invoice_{n}.pdf"),
    ("image/jpeg", "IMG_{n}.jpg"),
    ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", "notes.docx"),
    ("application/zip", "logs-{n}.zip"),
    ("application/pdf", "Résumé {n}.pdf"),  # RFC 2231 encoded
    ("text/calendar", "invite.ics"),
]


def _q_word(text: str, charset: str) -> str:
    out = []
    for b in text.encode(charset):
        c = chr(b)
        if c == " ":
            out.append("_")
        elif b < 128 and (c.isalnum() or c in "!*+-/"):
            out.append(c)
        else:
            out.append(f"={b:02X}")
    return f"=?{charset}?Q?{''.join(out)}?="


def _b_word(text: str, charset: str = "UTF-8") -> str:
    return f"=?{charset}?B?{base64.b64encode(text.encode(charset)).decode('ascii')}?="


def _encode_words(text: str, rng: random.Random) -> str:
    """RFC 2047: a mix of B and Q, ISO-8859-1 where it fits; long text split and folded."""
    latin1 = True
    try:
        text.encode("iso-8859-1")
    except UnicodeEncodeError:
        latin1 = False
    style = rng.randrange(3)
    chunks = [text[i : i + 18] for i in range(0, len(text), 18)]
    words = []
    for chunk in chunks:
        if style == 0 and latin1:
            words.append(_q_word(chunk, "ISO-8859-1"))
        elif style == 1:
            words.append(_q_word(chunk, "UTF-8"))
        else:
            words.append(_b_word(chunk))
    return "\n ".join(words)


def _fold(name: str, value: str) -> str:
    """A header line folded at blanks near 78 columns (encoded words fold themselves)."""
    line = f"{name}: {value}"
    if len(line) <= 78 or "\n" in value:
        return line
    out, cur = [], ""
    for word in line.split(" "):
        if cur and len(cur) + 1 + len(word) > 76:
            out.append(cur)
            cur = word
        else:
            cur = f"{cur} {word}" if cur else word
    out.append(cur)
    return "\n ".join(out)


class MailFactory:
    """Deterministic generator of realistic messages (LF line ends, as Maildir stores them)."""

    def __init__(self, seed: int, sizes: tuple[int, int] = (1000, 20000)) -> None:
        self.rng = rng = random.Random(seed)
        self.sizes = sizes  # (smallest, largest) target size in bytes, log-uniform
        self.senders: list[tuple[str, str]] = []  # (From header value, addr)
        for i in range(400):
            domain = rng.choice(_DOMAINS)
            if i % 9 == 0:
                addr = f"noreply{i}@{domain}"
                self.senders.append((addr, addr))
                continue
            if rng.random() < 0.35:
                name = rng.choice(_NON_ASCII_NAMES)
                local = f"user{i}"
                shown = _encode_words(name, rng).replace("\n ", " ")
            else:
                name = rng.choice(_ASCII_NAMES)
                local = re.sub(r"[^a-z]", ".", name.lower()).strip(".") or f"user{i}"
                local = re.sub(r"\.+", ".", local)
                shown = f'"{name}"' if any(c in name for c in ',()"') else name
            addr = f"{local}@{domain}"
            self.senders.append((f"{shown} <{addr}>", addr))
        words = _WORDS
        lines = []
        for _ in range(6000):
            n = rng.randrange(6, 13)
            line = " ".join(rng.choice(words) for _ in range(n))
            lines.append(line[:1].upper() + line[1:] + ".")
        self.text = "\n".join(lines) + "\n"  # ~400 KB of prose
        blob = rng.randbytes(120_000)
        self.b64 = base64.encodebytes(blob).decode("ascii")  # 77-byte lines
        self.recent: list[tuple[str, tuple[str, ...], str]] = []  # (msgid, refs, subject)
        self.tzs = [timezone(timedelta(minutes=m)) for m in (0, 60, 120, -300, -420, 330, 540)]

    def _prose(self, size: int) -> str:
        size = max(40, size)
        start = self.rng.randrange(0, len(self.text) - size - 1) if size < len(self.text) else 0
        start = self.text.find("\n", start) + 1
        chunk = self.text[start : start + size]
        return chunk[: chunk.rfind("\n") + 1] or chunk + "\n"

    def _subject(self, n: int) -> tuple[str, str]:
        """(plain subject for threading, header value)."""
        rng = self.rng
        r = rng.random()
        if r < 0.09:
            plain = rng.choice(_NON_ASCII_SUBJECTS)
            return plain, _encode_words(plain, rng)
        plain = rng.choice(_TOPICS) + rng.choice(_SUFFIXES)
        if r < 0.2:
            plain = rng.choice(_LIST_TAGS) + plain
        if r > 0.96:  # a long one that needs folding
            plain += " - " + " ".join(rng.choice(_WORDS) for _ in range(14))
        if "#" in plain:
            plain = plain.replace("#", f"#{n % 9000 + 1000}")
        return plain, plain

    def message(self, n: int, ts: int) -> tuple[bytes, str]:
        """Message number ``n`` dated ``ts``; returns (bytes, Maildir flag letters)."""
        rng = self.rng
        from_value, from_addr = rng.choice(self.senders)
        tz = rng.choice(self.tzs)
        date = format_datetime(datetime.fromtimestamp(ts, tz))
        msgid = f"<{n}.{rng.getrandbits(48):012x}@{from_addr.split('@', 1)[1]}>"
        headers = [
            "Return-Path: <" + from_addr + ">",
            "Delivered-To: me@example.test",
            f"Received: from mx{rng.randrange(1, 9)}.example.net (mx.example.net "
            f"[192.0.2.{rng.randrange(1, 255)}])\n\tby mx.example.test with ESMTPS id "
            f"{rng.getrandbits(40):x}\n\tfor <me@example.test>; {date}",
        ]
        subject_hdr: str
        refs: tuple[str, ...] = ()
        in_reply_to = None
        if self.recent and rng.random() < 0.3:
            parent_id, parent_refs, parent_subject = rng.choice(self.recent[-300:])
            refs = (*parent_refs[-9:], parent_id)
            in_reply_to = parent_id
            plain = parent_subject if parent_subject.startswith("Re: ") else "Re: " + parent_subject
            subject_hdr = plain
            if any(ord(c) > 127 for c in plain):
                subject_hdr = _encode_words(plain, rng)
        else:
            plain, subject_hdr = self._subject(n)
            if rng.random() < 0.04:
                plain = "Fwd: " + plain
                subject_hdr = "Fwd: " + subject_hdr
        self.recent.append((msgid, refs, plain))
        if len(self.recent) > 1000:
            del self.recent[:500]
        headers += [
            _fold("From", from_value),
            "To: Me Myself <me@example.test>",
        ]
        if rng.random() < 0.25:
            cc = ", ".join(rng.choice(self.senders)[0] for _ in range(rng.randrange(1, 5)))
            headers.append(_fold("Cc", cc))
        headers += [
            _fold("Subject", subject_hdr),
            f"Date: {date}",
            f"Message-ID: {msgid}",
        ]
        if in_reply_to:
            headers.append(f"In-Reply-To: {in_reply_to}")
            headers.append(_fold("References", " ".join(refs)))
        if subject_hdr.startswith("["):
            headers.append(f"List-Id: <{subject_hdr[1:].split(']')[0]}.lists.example.org>")
        if rng.random() < 0.5:
            headers.append(
                "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.org; s=s1;\n"
                "\th=from:to:subject:date:message-id; "
                f"bh={base64.b64encode(rng.randbytes(32)).decode()};\n"
                f"\tb={self.b64[:76]}\n\t {self.b64[77:153]}"
            )
        headers += ["MIME-Version: 1.0", f"X-Mailer: Bench/{n % 7}.0"]
        # Size: log-uniform over 1-20 KB by default, headers included.
        low, high = self.sizes
        target = int(math.exp(rng.uniform(math.log(low), math.log(high))))
        kind = rng.random()
        head_len = sum(len(h) + 1 for h in headers)
        budget = target - head_len - 60
        if kind < 0.04:  # multipart/mixed with an attachment
            boundary = f"=_mixed_{n}_{rng.getrandbits(32):08x}"
            ctype, fname = rng.choice(_ATTACHMENTS)
            fname = fname.format(n=n % 1000)
            if fname.isascii():
                disp = f'attachment; filename="{fname}"'
            else:
                enc = "".join(
                    c
                    if (c.isascii() and c.isalnum()) or c in ".-_"
                    else "".join(f"%{b:02X}" for b in c.encode())
                    for c in fname
                )
                disp = f"attachment; filename*=UTF-8''{enc}"
            shown_name = fname if fname.isascii() else "file"
            text = self._prose(min(1500, budget // 4))
            lines = max(1, (budget - len(text) - 300) // 77)
            start = rng.randrange(0, len(self.b64) // 77 - lines - 1) * 77 if lines < 1500 else 0
            data = self.b64[start : start + lines * 77]
            headers.append(f'Content-Type: multipart/mixed; boundary="{boundary}"')
            body = (
                "This is a multi-part message in MIME format.\n\n"
                f"--{boundary}\nContent-Type: text/plain; charset=utf-8\n"
                f"Content-Transfer-Encoding: 7bit\n\n{text}\n"
                f'--{boundary}\nContent-Type: {ctype}; name="{shown_name}"\n'
                f"Content-Disposition: {disp}\nContent-Transfer-Encoding: base64\n\n"
                f"{data}\n--{boundary}--\n"
            )
        elif kind < 0.17:  # multipart/alternative: text + html
            boundary = f"=_alt_{n}_{rng.getrandbits(32):08x}"
            text = self._prose(budget * 2 // 5)
            html = "<html><body><p>" + self._prose(budget * 2 // 5).replace("\n", "</p>\n<p>")
            headers.append(f'Content-Type: multipart/alternative; boundary="{boundary}"')
            body = (
                f"--{boundary}\nContent-Type: text/plain; charset=utf-8\n"
                f"Content-Transfer-Encoding: 7bit\n\n{text}\n"
                f"--{boundary}\nContent-Type: text/html; charset=utf-8\n"
                f"Content-Transfer-Encoding: 7bit\n\n{html}</p></body></html>\n"
                f"--{boundary}--\n"
            )
        else:
            headers.append("Content-Type: text/plain; charset=utf-8; format=flowed")
            headers.append("Content-Transfer-Encoding: 7bit")
            body = self._prose(budget)
        raw = ("\n".join(headers) + "\n\n" + body).encode("utf-8")
        # Flags: most old mail read, the newest partly unread, some flagged/answered.
        flags = ""
        if rng.random() < 0.03:
            flags += "F"
        if in_reply_to is None and rng.random() < 0.1:
            flags += "R"
        if rng.random() < 0.85:
            flags += "S"
        return raw, flags


# =========================================================================================
# Server set-up and fill (parent process)
# =========================================================================================


def fill_maildir(dovecot: Any, user: Any, count: int, seed: int) -> dict[str, Any]:
    """Write ``count`` messages straight into the user's Maildir ``cur/`` (the fastest fill).

    File names carry S= (size) and W= (CRLF size) so Dovecot needs no stat/read for
    RFC822.SIZE, and ascending timestamps, so Dovecot assigns UIDs in date order (it sorts
    new files by the time in their name). The mtime is the INTERNALDATE.
    """
    from harness import imap_device

    device = imap_device(dovecot, user)  # first login creates the Maildir
    device.select("INBOX")
    device.logout()
    cur = dovecot.maildir(user) / "cur"
    if not cur.is_dir():
        raise RuntimeError(f"{cur} was not created by the first login")
    mail_uid = pwd.getpwnam("mail").pw_uid
    mail_gid = grp.getgrnam("mail").gr_gid
    factory = MailFactory(seed)
    end = int(time.time()) - 3600
    span = 3 * 365 * 86400
    start = end - span
    step = span / count
    prev = start - 1
    total = 0
    started = now()
    pid = os.getpid()
    for i in range(count):
        ts = max(prev + 1, start + int(i * step + factory.rng.random() * step * 0.5))
        prev = ts
        raw, flags = factory.message(i + 1, ts)
        vsize = len(raw) + raw.count(b"\n")
        name = f"{ts}.M{i % 1000000}P{pid}Q{i}.kittiwake-bench,S={len(raw)},W={vsize}:2,{flags}"
        fd = os.open(cur / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, raw)
            os.fchown(fd, mail_uid, mail_gid)
            os.utime(fd, (ts, ts))
        finally:
            os.close(fd)
        total += len(raw)
        if (i + 1) % 20000 == 0:
            log(f"  wrote {i + 1:,} messages ({total / 1e6:.0f} MB)")
    return {"bytes": total, "seconds": now() - started, "last_ts": prev}


def verify_fill(dovecot: Any, user: Any, count: int) -> dict[str, Any]:
    """Dovecot sees every message, UIDs 1..N, and UID order is date order."""
    from harness import imap_device

    started = now()
    device = imap_device(dovecot, user)
    device.socket().settimeout(1800)
    _typ, data = device.select("INBOX", readonly=True)
    exists = int(data[0] or 0)
    took = now() - started
    if exists != count:
        raise RuntimeError(f"INBOX holds {exists} messages, expected {count}")
    _typ, data = device.uid("FETCH", f"1,2,{count - 1},{count}", "(UID INTERNALDATE)")
    stamps = [
        time.mktime(t)
        for d in data
        if isinstance(d, bytes) and (t := imaplib.Internaldate2tuple(d))
    ]
    device.logout()
    if len(stamps) != 4 or not (stamps[0] < stamps[1] and stamps[2] < stamps[3]):
        raise RuntimeError(f"UIDs are not in date order: {data!r}")
    return {"select_seconds": took}


BENCH_DATA = Path(os.environ.get("KITTIWAKE_BENCH_DATA", "/work/bench-data"))
SMALL_SIZES = (1000, 4000)  # bytes: large folders are about count, not bytes (1M: ~2.3 GB)


def _write_folder(
    folder: Path, count: int, factory: MailFactory, end: int, marker: bytes | None
) -> int:
    """``count`` messages (then ``marker``, the newest) into a new Maildir folder; bytes."""
    mail_uid = pwd.getpwnam("mail").pw_uid
    mail_gid = grp.getgrnam("mail").gr_gid
    for sub in ("cur", "new", "tmp"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
        os.chown(folder / sub, mail_uid, mail_gid)
    os.chown(folder, mail_uid, mail_gid)
    cur = folder / "cur"
    span = min(3 * 365 * 86400, count * 600)  # at most one message per 10 minutes on average
    start = end - span
    step = span / max(count, 1)
    prev = start - 1
    total = 0
    items = count + (marker is not None)
    for i in range(items):
        ts = max(prev + 1, start + int(i * step + factory.rng.random() * step * 0.5))
        prev = ts
        if i == count and marker is not None:
            raw, flags = (
                marker.replace(
                    b"@DATE@",
                    format_datetime(datetime.fromtimestamp(end + 60, UTC)).encode(),
                ),
                "",
            )
            ts = end + 60
        else:
            raw, flags = factory.message(i + 1, ts)
        vsize = len(raw) + raw.count(b"\n")
        name = f"{ts}.M{i}P0Q{i}.kittiwake-bench,S={len(raw)},W={vsize}:2,{flags}"
        fd = os.open(cur / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, raw)
            os.fchown(fd, mail_uid, mail_gid)
            os.utime(fd, (ts, ts))
        finally:
            os.close(fd)
        total += len(raw)
        if (i + 1) % 100_000 == 0:
            log(f"  {folder.name}: wrote {i + 1:,} messages ({total / 1e6:.0f} MB)")
    return total


def persistent_maildir(
    name: str, folders: dict[str, int], seed: int = 1, marker: bytes | None = None
) -> Path:
    """A Maildir++ tree under ``BENCH_DATA/name`` holding ``folders`` (IMAP name: count),
    built once and reused: a 1M-message folder takes minutes to write and Dovecot minutes
    more to index the first time, and both stay (Dovecot keeps its index inside).

    ``marker`` (a message with ``@DATE@`` for its Date) is added to INBOX as its newest
    message. Rebuilt when the recipe (``folders``, seed, sizes) changes; a half-built tree
    (no ``recipe.json``) is deleted first.
    """
    top = BENCH_DATA / name
    recipe = json.dumps(
        {
            "folders": folders,
            "seed": seed,
            "sizes": SMALL_SIZES,
            "marker": marker.decode() if marker else None,
        },
        sort_keys=True,
    )
    done = top / "recipe.json"
    if done.exists() and done.read_text() == recipe:
        return top / "Maildir"
    shutil.rmtree(top, ignore_errors=True)
    top.mkdir(parents=True)
    os.chmod(top, 0o755)
    started = now()
    factory = MailFactory(seed, SMALL_SIZES)
    end = int(time.time()) - 3600
    total = 0
    for folder, count in folders.items():
        path = top / "Maildir"
        if folder != "INBOX":  # Maildir++: .Lists.python for Lists/python
            path = path / ("." + folder.replace("/", "."))
        total += _write_folder(path, count, factory, end, marker if folder == "INBOX" else None)
    subscribed = "\n".join(f for f in folders if f != "INBOX") + "\n"
    (top / "Maildir" / "subscriptions").write_text(subscribed)
    os.chown(
        top / "Maildir" / "subscriptions", pwd.getpwnam("mail").pw_uid, grp.getgrnam("mail").gr_gid
    )
    log(
        f"built {top}: {sum(folders.values()):,} messages, {total / 1e6:.0f} MB "
        f"in {now() - started:.0f} s"
    )
    done.write_text(recipe)
    return top / "Maildir"


def adopt_maildir(dovecot: Any, user: Any, maildir: Path) -> None:
    """Make ``maildir`` the home of ``user`` (who has not logged in yet): a symlink, so the
    mail and Dovecot's index survive the instance."""
    home = dovecot.maildir(user)
    home.parent.mkdir(parents=True, exist_ok=True)
    os.chown(home.parent, pwd.getpwnam("mail").pw_uid, grp.getgrnam("mail").gr_gid)
    home.symlink_to(maildir)


# =========================================================================================
# Child processes: one measurement each
# =========================================================================================


class CountingIMAP(imaplib.IMAP4_SSL):
    """stdlib imaplib with byte counters (IMAP bytes inside TLS, as Kittiwake counts them)."""

    bytes_in = 0
    bytes_out = 0

    def read(self, size: int) -> bytes:
        data = super().read(size)
        self.bytes_in += len(data)
        return data

    def readline(self) -> bytes:
        line = super().readline()
        self.bytes_in += len(line)
        return line

    def send(self, data: bytes) -> None:  # type: ignore[override]
        self.bytes_out += len(data)
        super().send(data)


def _imaplib_connect(p: dict[str, Any]) -> CountingIMAP:
    ctx = ssl.create_default_context(cafile=p["ca_file"])
    imap = CountingIMAP(p["host"], p["port"], ssl_context=ctx, timeout=1800)
    imap.login(p["login"], p["password"])
    return imap


def child_plain(p: dict[str, Any]) -> dict[str, Any]:
    """Baseline: login, EXAMINE INBOX, one UID FETCH 1:* with imaplib (or raw reads)."""
    rss_base = peak_rss_mb()
    items = p["items"]
    cpu0 = cpu_seconds()
    t0 = now()
    imap = _imaplib_connect(p)
    t_login = now()
    # The indexing pass SELECTs read-write once, as clients of a mailbox in use have done,
    # so the mass of \\Recent that fresh delivery leaves is claimed before any measurement.
    typ, data = imap.select("INBOX", readonly=not p.get("read_write", False))
    assert typ == "OK", data
    t_select = now()
    bytes_before = imap.bytes_in + imap.bytes_out
    count = 0
    if p["raw"]:
        # The wire ceiling: send the command, read bytes until the tagged reply, parse nothing.
        tag = b"BNCH1"
        line = tag + b" UID FETCH 1:* (" + items.encode() + b")\r\n"
        imap.send(line)
        read1 = imap.file.read1  # type: ignore[attr-defined]
        end_marker = b"\r\n" + tag + b" "
        tail = b""
        got = 0
        done = False
        while not done:
            chunk = read1(1 << 20)
            if not chunk:
                raise RuntimeError("connection closed during FETCH")
            got += len(chunk)
            window = tail + chunk
            k = window.find(end_marker)
            if k >= 0 and window.find(b"\r\n", k + 2) >= 0:
                done = True
            tail = window[-256:]
        imap.bytes_in += got
        count = -1
    else:
        typ, data = imap.uid("FETCH", "1:*", f"({items})")
        assert typ == "OK", data
        first = re.compile(rb"\d+ \(")
        for d in data:
            head = d[0] if isinstance(d, tuple) else d
            if isinstance(head, bytes) and first.match(head):
                count += 1
    t_fetch = now()
    cpu_timed = cpu_seconds() - cpu0
    fetch_bytes = imap.bytes_in + imap.bytes_out - bytes_before
    total_bytes = imap.bytes_in + imap.bytes_out
    imap.logout()
    return {
        "login": t_login - t0,
        "select": t_select - t_login,
        "fetch": t_fetch - t_select,
        "total": t_fetch - t0,
        "fetch_bytes": fetch_bytes,
        "bytes": total_bytes,
        "count": count,
        "rss": peak_rss_mb(),
        "rss_base": rss_base,
        "cpu": cpu_timed,
    }


def _preload() -> None:
    """Import everything the engine needs before any clock or profiler starts (a real app
    has imported it long before the first login)."""
    import kittiwake.core.cache
    import kittiwake.core.config
    import kittiwake.core.events
    import kittiwake.core.imap.account  # noqa: F401


def _make_account(p: dict[str, Any], bus: Any, cache_path: str) -> Any:
    from kittiwake.core.cache import Cache
    from kittiwake.core.config import config_from_dict
    from kittiwake.core.imap.account import ImapAccount, Tuning

    config = config_from_dict(
        {
            "accounts": {
                "bench": {
                    "email": p["login"],
                    "imap": {
                        "host": p["host"],
                        "port": p["port"],
                        "security": "tls",
                        "user": p["login"],
                        "password": p["password"],
                        "ca_file": p["ca_file"],
                        "timeout": 300,
                    },
                }
            }
        }
    )
    tuning = Tuning(first_window=p["first_window"], batch=p["batch"])
    return ImapAccount(config.accounts["bench"], Cache(Path(cache_path)), bus, tuning)


def _timed_bus() -> Any:
    from kittiwake.core.events import EventBus

    class TimedBus(EventBus):
        """Calls hooks with the exact publish time; keeps no events (so RSS stays honest:
        a UI would consume them; a queue here would hold every summary)."""

        def __init__(self) -> None:
            super().__init__()
            self.hooks: list[Callable[[float, Any], None]] = []
            self.counts: Counter[str] = Counter()

        def publish(self, event: Any) -> None:
            t = now()
            self.counts[type(event).__name__] += 1
            for hook in self.hooks:
                hook(t, event)
            super().publish(event)

    return TimedBus()


class CommandTimeline:
    """Times every IMAP command the engine runs (wraps ``ImapClient.run`` in this child only):
    when it started relative to ``t0``, how long until its tagged reply had been parsed."""

    def __init__(self) -> None:
        from kittiwake.core.imap.client import ImapClient

        self.t0 = now()
        self.rows: list[tuple[float, float, str, int]] = []
        original = ImapClient.run
        timeline = self

        async def run(client: Any, line: str, *args: Any, **kwargs: Any) -> Any:
            start = now()
            out = await original(client, line, *args, **kwargs)
            verb = re.sub(r"\(QRESYNC \([^)]*\)\)", "(QRESYNC (...))", line)
            timeline.rows.append((start - timeline.t0, now() - start, verb[:60], len(out[0])))
            return out

        ImapClient.run = run  # type: ignore[method-assign, assignment]

    def first(self, count: int) -> list[tuple[float, float, str, int]]:
        return self.rows[:count]


async def _cold_sync(p: dict[str, Any]) -> dict[str, Any]:
    from kittiwake.core.events import FolderCountsChanged, MessagesAdded

    bus = _timed_bus()
    account = _make_account(p, bus, p["cache"])
    mark: dict[str, Any] = {"first": None, "first_uids": [], "added": 0, "full": None}
    target = p["messages"]

    def hook(t: float, ev: Any) -> None:
        if isinstance(ev, MessagesAdded) and ev.folder == "INBOX":
            if mark["first"] is None:
                mark["first"] = t
                mark["first_uids"] = sorted(ev.uids)
            mark["added"] += len(ev.summaries)
            if mark["full"] is None and mark["added"] >= target:
                mark["full"] = t
        elif isinstance(ev, FolderCountsChanged) and ev.folder == "INBOX":
            mark["inbox_done"] = t

    bus.hooks.append(hook)
    timeline = CommandTimeline()
    cpu0 = cpu_seconds()
    t0 = timeline.t0 = now()
    await account.connect_once()
    t_login = now()
    login_bytes = account.traffic
    stats = await account.sync_all()
    t_end = now()
    cpu_timed = cpu_seconds() - cpu0
    traffic = account.traffic
    state = account.cache.folder_state("INBOX")
    cached = account.cache.counts("INBOX")[0]
    await account.stop()
    account.cache.close()
    uidnext = state.uidnext if state else None
    window = p["first_window"]
    newest = list(range(uidnext - window, uidnext)) if uidnext else []
    return {
        "login": t_login - t0,
        "first": (mark["first"] - t0) if mark["first"] else None,
        "first_after_login": (mark["first"] - t_login) if mark["first"] else None,
        "first_count": len(mark["first_uids"]),
        "first_is_newest": mark["first_uids"] == newest,
        "full": (mark["full"] - t0) if mark["full"] else None,
        "inbox_done": (mark.get("inbox_done", t_end) - t0),
        "total": t_end - t0,
        "login_bytes": login_bytes,
        "bytes": traffic,
        "cached": cached,
        "fetched": stats.fetched,
        "events": dict(bus.counts),
        "cpu": cpu_timed,
        "timeline": timeline.first(8),
    }


def child_cold(p: dict[str, Any]) -> dict[str, Any]:
    _preload()
    rss_base = peak_rss_mb()
    profiler = p.get("profiler", "none")
    out: dict[str, Any]
    if profiler == "cprofile":
        import cProfile
        import pstats

        cprof = cProfile.Profile()
        cprof.enable()
        out = asyncio.run(_cold_sync(p))
        cprof.disable()
        out["profile"] = _cprofile_report(pstats.Stats(cprof))
    elif profiler == "pyinstrument":
        from pyinstrument import Profiler

        iprof = Profiler(interval=0.0005, async_mode="disabled")
        iprof.start()
        out = asyncio.run(_cold_sync(p))
        iprof.stop()
        out["profile"] = _pyinstrument_report(iprof)
    else:
        out = asyncio.run(_cold_sync(p))
    out.update(rss=peak_rss_mb(), rss_base=rss_base)
    return out


async def _warm_sync(p: dict[str, Any]) -> dict[str, Any]:
    bus = _timed_bus()
    t_open = now()
    account = _make_account(p, bus, p["cache"])
    timeline = CommandTimeline()
    cpu0 = cpu_seconds()
    t0 = timeline.t0 = now()
    await account.connect_once()
    t_login = now()
    login_bytes = account.traffic
    stats = await account.sync_all()
    t_end = now()
    cpu_timed = cpu_seconds() - cpu0
    traffic = account.traffic
    cached = account.cache.counts("INBOX")[0]
    await account.stop()
    account.cache.close()
    return {
        "open_cache": t0 - t_open,
        "login": t_login - t0,
        "sync": t_end - t_login,
        "total": t_end - t0,
        "login_bytes": login_bytes,
        "sync_bytes": traffic - login_bytes,
        "bytes": traffic,
        "fetched": stats.fetched,
        "cached": cached,
        "events": dict(bus.counts),
        "cpu": cpu_timed,
        "timeline": timeline.first(20),
    }


def child_warm(p: dict[str, Any]) -> dict[str, Any]:
    _preload()
    rss_base = peak_rss_mb()
    out = asyncio.run(_warm_sync(p))
    out.update(rss=peak_rss_mb(), rss_base=rss_base)
    return out


# -- live latency --------------------------------------------------------------------------


def child_idlewatch(p: dict[str, Any]) -> dict[str, Any] | None:
    """A raw IDLE connection in its own process (own GIL): prints '<monotonic> <line>' for
    every line the server sends; DONE when stdin closes."""
    imap = _imaplib_connect(p)
    imap.select("INBOX", readonly=True)
    imap.send(b"IDL1 IDLE\r\n")
    line = imap.readline()
    if not line.startswith(b"+"):
        raise RuntimeError(f"IDLE refused: {line!r}")
    out = sys.stdout
    out.write("READY\n")
    out.flush()

    def stop_on_eof() -> None:
        sys.stdin.read()
        with contextlib.suppress(OSError):
            imap.send(b"DONE\r\n")

    threading.Thread(target=stop_on_eof, daemon=True).start()
    while True:
        line = imap.readline()
        t = now()
        if not line or line.startswith(b"IDL1 "):
            break
        out.write(f"{t:.6f} {line.decode('latin-1').rstrip()}\n")
        out.flush()
    with contextlib.suppress(Exception):
        imap.logout()
    return None


class IdleWatcher:
    """Runs ``child_idlewatch`` and collects its timestamped lines."""

    def __init__(self, p: dict[str, Any]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--child", "idlewatch"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(p) + "\n")
        self.proc.stdin.flush()
        ready = self.proc.stdout.readline()
        if ready.strip() != "READY":
            raise RuntimeError(f"IDLE watcher failed: {ready!r}")
        self.lines: queue.Queue[tuple[float, str]] = queue.Queue()
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            t, _, line = raw.rstrip("\n").partition(" ")
            self.lines.put((float(t), line))

    def wait(self, pattern: re.Pattern[str], after: float, timeout: float) -> tuple[float, str]:
        deadline = now() + timeout
        while True:
            left = deadline - now()
            if left <= 0:
                raise TimeoutError(f"IDLE connection never saw {pattern.pattern}")
            t, line = self.lines.get(timeout=left)
            if t >= after and pattern.search(line):
                return t, line

    def drain(self) -> None:
        with contextlib.suppress(queue.Empty):
            while True:
                self.lines.get_nowait()

    def close(self) -> None:
        assert self.proc.stdin is not None
        with contextlib.suppress(OSError):
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


async def _live(p: dict[str, Any]) -> dict[str, Any]:
    from kittiwake.core.events import FlagsChanged, MessagesAdded

    bus = _timed_bus()
    account = _make_account(p, bus, p["cache"])
    probe: dict[str, Any] = {}
    got = asyncio.Event()

    original = account._on_unsolicited
    notes: list[float] = []  # every notification the engine got
    resyncs: list[tuple[float, float]] = []  # every sync_folder: (start, duration)

    def spy(folder: str | None, item: Any) -> None:
        notes.append(now())
        if probe and "c" not in probe:
            probe["c"] = now()
            probe["c_kind"] = type(item).__name__
        original(folder, item)

    account._on_unsolicited = spy  # the watch connection is created with this callback
    original_sync = account.sync_folder

    async def counted_sync(folder: str, status: Any = None) -> int:
        start = now()
        try:
            return int(await original_sync(folder, status))
        finally:
            resyncs.append((start, now() - start))

    account.sync_folder = counted_sync

    def hook(t: float, ev: Any) -> None:
        if not probe or "b" in probe:
            return
        if probe["kind"] == "flag" and isinstance(ev, FlagsChanged) and ev.folder == "INBOX":
            if probe["uid"] in ev.flags:
                probe["b"] = t
                got.set()
        elif probe["kind"] == "append" and isinstance(ev, MessagesAdded) and ev.folder == "INBOX":
            probe["b"] = t
            got.set()

    bus.hooks.append(hook)
    cpu0 = cpu_seconds()
    t0 = now()
    account.start()
    await account.wait_synced(600)
    t_synced = now() - t0
    cpu_synced = cpu_seconds() - cpu0
    await asyncio.sleep(0.5)  # let the NOTIFY/IDLE connection settle

    watcher = IdleWatcher(p)
    device = _imaplib_connect(p)
    device.select("INBOX")
    n = p["messages"]
    factory = MailFactory(p["seed"] + 1)
    rows: dict[str, list[dict[str, float | str]]] = {"flag": [], "append": []}
    # Flag messages that are not flagged yet (a no-op STORE would notify nobody).
    lo = max(1, n - 50 - 20 * p["reps"])
    _typ, data = device.uid("FETCH", f"{lo}:{n - 50}", "(FLAGS)")
    candidates = []
    for d in data:
        text = d.decode() if isinstance(d, bytes) else ""
        m = re.search(r"UID (\d+)", text)
        if m and "\\Flagged" not in text:
            candidates.append(int(m.group(1)))
    candidates.sort(reverse=True)

    def store_flag(uid: int) -> tuple[float, float]:
        s0 = now()
        typ, data = device.uid("STORE", str(uid), "+FLAGS", "(\\Flagged)")
        assert typ == "OK", data
        return s0, now()

    def append(raw: bytes) -> tuple[float, float]:
        s0 = now()
        typ, data = device.append("INBOX", "", None, raw)
        assert typ == "OK", data
        return s0, now()

    try:
        for kind in ("flag", "append"):
            for i in range(p["reps"]):
                watcher.drain()
                probe.clear()
                got.clear()
                if kind == "flag":
                    uid = candidates[i]
                    probe.update(kind="flag", uid=uid)
                    # No expunges happen in this benchmark: sequence number == UID.
                    pattern = re.compile(rf"^\* {uid} FETCH ")

                    act = functools.partial(store_flag, uid)

                else:
                    probe.update(kind="append")
                    exists = n + i + 1
                    pattern = re.compile(rf"^\* {exists} EXISTS")
                    raw, _ = factory.message(n + i + 1, int(time.time()))
                    raw = raw.replace(b"\n", b"\r\n")

                    act = functools.partial(append, raw)

                s0, s1 = await asyncio.to_thread(act)
                await asyncio.wait_for(got.wait(), 10)
                t_a, _line = await asyncio.to_thread(watcher.wait, pattern, s0, 10)
                rows[kind].append(
                    {
                        "store": s0,
                        "store_done": s1 - s0,
                        "a": t_a - s0,
                        "c": probe.get("c", float("nan")) - s0,
                        "b": probe["b"] - s0,
                        "b_minus_a": probe["b"] - t_a,
                        "c_kind": probe.get("c_kind", "?"),
                    }
                )
                await asyncio.sleep(0.3)
        await asyncio.sleep(1.0)  # let the last resync finish before counting
    finally:
        probe.clear()
        watcher.close()
        with contextlib.suppress(Exception):
            device.logout()
        await account.stop()
        account.cache.close()
    # Per change: notifications received and folder resyncs run until the next change.
    starts = [float(r["store"]) for kind in ("flag", "append") for r in rows[kind]]
    bounds = [*starts[1:], float("inf")]
    flat = [r for kind in ("flag", "append") for r in rows[kind]]
    for row, lo, hi in zip(flat, starts, bounds, strict=True):
        mine = [d for t, d in resyncs if lo <= t < hi]
        row["notifications"] = sum(1 for t in notes if lo <= t < hi)
        row["resyncs"] = len(mine)
        row["resync_time"] = sum(mine)
        row["first_resync"] = mine[0] if mine else float("nan")
    return {"synced": t_synced, "cpu": cpu_synced, "rows": rows}


def child_live(p: dict[str, Any]) -> dict[str, Any]:
    _preload()
    rss_base = peak_rss_mb()
    out = asyncio.run(_live(p))
    out.update(rss=peak_rss_mb(), rss_base=rss_base)
    return out


# -- profiles --------------------------------------------------------------------------------

_LAYERS = [
    ("waiting for the server (epoll)", ("<method 'poll' of 'select.epoll'", "selectors.py")),
    ("TLS (ssl, sslproto)", ("/ssl.py", "_ssl.", "sslproto.py")),
    ("framing", ("imap/framing.py",)),
    ("protocol/connection", ("imap/protocol.py", "imap/connection.py", "aioimaplib")),
    ("lazy extraction (imap/lazy.py)", ("imap/lazy.py",)),
    ("parsing", ("imap/parser.py", "imap/uidset.py")),
    ("decoding", ("imap/decode.py", "core/models.py", "email/", "_strptime")),
    ("client (typed commands)", ("imap/client.py",)),
    ("SQLite + msgpack", ("core/cache.py", "sqlite3", "msgspec")),
    ("events", ("core/events.py",)),
    ("engine (account.py)", ("imap/account.py",)),
    ("asyncio (loop, tasks)", ("asyncio/",)),
]  # fmt: skip


def _layer(where: str) -> str:
    for name, needles in _LAYERS:
        if any(n in where for n in needles):
            return name
    return "other"


def _cprofile_report(stats: Any) -> dict[str, Any]:
    rows = []
    total_tt = 0.0
    layers: Counter[str] = Counter()

    def name(file: str, line: int, func: str) -> str:
        return f"{file}:{line}({func})" if file != "~" else func

    for (file, line, func), (_cc, nc, tt, ct, callers) in stats.stats.items():
        where = name(file, line, func)
        short = re.sub(r"^.*/(site-packages|lib/python3\.\d+|main/core|core)/", "", where)
        rows.append((ct, tt, nc, short))
        total_tt += tt
        layer = _layer(where)
        if file == "~" and layer == "other" and callers:
            # A C function (bytes.split, list.append, ...) belongs to its callers' layers.
            for caller, (_c, _n, ctt, _ct) in callers.items():
                layers[_layer(name(*caller))] += ctt
        else:
            layers[layer] += tt
    top_cum = sorted(rows, reverse=True)[:40]
    top_self = sorted(rows, key=lambda r: r[1], reverse=True)[:15]
    return {
        "kind": "cProfile",
        "total": total_tt,
        "cumulative": [(ct, tt, nc, s) for ct, tt, nc, s in top_cum],
        "self": [(ct, tt, nc, s) for ct, tt, nc, s in top_self],
        "layers": layers.most_common(),
    }


def _pyinstrument_report(prof: Any) -> dict[str, Any]:
    session = prof.last_session
    root = session.root_frame(trim_stem=False)
    cum: Counter[str] = Counter()
    own: Counter[str] = Counter()
    layers: Counter[str] = Counter()

    def short(path: str) -> str:
        return re.sub(r"^.*/(site-packages|lib/python3\.\d+|main/core|core)/", "", path)

    # Iterative walk. A built-in (C) call is shown as "name [C] < caller" and belongs to its
    # caller's layer (executemany under cache.py is SQLite), except epoll's poll (waiting).
    # Cumulative time counts a function once per stack; "[self]" frames are pyinstrument's
    # own-time markers and are folded into their parent.
    stack: list[tuple[Any, frozenset[str], str, str]] = [(root, frozenset(), "", "other")]
    while stack:
        frame, above, parent_key, parent_layer = stack.pop()
        if frame.is_synthetic:
            continue
        path = frame.file_path or ""
        if path.startswith("<built-in>") or not path:
            k = f"{frame.function} [C] < {parent_key}"
            layer = "waiting for the server (epoll)" if frame.function == "poll" else parent_layer
        else:
            k = f"{short(path)}:{frame.line_no}({frame.function})"
            layer = _layer(f"{path}({frame.function})")
        if k not in above:
            cum[k] += frame.time
        self_t = frame.total_self_time
        own[k] += self_t
        layers[layer] += self_t
        for child in frame.children:
            stack.append((child, above | {k}, k, layer))
    total = root.time
    return {
        "kind": "pyinstrument",
        "total": total,
        "cumulative": [(t, own[k], 0, k) for k, t in cum.most_common(40)],
        "self": [(cum[k], t, 0, k) for k, t in own.most_common(15)],
        "layers": layers.most_common(),
    }


def child_plain_folders(p: dict[str, Any]) -> dict[str, Any]:
    """The plain fetch of a whole account: login, then per folder EXAMINE and one
    ``UID FETCH 1:* (items)`` with imaplib; what a full index of every folder is held to."""
    cpu0 = cpu_seconds()
    t0 = now()
    imap = _imaplib_connect(p)
    count = 0
    first = re.compile(rb"\d+ \(")
    for folder in p["folders"]:
        typ, data = imap.select(f'"{folder}"', readonly=True)
        assert typ == "OK", data
        typ, data = imap.uid("FETCH", "1:*", f"({p['items']})")
        assert typ == "OK", data
        for d in data:
            head = d[0] if isinstance(d, tuple) else d
            if isinstance(head, bytes) and first.match(head):
                count += 1
        del data
    total = now() - t0
    cpu = cpu_seconds() - cpu0
    imap.logout()
    return {"total": total, "cpu": cpu, "count": count, "rss": peak_rss_mb()}


def child_search(p: dict[str, Any]) -> dict[str, Any]:
    """Search and conversations of one folder on a filled cache, as the app runs them
    (``local_hits_off_loop``, ``thread_folder``): seconds and CPU seconds each."""
    from kittiwake.core.cache import Cache
    from kittiwake.core.imap.lazy import decode_raw
    from kittiwake.core.search.service import local_hits_off_loop, thread_folder

    t = now()
    cache = Cache(Path(p["cache"]), raw_decoder=decode_raw)  # as the engine opens it
    out: dict[str, Any] = {"open": now() - t, "queries": {}}
    undecoded = "SELECT count(*) FROM messages WHERE raw IS NOT NULL"
    out["undecoded"] = cache.db.execute(undecoded).fetchone()[0]  # left by the decode pass

    async def run() -> None:
        for query in p["queries"]:
            for attempt in ("first", "again"):
                t, c = now(), cpu_seconds()
                hits = await local_hits_off_loop(cache, [p["folder"]], query)
                row = {"seconds": now() - t, "cpu": cpu_seconds() - c, "hits": len(hits)}
                out["queries"][f"{query} ({attempt})"] = row
        for attempt in ("first", "again"):
            t, c = now(), cpu_seconds()
            threading_, _names = await thread_folder(cache, p["folder"], None)
            out[f"threads ({attempt})"] = {
                "seconds": now() - t,
                "cpu": cpu_seconds() - c,
                "threads": len(threading_),
            }

    asyncio.run(run())
    cache.close()
    out["rss"] = peak_rss_mb()
    return out


CHILDREN: dict[str, Callable[[dict[str, Any]], dict[str, Any] | None]] = {
    "plainall": child_plain_folders,
    "search": child_search,
    "plain": child_plain,
    "cold": child_cold,
    "warm": child_warm,
    "live": child_live,
    "idlewatch": child_idlewatch,
}


def run_child(mode: str, params: dict[str, Any], timeout: float = 3600) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", mode],
        input=json.dumps(params) + "\n",
        stdout=subprocess.PIPE,
        text=True,
        timeout=timeout,
        check=False,
    )
    result: dict[str, Any] | None = None
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            result = json.loads(line[7:])
    if proc.returncode != 0 or result is None:
        raise RuntimeError(f"child {mode} failed (exit {proc.returncode}):\n{proc.stdout[-2000:]}")
    return result


# =========================================================================================
# Report
# =========================================================================================


def fmt_s(x: float | None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x * 1000:.0f} ms" if x < 1 else f"{x:.2f} s"


def fmt_ms(x: float) -> str:
    return f"{x * 1000:.1f} ms"


def fmt_b(n: float | None) -> str:
    if n is None:
        return "-"
    if n < 10_000:
        return f"{n:,.0f} B"
    if n < 10_000_000:
        return f"{n / 1024:,.1f} KB"
    return f"{n / 1024 / 1024:,.1f} MB"


def fmt_mb(x: float | None) -> str:
    return "-" if x is None else f"{x:,.0f} MB"


def table(headers: list[str], rows: list[list[str]], align: str) -> str:
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        out = []
        for cell, width, a in zip(cells, widths, align, strict=True):
            out.append(cell.ljust(width) if a == "l" else cell.rjust(width))
        return "  ".join(out).rstrip()

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), sep, *(line(r) for r in rows)])


def verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("PASS" if ok else "FAIL")


def report(res: dict[str, Any], args: argparse.Namespace) -> str:
    n = args.messages
    out = io.StringIO()
    w = out.write
    fill = res["fill"]
    w(f"\n=== Kittiwake IMAP sync benchmark: {n:,} messages in INBOX ===\n")
    w(
        f"Dovecot {res['dovecot_version']} | Python {platform.python_version()} | "
        f"{os.cpu_count()} CPUs | Tuning(first_window={args.first_window}, batch={args.batch})\n"
    )
    w(
        f"Fill: {fill['bytes'] / 1e6:,.0f} MB of Maildir in {fill['seconds']:.1f} s; "
        f"Dovecot's first SELECT (maildir scan) {fill['select_seconds']:.1f} s, first full "
        f"FETCH (indexing + cache) {res['index_pass']['total']:.1f} s\n\n"
    )
    rows = []

    def base_row(label: str, r: dict[str, Any]) -> None:
        rows.append(
            [label, fmt_s(r["total"]), fmt_s(r["fetch"]), fmt_b(r["bytes"]),
             f"{r['cpu']:.2f} s", fmt_mb(r["rss"])]
        )  # fmt: skip

    b = res["baseline"]
    base_row("baseline imaplib, ENVELOPE items (warm)", b["env_imaplib"][1])
    base_row("baseline imaplib, Kittiwake items (warm)", b["kw_imaplib"][1])
    base_row("wire ceiling raw read, ENVELOPE items", b["env_raw"])
    base_row("wire ceiling raw read, Kittiwake items", b["kw_raw"])
    c = res["cold"]
    rows.append(["Kittiwake cold: login (connect+TLS+auth+ENABLE+ID)", fmt_s(c["login"]), "",
                 fmt_b(c["login_bytes"]), "", ""])  # fmt: skip
    rows.append([f"Kittiwake cold: first MessagesAdded ({c['first_count']} newest)",
                 fmt_s(c["first"]), "", "", "", ""])  # fmt: skip
    rows.append(
        ["Kittiwake cold: full INBOX index (all in cache)", fmt_s(c["full"]), "", "", "", ""]
    )
    rows.append(["Kittiwake cold: sync_all total", fmt_s(c["total"]), "", fmt_b(c["bytes"]),
                 f"{c['cpu']:.2f} s", fmt_mb(c["rss"])])  # fmt: skip
    warm = res["warm"]
    wm = sorted(warm, key=lambda r: r["total"])[len(warm) // 2]
    rows.append([f"Kittiwake warm restart (median of {len(warm)}): connect_once+sync_all",
                 fmt_s(wm["total"]), "", fmt_b(wm["bytes"]), f"{wm['cpu']:.2f} s",
                 fmt_mb(wm["rss"])])  # fmt: skip
    split_t = f"{fmt_s(wm['login'])} / {fmt_s(wm['sync'])}"
    split_b = f"{fmt_b(wm['login_bytes'])} / {fmt_b(wm['sync_bytes'])}"
    rows.append(["  of which login / sync_all", split_t, "", split_b, "", ""])
    if res.get("live"):
        lv = res["live"]
        rows.append(["Kittiwake engine start on warm cache until synced", fmt_s(lv["synced"]),
                     "", "", f"{lv['cpu']:.2f} s", fmt_mb(lv["rss"])])  # fmt: skip
    w(table(["measurement", "wall", "FETCH", "IMAP bytes", "client CPU", "peak RSS"], rows,
            "lrrrrr"))  # fmt: skip
    w(
        f"\n(peak RSS of a bare child after imports: ~{fmt_mb(c['rss_base'])}; "
        f'"wall" of baselines = connect+login+EXAMINE+FETCH; FETCH = the UID FETCH alone)\n'
    )
    for label, rows_ in (
        ("Cold start, first commands", c.get("timeline", [])),
        ("Warm restart, every command (median run)", wm.get("timeline", [])),
    ):
        if rows_:
            w(
                f"\n{label} (start / duration incl. parsing; Python work between commands not shown)\n"
            )
            trow = [[fmt_ms(a), fmt_ms(b), str(k), v] for a, b, v, k in rows_]
            w(table(["start", "took", "responses", "command"], trow, "rrrl"))
            w("\n")
    if not c["first_is_newest"]:
        w("WARNING: the first MessagesAdded did NOT hold the highest UIDs\n")
    if c["cached"] != n:
        w(f"WARNING: the cache holds {c['cached']} INBOX messages, expected {n}\n")

    if res.get("live"):
        w("\nLive latency (t=0 when the other device sends its command; "
          f"{args.reps} repetitions each)\n")  # fmt: skip
        kinds = [("flag", "STORE +FLAGS -> FlagsChanged"), ("append", "APPEND -> MessagesAdded")]
        data = {k: res["live"]["rows"][k] for k, _ in kinds}

        def cell(kind: str, f: Callable[[dict[str, Any]], float]) -> str:
            vals = [f(r) for r in data[kind]]
            vals = [v for v in vals if not math.isnan(v)]
            if not vals:
                return "-"
            return f"{fmt_ms(statistics.median(vals))} / {fmt_ms(max(vals))}"

        def count(kind: str, key: str) -> str:
            vals = [float(r.get(key, 0)) for r in data[kind]]
            return f"{statistics.median(vals):.0f} / {max(vals):.0f}" if vals else "-"

        metrics: list[tuple[str, Callable[[str], str]]] = [
            ("device's command answered", lambda k: cell(k, lambda r: r["store_done"])),
            ("(a) raw IDLE connection sees the change", lambda k: cell(k, lambda r: r["a"])),
            ("(c) engine's watch connection notified", lambda k: cell(k, lambda r: r["c"])),
            ("(b) engine publishes the event", lambda k: cell(k, lambda r: r["b"])),
            ("(b)-(a): the goal", lambda k: cell(k, lambda r: r["b_minus_a"])),
            ("(c)-(a): server/watch path", lambda k: cell(k, lambda r: r["c"] - r["a"])),
            ("(b)-(c): engine's resync", lambda k: cell(k, lambda r: r["b"] - r["c"])),
            ("first sync_folder per change", lambda k: cell(k, lambda r: r["first_resync"])),
            ("notifications per change (count)", lambda k: count(k, "notifications")),
            ("sync_folder runs per change (count)", lambda k: count(k, "resyncs")),
            (
                "notification kind at (c)",
                lambda k: ",".join(sorted({str(r["c_kind"]) for r in data[k]})),
            ),
        ]
        lrows = [[name, fn("flag"), fn("append")] for name, fn in metrics]
        w(table(["median / max", kinds[0][1], kinds[1][1]], lrows, "lrr"))
        w("\n")

    # Goals
    base_env = b["env_imaplib"][1]["total"]
    base_kw = b["kw_imaplib"][1]["total"]
    ratio_env = c["full"] / base_env if c["full"] else None
    ratio_kw = c["full"] / base_kw if c["full"] else None
    warm_beyond = wm["bytes"] - wm["login_bytes"]
    first_ok = c["first"] is not None and c["first"] <= GOAL_FIRST_SCREEN and c["first_is_newest"]
    grows = [
        ["newest screenful, from login start", f"<= {GOAL_FIRST_SCREEN} s", fmt_s(c["first"]),
         verdict(first_ok)],
        ["full index / plain fetch (same Kittiwake items)", f"<= {GOAL_FULL_RATIO}x",
         f"{ratio_kw:.2f}x" if ratio_kw else "-",
         verdict(ratio_kw is not None and ratio_kw <= GOAL_FULL_RATIO)],
        ["full index / plain fetch (ENVELOPE items, as worded)", f"<= {GOAL_FULL_RATIO}x",
         f"{ratio_env:.2f}x" if ratio_env else "-",
         verdict(ratio_env is not None and ratio_env <= GOAL_FULL_RATIO)],
        ["warm restart time (connect_once+sync_all)", f"< {GOAL_WARM_TIME} s", fmt_s(wm["total"]),
         verdict(wm["total"] < GOAL_WARM_TIME)],
        ["warm restart IMAP bytes beyond login", f"< {fmt_b(GOAL_WARM_BYTES)}", fmt_b(warm_beyond),
         verdict(warm_beyond < GOAL_WARM_BYTES)],
    ]  # fmt: skip
    if res.get("live"):
        for kind, label in (("flag", "live flag: (b)-(a)"), ("append", "live append: (b)-(a)")):
            vals = [float(r["b_minus_a"]) for r in res["live"]["rows"][kind]]
            if vals:
                med, mx = statistics.median(vals), max(vals)
                measured = f"{fmt_ms(med)} ({fmt_ms(mx)})"
                target = f"< {GOAL_LIVE * 1000:.0f} ms"
                grows.append([f"{label} median (max)", target, measured, verdict(med < GOAL_LIVE)])
    w("\nGoals of the issue\n")
    w(table(["goal", "target", "measured", "verdict"], grows, "lrrl"))
    w("\n")

    prof = res.get("profile")
    if prof:
        p = prof["profile"]
        w(
            f"\nProfile of one cold run ({p['kind']}; profiled wall {fmt_s(prof['total'])}, "
            f"full index {fmt_s(prof['full'])}; unprofiled {fmt_s(c['total'])})\n"
        )
        w("\nTop 15 cumulative (functions below the event loop; asyncio/runner frames omitted)\n")
        skip = re.compile(
            r"asyncio/|runners\.py|<built-in method builtins.exec>|bench_imap_sync|"
            r"<module>|\(run\)$|\(run_forever\)$|\(_run_once\)$|Context\.run|\(_run\)$|selectors|"
            r"base_events|events\.py:\d+\(_run\)|pyinstrument|\(child_cold\)|\(main\)|<thread>|_contextvars"
        )
        crow = []
        for ct, tt, nc, where in p["cumulative"]:
            if skip.search(where):
                continue
            crow.append([fmt_s(ct), f"{100 * ct / p['total']:.0f}%", fmt_s(tt),
                         f"{nc:,}" if nc else "", where[:110]])  # fmt: skip
            if len(crow) == 15:
                break
        w(table(["cumulative", "%", "self", "calls", "function"], crow, "rrrrl"))
        w("\n\nTop 15 self time\n")
        srow = [[fmt_s(tt), f"{100 * tt / p['total']:.0f}%", f"{nc:,}" if nc else "", where[:110]]
                for ct, tt, nc, where in p["self"]]  # fmt: skip
        w(table(["self", "%", "calls", "function"], srow, "rrrl"))
        w("\n\nSelf time by layer\n")
        lrow = [[name, fmt_s(t), f"{100 * t / p['total']:.0f}%"] for name, t in p["layers"]]
        w(table(["layer", "self", "%"], lrow, "lrr"))
        w("\n")
    return out.getvalue()


# =========================================================================================
# Main
# =========================================================================================


def dovecot_version() -> str:
    exe = shutil.which("dovecot", path="/usr/sbin:/usr/bin:/sbin:/bin")
    if exe is None:
        return "?"
    return subprocess.run([exe, "--version"], capture_output=True, text=True).stdout.split()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000, help="INBOX size (default 100000)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--batch", type=int, default=None, help="Tuning.batch (default: engine's)")
    parser.add_argument("--first-window", type=int, default=None, help="Tuning.first_window")
    parser.add_argument("--warm-runs", type=int, default=3)
    parser.add_argument("--reps", type=int, default=10, help="live latency repetitions")
    parser.add_argument(
        "--profiler",
        choices=["auto", "pyinstrument", "cprofile", "none"],
        default="auto",
        help="profile one extra cold run (auto: pyinstrument if installed, else cProfile)",
    )
    parser.add_argument("--no-live", action="store_true", help="skip the live latency part")
    parser.add_argument("--json", type=Path, help="also write every raw figure here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        params = json.loads(sys.stdin.readline())
        result = CHILDREN[args.child](params)
        if result is not None:
            print("RESULT " + json.dumps(result), flush=True)
        return

    from harness import Dovecot, ServerRoot, make_test_ca

    from kittiwake.core.imap.account import Tuning
    from kittiwake.core.imap.client import SUMMARY_ITEMS

    defaults = Tuning()
    args.batch = args.batch or defaults.batch
    args.first_window = args.first_window or defaults.first_window
    if args.profiler == "auto":
        try:
            import pyinstrument  # noqa: F401

            args.profiler = "pyinstrument"
        except ImportError:
            args.profiler = "cprofile"
    kw_items = SUMMARY_ITEMS + " MODSEQ"  # what ImapClient asks once CONDSTORE/QRESYNC is on

    n = args.messages
    started = now()
    root = ServerRoot()
    dovecot = None
    try:
        ca = make_test_ca(root.instance_dir("ca"))
        dovecot = Dovecot(root.instance_dir("dovecot"), ca)
        dovecot.start()
        user = dovecot.add_user("bench")
        work = root.instance_dir("bench")
        base = {
            "host": dovecot.host,
            "port": dovecot.ports.imaps,
            "ca_file": str(dovecot.ca_file),
            "login": user.login,
            "password": user.password,
            "messages": n,
            "seed": args.seed,
            "batch": args.batch,
            "first_window": args.first_window,
        }
        res: dict[str, Any] = {"dovecot_version": dovecot_version(), "messages": n}

        log(f"filling INBOX with {n:,} messages")
        res["fill"] = fill_maildir(dovecot, user, n, args.seed)
        log(f"  {res['fill']['bytes'] / 1e6:,.0f} MB in {res['fill']['seconds']:.1f} s; "
            "letting Dovecot scan the Maildir")  # fmt: skip
        res["fill"].update(verify_fill(dovecot, user, n))

        log("Dovecot indexing pass (full FETCH of Kittiwake's items)")
        res["index_pass"] = run_child(
            "plain", {**base, "items": kw_items, "raw": True, "read_write": True}
        )
        log(f"  {res['index_pass']['total']:.1f} s")

        res["baseline"] = {}
        for key, items, raw in (
            ("env_imaplib", ENVELOPE_ITEMS, False),
            ("kw_imaplib", kw_items, False),
        ):
            runs = []
            for i in range(2):
                r = run_child("plain", {**base, "items": items, "raw": raw})
                log(f"baseline {key} run {i + 1}: {r['total']:.2f} s, {fmt_b(r['bytes'])}, "
                    f"{r['count']:,} responses, RSS {r['rss']:.0f} MB")  # fmt: skip
                runs.append(r)
            res["baseline"][key] = runs
        for key, items in (("env_raw", ENVELOPE_ITEMS), ("kw_raw", kw_items)):
            r = run_child("plain", {**base, "items": items, "raw": True})
            log(f"wire ceiling {key}: {r['total']:.2f} s, {fmt_b(r['bytes'])}")
            res["baseline"][key] = r

        cold_cache = str(work / "cold.sqlite3")
        log("Kittiwake cold sync")
        res["cold"] = run_child("cold", {**base, "cache": cold_cache})
        c = res["cold"]
        log(f"  first screenful {fmt_s(c['first'])}, full index {fmt_s(c['full'])}, "
            f"total {fmt_s(c['total'])}, {fmt_b(c['bytes'])}, RSS {c['rss']:.0f} MB")  # fmt: skip

        res["warm"] = []
        for i in range(args.warm_runs):
            r = run_child("warm", {**base, "cache": cold_cache})
            log(f"warm restart {i + 1}: {fmt_s(r['total'])} (login {fmt_s(r['login'])}), "
                f"sync bytes {fmt_b(r['sync_bytes'])}, fetched {r['fetched']}")  # fmt: skip
            res["warm"].append(r)

        if args.profiler != "none":
            log(f"profiled cold sync ({args.profiler})")
            prof_cache = str(work / "profiled.sqlite3")
            res["profile"] = run_child(
                "cold", {**base, "cache": prof_cache, "profiler": args.profiler}
            )
            Path(prof_cache).unlink(missing_ok=True)
            log(f"  {fmt_s(res['profile']['total'])} under the profiler")

        if not args.no_live:
            log(f"live latency ({args.reps} flag changes, {args.reps} appends)")
            res["live"] = run_child("live", {**base, "cache": cold_cache, "reps": args.reps})

        text = report(res, args)
        print(text)
        print(f"(benchmark wall time {now() - started:.0f} s)")
        if args.json:
            args.json.write_text(json.dumps(res, indent=1))
    finally:
        if dovecot is not None:
            dovecot.close()
        root.cleanup()


if __name__ == "__main__":
    main()
