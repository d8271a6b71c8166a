"""``t`` as a user drives it, against the real Dovecot: conversations drawn as trees with
the user's reply from Sent in place, unread counts, folding, triage on a folded thread, and
the thread reader (read messages folded, n/p)."""

from __future__ import annotations

import email
from collections.abc import Callable
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from harness import Dovecot, Postfix, User
from harness.clients import imap_device
from harness.ui import synced, until

from kittiwake.core.api import Hit
from kittiwake.core.config import Config, config_from_dict
from kittiwake.core.models import FLAGGED, SEEN
from kittiwake.tui.app import KittiwakeApp
from kittiwake.tui.screens.compose import PathPrompt
from kittiwake.tui.screens.help import HelpScreen
from kittiwake.tui.screens.mailbox import MailboxScreen
from kittiwake.tui.screens.review import ReviewScreen
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
        assert reader.current == 2
        # The destination fills once the server has moved it (not at once, like the source).
        await until(pilot, lambda: api.counts("mine", "Trash")[0] == 1)
        assert [p.hit for p in reader.parts()] == [
            Hit("INBOX", uid_of["<p1@t>"]),
            Hit("Sent", 1),
            Hit("INBOX", uid_of["<p3@t>"]),
        ]
        await pilot.press("e")  # archived
        await until(pilot, lambda: len(reader.parts()) == 2)
        assert reader.current == 1
        await until(pilot, lambda: api.counts("mine", "Archive")[0] == 1)
        await pilot.press("u")  # the user's reply in Sent, unread: the picnic counts again
        await until(pilot, lambda: SEEN not in api.summaries("mine", "Sent", [1])[1].flags)
        await until(pilot, lambda: screen.title_text.endswith("2 with unread mail"))
        assert "1 unread" in str(reader.query_one("#thread-title").render())
        await pilot.press("exclamation_mark")  # junk, from Sent
        await until(pilot, lambda: len(reader.parts()) == 1)
        await until(pilot, lambda: api.counts("mine", "Junk")[0] == 1)
        await pilot.press("d")  # the last one: the reader closes, the conversation is gone
        await until(pilot, lambda: app.screen is screen)
        await until(
            pilot, lambda: screen.title_text == title.replace("7 threads · 2", "6 threads · 1")
        )
        assert all(h is None or h.uid != uid_of["<p1@t>"] for h in threads.hits)
        # The quiz, folded, deleted: its rows go, the placeholder too; one undo brings it back.
        quiz = [Hit("INBOX", uid_of["<q2@t>"]), Hit("INBOX", uid_of["<q3@t>"])]
        # Until the server has every action and the view has rebuilt after them (a rebuild
        # landing between the keys below would move the cursor under them).
        await until(
            pilot,
            lambda: (
                api.pending_actions("mine") == 0
                and not screen._rebuild_pending
                and not any(w.group == "threads" and w.is_running for w in screen.workers)
            ),
        )
        threads.go_to(quiz[0])
        await pilot.press("h")
        await until(pilot, lambda: threads.cursor_folded() and threads.current_hit in quiz)
        await pilot.press("d")
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


def with_smtp(config: Config, dovecot: Dovecot, postfix: Postfix, user: User) -> Config:
    """``config`` (the harness's, IMAP only) with the private Postfix to send through."""
    server = {"user": user.login, "password": user.password, "ca_file": str(dovecot.ca_file)}
    imap = {"host": dovecot.host, "port": dovecot.ports.imaps, "timeout": 5, **server}
    smtp = {"host": postfix.host, "port": postfix.ports.submission, "security": "starttls"}
    mine = {"email": user.email, "name": "Me", "imap": imap, "smtp": smtp | server}
    assert set(config.accounts) == {"mine"}
    return config_from_dict({"accounts": {"mine": mine}})


async def test_thread_reader_has_the_readers_keys_and_jk_go_by_conversation(
    xdg: Path,
    mailbox: Callable[..., Config],
    dovecot: Dovecot,
    postfix: Postfix,
    user: User,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The conversation reader offers the message reader's keys on the message under the
    marker: its attachments listed, S saves them, H all headers, V the source, r a reply;
    J/K go to the next and previous conversation even when the list's threads are unfolded;
    its help lists Kittiwake's keys only."""
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.setenv("EDITOR", "true")  # the reply opens in an editor that changes nothing
    latest = email.message_from_bytes(mail("p4", "Re: Picnic", 5, "p1"), policy=policy.default)
    assert isinstance(latest, EmailMessage)
    latest.add_attachment(
        b"%PDF-1.4 map", maintype="application", subtype="pdf", filename="map.pdf"
    )
    config = mailbox(
        5,
        extra=[
            mail("p1", "Picnic", 2),
            mail("p3", "Re: Picnic", 4, "p2", "<p1@t> <p2@t>"),
            latest.as_bytes(),
        ],
    )
    device = imap_device(dovecot, user)
    try:
        assert device.append("Sent", "(\\Seen)", None, mail("p2", "Re: Picnic", 3, "p1"))[0] == "OK"
        device.select("INBOX")
        device.store("1:*", "+FLAGS", "\\Seen")  # only the latest reply stays unread
        _, found = device.search(None, "HEADER", "Message-ID", "p4@t")
        device.store(found[0].decode(), "-FLAGS", "\\Seen")
    finally:
        device.logout()
    app = KittiwakeApp(with_smtp(config, dovecot, postfix, user))
    async with app.run_test(size=(100, 30)) as pilot:
        await synced(app)
        api = app.api
        await until(pilot, lambda: api.counts("mine", "INBOX")[0] == 8)
        uid_of = {
            s.envelope.message_id: u
            for u, s in api.summaries("mine", "INBOX", list(range(1, 9))).items()
        }
        picnic = [
            Hit("INBOX", uid_of["<p1@t>"]),
            Hit("Sent", 1),
            Hit("INBOX", uid_of["<p3@t>"]),
            Hit("INBOX", uid_of["<p4@t>"]),
        ]
        await pilot.press("t")
        await until(pilot, lambda: isinstance(app.screen, ConversationsScreen))
        threads = app.screen.query_one(ThreadList)
        await until(pilot, lambda: threads.threading is not None)
        assert threads.hits[:4] == picnic  # unfolded: 4 rows
        threads.cursor = 0
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ThreadReaderScreen))
        reader = app.screen
        assert isinstance(reader, ThreadReaderScreen)
        await until(pilot, lambda: len(reader.parts()) == 4 and reader.current == 3)
        part = reader.parts()[3]
        # The unread reply is open, its attachment listed under its body.
        await until(pilot, lambda: "map.pdf" in str(part.render()))
        await pilot.press("S")
        await until(pilot, lambda: isinstance(app.screen, PathPrompt))
        await pilot.press("enter")  # the download directory, offered
        downloads = xdg / "downloads"
        await until(pilot, lambda: (downloads / "map.pdf").exists())
        assert (downloads / "map.pdf").read_bytes() == b"%PDF-1.4 map"
        await pilot.press("H")
        await until(pilot, lambda: "Message-ID: <p4@t>" in str(part.render()))
        await pilot.press("H", "V")
        await until(pilot, lambda: "Content-Disposition: attachment" in str(part.render()))
        await pilot.press("V")
        await until(pilot, lambda: "Content-Disposition" not in str(part.render()))
        # A folded message: S fetches it first, and says it has nothing to save.
        await pilot.press("p")
        assert reader.current == 2 and reader.parts()[2].folded
        await pilot.press("S")
        await until(
            pilot,
            lambda: any(
                n.message == "This message has no attachments." for n in app._notifications
            ),
        )
        # The help: the reader's keys, none of Textual's own.
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        help_screen = app.screen
        assert isinstance(help_screen, HelpScreen)
        ids = {row[2] for row in help_screen.rows}
        assert {
            "compose.reply",
            "compose.reply_all",
            "compose.forward",
            "compose.forward_attached",
            "reader.headers",
            "reader.source",
            "reader.save",
            "thread.next_in_list",
        } <= ids
        descriptions = {row[1] for row in help_screen.rows}
        assert not descriptions & {"Focus Next", "Page Left", "Page Right", "Copy selected text"}
        assert all("." in ident for ident in ids)
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is reader)
        # J: the next conversation, not the next row of this one (the list is unfolded).
        await pilot.press("J")
        await until(pilot, lambda: reader.hits != picnic)
        assert len(reader.hits) == 1 and reader.hits[0].folder == "INBOX"
        assert threads.cursor == 4 and threads.current_hit == reader.hits[0]
        await pilot.press("J")
        await until(pilot, lambda: threads.cursor == 5)
        await pilot.press("K", "K")
        await until(pilot, lambda: reader.hits == picnic)
        assert threads.cursor == 0
        await pilot.press("K")  # the first conversation: nothing before it
        assert threads.cursor == 0 and reader.hits == picnic
        # r: a reply to the message under the marker (the user's own reply, from Sent).
        assert reader.current == 3  # nothing unread now: the newest is open
        await pilot.press("p", "p")
        assert reader.parts()[reader.current].hit == Hit("Sent", 1)
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, ReviewScreen), timeout=10)
        review = app.screen
        assert isinstance(review, ReviewScreen)
        assert review.local.draft.in_reply_to == "<p2@t>"
        assert review.local.draft.subject == "Re: Picnic"


async def test_deleting_a_folded_conversation_leaves_the_users_replies_in_sent(
    xdg: Path, mailbox: Callable[..., Config], dovecot: Dovecot, user: User
) -> None:
    """Delete and archive act on this folder's part of a folded conversation; a flag acts on
    all of it, the user's own reply in Sent included."""
    config = mailbox(
        2,
        extra=[mail("p1", "Picnic", 2), mail("p3", "Re: Picnic", 4, "p2", "<p1@t> <p2@t>")],
    )
    device = imap_device(dovecot, user)
    try:
        assert device.append("Sent", "(\\Seen)", None, mail("p2", "Re: Picnic", 3, "p1"))[0] == "OK"
    finally:
        device.logout()
    app = KittiwakeApp(config)
    async with app.run_test(size=(100, 30)) as pilot:
        await synced(app)
        api = app.api
        await until(pilot, lambda: api.counts("mine", "INBOX")[0] == 4)
        await pilot.press("t")
        await until(pilot, lambda: isinstance(app.screen, ConversationsScreen))
        screen = app.screen
        assert isinstance(screen, ConversationsScreen)
        threads = screen.query_one(ThreadList)
        await until(pilot, lambda: threads.threading is not None)
        picnic = next(h for h in threads.hits if h is not None and h.folder == "Sent")
        # The user's own reply names its recipient, as the Sent folder's list does.
        assert "To Me" in threads.render_line(threads.hits.index(picnic)).text
        threads.go_to(picnic)
        await pilot.press("h")  # fold it
        assert threads.cursor_folded()
        await pilot.press("s")  # a flag: the whole conversation
        await until(pilot, lambda: FLAGGED in api.summaries("mine", "Sent", [1])[1].flags)
        await pilot.press("d")  # a delete: this folder's part only
        await until(pilot, lambda: api.counts("mine", "INBOX")[0] == 2)
        await until(pilot, lambda: api.counts("mine", "Trash")[0] == 2)
        assert api.counts("mine", "Sent")[0] == 1


def test_people_with_commas_in_their_names_read_as_one() -> None:
    from kittiwake.core.models import Address
    from kittiwake.tui.screens.thread_reader import _people

    people = (Address("Bob", "bob@x.org"), Address("Lee, Ann", "ann@x.org"), Address("", "c@x"))
    assert _people(people) == 'Bob, "Lee, Ann", c@x'
