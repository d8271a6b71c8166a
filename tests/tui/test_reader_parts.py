"""What the reader shows of a message's parts, against the real Dovecot: every inline text
part in order, the first of 10,000 attachments listed at once and every one offered by S,
and part types from the mail sanitised like every other string from mail."""

from __future__ import annotations

from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

from harness.ui import screen_text, synced, until
from textual.widgets import Input, OptionList

from kittiwake.core.config import Config
from kittiwake.core.message.mime import MAX_PARTS_READ, PART_SEPARATOR
from kittiwake.tui.app import KittiwakeApp
from kittiwake.tui.screens.attachment_picker import AttachmentPicker
from kittiwake.tui.screens.compose import PathPrompt
from kittiwake.tui.screens.mailbox import MailboxScreen
from kittiwake.tui.screens.reader import ReaderScreen
from kittiwake.tui.widgets.message_list import MessageList


def three_inline_texts() -> bytes:
    msg = EmailMessage()
    msg["From"] = "Ann <ann@example.org>"
    msg["Subject"] = "Three parts"
    msg["Message-ID"] = "<three@example.org>"
    msg.make_mixed()
    for n, word in enumerate(("first", "second", "third"), 1):
        part = EmailMessage()
        part.set_content(f"The {word} part.\n")
        part["Content-Disposition"] = "inline"
        msg.attach(part)
        assert len(msg.get_payload()) == n
    return msg.as_bytes()


def many_attachments(count: int) -> bytes:
    lines = [
        b"From: Ann <ann@example.org>",
        b"Subject: Many attachments",
        b"Message-ID: <many@example.org>",
        b"MIME-Version: 1.0",
        b'Content-Type: multipart/mixed; boundary="B"',
        b"",
        b"--B",
        b"Content-Type: text/plain",
        b"",
        b"See the attached files.",
    ]
    for n in range(1, count + 1):
        lines += [
            b"--B",
            b"Content-Type: application/octet-stream",
            b'Content-Disposition: attachment; filename="file%05d.bin"' % n,
            b"",
            b"x",
        ]
    lines.append(b"--B--")
    return b"\r\n".join(lines) + b"\r\n"


def hostile_types() -> bytes:
    return (
        b"From: Ann <ann@example.org>\r\nSubject: Hostile types\r\n"
        b"Message-ID: <types@example.org>\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="B"\r\n\r\n'
        b"--B\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
        b"--B\r\nContent-Type: application/x-\x1b[31mred\x1b]8;;http://evil\x07; name=a.bin\r\n"
        b"Content-Disposition: attachment; filename=a.bin\r\n\r\ndata\r\n"
        b"--B\r\nContent-Type: application/\xe2\x80\xaeexe.fdp\r\n"
        b"Content-Disposition: attachment; filename=b.bin\r\n\r\ndata\r\n--B--\r\n"
    )


async def open_newest(app: KittiwakeApp, pilot: object, count: int) -> ReaderScreen:
    await synced(app)
    screen = app.screen
    assert isinstance(screen, MailboxScreen)
    messages = screen.query_one(MessageList)
    await until(pilot, lambda: len(messages.index) == count)
    await pilot.press("enter")  # type: ignore[attr-defined]
    await until(
        pilot,
        lambda: isinstance(app.screen, ReaderScreen) and app.screen.parsed is not None,
        timeout=30,
    )
    assert isinstance(app.screen, ReaderScreen)
    return app.screen


async def test_every_inline_text_part_shows_in_order(
    xdg: Path, mailbox: Callable[..., Config]
) -> None:
    app = KittiwakeApp(mailbox(1, extra=[three_inline_texts()]))
    async with app.run_test(size=(100, 30)) as pilot:
        reader = await open_newest(app, pilot, 2)
        body = str(reader.query_one("#body").render())
        first, second, third = (body.index(f"The {w} part.") for w in ("first", "second", "third"))
        assert first < second < third
        assert body.count(PART_SEPARATOR.strip()) == 2


async def test_10000_attachments_open_with_the_first_and_every_one_can_be_saved(
    xdg: Path, mailbox: Callable[..., Config]
) -> None:
    """The reader reads the first ``MAX_PARTS_READ`` parts (the text and 199 attachments) and
    says how many are left; S reads the rest and offers every one, the last included."""
    app = KittiwakeApp(mailbox(1, extra=[many_attachments(10_000)]))
    async with app.run_test(size=(100, 30)) as pilot:
        reader = await open_newest(app, pilot, 2)
        await until(pilot, lambda: "file00001.bin" in screen_text(app), timeout=30)
        assert "See the attached files." in screen_text(app)
        assert reader.parsed is not None and len(reader.parsed.listed) == MAX_PARTS_READ - 1
        assert reader.parsed.unread_parts == 10_001 - MAX_PARTS_READ
        await pilot.press("G")
        more = f"and {10_001 - MAX_PARTS_READ:,} more parts: S or v lists every attachment"
        await until(pilot, lambda: more in screen_text(app), timeout=30)
        assert f"[{MAX_PARTS_READ - 1}] file{MAX_PARTS_READ - 1:05d}.bin" in screen_text(app)
        assert "file10000.bin" not in screen_text(app)
        await pilot.press("S")
        await until(pilot, lambda: isinstance(app.screen, AttachmentPicker), timeout=60)
        picker = app.screen
        assert isinstance(picker, AttachmentPicker)
        assert [label.split(" ")[0] for label, _ in picker.items] == [
            f"{n}." for n in range(1, 10_001)
        ]
        assert picker.items[-1][0].startswith("10000. file10000.bin")
        # Chosen once the picker shows its options (dismissing before its mount raced it).
        shown = lambda: any(o.option_count == 10_000 for o in picker.query(OptionList))  # noqa: E731
        await until(pilot, shown, timeout=60)
        picker.dismiss(picker.items[-1][1])
        # The picker lays out 10,000 options first: seconds on a busy machine.
        await until(pilot, lambda: isinstance(app.screen, PathPrompt), timeout=60)
        downloads = xdg / "downloads"
        assert app.screen.query_one(Input).value == str(downloads / "file10000.bin")
        await pilot.press("enter")
        await until(pilot, lambda: (downloads / "file10000.bin").exists(), timeout=30)
        assert (downloads / "file10000.bin").read_bytes() == b"x"
        assert len(reader.parsed.attachments) == 10_000


async def test_part_types_from_the_mail_are_sanitised(
    xdg: Path, mailbox: Callable[..., Config]
) -> None:
    app = KittiwakeApp(mailbox(1, extra=[hostile_types()]))
    async with app.run_test(size=(100, 30)) as pilot:
        reader = await open_newest(app, pilot, 2)
        listed = str(reader.query_one("#attachments").render())
        assert "a.bin" in listed and "b.bin" in listed
        for bad in ("\x1b", "\x07", "\u202e"):
            assert bad not in listed
        await pilot.press("S")
        await until(pilot, lambda: isinstance(app.screen, AttachmentPicker))
        picker = app.screen
        assert isinstance(picker, AttachmentPicker)
        labels = [label for label, _ in picker.items]
        assert len(labels) == 2 and "application/x-" in labels[0]
        for bad in ("\x1b", "\x07", "\u202e"):
            assert not any(bad in label for label in labels)
        assert not any(bad in screen_text(app) for bad in ("\x1b", "\u202e"))
