"""Reply and forward prefixes by one table: the subject a reply gets and the subject
threading compares know the same prefixes in the same languages."""

from __future__ import annotations

import re

from kittiwake.core.message.headers import one_line

__all__ = ["base_subject", "forward_subject", "is_reply_subject", "reply_subject"]

# Reply prefixes (and forward ones a reply drops as well) in the languages mailers write
# them: Re, AW (German), SV/VS (Nordic), Antw (Dutch), Réf (French), RIF (Italian), Odp
# (Polish), R, Enc/Res (Portuguese), Ynt (Turkish), Atb (Latvian), VL (Finnish).
_REPLY_WORDS = r"re|aw|sv|vs|antw|odp|r[ée]f|rif|r|enc|res|ynt|atb|vl"
# Forward prefixes: Fw/Fwd, WG (German), TR (French), RV (Spanish), I (Italian).
_FORWARD_WORDS = r"fwd?|wg|tr|rv|i"

_REPLY_PREFIX = re.compile(
    rf"^(?:\s*(?:\[[^\]]*\]\s*)?(?:{_REPLY_WORDS})(?:\s*[\[(]\d+[\])])?\s*[:：])+\s*",
    re.IGNORECASE,
)
_FORWARD_PREFIX = re.compile(rf"^\s*(?:{_FORWARD_WORDS})\s*[:：]", re.IGNORECASE)
_PREFIX = re.compile(
    r"^(?:\s*(?:\[[^\[\]]{0,40}\]\s*)*"  # list tags: [announce]
    rf"(?:{_REPLY_WORDS}|{_FORWARD_WORDS})"
    r"(?:\s*[\[(]\d{1,4}[\])])?\s*[:：]\s*)+",
    re.IGNORECASE,
)
_TAGS = re.compile(r"^(?:\s*\[[^\[\]]{0,40}\])+\s*")


def reply_subject(subject: str) -> str:
    """``Re:`` once: ``Re: Re: x``, ``RE: x``, ``Aw: x``, ``[list] Re: x`` all become ``Re: x``."""
    subject = one_line(subject).strip()
    stripped = _REPLY_PREFIX.sub("", subject, count=1)
    return f"Re: {stripped}" if stripped else "Re:"


def forward_subject(subject: str) -> str:
    subject = one_line(subject).strip()
    if _FORWARD_PREFIX.match(subject):
        return subject
    return f"Fwd: {subject}" if subject else "Fwd:"


def is_reply_subject(subject: str) -> bool:
    """Does the subject start with a reply or forward prefix ("Re:", "AW:", "Fwd:", ...)?"""
    return _PREFIX.match(subject) is not None


def base_subject(subject: str) -> str:
    """The subject without reply/forward prefixes and list tags, case-folded, spaces
    collapsed: what threading's subject fallback compares."""
    text = _PREFIX.sub("", subject)
    text = _TAGS.sub("", text)
    return " ".join(text.split()).casefold()
