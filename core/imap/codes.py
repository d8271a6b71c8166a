"""Response codes people must hear about, in plain words (RFC 5530, RFC 3501 ALERT).

``[ALERT]`` text must be shown to the user (RFC 3501 7.1); the others explain a refusal
better than the server's free text does ("[OVERQUOTA] Quota exceeded" -> the mailbox is
full). ``plain_words`` gives the sentence for the status bar; the engine publishes it as a
``SyncError`` (``ImapClient.on_notice``) and uses it in error messages.
"""

from __future__ import annotations

import re
from typing import Literal

__all__ = [
    "BANDWIDTH",
    "CONNECTIONS",
    "NOTICE_CODES",
    "OWN_CONNECTIONS",
    "TEMPORARY_CODES",
    "limit_sentence",
    "passing",
    "plain_words",
    "server_limit",
    "stale_mailbox",
    "temporary",
]

#: The most connections Kittiwake holds open to one account: the command connection and at
#: most two watchers (INBOX and the open folder, IDLE without NOTIFY; one with NOTIFY). Gmail
#: allows 15 per account, shared by every program and device of the user.
OWN_CONNECTIONS = 3

Limit = Literal["connections", "bandwidth"]
CONNECTIONS: Limit = "connections"
BANDWIDTH: Limit = "bandwidth"

#: A server's words (and our own sentences below, which keep them) for its limits. Gmail says
#: "[ALERT] Too many simultaneous connections" and "[ALERT] Account exceeded command or
#: bandwidth limits", with a code that names neither; Dovecot "Maximum number of connections
#: from user+IP exceeded".
_CONNECTIONS_WORDS = re.compile(
    r"too many (simultaneous |concurrent |open )?(connections|sessions)"
    r"|maximum number of connections",
    re.IGNORECASE,
)
_BANDWIDTH_WORDS = re.compile(r"(command|bandwidth) limits?\b", re.IGNORECASE)

_LIMIT_SENTENCES = {
    CONNECTIONS: "{label} has too many connections open to this account: other devices or "
    "programs are using them (Kittiwake uses at most {own}), so Kittiwake will try again later.",
    BANDWIDTH: "{label} says this account went over its command or bandwidth limits (every "
    "program syncing it counts), so Kittiwake waits some minutes before trying again and "
    "keeps your changes until then.",
}

_SENTENCES = {
    "ALERT": "{label} says: {text}",
    "UNAVAILABLE": "{label} is temporarily unavailable; Kittiwake will try again later{detail}.",
    "LIMIT": "{label} refused because a limit was reached (too many connections or too much "
    "at once){detail}.",
    "OVERQUOTA": "The mailbox on {label} is full (over its quota){detail}.",
    "AUTHENTICATIONFAILED": "{label} rejected the user name or password{detail}.",
}

#: Codes worth a notice even when they come with an untagged OK or NO.
NOTICE_CODES = frozenset(_SENTENCES)


#: A refusal of the login with one of these says "not now", not "not you" (RFC 5530:
#: UNAVAILABLE is "a temporary failure", LIMIT and INUSE a resource taken): retried like a
#: network failure, never taken for a wrong password (which waits long and says "login failed").
TEMPORARY_CODES = frozenset({"UNAVAILABLE", "LIMIT", "INUSE"})


def server_limit(text: str) -> Limit | None:
    """Which of its limits the server (or a sentence of ``limit_sentence``) names in ``text``:
    too many connections for the account, or its command or bandwidth limits; else None."""
    if _CONNECTIONS_WORDS.search(text):
        return CONNECTIONS
    if _BANDWIDTH_WORDS.search(text):
        return BANDWIDTH
    return None


#: Dovecot's words when this session still holds the index of a mailbox that another session
#: deleted (and maybe recreated): it refuses that mailbox so for the rest of the session, while
#: a new session reads the folder as it now is. No response code comes with them.
_STALE_WORDS = re.compile(r"mailbox was deleted under us", re.IGNORECASE)


def stale_mailbox(text: str) -> bool:
    """Whether a refusal's ``text`` says the session's view of the mailbox is stale (a new
    session is needed, not a verdict on the command)."""
    return _STALE_WORDS.search(text) is not None


def limit_sentence(limit: Limit, label: str) -> str:
    """The status line for ``limit`` reached at ``label``: one sentence, which says all the
    server's words ("Too many simultaneous connections. (Failure)") do, and what next."""
    return _LIMIT_SENTENCES[limit].format(label=label, own=OWN_CONNECTIONS)


def temporary(code: str | None, text: str) -> bool:
    """Whether a refused login (``[code] text``) is a passing condition of the server. Dovecot's
    per-user connection cap says so in its words only on some versions, and Gmail's caps
    come as ``[ALERT]``, hence the text."""
    if code is not None and code.upper() in TEMPORARY_CODES:
        return True
    return server_limit(text) is not None


def passing(code: str | None, text: str) -> bool:
    """Whether a command's refusal is the server's passing state (its bandwidth limit,
    ``[UNAVAILABLE]``), not a verdict on the command: the journal keeps the action for later
    instead of rolling it back."""
    return (code or "").upper() == "UNAVAILABLE" or server_limit(text) == BANDWIDTH


def plain_words(code: str | None, text: str, label: str) -> str | None:
    """The sentence for ``[code] text`` from ``label`` (the server), None for other codes."""
    if code is None:
        return None
    limit = server_limit(text) if code.upper() in ("ALERT", "LIMIT", "UNAVAILABLE") else None
    if limit is not None:
        return limit_sentence(limit, label)
    sentence = _SENTENCES.get(code.upper())
    if sentence is None:
        return None
    text = " ".join(text.split()).rstrip(".")
    detail = f' ("{text}")' if text else ""
    return sentence.format(label=label, text=text or "(no text)", detail=detail)
