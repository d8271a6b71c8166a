"""Address completion for To/Cc/Bcc, from the addresses seen in mail.

``complete(seen, prefix)`` ranks people the way a keyboard user expects: whoever you write to
often and lately first; people who only wrote to you (or were copied) count, but far less.
Matching is case- and accent-insensitive and looks at the start of any word of the name or the
address: "jo" and "mul" find "Jörg Müller", "exa" finds "bob@example.org", "jo mu" needs both.
"""

from __future__ import annotations

import math
import re
import time
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from kittiwake.core.cache import Cache
from kittiwake.core.models import Address, FolderRole

WROTE_WEIGHT = 10.0
"""The score is ``WROTE_WEIGHT * (messages you wrote to them) + log(1 + messages seen)``, each
message weighted by its age: writing to someone counts a lot, and a sender you never answer
(a newsletter, a busy list) cannot outrank people you write to by volume alone."""
HALF_LIFE_DAYS = 60.0
"""A message this old counts half as much as one from today."""

Seen = tuple[Address, datetime | float | None, bool]
"""(address, when (datetime or Unix time), whether you wrote to them)."""


@dataclass
class Candidate:
    address: Address
    wrote_weight: float
    seen_weight: float
    wrote: int
    """Messages you sent to this address."""
    seen: int
    last_wrote: float = 0.0
    last_seen: float = 0.0

    @property
    def score(self) -> float:
        return WROTE_WEIGHT * self.wrote_weight + math.log1p(self.seen_weight)

    @property
    def last(self) -> float:
        """When you last wrote to them, else when they were last seen (Unix time)."""
        return self.last_wrote if self.wrote else self.last_seen


_LETTERS = str.maketrans(
    {"ø": "o", "æ": "ae", "œ": "oe", "ł": "l", "đ": "d", "ð": "d", "þ": "th", "ı": "i"}
)


def fold(text: str) -> str:
    """Lower case, accents removed, a few letters spelled out: "Jörg Ærø" -> "jorg aero"."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return bare.translate(_LETTERS)


_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def _words(text: str) -> list[str]:
    return _WORD.findall(fold(text))


def rank(seen: Iterable[Seen], *, now: float | None = None) -> list[Candidate]:
    """Every address once (case-insensitive), best first."""
    now = time.time() if now is None else now
    by_addr: dict[str, Candidate] = {}
    names: dict[str, tuple[float, str]] = {}
    for address, when, wrote in seen:
        if not address.addr or "@" not in address.addr:
            continue
        stamp = _stamp(when, now)
        age_days = max(0.0, (now - stamp) / 86400)
        weight = math.pow(0.5, age_days / HALF_LIFE_DAYS)
        key = address.addr.lower()
        cand = by_addr.get(key)
        if cand is None:
            cand = by_addr[key] = Candidate(address, 0.0, 0.0, 0, 0)
        if wrote:
            cand.wrote += 1
            cand.wrote_weight += weight
            cand.last_wrote = max(cand.last_wrote, stamp)
        else:
            cand.seen += 1
            cand.seen_weight += weight
            cand.last_seen = max(cand.last_seen, stamp)
        # The name most recently used for the address wins (people fix their names).
        if address.name and (key not in names or stamp >= names[key][0]):
            names[key] = (stamp, address.name)
    for key, cand in by_addr.items():
        name = names.get(key, (0.0, ""))[1]
        cand.address = Address(name, cand.address.addr)
    return sorted(by_addr.values(), key=lambda c: (-c.score, -c.last, c.address.addr.lower()))


def matches(address: Address, query: str) -> bool:
    """Every word of ``query`` starts a word of the name or address (or the address itself)."""
    terms = _words(query)
    if not terms:
        return True
    addr = fold(address.addr)
    haystack = _words(address.name) + _words(address.addr)
    return all(addr.startswith(t) or any(w.startswith(t) for w in haystack) for t in terms)


def complete(
    seen: Iterable[Seen],
    prefix: str,
    *,
    limit: int = 10,
    exclude: Iterable[str] = (),
    now: float | None = None,
) -> list[Address]:
    """Up to ``limit`` addresses matching ``prefix``, best first; ``exclude`` (your own
    addresses, those already typed) are left out."""
    skip = {e.lower() for e in exclude}
    query = prefix.strip()
    whole = fold(query)
    out: list[Candidate] = []
    for cand in rank(seen, now=now):
        if cand.address.addr.lower() in skip:
            continue
        if fold(cand.address.addr).startswith(whole) or matches(cand.address, query):
            out.append(cand)
    return [c.address for c in out[:limit]]


def _stamp(when: datetime | float | None, now: float) -> float:
    if when is None:
        return now - 365 * 86400
    if isinstance(when, datetime):
        return when.timestamp()
    return float(when)


PER_FOLDER = 3000
"""The newest messages of each folder that are read for addresses (a few ms per thousand)."""


def seen_in_cache(cache: Cache, own: Iterable[str], per_folder: int = PER_FOLDER) -> list[Seen]:
    """Every address in the envelopes of an account's cache: the recipients of your own
    messages (in Sent, or from one of your addresses) count as people you wrote to."""
    mine = {a.lower() for a in own}
    out: list[Seen] = []
    for folder in cache.folders():
        if not folder.selectable:
            continue
        sent_folder = folder.role is FolderRole.SENT
        uids = cache.ordered_uids(folder.name)[:per_folder]
        for summary in cache.summaries(folder.name, uids).values():
            env = summary.envelope
            when = env.date or summary.internal_date
            wrote = sent_folder or any(a.addr.lower() in mine for a in env.from_)
            for address in env.from_:
                if address.addr.lower() not in mine:
                    out.append((address, when, False))
            for address in (*env.to, *env.cc, *env.bcc):
                if address.addr.lower() not in mine:
                    out.append((address, when, wrote))
    return out


# -- aliases ----------------------------------------------------------------------------------


def split_entries(text: str) -> list[str]:
    """``text`` cut at the commas between addresses (not those in quotes or angle brackets)."""
    out: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    depth = 0
    for ch in text:
        if escaped:
            escaped = False
        elif ch == "\\" and quoted:
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif not quoted and ch == "<":
            depth += 1
        elif not quoted and ch == ">":
            depth = max(0, depth - 1)
        elif ch == "," and not quoted and not depth:
            out.append("".join(current))
            current = []
            continue
        current.append(ch)
    out.append("".join(current))
    return [part.strip() for part in out if part.strip()]


def expand_aliases(text: str, aliases: dict[str, tuple[str, ...]]) -> str:
    """To/Cc/Bcc as typed with every alias name (a whole entry, any case) replaced by its
    addresses; other entries are left exactly as typed."""
    if not aliases:
        return text
    by_name = {name.casefold(): items for name, items in aliases.items()}
    parts: list[str] = []
    for entry in split_entries(text):
        parts.extend(by_name.get(entry.casefold(), (entry,)))
    return ", ".join(parts)


def alias_matches(aliases: dict[str, tuple[str, ...]], prefix: str) -> list[Address]:
    """Aliases whose name starts with ``prefix``, as completions (the name stands as the
    address: it is expanded when the field is read)."""
    folded = fold(prefix.strip())
    if not folded:
        return []
    return [Address("", name) for name in sorted(aliases) if fold(name).startswith(folded)]
