"""How a text body reads: quote depth per line, where the signature starts, numbered URLs.

Pure analysis; the UI decides the colours.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_QUOTE = re.compile(r"^((?:\s?>)+)")
_URL = re.compile(r"""(?:https?://|mailto:|ftp://)[^\s<>"'\]\[)]+[^\s<>"'.,;:!?\]\[)]""")


@dataclass(frozen=True, slots=True)
class LinkSpan:
    start: int
    end: int
    number: int


@dataclass(frozen=True, slots=True)
class BodyLine:
    text: str
    quote_depth: int = 0
    signature: bool = False
    links: tuple[LinkSpan, ...] = field(default=())


def analyse(text: str, links: list[str] | None = None) -> tuple[list[BodyLine], list[str]]:
    """Split ``text`` into lines and number every URL (after any already in ``links``)."""
    urls = list(links or [])
    out: list[BodyLine] = []
    in_signature = False
    for line in text.split("\n"):
        if line in ("-- ", "--") and not in_signature:
            in_signature = True
        depth = 0
        m = _QUOTE.match(line)
        if m:
            depth = m.group(1).count(">")
        spans = []
        for um in _URL.finditer(line):
            url = um.group()
            if url in urls:
                number = urls.index(url) + 1
            else:
                urls.append(url)
                number = len(urls)
            spans.append(LinkSpan(um.start(), um.end(), number))
        out.append(BodyLine(line, depth, in_signature, tuple(spans)))
    while out and not out[-1].text.strip():
        out.pop()
    return out, urls
