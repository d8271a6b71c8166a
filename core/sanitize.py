"""Text from mail is hostile: make it safe to put on a terminal.

Removes whole escape sequences (CSI, OSC, DCS and friends, 7- and 8-bit forms) so no payload
survives as visible junk, and replaces the remaining C0/C1 controls and the bidi overrides
that can disguise text (Trojan Source: U+061C and U+200E/F included) and the Unicode line and
paragraph separators (a terminal may break the line there) with visible stand-ins.
"""

from __future__ import annotations

import re

# ESC [ ... final, ESC ] ... (BEL | ESC \), ESC P/X/^/_ ... ESC \, and their C1 forms.
_ESCAPES = re.compile(
    r"""
    (?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?                  # CSI
    | (?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f]).*?(?:\x07|\x1b\\|\x9c|$)   # OSC, DCS, SOS, PM, APC
    | \x1b[ -/]*[0-~]?                                  # other ESC sequences (incl. lone ESC)
    """,
    re.VERBOSE | re.DOTALL,
)
_CONTROLS = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c\u2028\u2029]"
)


def _visible(match: re.Match[str]) -> str:
    ch = match.group()
    code = ord(ch)
    if code < 0x20:
        return chr(0x2400 + code)  # ␀..␟ control pictures
    if code == 0x7F:
        return "\u2421"  # ␡
    return "\ufffd"


def strip_escapes(text: str) -> str:
    """``text`` without its escape sequences, controls left as they are: for output read
    as a terminal would show it (``\r`` still rewrites a line) before it is cleaned."""
    return _ESCAPES.sub("", text)


def clean_text(text: str, keep_newlines: bool = True) -> str:
    """``text`` with escape sequences removed and other controls made visible.

    Tabs survive; newlines survive when ``keep_newlines`` (bodies), else they become spaces
    (headers, one-line fields). Carriage returns are dropped.
    """
    text = strip_escapes(text)
    text = text.replace("\r\n", "\n").replace("\r", "")
    if not keep_newlines:
        text = text.replace("\n", " ").replace("\t", " ")
    return _CONTROLS.sub(_visible, text)


def clean_line(text: str) -> str:
    """A header or other one-line field: no controls, no line breaks, no runs of blanks."""
    return " ".join(clean_text(text, keep_newlines=False).split())
