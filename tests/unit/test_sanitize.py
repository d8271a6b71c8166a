"""Hostile text from mail never reaches the terminal as control sequences."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from kittiwake.core.sanitize import clean_line, clean_text

DANGEROUS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def test_escape_sequences_are_removed_whole() -> None:
    assert clean_line("Hi \x1b[31mred\x1b[0m there") == "Hi red there"
    assert clean_line("a\x1b]8;;http://evil\x1b\\link\x1b]8;;\x1b\\b") == "alinkb"
    assert clean_line("title\x1b]0;pwned\x07!") == "title!"
    assert clean_line("x\x9b2Jy") == "xy"
    assert clean_line("dcs\x1bPq#0;2;0;0;0\x1b\\end") == "dcsend"


def test_controls_become_visible_and_bidi_is_neutralised() -> None:
    assert clean_line("bell\x07") == "bell\u2407"
    assert clean_line("abc\u202edcba") == "abc\ufffddcba"
    assert clean_text("line1\r\nline2\n\tindent") == "line1\nline2\n\tindent"
    assert clean_line("multi\nline\tsubject") == "multi line subject"


def test_markup_is_left_literal() -> None:
    assert clean_line("[bold]not bold[/] [link=http://x]y[/link]") == (
        "[bold]not bold[/] [link=http://x]y[/link]"
    )


@given(st.text())
def test_nothing_dangerous_survives(text: str) -> None:
    for out in (clean_text(text), clean_line(text)):
        assert DANGEROUS.search(out) is None
        assert "\x1b" not in out


@given(st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cf", "Cs", "Zl", "Zp"))))
def test_ordinary_text_is_unchanged(text: str) -> None:
    assert clean_text(text) == text
