"""The quoted strings of the IMAP client's command lines (CREATE, RENAME, SEARCH HEADER):
whatever the text, the result is one line, or a ValueError for CR, LF and NUL."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kittiwake.core.imap.client import quote


@given(st.text())
def test_a_quoted_string_never_ends_the_command_line(text: str) -> None:
    if any(c in text for c in "\r\n\x00"):
        with pytest.raises(ValueError):
            quote(text)
        return
    quoted = quote(text)
    assert quoted.startswith('"') and quoted.endswith('"')
    assert "\r" not in quoted and "\n" not in quoted and "\x00" not in quoted
    inner = quoted[1:-1].replace("\\\\", "").replace('\\"', "")
    assert '"' not in inner  # every quote inside is escaped: the string ends where it should


def test_cr_lf_and_nul_are_refused() -> None:
    for bad in ("a\r\nZ1 DELETE INBOX", "a\nb", "a\rb", "a\x00b"):
        with pytest.raises(ValueError):
            quote(bad)
