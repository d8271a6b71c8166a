"""Pure parts of compose and send around the UI: local draft copies, completion suggestions,
the status bar's outbox sentence, the editor command and ``kittiwake 'mailto:...'``."""

from __future__ import annotations

from pathlib import Path

import pytest

from kittiwake.cli.main import split_mailto
from kittiwake.core.compose.draft import DataAttachment, Draft
from kittiwake.core.compose.drafts import LocalDraft, LocalDrafts
from kittiwake.core.compose.mime import draft_bytes
from kittiwake.core.compose.reply import draft_from_message
from kittiwake.core.compose.status import OutboxStatus
from kittiwake.core.config import config_from_dict
from kittiwake.core.message.mime import parse_message
from kittiwake.core.models import Address
from kittiwake.tui.screens.compose import editor_command
from kittiwake.tui.widgets.address_input import address_suggestion, path_suggestion

ACCOUNT = config_from_dict(
    {"accounts": {"me": {"email": "me@example.test", "name": "Me", "imap": {"host": "h"}}}}
).accounts["me"]


def draft() -> Draft:
    return Draft(
        from_=Address("Me", "me@example.test"),
        to=(Address("Jörg Müller", "jm@example.de"),),
        bcc=(Address("", "secret@example.test"),),
        subject="Grüße",
        body="Hallo\n\n> quoted\n",
        in_reply_to="<p@x>",
        references=("<root@x>", "<p@x>"),
        message_id="<draft@example.test>",
        attached=(DataAttachment("orig.eml", "message/rfc822", b"Subject: x\r\n\r\nx\r\n"),),
    )


def test_a_local_draft_reads_back_whole(tmp_path: Path) -> None:
    store = LocalDrafts(tmp_path)
    local = LocalDraft(
        store.new_id(), "me", draft(), {"flag": "\\Answered"}, server_folder="Drafts", server_uid=7
    )
    store.save(local)
    (back,) = LocalDrafts(tmp_path).all()
    assert back == local
    assert store.text_path(local.id).read_text().startswith("From: Me <me@example.test>\nTo: ")
    store.remove(local.id)
    assert store.all() == [] and list(tmp_path.iterdir()) == []


def test_an_editor_left_broken_headers_and_nothing_is_lost(tmp_path: Path) -> None:
    store = LocalDrafts(tmp_path)
    local = LocalDraft(store.new_id(), "me", draft())
    store.save(local)
    store.text_path(local.id).write_text("Tooo: someone\n\nmy precious words\n")
    (back,) = store.all()
    assert "my precious words" in back.draft.body and "Tooo: someone" in back.draft.body
    assert back.draft.message_id == "<draft@example.test>"


def test_a_draft_in_the_drafts_folder_keeps_everything_including_bcc() -> None:
    empty = Draft(subject="no recipient yet", body="notes\n", message_id="<d@example.test>")
    assert draft_from_message(parse_message(draft_bytes(empty, ACCOUNT))).to == ()
    back = draft_from_message(parse_message(draft_bytes(draft(), ACCOUNT)))
    assert back.to == draft().to and back.bcc == draft().bcc
    assert (back.subject, back.in_reply_to, back.references) == (
        "Grüße",
        "<p@x>",
        draft().references,
    )
    assert back.message_id == "<draft@example.test>"
    assert [a.filename for a in back.attached] == ["orig.eml"]


def test_address_suggestions_continue_the_last_entry() -> None:
    known = [Address("Jörg Müller", "jm@example.de"), Address("Ann Lee", "ann@example.org")]
    asked: list[tuple[str, list[str]]] = []

    def complete(prefix: str, typed: list[str]) -> list[Address]:
        asked.append((prefix, typed))
        return [a for a in known if a.addr not in " ".join(typed)]

    assert address_suggestion("jo", complete) == "Jörg Müller <jm@example.de>"
    assert address_suggestion("ann@example.org, jm", complete) == ("ann@example.org, jm@example.de")
    assert asked[-1] == ("jm", ["ann@example.org"])
    assert address_suggestion("mül", complete) is None  # cannot continue what was typed
    assert address_suggestion("Ann Lee <ann", complete) is None
    assert address_suggestion("", complete) is None


def test_path_suggestions(tmp_path: Path) -> None:
    (tmp_path / "report.pdf").write_bytes(b"x")
    (tmp_path / "reports").mkdir()
    (tmp_path / ".hidden").write_bytes(b"x")
    assert path_suggestion(f"{tmp_path}/rep") == f"{tmp_path}/report.pdf"
    assert path_suggestion(f"{tmp_path}/reports") == f"{tmp_path}/reports/"
    assert path_suggestion(f"{tmp_path}/") == f"{tmp_path}/report.pdf"  # hidden ones left out
    assert path_suggestion(f"{tmp_path}/.h") == f"{tmp_path}/.hidden"
    assert path_suggestion(f"{tmp_path}/nothing") is None


def test_outbox_status_sentences() -> None:
    assert OutboxStatus().describe() == ""
    assert OutboxStatus(1, reason="cannot reach smtp:587").describe() == (
        "1 in outbox: cannot reach smtp:587"
    )
    assert OutboxStatus(0, 1, reason="550 5.1.1 unknown").describe() == (
        "1 not sent: 550 5.1.1 unknown"
    )
    assert OutboxStatus(0, 0, 1).describe() == "1 being saved to Sent"


def test_editor_command(monkeypatch: pytest.MonkeyPatch) -> None:
    config = config_from_dict(
        {"accounts": {"me": {"email": "me@example.test", "imap": {"host": "h"}}}}
    )
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.delenv("EDITOR", raising=False)
    assert editor_command(config) is None  # the built-in editor
    monkeypatch.setenv("EDITOR", "vim -c 'set tw=72'")
    assert editor_command(config) == ["vim", "-c", "set tw=72"]
    monkeypatch.setenv("VISUAL", "nano")
    assert editor_command(config) == ["nano"]
    builtin = config_from_dict(
        {
            "accounts": {"me": {"email": "me@example.test", "imap": {"host": "h"}}},
            "ui": {"editor": "builtin"},
        }
    )
    assert editor_command(builtin) is None


def test_mailto_argument_is_taken_out_before_the_commands() -> None:
    assert split_mailto(["--config", "c.toml", "mailto:a@b?subject=x"]) == (
        ["--config", "c.toml"],
        "mailto:a@b?subject=x",
    )
    assert split_mailto(["sync"]) == (["sync"], None)
