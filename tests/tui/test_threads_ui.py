"""``t`` as a user drives it, against the real Dovecot: conversations drawn as trees with
the user's reply from Sent in place, unread counts, folding, triage on a folded thread, and
the thread reader (read messages folded, n/p)."""

from __future__ import annotations

from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

from harness import Dovecot, User
from harness.clients import imap_device
from harness.ui import synced, until

from kittiwake.core.api import Hit
from kittiwake.core.config import Config
from kittiwake.core.models import FLAGGED, SEEN
from kittiwake.tui.app import KittiwakeApp
from kittiwake.tui.screens.mailbox import MailboxScreen
from kittiwake.tui.screens.thread_reader import ThreadMessage, ThreadReaderScreen
from kittiwake.tui.screens.thread_view import ConversationsScreen
from kittiwake.tui.widgets.message_list import MessageList
from kittiwake.tui.widgets.thread_list import ThreadList


def mail(mid: str, subject: str, day: int, parent: str | None = None, refs: str = "") -> bytes:
    msg = EmailMessage()
    msg["From"] = "Bob Ray <bob@example.net>" if parent else "Ann Lee <ann@example.org>"
    msg["To"] = "Me <me@example.test>"
    msg["Subject"] = subject
    msg["Date"] = f"{day:02d} Jun 2025 10:00:00 +0000"
    msg["Message-ID"] = f"<{mid}@t>"
    if parent:
        msg["In-Reply-To"] = f"<{parent}@t>"
        msg["References"] = refs or f"<{parent}@t>"
    msg.set_content(f"Text of {mid}.\n")
    return msg.as_bytes()


async def test_threads_tree_fold_triage_and_reader(
    xdg: Path, mailbox: Callable[..., Config], dovecot: Dovecot, user: User
) -> None:
    config = mailbox(
        5,
        extra=[
            mail("p1", "Picnic", 2),
            mail("p3", "Re: Picnic", 4, "p2", "<p1@t> <p2@t>"),
            mail("p4", "Re: Picnic", 5, "p1"),
        ],
    )
    device = imap_device(dovecot, user)
    try:  # the user's own reply, filed in Sent
        assert device.append("Sent", "(\\Seen)", None, mail("p2", "Re: Picnic", 3, "p1"))[0] == "OK"
        device.select("INBOX")
        device.store("1:*", "+FLAGS", "\\Seen")  # only the latest reply stays unread
        _, found = device.search(None, "HEADER", "Message-ID", "p4@t")
        device.store(found[0].decode(), "-FLAGS", "\\Seen")
    finally:
        device.logout()
    app = KittiwakeApp(config)
    async with app.run_test(size=(100, 30)) as pilot:
        await synced(app)
        api = app.api
        await until(pilot, lambda: api.counts("mine", "INBOX")[0] == 8)
        uid_of = {
            s.envelope.message_id: u
            for u, s in api.summaries("mine", "INBOX", list(range(1, 9))).items()
        }
        await pilot.press("t")
        await until(pilot, lambda: isinstance(app.screen, ConversationsScreen))
        screen = app.screen
        assert isinstance(screen, ConversationsScreen)
        threads = screen.query_one(ThreadList)
        await until(pilot, lambda: threads.threading is not None)
        # Newest conversation first: the picnic (June 2025) beats the March messages.
        assert threads.hits[:4] == [
            Hit("INBOX", uid_of["<p1@t>"]),
            Hit("Sent", 1),
            Hit("INBOX", uid_of["<p3@t>"]),
            Hit("INBOX", uid_of["<p4@t>"]),
        ]
        lines = [threads.render_line(n).text for n in range(5)]
        assert "Picnic" in lines[0] and "1/4" in lines[0]  # unread / messages
        assert "├─" in lines[1] and "Sent" in lines[1]
        assert "│ └─" in lines[2]
        assert "└─" in lines[3] and lines[3].startswith("N")
        assert "Picnic" not in lines[1]  # the tree says it is the same conversation
        assert len(threads.hits) == 4 + 5
        # Opening the thread: read messages folded, the unread one open; n/p move.
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ThreadReaderScreen))
        reader = app.screen
        assert isinstance(reader, ThreadReaderScreen)
        await until(pilot, lambda: len(reader.parts()) == 4)
        parts = reader.parts()
        assert [p.folded for p in parts] == [True, True, True, False]
        assert reader.current == 3
        await until(
            pilot, lambda: parts[3].body is not None and "Text of p4." in parts[3].body.plain
        )
        await until(
            pilot,
            lambda: (
                SEEN in api.summaries("mine", "INBOX", [uid_of["<p4@t>"]])[uid_of["<p4@t>"]].flags
            ),
        )
        await pilot.press("p", "p")
        assert reader.current == 1 and parts[1].has_class("-current")
        await pilot.press("enter")  # unfold the user's reply from Sent
        await until(
            pilot, lambda: parts[1].body is not None and "Text of p2." in parts[1].body.plain
        )
        await pilot.press("n")
        assert reader.current == 2
        await pilot.press("n", "n")
        assert reader.current == 3  # stops at the last message
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is screen)
        # Folded, the thread is one row, and a triage key acts on all of it.
        threads.cursor = 0
        await pilot.press("h")
        assert threads.render_line(1).text.find("├─") == -1 and "▸4" in threads.render_line(0).text
        await pilot.press("s")
        picnic = [uid_of[m] for m in ("<p1@t>", "<p3@t>", "<p4@t>")]
        await until(
            pilot,
            lambda: all(
                FLAGGED in s.flags for s in api.summaries("mine", "INBOX", picnic).values()
            ),
        )
        sent = api.summaries("mine", "Sent", [1])[1]
        assert FLAGGED in sent.flags
        others = api.summaries("mine", "INBOX", [u for u in range(1, 9) if u not in picnic])
        assert not any(FLAGGED in s.flags for s in others.values())
        await pilot.press("l")
        assert "├─" in threads.render_line(1).text
        await pilot.press("t")
        await until(pilot, lambda: isinstance(app.screen, MailboxScreen))
        assert ThreadMessage  # the reader's parts are ThreadMessage widgets (used above)


async def test_thread_reader_triage_live_counts_and_removed_threads(
    xdg: Path, mailbox: Callable[..., Config], dovecot: Dovecot, user: User
) -> None:
    """Every triage key in the thread reader, on the message under the marker; the title's
    counts follow reads, flags and removals; a conversation whose messages all left goes
    (its placeholder row too); one key on a thread is one undo step; ``t`` goes back to the
    message list on the message the cursor was on."""
    config = mailbox(
        5,
        extra=[
            mail("p1", "Picnic", 2),
            mail("p3", "Re: Picnic", 4, "p2", "<p1@t> <p2@t>"),
            mail("p4", "Re: Picnic", 5, "p1"),
            # Replies to a message that is nowhere: a thread under a placeholder row.
            mail("q2", "Re: Quiz", 20, "q1").replace(b"Jun 2025", b"May 2025"),
            mail("q3", "Re: Quiz", 21, "q1").replace(b"Jun 2025", b"May 2025"),
        ],
    )
    device = imap_device(dovecot, user)
    try:
        assert device.append("Sent", "(\\Seen)", None, mail("p2", "Re: Picnic", 3, "p1"))[0] == "OK"
        device.select("INBOX")
        device.store("1:*", "+FLAGS", "\\Seen")
        for mid in ("p4@t", "q3@t"):
            _, found = device.search(None, "HEADER", "Message-ID", mid)
            device.store(found[0].decode(), "-FLAGS", "\\Seen")
    finally:
        device.logout()
    app = KittiwakeApp(config)
    async with app.run_test(size=(100, 30)) as pilot:
        await synced(app)
        api = app.api
        await until(pilot, lambda: api.counts("mine", "INBOX")[0] == 10)
        uid_of = {
            s.envelope.message_id: u
            for u, s in api.summaries("mine", "INBOX", list(range(1, 11))).items()
        }
        # The view opens on the message the list's cursor is on.
        mailbox_screen = app.screen
        assert isinstance(mailbox_screen, MailboxScreen)
        message_list = mailbox_screen.query_one("#messages", MessageList)
        await until(pilot, lambda: len(message_list.index) == 10)
        message_list.go_to_uid(uid_of["<tui3@example.org>"])
        await pilot.press("t")
        await until(pilot, lambda: isinstance(app.screen, ConversationsScreen))
        screen = app.screen
        assert isinstance(screen, ConversationsScreen)
        threads = screen.query_one(ThreadList)
        await until(pilot, lambda: threads.threading is not None)
        assert threads.current_hit == Hit("INBOX", uid_of["<tui3@example.org>"])
        assert threads.hits[4] is None  # the quiz's placeholder: its replies' subject
        placeholder = threads.render_line(4).text
        assert "(not here)" in placeholder and "Re: Quiz" in placeholder
        assert "Quiz" not in threads.render_line(5).text  # the tree says it
        title = "Conversations · INBOX · 7 threads · 2 with unread mail"
        assert screen.title_text == title
        # The reader, on the picnic: the unread reply is open under the marker, and read.
        threads.cursor = 0
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ThreadReaderScreen))
        reader = app.screen
        assert isinstance(reader, ThreadReaderScreen)
        await until(pilot, lambda: len(reader.parts()) == 4 and reader.current == 3)
        await until(pilot, lambda: screen.title_text.endswith("7 threads · 1 with unread mail"))
        p4 = uid_of["<p4@t>"]
        await pilot.press("s")
        await until(pilot, lambda: FLAGGED in api.summaries("mine", "INBOX", [p4])[p4].flags)
        await until(pilot, lambda: reader.parts()[3].headline().plain.startswith("▾ ! "))
        await pilot.press("d")  # to Trash: the message leaves the thread
        await until(pilot, lambda: len(reader.parts()) == 3)
        assert api.counts("mine", "Trash")[0] == 1 and reader.current == 2
        assert [p.hit for p in reader.parts()] == [
            Hit("INBOX", uid_of["<p1@t>"]),
            Hit("Sent", 1),
            Hit("INBOX", uid_of["<p3@t>"]),
        ]
        await pilot.press("e")  # archived
        await until(pilot, lambda: len(reader.parts()) == 2)
        assert api.counts("mine", "Archive")[0] == 1 and reader.current == 1
        await pilot.press("u")  # the user's reply in Sent, unread: the picnic counts again
        await until(pilot, lambda: SEEN not in api.summaries("mine", "Sent", [1])[1].flags)
        await until(pilot, lambda: screen.title_text.endswith("2 with unread mail"))
        assert "1 unread" in str(reader.query_one("#thread-title").render())
        await pilot.press("exclamation_mark")  # junk, from Sent
        await until(pilot, lambda: len(reader.parts()) == 1)
        assert api.counts("mine", "Junk")[0] == 1
        await pilot.press("d")  # the last one: the reader closes, the conversation is gone
        await until(pilot, lambda: app.screen is screen)
        await until(
            pilot, lambda: screen.title_text == title.replace("7 threads · 2", "6 threads · 1")
        )
        assert all(h is None or h.uid != uid_of["<p1@t>"] for h in threads.hits)
        # The quiz, folded, deleted: its rows go, the placeholder too; one undo brings it back.
        quiz = [Hit("INBOX", uid_of["<q2@t>"]), Hit("INBOX", uid_of["<q3@t>"])]
        threads.go_to(quiz[0])
        await pilot.press("h", "d")
        await until(pilot, lambda: not set(quiz) & set(threads.hits))
        await until(pilot, lambda: screen.title_text == "Conversations · INBOX · 5 threads")
        assert None not in threads.hits and len(threads.hits) == 5
        await pilot.press("z")
        await until(pilot, lambda: api.counts("mine", "INBOX")[0] == 7)
        await until(pilot, lambda: screen.title_text.endswith("6 threads · 1 with unread mail"))
        assert threads.hits.count(None) == 1
        # Back to the message list, on the message under the cursor here.
        threads.go_to(Hit("INBOX", uid_of["<tui2@example.org>"]))
        await pilot.press("t")
        await until(pilot, lambda: app.screen is mailbox_screen)
        assert message_list.current_uid == uid_of["<tui2@example.org>"]
