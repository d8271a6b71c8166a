"""``[keys]``: the reader's old triage ids are the ``triage.*`` ones now, with a warning."""

from __future__ import annotations

from kittiwake.tui.keymap import check_keymap

KNOWN = {"triage.flag", "triage.delete", "reader.save", "list.next"}


def test_an_old_reader_id_applies_as_its_new_name_and_says_so() -> None:
    keymap, warnings = check_keymap({"reader.flag": "F", "reader.save": "S"}, KNOWN, "cfg")
    assert keymap == {"triage.flag": "F", "reader.save": "S"}
    assert warnings == ["cfg: keys.reader.flag is now called triage.flag (it applies everywhere)"]


def test_the_new_name_wins_over_the_old_one() -> None:
    keys = {"reader.delete": "x", "triage.delete": "delete"}
    keymap, warnings = check_keymap(keys, KNOWN, "cfg")
    assert keymap == {"triage.delete": "delete"}
    assert warnings == [
        "cfg: keys.reader.delete: ignored, keys.triage.delete is set (it is its new name)"
    ]


def test_an_unknown_id_still_gets_a_hint() -> None:
    _, warnings = check_keymap({"reader.flg": "x"}, KNOWN, "cfg")
    assert warnings == ["cfg: keys.reader.flg: no such action"]
