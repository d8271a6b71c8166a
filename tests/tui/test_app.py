"""The app as a user drives it, against the real Dovecot: navigation, reading, live updates."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from harness import Dovecot, User
from harness.clients import imap_device
from harness.ui import message, synced, until
from textual.widgets import Input, Static

from kittiwake.core.config import Config
from kittiwake.core.events import MessagesAdded
from kittiwake.core.models import Address, Envelope, MessageSummary
from kittiwake.tui.app import KittiwakeApp
from kittiwake.tui.screens.compose import PathPrompt
from kittiwake.tui.screens.confirm import Confirm
from kittiwake.tui.screens.help import HelpScreen
from kittiwake.tui.screens.mailbox import MailboxScreen
from kittiwake.tui.screens.reader import ReaderScreen
from kittiwake.tui.widgets.message_list import MessageList


def list_of(app: KittiwakeApp) -> MessageList:
    mailbox = next(s for s in app.screen_stack if isinstance(s, MailboxScreen))
    return mailbox.query_one(MessageList)


def row_text(app: KittiwakeApp, row: int) -> str:
    """What the list shows on screen line ``row`` (relative to its scroll position)."""
    return list_of(app).render_line(row).text


async def test_list_navigation_and_reader(xdg: Path, mailbox: Callable[..., Config]) -> None:
    app = KittiwakeApp(mailbox(60))
    async with app.run_test(size=(100, 30)) as pilot:
        await synced(app)
        messages = list_of(app)
        await until(pilot, lambda: len(messages.index) == 60)
        assert "Message 60" in row_text(app, 0)
        assert row_text(app, 0).startswith("N")  # unread marker
        await pilot.press("j", "j")
        assert messages.cursor == 2
        await pilot.press("G")
        assert (
            messages.cursor == 59
            and "Message 1 " in row_text(app, messages.cursor - messages.scroll_offset.y) + " "
        )
        await pilot.press("g")
        assert messages.cursor == 0
        await pilot.press("pagedown")
        assert messages.cursor > 10
        await pilot.press("g", "j", "enter")
        await until(
            pilot, lambda: isinstance(app.screen, ReaderScreen) and app.screen.parsed is not None
        )
        reader = app.screen
        assert isinstance(reader, ReaderScreen)
        body = str(reader.query_one("#body").render())
        assert "this is message 59." in body
        assert "https://example.org/m/59[1]" in body
        headers = str(reader.query_one("#headers").render())
        assert "Subject: Message 59" in headers and "From: Zoë Martin <zoe@example.fr>" in headers
        await pilot.press("H")
        await until(
            pilot,
            lambda: "Message-ID: <tui59@example.org>" in str(reader.query_one("#headers").render()),
        )
        await pilot.press("V")
        await until(
            pilot, lambda: "Content-Type: text/plain" in str(reader.query_one("#body").render())
        )
        await pilot.press("J")
        await until(
            pilot, lambda: reader.parsed is not None and reader.parsed.subject == "Message 58"
        )
        assert messages.cursor == 2
        await pilot.press("escape")
        assert isinstance(app.screen, MailboxScreen)
        await pilot.press("q")
    assert app.return_code == 0 or app.return_code is None


async def test_opening_marks_read_on_the_server(
    xdg: Path, mailbox: Callable[..., Config], dovecot: Dovecot, user: User
) -> None:
    app = KittiwakeApp(mailbox(10))
    async with app.run_test(size=(100, 30)) as pilot:
        await synced(app)
        await until(pilot, lambda: len(list_of(app).index) == 10)
        await pilot.press("enter")  # message 10, unread
        await until(pilot, lambda: not row_text(app, 0).startswith("N"))
    device = imap_device(dovecot, user)
    device.select("INBOX", readonly=True)
    _, data = device.uid("FETCH", "10", "(FLAGS)")
    assert b"\\Seen" in data[0]


async def test_attachment_is_saved_without_overwriting(
    xdg: Path, mailbox: Callable[..., Config]
) -> None:
    app = KittiwakeApp(mailbox(10))
    async with app.run_test(size=(100, 30)) as pilot:
        await synced(app)
        await until(pilot, lambda: len(list_of(app).index) == 10)
        await pilot.press("enter")  # message 10 has report.pdf
        await until(
            pilot, lambda: isinstance(app.screen, ReaderScreen) and app.screen.parsed is not None
        )
        assert "report.pdf" in str(app.screen.query_one("#attachments").render())
        downloads = xdg / "downloads"
        # S asks where, offering a free name in the download directory; enter takes it.
        await pilot.press("S")
        await until(pilot, lambda: isinstance(app.screen, PathPrompt))
        assert app.screen.query_one(Input).value == str(downloads / "report.pdf")
        await pilot.press("enter")
        await until(pilot, lambda: (downloads / "report.pdf").exists())
        await pilot.press("S")
        await until(pilot, lambda: isinstance(app.screen, PathPrompt))
        assert app.screen.query_one(Input).value == str(downloads / "report (1).pdf")
        await pilot.press("enter")
        await until(pilot, lambda: len(list(downloads.glob("report*.pdf"))) == 2)
        assert sorted(p.name for p in downloads.iterdir()) == ["report (1).pdf", "report.pdf"]
        assert (downloads / "report.pdf").read_bytes() == b"%PDF-1.4 test"
        # A name of the user's own, and never over an existing file.
        await pilot.press("S")
        await until(pilot, lambda: isinstance(app.screen, PathPrompt))
        app.screen.query_one(Input).value = str(xdg / "mine.pdf")
        await pilot.press("enter")
        await until(pilot, lambda: (xdg / "mine.pdf").exists())
        await pilot.press("S")
        await until(pilot, lambda: isinstance(app.screen, PathPrompt))
        app.screen.query_one(Input).value = str(xdg / "mine.pdf")
        await pilot.press("enter")
        await until(pilot, lambda: any("exists already" in n.message for n in app._notifications))
        assert (xdg / "mine.pdf").read_bytes() == b"%PDF-1.4 test"
        # A relative name is taken from the download directory, not from where the app runs.
        await pilot.press("S")
        await until(pilot, lambda: isinstance(app.screen, PathPrompt))
        app.screen.query_one(Input).value = "sub/relative.pdf"
        await pilot.press("enter")
        await until(pilot, lambda: (downloads / "sub" / "relative.pdf").exists())
        assert not Path("sub/relative.pdf").exists()


async def test_folders_sidebar_and_picker(xdg: Path, mailbox: Callable[..., Config]) -> None:
    app = KittiwakeApp(mailbox(5))
    async with app.run_test(size=(80, 24)) as pilot:
        await synced(app)
        screen = app.screen
        assert isinstance(screen, MailboxScreen)
        assert screen.has_class("-narrow")  # the sidebar folds away under 100 columns
        assert not screen.query_one("#folders").display
        await pilot.press("b")
        assert screen.query_one("#folders").display
        await pilot.press("b")
        await pilot.press("o")
        await pilot.press(*"work", "enter")
        await until(pilot, lambda: screen.folder == "Work" and len(list_of(app).index) == 1)
        assert "Work item" in row_text(app, 0)
        await pilot.press("J")
        assert screen.folder != "Work"
        await pilot.press("K")
        assert screen.folder == "Work"


async def test_help_lists_every_binding_of_the_screen(
    xdg: Path, mailbox: Callable[..., Config]
) -> None:
    app = KittiwakeApp(mailbox(3))
    async with app.run_test(size=(100, 30)) as pilot:
        await synced(app)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        ids = {row[2] for row in app.screen.rows}
        assert {
            "list.next",
            "list.open",
            "mailbox.go_folder",
            "mailbox.toggle_sidebar",
            "app.quit",
        } <= ids
        await pilot.press("escape")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ReaderScreen))
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        ids = {row[2] for row in app.screen.rows}
        assert {
            "reader.next",
            "reader.headers",
            "reader.save",
            "reader.source",
            "reader.back",
        } <= ids


async def test_user_keymap_overrides(xdg: Path, mailbox: Callable[..., Config]) -> None:
    config = mailbox(5, keys={"list.next": "n", "list.nxet": "x"})
    app = KittiwakeApp(config)
    async with app.run_test(size=(100, 30)) as pilot:
        await synced(app)
        await until(pilot, lambda: len(list_of(app).index) == 5)
        await pilot.press("n")
        assert list_of(app).cursor == 1
        assert any("keys.list.nxet: no such action" in w for w in app.startup_warnings)


async def test_another_device_changes_show_live(
    xdg: Path, mailbox: Callable[..., Config], dovecot: Dovecot, user: User
) -> None:
    app = KittiwakeApp(mailbox(8))
    async with app.run_test(size=(100, 30)) as pilot:
        await synced(app)
        messages = list_of(app)
        await until(pilot, lambda: len(messages.index) == 8)
        await pilot.press("j", "j")  # on message 6
        assert "Message 6" in row_text(app, 2)
        device = imap_device(dovecot, user)
        device.select("INBOX")
        device.uid("STORE", "6", "+FLAGS", "(\\Flagged)")
        await until(pilot, lambda: row_text(app, 2)[1] == "!", timeout=1.5)
        device.append("INBOX", "", None, message(100, "Breaking news", day=300))
        await until(pilot, lambda: len(messages.index) == 9, timeout=1.5)
        assert messages.current_uid == 6  # the cursor stays on the same message
        device.uid("STORE", "6", "+FLAGS", "(\\Deleted)")
        device.expunge()
        await until(pilot, lambda: len(messages.index) == 8, timeout=1.5)
        assert messages.current_uid is not None and messages.current_uid != 6


async def test_hostile_subjects_are_shown_literally(
    xdg: Path, mailbox: Callable[..., Config]
) -> None:
    evil = (
        b"From: =?utf-8?q?Evil=1B]0;pwned=07?= <evil@example.org>\r\n"
        b"Subject: [bold red]hi[/] \x1b[31mred\x1b[0m \xe2\x80\xaereversed\r\n"
        b"Date: 27 Mar 2025 10:00:00 +0000\r\n\r\nbody \x1b[2J here\r\n"
    )
    app = KittiwakeApp(mailbox(2, extra=[evil]))
    async with app.run_test(size=(120, 30)) as pilot:
        await synced(app)
        await until(pilot, lambda: len(list_of(app).index) == 3)
        line = row_text(app, 0)
        assert "[bold red]hi[/]" in line and "red" in line
        assert "\x1b" not in line and "\u202e" not in line
        await pilot.press("enter")
        await until(
            pilot, lambda: isinstance(app.screen, ReaderScreen) and app.screen.parsed is not None
        )
        body = str(app.screen.query_one("#body").render())
        assert "\x1b" not in body and "body  here" in body
        headers = str(app.screen.query_one("#headers").render())
        assert "[bold red]hi[/]" in headers and "\x1b" not in headers and "\x07" not in headers


async def test_new_mail_notifies_and_rings_the_bell(
    xdg: Path, mailbox: Callable[..., Config], dovecot: Dovecot, user: User
) -> None:
    app = KittiwakeApp(mailbox(3, ui={"bell": True}))
    bells: list[bool] = []
    app.bell = lambda: bells.append(True)  # type: ignore[method-assign]
    async with app.run_test(size=(100, 30)) as pilot:
        await synced(app)
        assert not app._notifications  # the first sync is not "new mail"
        # Which folders are inboxes is read without counting every folder's messages
        # (milliseconds at 100,000, on new mail's way to the screen).
        counted: list[str] = []
        folders = app.api.folders
        app.api.folders = lambda account: counted.append(account) or folders(account)  # type: ignore[method-assign]
        device = imap_device(dovecot, user)
        device.append("INBOX", "", None, message(77, "Fresh: tickets", day=400))
        await until(pilot, lambda: len(app._notifications) == 1, timeout=2)
        note = next(iter(app._notifications))
        assert note.title == "New mail" and "Fresh: tickets" in note.message
        assert bells == [True]
        assert counted == []
        app.api.folders = folders  # type: ignore[method-assign]
        # Moving a read message out and back (undo) is not new mail.
        app._notifications.clear()
        imap = app.api.engine.imap["mine"]
        await pilot.press("G", "e")
        await imap.flush_actions()
        await pilot.press("z")
        await imap.flush_actions()
        await until(pilot, lambda: len(list_of(app).index) == 4, timeout=3)
        assert not app._fresh_mail  # nothing waiting to be announced either
        assert not any(n.title == "New mail" for n in app._notifications)
        assert bells == [True]
        # A burst (a POP3 download, a sync catching up) is one notice, naming the newest.
        now = datetime.now(UTC)
        for n, subject in enumerate(["Older one", "Newest one"]):
            summary = MessageSummary(
                uid=900 + n,
                flags=frozenset(),
                internal_date=now + timedelta(seconds=n),
                size=10,
                envelope=Envelope(subject=subject, from_=(Address("Ann", "ann@example.org"),)),
            )
            app.new_mail(MessagesAdded("mine", "INBOX", (summary,)))
        await until(pilot, lambda: any(n.title == "New mail" for n in app._notifications))
        [note] = [n for n in app._notifications if n.title == "New mail"]
        assert "Newest one (+1 more)" in note.message


async def test_html_only_mail_reads_as_text(xdg: Path, mailbox: Callable[..., Config]) -> None:
    html = (
        b"From: News <news@example.org>\r\nSubject: Newsletter\r\n"
        b"Date: Sat, 01 Mar 2025 00:00:00 +0000\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        b'<div style="display:none">preheader</div><h1>Big news</h1>'
        b'<p>Read <a href="https://news.example/a">the article</a>.</p>'
        b"<ul><li>first</li><li>second</li></ul>\r\n"
    )
    app = KittiwakeApp(mailbox(1, extra=[html]))
    async with app.run_test(size=(100, 30)) as pilot:
        await synced(app)
        await until(pilot, lambda: len(list_of(app).index) == 2)
        await pilot.press("G", "enter")
        await until(
            pilot, lambda: isinstance(app.screen, ReaderScreen) and app.screen.parsed is not None
        )
        body = str(app.screen.query_one("#body").render())
        assert "Big news" in body and "the article[1]" in body and "* first" in body
        assert "preheader" not in body and "<p>" not in body
        assert "[1] https://news.example/a" in body


async def test_offline_status_names_the_reason_and_the_retry(
    xdg: Path, mailbox: Callable[..., Config], dovecot: Dovecot, user: User
) -> None:
    from harness.ui import app_config

    config = mailbox(2)
    cfg = app_config(dovecot, user)
    imap = cfg.accounts["mine"].imap
    assert imap is not None
    import msgspec

    broken = msgspec.structs.replace(imap, port=1)
    from dataclasses import replace

    config = replace(config, accounts={"mine": replace(config.accounts["mine"], imap=broken)})
    app = KittiwakeApp(config)
    async with app.run_test(size=(100, 30)) as pilot:
        status = app.screen.query_one("#status")
        await until(pilot, lambda: "offline" in str(status.render()), timeout=5)
        text = str(status.render())
        assert f"{dovecot.host}:1" in text and "retry in" in text
        assert "\n" not in text
        # The retry time comes before the (long) reason, so a narrow screen still shows it.
        assert text.index("retry in") < text.index(f"{dovecot.host}:1")


async def test_command_palette_goes_to_a_folder(xdg: Path, mailbox: Callable[..., Config]) -> None:
    app = KittiwakeApp(mailbox(2))
    async with app.run_test(size=(100, 30)) as pilot:
        await synced(app)
        await pilot.press("ctrl+p")
        await pilot.press(*"go to mine/work")
        from textual.command import CommandList

        def offered() -> bool:
            lists = app.screen.query(CommandList)
            if not lists:
                return False
            options = lists.first()
            return options.option_count > 0 and "Work" in str(options.get_option_at_index(0).prompt)

        await until(pilot, offered)
        await pilot.press("enter")
        await until(
            pilot, lambda: isinstance(app.screen, MailboxScreen) and app.screen.folder == "Work"
        )


async def test_triage_keys_on_one_and_on_a_selection(
    xdg: Path, mailbox: Callable[..., Config], dovecot: Dovecot, user: User
) -> None:
    from harness.clients import imap_fetch_all

    app = KittiwakeApp(mailbox(10))
    async with app.run_test(size=(100, 30)) as pilot:
        await synced(app)
        messages = list_of(app)
        imap = app.api.engine.imap["mine"]
        await until(pilot, lambda: len(messages.index) == 10)
        await pilot.press("s")  # flag message 10: on screen at once
        assert row_text(app, 0)[1] == "!"
        await imap.flush_actions()
        device = imap_device(dovecot, user)
        device.select("INBOX", readonly=True)
        assert b"\\Flagged" in device.uid("FETCH", "10", "(FLAGS)")[1][0]
        await pilot.press("s")  # and unflag
        assert row_text(app, 0)[1] == " "
        # Select three and archive them.
        await pilot.press("x", "x", "x")
        assert messages.selected == {10, 9, 8} and row_text(app, 0)[0] == "*"
        await pilot.press("e")
        await until(pilot, lambda: len(messages.index) == 7)
        assert messages.selected == set()
        await imap.flush_actions()
        assert len(imap_fetch_all(device, "Archive")) == 3
        await pilot.press("z")  # undo: back in INBOX on the server
        await imap.flush_actions()
        await until(pilot, lambda: len(imap_fetch_all(device, "INBOX")) == 10)
        assert len(imap_fetch_all(device, "Archive")) == 0
        # Move one with the picker, creating a new folder on the way.
        await until(pilot, lambda: len(messages.index) == 10)
        await pilot.press("g", "m", *"Receipts", "enter")
        await until(pilot, lambda: any(f.name == "Receipts" for f in app.api.folders("mine")))
        await imap.flush_actions()
        await until(pilot, lambda: len(imap_fetch_all(device, "Receipts")) == 1)
        # Delete goes to Trash; in Trash it asks, then deletes for good.
        await pilot.press("d")
        await imap.flush_actions()
        assert len(imap_fetch_all(device, "Trash")) == 1
        screen = app.screen
        assert isinstance(screen, MailboxScreen)
        screen.show_folder("mine", "Trash")
        await until(pilot, lambda: len(messages.index) == 1)
        await pilot.press("d")
        await until(pilot, lambda: app.screen.__class__.__name__ == "Confirm")
        await pilot.press("y")
        await imap.flush_actions()
        assert len(imap_fetch_all(device, "Trash")) == 0


async def test_delete_from_the_reader_shows_the_next_message(
    xdg: Path, mailbox: Callable[..., Config]
) -> None:
    app = KittiwakeApp(mailbox(5))
    async with app.run_test(size=(100, 30)) as pilot:
        await synced(app)
        await until(pilot, lambda: len(list_of(app).index) == 5)
        await pilot.press("enter")
        await until(
            pilot, lambda: isinstance(app.screen, ReaderScreen) and app.screen.parsed is not None
        )
        reader = app.screen
        assert isinstance(reader, ReaderScreen) and reader.uid == 5
        await pilot.press("d")
        await until(
            pilot, lambda: reader.parsed is not None and reader.parsed.subject == "Message 4"
        )
        await until(pilot, lambda: 5 not in list_of(app).index)
        await pilot.press("s")
        await until(pilot, lambda: row_text(app, 0)[1] == "!")


async def test_folder_management(
    xdg: Path, mailbox: Callable[..., Config], dovecot: Dovecot, user: User
) -> None:
    app = KittiwakeApp(mailbox(2))
    async with app.run_test(size=(100, 30)) as pilot:
        await synced(app)
        screen = app.screen
        assert isinstance(screen, MailboxScreen)
        screen.action_create_folder()
        await pilot.press(*"Projects", "enter")
        await until(pilot, lambda: any(f.name == "Projects" for f in app.api.folders("mine")))
        screen.show_folder("mine", "Work")
        screen.action_rename_folder()
        await pilot.press("ctrl+u", *"Jobs", "enter")
        await until(pilot, lambda: screen.folder == "Jobs")
        names = {f.name for f in app.api.folders("mine")}
        assert "Jobs" in names and "Work" not in names
        screen.action_delete_folder()
        await until(pilot, lambda: app.screen.__class__.__name__ == "Confirm")
        assert "1 message" in str(app.screen.question)
        await pilot.press("y")
        await until(pilot, lambda: "Jobs" not in {f.name for f in app.api.folders("mine")})
        screen.show_folder("mine", "INBOX")
        screen.action_delete_folder()  # special folders are refused
        assert isinstance(app.screen, MailboxScreen)
    device = imap_device(dovecot, user)
    listed = b" ".join(device.list()[1])
    assert b"Projects" in listed and b"Jobs" not in listed and b"Work" not in listed


async def test_select_thread_then_archive_it(xdg: Path, mailbox: Callable[..., Config]) -> None:
    reply = (
        b"From: Me <me@example.test>\r\nSubject: Re: Message 3\r\n"
        b"Message-ID: <reply3@example.test>\r\nIn-Reply-To: <tui3@example.org>\r\n"
        b"References: <tui3@example.org>\r\nDate: Sat, 01 Mar 2025 02:30:00 +0000\r\n\r\nyes\r\n"
    )
    app = KittiwakeApp(mailbox(6, extra=[reply]))
    async with app.run_test(size=(100, 30)) as pilot:
        await synced(app)
        messages = list_of(app)
        await until(pilot, lambda: len(messages.index) == 7)
        messages.cursor = messages.index.index(3)
        await pilot.press("X")
        assert messages.selected == {3, 7}
        await pilot.press("e")
        await until(pilot, lambda: len(messages.index) == 5)
        assert 3 not in messages.index and 7 not in messages.index


async def test_a_confirmation_shows_its_question(xdg: Path, mailbox: Callable[..., Config]) -> None:
    """The box once collapsed to nothing (auto width around fractional children): the user
    answered a question they could not see."""
    question = (
        "Delete the folder Projects/2026/Quarterly planning and the 1,234 messages in it?"
        " This cannot be undone."
    )
    app = KittiwakeApp(mailbox(2))
    answers: list[bool | None] = []
    async with app.run_test(size=(80, 24)) as pilot:
        await synced(app)
        app.push_screen(Confirm(question), answers.append)
        await until(
            pilot, lambda: isinstance(app.screen, Confirm) and bool(app.screen.query(Static))
        )
        shown = app.screen.query(Static).first()
        await until(pilot, lambda: shown.size.width > 40)
        assert question in str(shown.render())
        assert shown.size.height >= 2  # wrapped, none of it cut off at the box's edge
        # Enter is no answer (it opens messages: a double press must not destroy one), so the
        # first answer is the "n" that follows it.
        await pilot.press("enter", "n")
        await until(pilot, lambda: bool(answers))
        assert answers == [False]
