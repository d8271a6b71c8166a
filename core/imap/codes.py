"""Response codes people must hear about, in plain words (RFC 5530, RFC 3501 ALERT).

``[ALERT]`` text must be shown to the user (RFC 3501 7.1); the others explain a refusal
better than the server's free text does ("[OVERQUOTA] Quota exceeded" -> the mailbox is
full). ``plain_words`` gives the sentence for the status bar; the engine publishes it as a
``SyncError`` (``ImapClient.on_notice``) and uses it in error messages.
"""

from __future__ import annotations

__all__ = ["NOTICE_CODES", "TEMPORARY_CODES", "plain_words", "temporary"]

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


def temporary(code: str | None, text: str) -> bool:
    """Whether a refused login (``[code] text``) is a passing condition of the server. Dovecot's
    per-user connection cap says so in its words only on some versions, hence the text."""
    if code is not None and code.upper() in TEMPORARY_CODES:
        return True
    return "maximum number of connections" in text.lower()


def plain_words(code: str | None, text: str, label: str) -> str | None:
    """The sentence for ``[code] text`` from ``label`` (the server), None for other codes."""
    if code is None:
        return None
    sentence = _SENTENCES.get(code.upper())
    if sentence is None:
        return None
    text = " ".join(text.split()).rstrip(".")
    detail = f' ("{text}")' if text else ""
    return sentence.format(label=label, text=text or "(no text)", detail=detail)
