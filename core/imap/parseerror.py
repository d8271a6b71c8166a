"""The one error the IMAP parsing modules raise on malformed input."""

from __future__ import annotations

from kittiwake.core.errors import ProtocolError

__all__ = ["DecodeError", "ParseError"]


class ParseError(ProtocolError, ValueError):
    """A server response (or a value in it) is malformed.

    A ``ProtocolError`` for the engine's error handling and a ``ValueError`` for callers that
    treat parsing generically. Nothing else escapes the parser on hostile input.
    """


class DecodeError(ParseError):
    """A well-formed response holds a value of the wrong shape (e.g. a broken ENVELOPE)."""
