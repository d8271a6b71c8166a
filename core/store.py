"""What every kind of account offers the API: one local cache, actions, bodies, folders.

IMAP accounts (``core/imap/account.py``) and local Maildir accounts fed by POP3
(``core/local/``) both satisfy ``MailStore``, so ``MailApi`` and the UI never ask which
kind of account they are looking at.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence, Sized
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from kittiwake.core.cache import Cache
from kittiwake.core.events import ConnState
from kittiwake.core.journal import Action


@dataclass
class SyncStats:
    folders: int = 0
    messages: int = 0
    fetched: int = 0
    seconds: float = 0.0


class ActionQueue(Protocol):
    """Journaled, optimistic actions (see ``core/imap/triage.py``)."""

    @property
    def journal(self) -> Sized: ...

    def submit(self, action: Action) -> Action: ...

    def cancel_pending(self, action: Action) -> bool: ...

    def inverse(self, action: Action) -> list[Action] | str: ...

    def keep(self, action: Action) -> None:
        """Keep what undoing ``action`` needs once it is sent (it is in the undo history)."""
        ...

    def forget(self, action: Action) -> None:
        """``action`` left the undo history: what its undo needed can go."""
        ...

    def has_pending(self) -> bool: ...


class MailStore(Protocol):
    name: str
    cache: Cache
    state: ConnState
    searches_server: bool
    """Whether a server completes searches (``search_folder``) beyond what the cache holds."""

    @property
    def has_labels(self) -> bool:
        """Whether the account's messages carry Gmail's labels (``X-GM-EXT-1``), so the UI
        offers the label key only there."""
        ...

    @property
    def triage(self) -> ActionQueue: ...

    @property
    def is_synced(self) -> bool: ...

    def start(self) -> None: ...

    async def stop(self) -> None: ...

    def set_open_folder(self, folder: str | None) -> None: ...

    async def sync_folder(self, folder: str) -> int: ...

    async def fetch_body(self, folder: str, uid: int) -> bytes | None: ...

    async def append(self, folder: str, raw: bytes, flags: frozenset[str]) -> int | None:
        """Store a message (a Sent copy, a draft); returns its UID where known."""
        ...

    async def append_many(
        self, folder: str, messages: Sequence[tuple[bytes, frozenset[str], datetime | None]]
    ) -> None:
        """Store a batch of (message, flags, INTERNALDATE) in one go (an import): as few
        round trips as the server allows, and one sync after them, not one per message."""
        ...

    async def has_message_id(self, folder: str, message_id: str) -> bool:
        """Whether ``folder`` already holds a message with this Message-ID (a Sent copy filed
        before a crash must not be filed twice)."""
        ...

    async def message_id_uids(self, folder: str, message_id: str) -> set[int]:
        """The UIDs in ``folder`` of messages with this Message-ID (a draft whose APPEND
        reply was lost is found, and replaced with the others)."""
        ...

    async def refresh_folders(self) -> None:
        """Read the folder list from the server (the Maildir) into the cache now: a fresh
        cache must not be mistaken for an account without Sent or Drafts."""
        ...

    async def connect_once(self) -> None:
        """Connect without the supervisor (one-shot commands: ``kittiwake search``); raises
        ``KittiwakeError`` when the server cannot be reached or refuses the login."""
        ...

    async def search_folder(self, folder: str, query: str) -> Collection[int]:
        """The UIDs the server finds in ``folder`` for ``query`` (the search language of
        ``core/search/query.py``); summaries it finds that were not cached are stored and
        published first. Empty where the cache is the whole answer."""
        ...

    async def sync_all(self) -> object:
        """Replay journaled actions, list the folders and sync each (``kittiwake sync``)."""
        ...

    async def append_mark(self, folder: str) -> str:
        """A mark of ``folder`` taken just before appending, creating the folder when it is
        missing; ``find_appended`` tells from it what arrived since. Together they make a
        delivery exactly once across a crash between the append and its record (POP3's
        ``deliver_to``)."""
        ...

    async def find_appended(
        self, folder: str, mark: str, sizes: Collection[int], matches: Callable[[bytes], bool]
    ) -> str | None:
        """Where a message appended to ``folder`` since ``mark``, with one of ``sizes`` and
        content that ``matches``, is now; None when there is none (or it cannot be told)."""
        ...

    def new_folder_name(self, name: str) -> str:
        """The full name for a folder Kittiwake makes on its own ("Archive", "Sent"): under
        the server's personal namespace where it has one (``INBOX.Archive``)."""
        ...

    async def create_folder(self, name: str) -> None: ...

    async def rename_folder(self, old: str, new: str) -> None: ...

    async def delete_folder(self, folder: str) -> None: ...
