"""``tui/triage.py`` without the app: the bindings every screen shares, and the folder
pickers' order (the sidebar's)."""

from __future__ import annotations

from textual.binding import Binding

from kittiwake.core.api import Hit
from kittiwake.core.models import FolderInfo, FolderRole
from kittiwake.tui.triage import (
    Targets,
    parse_label_edit,
    targets_of,
    tree_order,
    triage_bindings,
)
from kittiwake.tui.widgets.message_list import label_tags


def test_triage_bindings_have_one_id_each_and_show_what_is_asked() -> None:
    bindings = [b for b in triage_bindings(shown=("flag",), labels={"read": "Unread"})]
    assert all(isinstance(b, Binding) for b in bindings)
    by_id = {b.id: b for b in bindings if isinstance(b, Binding)}
    assert list(by_id) == [
        "triage.flag",
        "triage.read",
        "triage.archive",
        "triage.delete",
        "triage.move",
        "triage.copy",
        "triage.junk",
        "triage.label",
        "triage.undo",
    ]
    assert by_id["triage.flag"].show and not by_id["triage.undo"].show
    assert by_id["triage.read"].description == "Unread"
    only = triage_bindings(only=("archive", "move"))
    assert [b.id for b in only if isinstance(b, Binding)] == ["triage.archive", "triage.move"]


def test_targets_are_grouped_by_folder_in_the_order_shown() -> None:
    hits = [Hit("INBOX", 3), Hit("Sent", 1), Hit("INBOX", 2)]
    assert targets_of(hits, {"INBOX": 7, "Sent": 9}.get) == [
        Targets("INBOX", 7, (3, 2)),
        Targets("Sent", 9, (1,)),
    ]


def test_pickers_list_folders_as_the_sidebar_does() -> None:
    folders = [
        FolderInfo("Work/Old", "/"),
        FolderInfo("Trash", "/", FolderRole.TRASH),
        FolderInfo("Work", "/"),
        FolderInfo("Archive", "/", FolderRole.ARCHIVE),
        FolderInfo("INBOX", "/", FolderRole.INBOX),
        FolderInfo("Zoo", "/"),
        FolderInfo("Work/New", "/"),
    ]
    names = [r.folder for r in tree_order("mine", folders)]
    assert names == ["INBOX", "Archive", "Trash", "Work", "Work/New", "Work/Old", "Zoo"]


def test_a_label_edit_adds_bare_names_and_removes_minus_ones() -> None:
    assert parse_label_edit('+Travel -Work "Big Project" Receipts') == (
        ("Travel", "Big Project", "Receipts"),
        ("Work",),
    )
    assert parse_label_edit("  ") == ((), ())


def test_the_list_shows_the_users_labels_not_gmails_own_nor_the_folders() -> None:
    labels = ("\\Inbox", "\\Important", "Work", "Travel")
    assert label_tags(labels, "INBOX") == "[Work] [Travel] "
    assert label_tags(labels, "Work") == "[Travel] "
    assert label_tags(None, "INBOX") == ""
