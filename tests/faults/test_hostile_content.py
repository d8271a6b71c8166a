"""Hostile content end to end: a generated corpus (tests/faults/hostile_mail.py) delivered to
the real Dovecot over LMTP and opened in the real app (Pilot): the list, the reader, the full
headers (H), the source (V) and the attachment list.

Checked on what the terminal is given (the compositor's rendered strips): no control
character, escape, bidi control or line separator, ever; no crash; and nothing in a message
makes Kittiwake connect anywhere (every link and image points at a listener that counts
connections) or start a process (subprocess and the browser are watched). Per-message open
times are written to $KITTIWAKE_HOSTILE_FIGURES (JSON) when set, for
benches/bench_hostile_open.py: the figure, not a timed assertion. KITTIWAKE_HOSTILE_DEEP=1
adds the two 1,000-level nestings (tests/tui covers them).
"""

from __future__ import annotations

import json
import os
import resource
import smtplib
import socket
import subprocess
import threading
import time
import webbrowser
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import Dovecot, User
from harness.common import SERVER_HOST
from harness.ui import app_config, screen_text, synced, until
from hostile_fuzz_targets import DANGEROUS
from hostile_mail import corpus

from kittiwake.core.message import mime
from kittiwake.tui.app import KittiwakeApp
from kittiwake.tui.screens.mailbox import MailboxScreen
from kittiwake.tui.screens.reader import (
    MAX_HEADER_SHOWN,
    MAX_SOURCE_SHOWN,
    ReaderScreen,
)
from kittiwake.tui.widgets.message_list import MessageList


class Trap:
    """A listener every link and image in the corpus points at; it counts connections."""

    def __init__(self) -> None:
        self.sock = socket.create_server((SERVER_HOST, 0))
        self.sock.settimeout(0.2)
        self.address = f"{SERVER_HOST}:{self.sock.getsockname()[1]}"
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


@pytest.fixture
def trap() -> Iterator[Trap]:
    t = Trap()
    yield t
    t.close()


@pytest.fixture
def xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("CACHE", "STATE", "DATA", "CONFIG"):
        monkeypatch.setenv(f"XDG_{name}_HOME", str(tmp_path / name.lower()))
    monkeypatch.setenv("XDG_DOWNLOAD_DIR", str(tmp_path / "downloads"))
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


@pytest.fixture
def launched(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every process start and browser open attempted during the test (refused)."""
    attempts: list[str] = []
    real_popen = subprocess.Popen.__init__

    def popen(self: Any, args: Any, *rest: Any, **kw: Any) -> None:
        attempts.append(f"Popen {args!r}")
        real_popen(self, ["true"], *rest[1:], **{k: v for k, v in kw.items() if k != "shell"})

    def browser(url: str, *_: Any, **__: Any) -> bool:
        attempts.append(f"browser {url}")
        return False

    monkeypatch.setattr(subprocess.Popen, "__init__", popen)
    monkeypatch.setattr(os, "system", lambda cmd: attempts.append(f"system {cmd}") or 0)
    monkeypatch.setattr(webbrowser, "open", browser)
    monkeypatch.setattr(KittiwakeApp, "open_url", lambda self, url, **kw: browser(url))
    return attempts


def deliver(dovecot: Dovecot, user: User, messages: dict[str, bytes]) -> None:
    with smtplib.LMTP(dovecot.host, dovecot.ports.lmtp, timeout=120) as lmtp:
        for name, raw in messages.items():
            refused = lmtp.sendmail("evil@example.org", [user.email], raw)
            assert not refused, name


class Stopwatch:
    """For the figures: each parse (in its worker thread: wall and CPU seconds, by Message-ID)
    and when the reader last finished laying a message out."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.parses: dict[str, tuple[float, float]] = {}
        self.rendered = 0.0
        self.render_time = 0.0
        parse, render = mime.parse_message, ReaderScreen.render_message

        def timed_parse(raw: bytes) -> mime.ParsedMessage:
            wall, cpu = time.perf_counter(), time.thread_time()
            parsed = parse(raw)
            key = parsed.message_id or ""
            self.parses[key] = (time.perf_counter() - wall, time.thread_time() - cpu)
            return parsed

        def timed_render(reader: ReaderScreen, body: str, links: list[str]) -> None:
            started = time.perf_counter()
            render(reader, body, links)
            self.rendered = time.perf_counter()
            self.render_time = self.rendered - started

        monkeypatch.setattr(mime, "parse_message", timed_parse)
        monkeypatch.setattr(ReaderScreen, "render_message", timed_render)


def assert_clean(app: KittiwakeApp, where: str) -> str:
    text = screen_text(app)
    found = DANGEROUS.search(text)
    assert found is None, f"{where}: {found.group()!r} reached the screen: {text[:400]!r}"
    return text


@pytest.mark.timeout(600)  # one pass over the whole corpus: 10,000 attachments, a 1 MiB header
async def test_hostile_corpus_in_list_reader_headers_source_and_attachments(
    xdg: Path,
    dovecot: Dovecot,
    user: User,
    trap: Trap,
    launched: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    watch = Stopwatch(monkeypatch)
    messages = corpus(trap.address, deep=os.environ.get("KITTIWAKE_HOSTILE_DEEP") == "1")
    deliver(dovecot, user, messages)
    app = KittiwakeApp(app_config(dovecot, user))
    figures: dict[str, dict[str, float]] = {}
    times: dict[str, float]
    async with app.run_test(size=(120, 40)) as pilot:
        await synced(app, timeout=120)
        screen = app.screen
        assert isinstance(screen, MailboxScreen)
        listing = screen.query_one(MessageList)
        await until(pilot, lambda: len(listing.index) == len(messages), timeout=60)
        assert_clean(app, "the list")
        # The list, a page at a time, down to the last message and back.
        for _ in range(len(messages) // 20 + 1):
            await pilot.press("pagedown")
            await pilot.pause()
            assert_clean(app, "the list, paged")
        await pilot.press("home")
        await pilot.pause()
        rss_listed = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        await pilot.press("enter")
        seen: set[int] = set()
        for position in range(len(messages)):
            uid = listing.index[position]
            await until(
                pilot,
                lambda uid=uid, started=started: (
                    isinstance(app.screen, ReaderScreen)  # type: ignore[misc]
                    and app.screen.uid == uid
                    and app.screen.parsed is not None
                    and watch.rendered > started
                ),
                timeout=60,
            )
            await pilot.pause()
            # To the reader's widgets updated; "on screen" adds Pilot's polling and a refresh.
            times = {"on screen": time.perf_counter() - started, "open": watch.rendered - started}
            reader = app.screen
            assert isinstance(reader, ReaderScreen) and reader.parsed is not None
            name = reader.parsed.message_id or str(uid)
            wall, cpu = watch.parses.get(reader.parsed.message_id or "", (0.0, 0.0))
            times |= {"parse": wall, "parse cpu": cpu, "render": watch.render_time}
            assert_clean(app, f"reader of {name}")
            attachments = str(reader.query_one("#attachments").render())
            assert DANGEROUS.search(attachments) is None, name
            for key, view, shown in (
                ("H", "headers", lambda r=reader: r.all_headers),
                ("H", "body again", lambda r=reader: not r.all_headers),
                ("V", "source", lambda r=reader: r.source),
                ("end", "end of the source", lambda: True),
                ("V", "body", lambda r=reader: not r.source),
            ):
                started = time.perf_counter()
                await pilot.press(key)
                await until(pilot, shown, timeout=60)
                await pilot.pause()
                times[view] = time.perf_counter() - started
                assert_clean(app, f"{view} of {name}")
                headers = str(reader.query_one("#headers").render())
                assert len(headers) < 100 * MAX_HEADER_SHOWN, f"{len(headers)} in {name}"
                if view == "source" and len(reader.parsed.raw) > MAX_SOURCE_SHOWN:
                    body = str(reader.query_one("#body").render())
                    assert body.endswith("more bytes, not shown."), name
            figures[name] = {k: round(v, 4) for k, v in times.items()}
            seen.add(uid)
            started = time.perf_counter()
            if position + 1 < len(messages):
                await pilot.press("J")
        assert len(seen) == len(messages)
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, MailboxScreen))
        assert_clean(app, "the list, at the end")
    assert app.return_code in (0, None), "the app crashed"
    assert trap.accepted == 0, "a message made Kittiwake connect to the trap"
    assert launched == [], launched
    out = os.environ.get("KITTIWAKE_HOSTILE_FIGURES")
    if out:
        rss = {"listed": rss_listed, "read": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}
        Path(out).write_text(json.dumps({"messages": figures, "peak rss kib": rss}, indent=1))


def test_the_corpus_carries_every_payload_everywhere() -> None:
    """The generator itself: each payload reaches each header and body place, raw and
    encoded, so a screen free of controls means they were neutralised, not missing."""
    messages = corpus("127.0.0.2:9")
    raw = messages["osc0-raw"]
    assert raw.count(b"\x1b]0;pwned title\x07") >= 6  # From, To, Cc, Subject, body, html, ...
    enc = messages["osc0-enc"]
    assert b"=?utf-8?b?" in enc and b"filename*=utf-8''" in enc and b"=1B" in enc
    assert len(messages["1mib-subject"]) > 1 << 20
    assert messages["10k-attachments"].count(b"--q\r\n") == 10_000
    assert len(messages) >= 25
