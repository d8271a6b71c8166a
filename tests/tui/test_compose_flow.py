"""Composing as a user does it, against the real Dovecot and Postfix: reply with an external
editor, a new message with the built-in one, discarding, and quitting mid-compose."""

from __future__ import annotations

import asyncio
import os
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from harness import Dovecot, Postfix, User, wait_for_async, wait_for_messages
from harness.clients import imap_device, imap_fetch_all
from harness.ui import synced, until

from kittiwake.core.compose.drafts import LocalDrafts
from kittiwake.core.config import Config, config_from_dict
from kittiwake.core.message.mime import parse_message
from kittiwake.tui.app import KittiwakeApp
from kittiwake.tui.screens.compose import BuiltinEditor, NewMessagePrompt
from kittiwake.tui.screens.confirm import Confirm
from kittiwake.tui.screens.mailbox import MailboxScreen
from kittiwake.tui.screens.review import ReviewScreen
from kittiwake.tui.widgets.message_list import MessageList


def config_for(dovecot: Dovecot, postfix: Postfix, user: User, **ui: Any) -> Config:
    server = {"user": user.login, "password": user.password, "ca_file": str(dovecot.ca_file)}
    return config_from_dict(
        {
            "accounts": {
                "mine": {
                    "email": user.email,
                    "name": "Me Myself",
                    "imap": {
                        "host": dovecot.host,
                        "port": dovecot.ports.imaps,
                        "timeout": 5,
                        **server,
                    },
                    "smtp": {
                        "host": postfix.host,
                        "port": postfix.ports.submission,
                        "security": "starttls",
                        **server,
                    },
                }
            },
            "ui": ui,
        }
    )


def letter(sender: User, me: User) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"Bob Builder <{sender.email}>"
    msg["To"] = f"Me <{me.email}>"
    msg["Subject"] = "Can we fix it?"
    msg["Message-ID"] = "<fixit@example.test>"
    msg["Date"] = "Thu, 26 Nov 2026 10:00:00 +0000"
    msg.set_content("Yes we can.\n")
    return msg.as_bytes()


def put(dovecot: Dovecot, user: User, raw: bytes) -> None:
    device = imap_device(dovecot, user)
    device.append("INBOX", "", None, raw)
    device.logout()


def folder(dovecot: Dovecot, user: User, name: str) -> list[bytes]:
    device = imap_device(dovecot, user)
    try:
        return imap_fetch_all(device, name)
    finally:
        device.logout()


def flags(dovecot: Dovecot, user: User) -> bytes:
    device = imap_device(dovecot, user)
    try:
        device.select("INBOX", readonly=True)
        _, data = device.uid("FETCH", "1:*", "(FLAGS)")
        return b" ".join(d for d in data if isinstance(d, bytes))
    finally:
        device.logout()


def listed(app: KittiwakeApp) -> bool:
    """The message list shows a message under the cursor."""
    screen = app.screen
    return (
        isinstance(screen, MailboxScreen) and screen.query_one(MessageList).current_uid is not None
    )


@pytest.fixture
def editor(xdg: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in for $EDITOR: appends a line to the file it is given (the last argument)."""
    script = xdg / "fake-editor"
    script.write_text('#!/bin/sh\nfor last; do :; done\nprintf "Thanks, fixed it.\\n" >> "$last"\n')
    script.chmod(0o755)
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.setenv("EDITOR", f"{script} --flag-to-check-shlex")
    return script


async def test_reply_with_the_editor_then_send(
    xdg: Path,
    editor: Path,
    dovecot: Dovecot,
    postfix: Postfix,
    user: User,
    user2: User,
) -> None:
    put(dovecot, user, letter(user2, user))
    app = KittiwakeApp(config_for(dovecot, postfix, user))
    async with app.run_test(size=(100, 30)) as pilot:
        await synced(app)
        mailbox = app.screen
        assert isinstance(mailbox, MailboxScreen)
        await until(
            pilot,
            lambda: mailbox.query_one(MessageList).current_uid is not None,
        )
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, ReviewScreen), timeout=10)
        review = app.screen
        assert isinstance(review, ReviewScreen)
        await until(pilot, lambda: "Thanks, fixed it." in review.local.draft.body, timeout=10)
        assert review.query_one("#to").value == f"Bob Builder <{user2.email}>"  # type: ignore[attr-defined]
        assert review.query_one("#subject").value == "Re: Can we fix it?"  # type: ignore[attr-defined]
        body = str(review.query_one("#body").render())
        assert "> Yes we can." in body and "Thanks, fixed it." in body
        await pilot.press("y")
        await until(pilot, lambda: isinstance(app.screen, MailboxScreen), timeout=10)
        (got,) = await asyncio.to_thread(wait_for_messages, dovecot, user2, 1, timeout=30)
        parsed = parse_message(got)
        assert parsed.subject == "Re: Can we fix it?"
        assert parsed.header("In-Reply-To") == "<fixit@example.test>"
        assert "Thanks, fixed it." in (parsed.text or "")
        await wait_for_async(
            lambda: asyncio.to_thread(lambda: len(folder(dovecot, user, "Sent")) == 1),
            20,
            message="the Sent copy",
        )
        await wait_for_async(
            lambda: asyncio.to_thread(lambda: b"\\Answered" in flags(dovecot, user)),
            20,
            message="\\Answered on the original",
        )
        assert LocalDrafts().all() == []


async def test_new_message_with_the_builtin_editor_and_completion(
    xdg: Path,
    dovecot: Dovecot,
    postfix: Postfix,
    user: User,
    user2: User,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EDITOR", "/bin/false")  # the config wins over the environment
    put(dovecot, user, letter(user2, user))  # Bob is known from the cache
    app = KittiwakeApp(config_for(dovecot, postfix, user, editor="builtin"))
    async with app.run_test(size=(80, 24)) as pilot:
        await synced(app)
        await until(pilot, lambda: listed(app))
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, NewMessagePrompt))
        await pilot.press("b", "o")
        to = app.screen.query_one("#to")
        await until(pilot, lambda: to._suggestion == f"Bob Builder <{user2.email}>")  # type: ignore[attr-defined]
        await pilot.press("right", "enter")
        await pilot.press(*"Hello there")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, BuiltinEditor), timeout=10)
        await pilot.press(*"Hi Bob!")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: isinstance(app.screen, ReviewScreen), timeout=10)
        review = app.screen
        assert isinstance(review, ReviewScreen)
        await until(pilot, lambda: review.local.draft.body.startswith("Hi Bob!"))
        assert [a.addr for a in review.local.draft.to] == [user2.email]
        assert review.local.draft.subject == "Hello there"
        await pilot.press("y")
        (got,) = await asyncio.to_thread(wait_for_messages, dovecot, user2, 1, timeout=30)
        assert parse_message(got).subject == "Hello there"
        assert (parse_message(got).text or "").startswith("Hi Bob!")


async def test_discard_asks_first_and_an_empty_new_message_is_dropped(
    xdg: Path,
    editor: Path,
    dovecot: Dovecot,
    postfix: Postfix,
    user: User,
    user2: User,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    put(dovecot, user, letter(user2, user))
    app = KittiwakeApp(config_for(dovecot, postfix, user))
    async with app.run_test(size=(100, 30)) as pilot:
        await synced(app)
        await until(pilot, lambda: listed(app))
        await pilot.press("f")
        await until(pilot, lambda: isinstance(app.screen, ReviewScreen), timeout=10)
        review = app.screen
        assert isinstance(review, ReviewScreen)
        await until(pilot, lambda: "Thanks, fixed it." in review.local.draft.body)
        assert "---------- Forwarded message ----------" in review.local.draft.body
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, Confirm))
        await pilot.press("n")
        await until(pilot, lambda: app.screen is review)
        assert len(LocalDrafts().all()) == 1
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, Confirm))
        await pilot.press("y")
        await until(pilot, lambda: isinstance(app.screen, MailboxScreen))
        await until(pilot, lambda: LocalDrafts().all() == [])
        # An editor that leaves a new message's body empty and unchanged: discarded at once.
        monkeypatch.setenv("EDITOR", "true")
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, NewMessagePrompt))
        await pilot.press(*user2.email, "enter", *"nothing", "enter")
        await until(pilot, lambda: isinstance(app.screen, MailboxScreen), timeout=10)
        await until(pilot, lambda: LocalDrafts().all() == [])
    assert os.environ["EDITOR"] == "true"


async def test_quitting_mid_compose_saves_the_draft_and_it_reopens(
    xdg: Path,
    editor: Path,
    dovecot: Dovecot,
    postfix: Postfix,
    user: User,
    user2: User,
) -> None:
    put(dovecot, user, letter(user2, user))
    config = config_for(dovecot, postfix, user)
    app = KittiwakeApp(config)
    async with app.run_test(size=(100, 30)) as pilot:
        await synced(app)
        await until(pilot, lambda: listed(app))
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, ReviewScreen), timeout=10)
        review = app.screen
        assert isinstance(review, ReviewScreen)
        await until(pilot, lambda: "Thanks, fixed it." in review.local.draft.body)
        await app.action_quit()
    (draft,) = folder(dovecot, user, "Drafts")
    assert parse_message(draft).subject == "Re: Can we fix it?"
    assert LocalDrafts().all() == []

    app = KittiwakeApp(config)
    async with app.run_test(size=(100, 30)) as pilot:
        await synced(app)
        mailbox = app.screen
        assert isinstance(mailbox, MailboxScreen)
        mailbox.show_folder("mine", "Drafts")
        await until(pilot, lambda: len(app.api.message_index("mine", "Drafts")) == 1)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ReviewScreen), timeout=10)
        review = app.screen
        assert isinstance(review, ReviewScreen)
        assert review.local.draft.subject == "Re: Can we fix it?"
        assert review.local.draft.in_reply_to == "<fixit@example.test>"
        assert "Thanks, fixed it." in review.local.draft.body
        # Discarding a reopened draft drops this session's changes; the draft stays, and the
        # notice says so.
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, Confirm))
        await pilot.press("y")
        await until(pilot, lambda: isinstance(app.screen, MailboxScreen))
        await until(
            pilot,
            lambda: any("the draft stays in Drafts" in n.message for n in app._notifications),
        )
    assert len(folder(dovecot, user, "Drafts")) == 1


async def test_autosave_files_the_draft_in_drafts_and_replaces_it(
    xdg: Path,
    editor: Path,
    dovecot: Dovecot,
    postfix: Postfix,
    user: User,
    user2: User,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from kittiwake.tui.screens import review as review_module

    monkeypatch.setattr(review_module, "AUTOSAVE_EVERY", 0.3)
    put(dovecot, user, letter(user2, user))
    app = KittiwakeApp(config_for(dovecot, postfix, user))
    async with app.run_test(size=(100, 30)) as pilot:
        await synced(app)
        await until(pilot, lambda: listed(app))
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, ReviewScreen), timeout=10)
        review = app.screen
        assert isinstance(review, ReviewScreen)
        await until(pilot, lambda: review.local.server_uid is not None, timeout=10)
        first = review.local.server_uid
        await pilot.press("S", "end", *" (autosaved)", "enter")
        await until(pilot, lambda: review.local.server_uid not in (None, first), timeout=10)
        await app.api.engine.imap["mine"].flush_actions()

        def one_draft() -> bool:
            drafts = folder(dovecot, user, "Drafts")
            return len(drafts) == 1 and b"(autosaved)" in drafts[0]

        await wait_for_async(lambda: asyncio.to_thread(one_draft), 10, message="one draft")
        assert len(LocalDrafts().all()) == 1  # the local copy stays while composing


async def test_quitting_inside_the_builtin_editor_keeps_what_was_typed(
    xdg: Path,
    dovecot: Dovecot,
    postfix: Postfix,
    user: User,
    user2: User,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    put(dovecot, user, letter(user2, user))
    app = KittiwakeApp(config_for(dovecot, postfix, user, editor="builtin"))
    async with app.run_test(size=(80, 24)) as pilot:
        await synced(app)
        await until(pilot, lambda: listed(app))
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, BuiltinEditor), timeout=10)
        await pilot.press(*"Half a thought")
        # Quit at once: the editor's file is written every few seconds, and has not been yet;
        # what is on screen is what gets saved.
        await app.action_quit()
    (draft,) = folder(dovecot, user, "Drafts")
    assert "Half a thought" in (parse_message(draft).text or "")
    assert LocalDrafts().all() == []


@pytest.mark.parametrize("how", ["save", "quit"])
async def test_a_reply_saved_as_a_draft_keeps_its_thread_and_answers_the_original(
    xdg: Path,
    editor: Path,
    dovecot: Dovecot,
    postfix: Postfix,
    user: User,
    user2: User,
    how: str,
) -> None:
    carol = dovecot.add_user("carol")
    put(dovecot, user, letter(user2, user))
    config = config_for(dovecot, postfix, user)
    app = KittiwakeApp(config)
    async with app.run_test(size=(100, 30)) as pilot:
        await synced(app)
        await until(pilot, lambda: listed(app))
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, ReviewScreen), timeout=10)
        review = app.screen
        assert isinstance(review, ReviewScreen)
        await until(pilot, lambda: "Thanks, fixed it." in review.local.draft.body, timeout=10)
        await pilot.press("t", "ctrl+u", *carol.email, "enter")  # another recipient
        await until(pilot, lambda: [a.addr for a in review.local.draft.to] == [carol.email])
        if how == "save":
            await pilot.press("s")
            await until(pilot, lambda: isinstance(app.screen, MailboxScreen), timeout=10)
            await app.api.engine.imap["mine"].flush_actions()
        else:
            await app.action_quit()
    (saved,) = folder(dovecot, user, "Drafts")
    parsed = parse_message(saved)
    assert parsed.header("In-Reply-To") == "<fixit@example.test>"
    assert parsed.header("References") == "<fixit@example.test>"
    assert not [name for name, _ in parsed.headers if name.lower().startswith("x-kittiwake")]
    assert LocalDrafts().all() == []

    app = KittiwakeApp(config)  # a later run: only the Drafts copy is left
    async with app.run_test(size=(100, 30)) as pilot:
        await synced(app)
        mailbox = app.screen
        assert isinstance(mailbox, MailboxScreen)
        mailbox.show_folder("mine", "Drafts")
        await until(pilot, lambda: len(app.api.message_index("mine", "Drafts")) == 1)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ReviewScreen), timeout=10)
        await pilot.press("y")
        await until(pilot, lambda: isinstance(app.screen, MailboxScreen), timeout=10)
        (got,) = await asyncio.to_thread(wait_for_messages, dovecot, carol, 1, timeout=30)
        assert parse_message(got).header("In-Reply-To") == "<fixit@example.test>"
        await wait_for_async(
            lambda: asyncio.to_thread(lambda: len(folder(dovecot, user, "Sent")) == 1),
            20,
            message="the Sent copy",
        )
        (sent,) = folder(dovecot, user, "Sent")
        assert parse_message(sent).header("In-Reply-To") == "<fixit@example.test>"
        assert parse_message(sent).header("References") == "<fixit@example.test>"
        await wait_for_async(
            lambda: asyncio.to_thread(lambda: b"\\Answered" in flags(dovecot, user)),
            20,
            message="\\Answered on the original",
        )


REFUSING = (
    "smtpd_recipient_restrictions = check_recipient_access inline:{ "
    "{ nobody@example.test = 550 5.1.1 Mailbox nobody is unknown here } }, permit"
)


async def test_a_refused_message_is_found_in_the_palette_under_outbox(
    xdg: Path,
    dovecot: Dovecot,
    postfix_factory: Any,
    user: User,
) -> None:
    from textual.command import CommandPalette
    from textual.widgets import OptionList

    mta = postfix_factory(extra_main_cf=REFUSING)
    app = KittiwakeApp(config_for(dovecot, mta, user))
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await synced(app)
        local = app.api.compose.new("mine", "nobody@example.test", "Typo [b]here")
        await app.api.send(local)
        await until(pilot, lambda: app.api.compose.refused() != [], timeout=30)
        await until(
            pilot, lambda: any("ctrl+p Outbox" in str(n.message) for n in app._notifications)
        )

        def hits() -> list[str]:
            palette = app.screen
            if not isinstance(palette, CommandPalette):
                return []
            options = palette.query_one(OptionList)
            return [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]

        await pilot.press("ctrl+p", *"outbox")
        await until(pilot, lambda: len([h for h in hits() if "Outbox:" in h]) == 2)
        assert any(
            "edit refused message “Typo (b)here” to nobody@example.test" in h for h in hits()
        )
        await pilot.press("ctrl+u", *"outbox delete")
        await until(pilot, lambda: bool(hits()) and "delete refused" in hits()[0])
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, Confirm))
        await pilot.press("y")
        await until(pilot, lambda: app.api.compose.refused() == [])
        assert app.api.engine.outboxes["mine"].outbox.items() == []
        await until(pilot, lambda: app.api.outbox_status().describe() == "")


async def test_review_fields_let_go_with_escape_tab_completes_and_the_footer_fits(
    xdg: Path,
    editor: Path,
    dovecot: Dovecot,
    postfix: Postfix,
    user: User,
    user2: User,
) -> None:
    from textual.widgets._footer import FooterKey

    files = xdg / "files"
    files.mkdir()
    (files / "report-2026-final.pdf").write_bytes(b"%PDF-1.4\n")
    (files / "report-2026-draft.pdf").write_bytes(b"%PDF-1.4\n")
    put(dovecot, user, letter(user2, user))
    app = KittiwakeApp(config_for(dovecot, postfix, user))
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await synced(app)
        await until(pilot, lambda: listed(app))
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, ReviewScreen), timeout=10)
        review = app.screen
        assert isinstance(review, ReviewScreen)
        await until(pilot, lambda: "Thanks, fixed it." in review.local.draft.body, timeout=10)
        to = review.query_one("#to")
        bob = f"Bob Builder <{user2.email}>"

        def footer() -> dict[str, FooterKey]:
            return {k.key: k for k in review.query(FooterKey)}

        # At 80 columns every key shown fits; "d" only once there is something to detach.
        await until(pilot, lambda: "q" in footer())
        assert "d" not in footer()
        assert all(k.region.right <= 80 for k in footer().values())

        # Escape leaves a field, with its value as it was, and the review keys work again.
        await pilot.press("t", "ctrl+u", *"half typed")
        await pilot.press("escape")
        assert to.value == bob  # type: ignore[attr-defined]
        assert review.focused is review.query_one("#body-scroll")
        await pilot.press("a")  # a review key, not a letter in To
        await until(pilot, lambda: app.screen is not review)
        assert to.value == bob  # type: ignore[attr-defined]

        # Tab completes the path to the longest common prefix, then to the one file.
        path = app.screen.query_one("#path")
        await pilot.press("ctrl+u", *f"{files}/rep", "tab")
        assert path.value == f"{files}/report-2026-"  # type: ignore[attr-defined]
        await pilot.press("f", "tab")
        assert path.value == f"{files}/report-2026-final.pdf"  # type: ignore[attr-defined]
        await pilot.press("enter")
        await until(pilot, lambda: app.screen is review)
        await until(pilot, lambda: len(review.local.draft.attachments) == 1)
        assert review.local.draft.attachments[0].name == "report-2026-final.pdf"
        await until(pilot, lambda: "d" in footer())
        assert all(k.region.right <= 80 for k in footer().values())

        # No recipient: a notice, and the focus stays where it was.
        await pilot.press("t", "ctrl+u", "enter")
        await until(pilot, lambda: review.local.draft.to == ())
        await pilot.press("y")
        await until(
            pilot, lambda: any("recipient first" in str(n.message) for n in app._notifications)
        )
        await pilot.press("x")
        assert to.value == ""  # type: ignore[attr-defined]
        assert review.focused is review.query_one("#body-scroll")


async def test_a_message_left_with_no_text_is_not_sent_without_asking(
    xdg: Path,
    dovecot: Dovecot,
    postfix: Postfix,
    user: User,
    user2: User,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    script = xdg / "emptying-editor"
    script.write_text('#!/bin/sh\nfor last; do :; done\n: > "$last"\n')  # truncates the file
    script.chmod(0o755)
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.setenv("EDITOR", str(script))
    put(dovecot, user, letter(user2, user))
    app = KittiwakeApp(config_for(dovecot, postfix, user))
    async with app.run_test(size=(100, 30)) as pilot:
        await synced(app)
        await until(pilot, lambda: listed(app))
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, ReviewScreen), timeout=10)
        review = app.screen
        assert isinstance(review, ReviewScreen)
        await until(pilot, lambda: not review.local.draft.body.strip())
        await pilot.press("y")
        await until(pilot, lambda: isinstance(app.screen, Confirm))
        await pilot.press("n")  # not sent: back to the review, nothing queued
        await until(pilot, lambda: app.screen is review)
        assert app.api.outbox_status().describe() == ""
