"""The user's own programs, from every screen that shows mail: ``|`` pipes the messages a key
acts on (the selection, the message under the cursor or shown, a folded conversation) into a
command line, ``[pipe]`` commands have keys of their own, and ``v`` opens an attachment or
the HTML part with another program (``core/external/``).

A command that reads the terminal needs it: the app steps aside (``App.suspend``, as for the
editor) while it runs, and says afterwards how it ended and its last line of output. Its
stdout is a pseudo-terminal relayed to the real one (``core/external/relay.py``), so a pager
pages.
"""

from __future__ import annotations

import asyncio
import atexit
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import App, ComposeResult, SuspendNotSupported
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Input, Static

from kittiwake.core import paths
from kittiwake.core.errors import KittiwakeError
from kittiwake.core.external.opener import PrivateFiles, Viewer, start_beside, viewer_for
from kittiwake.core.sanitize import clean_line
from kittiwake.tui.context import app_context

# The pipe (a pty relay, termios) and mbox streams load when a message is first piped: the
# list screen imports this module for its key bindings, before its first frame.
if TYPE_CHECKING:
    from kittiwake.core.external.pipe import PipeResult
    from kittiwake.core.message.mime import Attachment, ParsedMessage
    from kittiwake.tui.triage import Targets

#: The key of ``|`` and of ``v``, with the ids ``[keys]`` remaps.
PIPE_BINDING = Binding("vertical_line", "pipe", "Pipe to a command", id="tools.pipe", show=False)
OPEN_BINDING = Binding("v", "open_part", "Open with…", id="tools.open", show=False)
EXPORT_BINDING = Binding("E", "export", "Export to a file", id="tools.export", show=False)

#: The files handed to other programs: one private directory for the app's life (removed
#: when the app unmounts, and at exit should it not get that far).
private_files = PrivateFiles()
atexit.register(private_files.clear)


class PipePrompt(ModalScreen[str | None]):
    """The command line to pipe into; up and down walk the history of past ones."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="pipe.cancel"),
        Binding("up", "history(-1)", "Earlier command", id="pipe.earlier", show=False),
        Binding("down", "history(1)", "Later command", id="pipe.later", show=False),
    ]

    DEFAULT_CSS = """
    PipePrompt { align: center middle; }
    PipePrompt > Vertical {
        width: 80%;
        max-width: 90;
        height: auto;
        background: $surface;
        border: tall $accent;
        padding: 0 1;
    }
    """

    def __init__(self, question: str, history: list[str]) -> None:
        super().__init__()
        self.question = question
        self.history = history
        self._at = len(history)

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Text(self.question))
            yield Input(id="command", placeholder="a shell command, e.g. git am -3")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def action_history(self, step: int) -> None:
        if not self.history:
            return
        self._at = max(0, min(len(self.history), self._at + step))
        field = self.query_one(Input)
        field.value = self.history[self._at] if self._at < len(self.history) else ""
        field.cursor_position = len(field.value)

    @on(Input.Submitted, "#command")
    def _submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)


def run_in_terminal(app: App[Any], command: str, data: bytes) -> PipeResult:
    """Run ``command`` on ``data`` with the terminal handed over (its stdout a pty: a pager
    pages); without a terminal to give (tests, the web) it runs all the same, its output
    only remembered.

    Enter is asked for (mutt's wait_key) when the command may have left something to read:
    a line of output once it ended (not the screen of a full-screen program such as
    ``less``, read and put away already; not nothing, as from ``cat > FILE``), or a failure,
    whose words went to stderr, which is not kept."""
    from kittiwake.core.external.pipe import run_pipe

    try:
        with app.suspend():
            out = sys.stdout
            terminal = out.fileno() if out.isatty() else None
            result = run_pipe(command, data, out.buffer, terminal=terminal)
            if result.last_line or result.status != 0:
                out.write(f"\r\n[exit status {result.status}] Press Enter to return. ")
                out.flush()
                sys.stdin.readline()
    except SuspendNotSupported:
        return run_pipe(command, data)
    return result


async def gather_raw(screen: Screen[Any], account: str, aim: list[Targets]) -> list[bytes] | None:
    """The messages of ``aim`` as the server holds them, oldest first; None, said on
    screen, when one of them is gone or cannot be loaded."""
    try:
        pairs = await app_context(screen).api.raw_messages(
            account, [(t.folder, t.uidvalidity, t.uids) for t in aim]
        )
    except Exception as exc:  # gone, offline, refused: one sentence
        why = getattr(exc, "message", None) or type(exc).__name__
        screen.notify(f"Nothing was piped: {clean_line(why)}", severity="error")
        return None
    return [raw for _, raw in pairs]


def pipe_targets(
    screen: Screen[Any], account: str | None, aim: list[Targets], command: str
) -> None:
    """Load the messages, then run ``command`` with them on stdin (one: its exact bytes;
    several: an mbox stream)."""
    if account is None or not aim or not command.strip():
        return

    from kittiwake.core.message.mbox import mbox_stream

    async def run() -> None:
        messages = await gather_raw(screen, account, aim)
        if not messages:
            return
        data = messages[0] if len(messages) == 1 else mbox_stream(messages)
        result = run_in_terminal(screen.app, command, data)
        screen.notify(
            clean_line(result.describe(command)),
            severity="information" if result.status == 0 else "error",
            timeout=8,
        )

    screen.run_worker(run(), group="pipe", exclusive=True)


def ask_pipe(screen: Screen[Any], account: str | None, aim: list[Targets]) -> None:
    if account is None or not aim:
        return
    count = sum(len(t.uids) for t in aim)
    what = "this message" if count == 1 else f"{count:,} messages (as an mbox stream)"
    from kittiwake.core.external.pipe import PipeHistory

    def answered(command: str | None) -> None:
        if command:
            PipeHistory().add(command)
            pipe_targets(screen, account, aim, command)

    screen.app.push_screen(PipePrompt(f"Pipe {what} to:", PipeHistory().load()), answered)


def named_pipe_bindings(screen: Screen[Any]) -> None:
    """The ``[pipe]`` commands that have a key, bound on ``screen`` ahead of its own keys
    (the user chose the key), with ids ``pipe.NAME`` for the help screen."""
    for name, entry in app_context(screen).config.tools.pipe.items():
        if not entry.key:
            continue
        for key in (k.strip() for k in entry.key.split(",") if k.strip()):
            binding = Binding(
                key,
                f"pipe_named({name!r})",
                f"Pipe: {clean_line(entry.command)}",
                show=False,
                id=f"pipe.{name}",
            )
            # Textual's map of a node's bindings: a run-time binding has no other way in.
            bound = screen._bindings.key_to_bindings
            bound[key] = [binding, *bound.get(key, [])]


# -- open with another program ---------------------------------------------------------------


def open_bytes(screen: Screen[Any], name: str | None, content_type: str, data: bytes) -> None:
    """Hand ``data`` to the program for its type; without one (no display: over SSH) it is
    saved in the download directory and its path shown."""
    path = private_files.write(name, data)
    viewer = viewer_for(app_context(screen).config.tools.open, content_type, path)
    if viewer is None:
        private_files.remove(path)
        from kittiwake.tui.screens.reader import unique_path

        directory = paths.download_dir()
        try:
            directory.mkdir(parents=True, exist_ok=True)
            target = unique_path(directory, path.name)
            with open(target, "xb") as fh:
                fh.write(data)
        except OSError as exc:
            screen.notify(f"Could not save it: {exc.strerror or exc}", severity="error")
            return
        screen.notify(
            f"Nothing to open it with here (no [open] entry, no display); saved {target}",
            timeout=10,
        )
        return
    _start(screen, viewer, path)


def _start(screen: Screen[Any], viewer: Viewer, path: Any) -> None:
    try:
        if viewer.terminal:
            try:
                with screen.app.suspend():
                    status = subprocess.run(viewer.argv, check=False).returncode
            except SuspendNotSupported:
                status = subprocess.run(
                    viewer.argv, check=False, stdin=subprocess.DEVNULL, capture_output=True
                ).returncode
            private_files.remove(path)
            if status != 0:
                screen.notify(f"{clean_line(viewer.argv[0])} exited with status {status}")
            return
        start_beside(viewer)
    except OSError as exc:
        private_files.remove(path)
        screen.notify(
            f"Could not start {clean_line(viewer.argv[0])}: {exc.strerror or exc}",
            severity="error",
        )
        return
    screen.notify(f"Opened with {clean_line(viewer.argv[0])}", timeout=3)


def with_every_attachment(
    screen: Screen[Any], parsed: ParsedMessage, then: Callable[[tuple[Attachment, ...]], None]
) -> None:
    """``then`` with every attachment of ``parsed``: at once, or after the parts left unread
    when it opened (thousands of them) are read in a thread, the screen saying so."""
    if parsed.every_part_read:
        then(parsed.attachments)
        return
    screen.notify(f"Reading {parsed.unread_parts:,} more parts…", timeout=3)

    async def read() -> None:
        then(await asyncio.to_thread(lambda: parsed.attachments))

    screen.run_worker(read(), group="attachments", exclusive=True)


def offer_open(screen: Screen[Any], parsed: ParsedMessage | None) -> None:
    """``v``: an attachment, or the HTML part, opened with another program (asking which
    when there are several)."""
    if parsed is not None:
        with_every_attachment(screen, parsed, lambda every: _offer_open(screen, parsed, every))


def _offer_open(
    screen: Screen[Any], parsed: ParsedMessage, attachments: tuple[Attachment, ...]
) -> None:
    choices: list[Attachment | None] = list(attachments)
    if parsed.html is not None:
        choices.append(None)  # the HTML part
    if not choices:
        screen.notify("Nothing to open: no attachment and no HTML part.", severity="warning")
        return

    def chosen(choice: Attachment | None) -> None:
        if choice is None:
            # Decoded already: say so first (a <meta charset> of the mail's own comes later,
            # and a browser takes the first).
            html = b'<meta charset="utf-8">\n' + (parsed.html or "").encode("utf-8", "replace")
            open_bytes(screen, "message.html", "text/html", html)
        else:
            open_bytes(screen, choice.filename, choice.content_type, choice.payload())

    if len(choices) == 1:
        chosen(choices[0])
        return
    from kittiwake.tui.screens.pickers import Picker

    html_choice = "html"  # the picker's answer for the HTML part (None is "cancelled")
    items: list[tuple[str, Attachment | str]] = [
        (f"{a.index}. {clean_line(a.filename)} ({clean_line(a.content_type)})", a)
        for a in attachments
    ]
    if parsed.html is not None:
        items.append(("The message as HTML (text/html)", html_choice))

    def picked(choice: Attachment | str | None) -> None:
        if choice == html_choice:
            chosen(None)
        elif choice is not None and not isinstance(choice, str):
            chosen(choice)

    screen.app.push_screen(Picker("Open which part?", items), picked)


# -- export and import (core/transfer.py) ------------------------------------------------------


def ask_export(screen: Screen[Any], account: str | None, aim: list[Targets]) -> None:
    """Save the messages as one mbox file, or as ``.eml`` files when the answer is a
    directory (ends with ``/`` or exists)."""
    if account is None or not aim:
        return
    from kittiwake.tui.screens.compose import PathPrompt
    from kittiwake.tui.screens.reader import unique_path

    count = sum(len(t.uids) for t in aim)
    default = unique_path(paths.download_dir(), "kittiwake-export.mbox")

    def answered(answer: str | None) -> None:
        if not answer:
            return
        dest = paths.download_dir() / Path(answer).expanduser()
        as_eml = answer.endswith("/") or dest.is_dir()
        api = app_context(screen).api
        named = [(t.folder, t.uidvalidity, t.uids) for t in aim]

        async def run() -> None:
            try:
                said = await api.export_messages(account, named, dest, as_eml=as_eml)
            except KittiwakeError as exc:
                screen.notify(clean_line(exc.message), severity="error")
                return
            screen.notify(clean_line(said), timeout=6)

        screen.run_worker(run(), group="export")

    what = "this message" if count == 1 else f"{count:,} messages"
    question = f"Export {what} to an mbox file (a directory ending in / for .eml files):"
    screen.app.push_screen(PathPrompt(question, str(default)), answered)


def ask_import(screen: Screen[Any], account: str | None, folder: str | None) -> None:
    """An mbox file or a Maildir into ``folder``, each message once."""
    if account is None or folder is None:
        return
    from kittiwake.tui.screens.compose import PathPrompt

    def answered(answer: str | None) -> None:
        if not answer:
            return
        source = Path(answer).expanduser()
        api = app_context(screen).api

        def progress(done: int, total: int) -> None:
            if done % 100 == 0 and done < total:
                screen.notify(f"Importing: {done:,} of {total:,}", timeout=2)

        async def run() -> None:
            screen.notify(f"Importing {clean_line(str(source))}…", timeout=2)
            try:
                result = await api.import_messages(account, folder, source, progress)
            except KittiwakeError as exc:
                screen.notify(clean_line(exc.message), severity="error")
                return
            screen.notify(clean_line(result.describe(folder)), timeout=6)

        screen.run_worker(run(), group="import", exclusive=True)

    ask = PathPrompt(f"Import into {clean_line(folder)} (an mbox file or a Maildir):", "")
    screen.app.push_screen(ask, answered)
