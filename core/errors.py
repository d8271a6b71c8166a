"""Error hierarchy of the engine.

Every error the user may see carries ``message``: one plain sentence saying what went wrong
and where (file and key, or server and port). Full detail goes to the log, never the screen.
"""

from __future__ import annotations


class KittiwakeError(Exception):
    """Base of every error the engine raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    recoverable: bool = False


class ConfigError(KittiwakeError):
    """The config file is missing, malformed or inconsistent."""


class CacheError(KittiwakeError):
    """An account's cache file cannot be used as it is (newer schema, damaged beyond repair,
    failing at run time); the message names the file."""


class SecretError(KittiwakeError):
    """A password could not be obtained (command failed, variable unset)."""


class SignInRequired(SecretError):
    """An OAuth2 account has no usable sign-in (never signed in, or the refresh token was
    refused): the user must sign in again; retrying on its own would only loop."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


# --- IMAP -------------------------------------------------------------------------------
#
# ``ConnectionLost`` is also a ``ConnectionError`` so generic network handling catches it;
# ``CommandTimeout`` is a ``ConnectionLost`` (a timed-out connection is dropped, its stream
# can no longer be trusted) and a ``TimeoutError``. ``AuthFailed`` is a ``CommandFailed``
# (the server said NO/BAD to LOGIN/AUTHENTICATE) so ``except CommandFailed`` sees it too.


class ImapError(KittiwakeError):
    """Base of every IMAP error."""


class ProtocolError(ImapError):
    """The server sent something the client cannot make sense of (or too much of it)."""


class ResponseTooLarge(ProtocolError):
    """One response (line plus literals) exceeds the configured bound."""


class TlsError(ImapError):
    """TLS could not be set up: handshake or certificate failure, or STARTTLS unavailable."""


class StartTlsUnavailable(TlsError):
    """STARTTLS is required by the config but the server does not offer it."""


class CommandFailed(ImapError):
    """The server answered NO or BAD; ``status``, ``code`` (e.g. "TRYCREATE") and ``text``
    hold its words."""

    def __init__(
        self,
        message: str,
        *,
        command: str = "",
        status: str = "",
        text: str = "",
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.command = command
        self.status = status
        self.text = text
        self.code = code


class AuthFailed(CommandFailed):
    """The server rejected the credentials (or authentication is impossible as configured).

    ``detail`` may hold the server's decoded SASL error challenge (XOAUTH2). ``temporary``:
    the server refused for now (``[UNAVAILABLE]``, a connection cap), not the credentials:
    callers retry it like a network failure and never ask for the password again.
    """

    def __init__(
        self,
        message: str,
        *,
        command: str = "",
        status: str = "",
        text: str = "",
        detail: str = "",
        code: str | None = None,
        temporary: bool = False,
    ) -> None:
        super().__init__(message, command=command, status=status, text=text, code=code)
        self.detail = detail
        self.temporary = temporary


class ImapStateError(ImapError):
    """A command was issued in a state that does not allow it (e.g. during IDLE)."""


class ConnectionLost(ImapError, ConnectionError):
    """The connection is gone; every pending command fails with this at once."""

    recoverable = True


class ConnectFailed(ConnectionLost):
    """The connection could not be opened (refused, unreachable, timed out, bad greeting)."""


class CommandTimeout(ConnectionLost, TimeoutError):
    """The server stayed silent for longer than the command's timeout; the link is dropped."""
