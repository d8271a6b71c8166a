"""The one face of the engine that the UI sees: reads from the cache, actions, and events.

Reads (folders, the position index, a screenful of summaries) are synchronous: they are
SQLite point queries of a few microseconds and must never make the UI wait on the network.
Everything that may touch a server is async. The UI never sees a protocol object.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from array import array
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from kittiwake.core import gmailids
from kittiwake.core.cache import LazySummaries, uid_array
from kittiwake.core.compose.status import OutboxStatus, OutboxTally
from kittiwake.core.config import Account, Config
from kittiwake.core.engine import Engine
from kittiwake.core.errors import KittiwakeError
from kittiwake.core.events import (
    ConnectionChanged,
    ConnState,
    Event,
    FolderReset,
    MessagesAdded,
    Subscription,
)
from kittiwake.core.journal import Action, ActionRefused, as_seen
from kittiwake.core.models import SEEN, Address, FolderInfo, FolderRole, MessageSummary
from kittiwake.core.search.index import normalize
from kittiwake.core.search.order import (
    SortMemory,
    SortOrder,
    SortTexts,
    head_uids,
    ordered_threads,
    ordered_uids,
    uids_after,
)
from kittiwake.core.store import MailStore

# Loaded when first used, not at start (the first screen needs none of them): HTML
# conversion (lxml), MIME parsing, OAuth2, search and threads, the doctor's checks, and the
# compose service (drafts, MIME, the address book, OpenPGP: made with the engine's first event).
if TYPE_CHECKING:
    from kittiwake.core.compose.draft import Draft
    from kittiwake.core.compose.drafts import LocalDraft
    from kittiwake.core.compose.service import Composer, RefusedItem
    from kittiwake.core.message.mime import ParsedMessage
    from kittiwake.core.oauth2.endpoint import DeviceStart
    from kittiwake.core.oauth2.flow import BrowserPrompt, LoopbackReceiver
    from kittiwake.core.search.service import Hit
    from kittiwake.core.search.threads import Threading
    from kittiwake.core.setup.doctor import Check
    from kittiwake.core.transfer import ImportResult

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AccountInfo:
    key: str
    email: str
    name: str
    kind: str


def describe_actions(actions: Sequence[Action]) -> str:
    """What several actions did, in a few words: parts of one kind and destination (one per
    folder) are counted together."""
    if len({(a.kind, a.dest, a.add, a.remove) for a in actions}) == 1 and len(actions) > 1:
        first = actions[0]
        uids = tuple(u for a in actions for u in a.uids)
        return Action(
            kind=first.kind, folder="", uidvalidity=None, uids=uids, dest=first.dest
        ).describe()
    return ", ".join(a.describe() for a in actions)


def _check_folder_name(account: str, name: str) -> None:
    """Refuse what no folder name may hold: a line break would end an IMAP command line
    (and start another), and neither a Maildir nor IMAP can hold a NUL."""
    if any(c in name for c in "\r\n\x00"):
        raise KittiwakeError(
            f"A folder name cannot contain a line break or a NUL character (account {account})."
        )


class ComposeFace(Protocol):
    """``MailApi.compose``: the compose service's face, the one part of the engine besides
    ``MailApi`` itself that the UI may call (drafts on disk and in the Drafts folder, replies
    and forwards, messages the outbox holds for the user). ``Composer``
    (``core/compose/service.py``) implements it; ``MailApi`` keeps the rest of it for itself."""

    open_ids: set[str]

    def senders(self) -> list[str]: ...
    def new(
        self, account: str | None, to: str = "", subject: str = "", body: str = ""
    ) -> LocalDraft: ...
    def from_draft(self, account: str | None, draft: Draft) -> LocalDraft: ...
    def identities(self) -> list[tuple[str, Address]]: ...
    def change_account(
        self, local: LocalDraft, account: str, address: str | None = None
    ) -> LocalDraft: ...
    def parse_recipients(self, text: str, header: str = "To") -> tuple[Address, ...]: ...
    async def reply(
        self, account: str, folder: str, uid: int, *, all: bool = False
    ) -> LocalDraft: ...
    async def forward(
        self, account: str, folder: str, uid: int, *, attached: bool = False
    ) -> LocalDraft: ...
    def text_path(self, local: LocalDraft) -> Path: ...
    def read_back(self, local: LocalDraft) -> str: ...
    async def keep(self, local: LocalDraft) -> LocalDraft: ...
    async def discard(self, local: LocalDraft, *, keep_server_copy: bool = False) -> None: ...
    def refused_items(self) -> list[RefusedItem]: ...
    def uncertain_items(self) -> list[RefusedItem]: ...
    async def edit_refused(self, account: str, item_id: str) -> LocalDraft: ...
    async def delete_refused(self, account: str, item_id: str) -> None: ...
    async def resend_uncertain(self, account: str, item_id: str) -> None: ...
    async def delete_uncertain(self, account: str, item_id: str) -> None: ...
    async def missing_keys(self, local: LocalDraft) -> list[str]: ...
    def protocol(self, account: str) -> str: ...
    async def recommendation(self, local: LocalDraft) -> str | None: ...
    async def crypto_defaults(self, local: LocalDraft) -> LocalDraft: ...


class MailApi:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.config: Config = engine.config
        self._state: dict[str, ConnectionChanged] = {}
        self._state_at: dict[str, float] = {}
        self._bodies: dict[
            tuple[str, str, int | None, int], asyncio.Task[ParsedMessage | None]
        ] = {}
        self._unobserve = engine.bus.observe(self._note)
        #: Undo steps, newest last: one per user action, which may span several folders
        #: (one journaled ``Action`` each, see ``act_many``).
        self._history: deque[tuple[str, tuple[Action, ...]]] = deque(maxlen=50)
        #: HTML converted to text, keyed by a hash of the HTML itself: two messages with one
        #: Message-ID (careless or forged) must not share a body.
        self._html: dict[bytes, tuple[str, list[str]]] = {}
        self._moved_ids: deque[str] = deque(maxlen=2000)
        #: Compose and send: drafts, the Drafts folder, the outbox (``core/compose/service.py``),
        #: made when first asked for or at the engine's first event (it follows them from then on).
        self._composer_made: Composer | None = None
        #: What waits in the outboxes: the status bar asks before the first frame.
        self._tally = OutboxTally(engine.outboxes)
        self._sort_memory = SortMemory()
        self._sort_texts: dict[tuple[str, str, int | None], SortTexts] = {}
        #: Autocrypt updates from new mail, one at a time (the peer state is read, then
        #: written): the newest is last, and ``stop`` waits for what is left.
        self._learning: asyncio.Task[None] | None = None

    @classmethod
    def from_config(cls, config: Config) -> MailApi:
        return cls(Engine(config))

    @property
    def _composer(self) -> Composer:
        if self._composer_made is None:
            from kittiwake.core.compose.service import Composer

            self._composer_made = Composer(self.engine, self.message, self._tally)
        return self._composer_made

    @property
    def compose(self) -> ComposeFace:
        """What the UI may call of the compose service (see ``ComposeFace``)."""
        return self._composer

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Start syncing every account in the background (call inside the running loop)."""
        self.engine.start()

    def user_input(self) -> None:
        """The user pressed a key: cheap, call on every key (the decode pass steps aside)."""
        self.engine.user_input()

    async def stop(self) -> None:
        await self.engine.stop()
        self._unobserve()
        if self._learning is not None:
            await asyncio.gather(self._learning, return_exceptions=True)

    def _note(self, event: Event) -> None:
        self._tally.note(event)
        self._composer.note(event)  # made now if not yet: drafts go up once a server answers
        if isinstance(event, ConnectionChanged):
            self._state[event.account] = event
            self._state_at[event.account] = time.monotonic()
        elif isinstance(event, FolderReset):
            self._forget_folder(event.account, event.folder)
        elif isinstance(event, MessagesAdded):
            self._learn_new_mail(event)

    def _learn_new_mail(self, event: MessagesAdded) -> None:
        """Autocrypt's update on receipt, from the header fields the sync fetched with new
        mail's summaries (``extra_headers``; a first sync's lazy batches have none and are
        not even decoded here)."""
        acct = self.config.accounts.get(event.account)
        if acct is None or not acct.autocrypt or isinstance(event.summaries, LazySummaries):
            return
        items = [
            (s.extra_headers, s.envelope.date)
            for s in event.summaries
            if s.extra_headers is not None
        ]
        if not items:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # published outside the loop (a test's direct call): not synced
            return
        before = self._learning

        async def learn() -> None:
            if before is not None:
                await asyncio.gather(before, return_exceptions=True)
            for headers, date in items:
                await self._learn_autocrypt(acct, headers, date)

        self._learning = loop.create_task(learn())

    def _forget_folder(self, account: str, folder: str) -> None:
        """A recreated folder: its parsed bodies and rendered HTML go (the cache dropped its
        rows and raw bodies already)."""
        for key in [k for k in self._bodies if k[:2] == (account, folder)]:
            del self._bodies[key]
        self._html.clear()  # keyed by content, not by folder: small, so all of it

    @property
    def notices(self) -> list[str]:
        """What the user must be told at start (a damaged cache set aside and rebuilt)."""
        return self.engine.notices

    def cache_failure(self, exc: sqlite3.DatabaseError) -> str:
        """One sentence naming the cache file an SQLite error at run time came from."""
        return self.engine.cache_failure(exc)

    def subscribe(self) -> Subscription:
        return self.engine.bus.subscribe()

    # -- reading from the cache -----------------------------------------------------------

    def accounts(self) -> list[AccountInfo]:
        return [AccountInfo(a.key, a.email, a.name, a.kind) for a in self.config.accounts.values()]

    def connection(self, account: str) -> ConnectionChanged:
        return self._state.get(account) or ConnectionChanged(account, ConnState.CONNECTING)

    def retry_in(self, account: str) -> float | None:
        """Seconds until the next connection attempt, while offline."""
        state = self._state.get(account)
        if state is None or state.retry_in is None:
            return None
        return max(0.0, state.retry_in - (time.monotonic() - self._state_at[account]))

    def synced(self, account: str) -> bool:
        """The first full sync since the latest connect has finished (later mail is new)."""
        store = self.engine.stores.get(account)
        return store is not None and store.is_synced

    def _store(self, account: str) -> MailStore:
        return self.engine.stores[account]

    def folders(self, account: str) -> list[FolderInfo]:
        if account not in self.engine.stores:
            return []
        return self._store(account).cache.folders()

    def message_index(
        self,
        account: str,
        folder: str,
        order: SortOrder | None = None,
        limit: str | None = None,
    ) -> array[int]:
        """UIDs in ``order`` (newest first by default): row ``i`` of the list is
        ``index[i]``; with ``limit`` (a search query), only the messages matching it (mutt's
        limit). A malformed query raises ``QueryError``. A compact array (four bytes a
        message), not a list: a view keeps it for as long as the folder is shown."""
        cache = self._store(account).cache
        uids = ordered_uids(cache, folder, order or SortOrder(), self._sort_memo(account, folder))
        if limit:
            from kittiwake.core.search.service import local_hits

            keep = {hit.uid for hit in local_hits(cache, [folder], limit)}
            uids = uid_array(uid for uid in uids if uid in keep)
        return uids

    def message_index_start(
        self, account: str, folder: str, order: SortOrder, count: int
    ) -> array[int] | None:
        """The first ``count`` rows of ``message_index`` (no limit), or None when ``order``
        has to sort the whole folder to know them: the first screenful of a folder of a
        million messages, before its whole index (~0.3 s of CPU)."""
        return head_uids(self._store(account).cache, folder, order, count)

    def message_index_after(
        self, account: str, folder: str, order: SortOrder, uid: int, count: int
    ) -> array[int] | None:
        """The ``count`` rows of ``message_index`` (no limit) that follow ``uid``, or None
        when ``order`` has to sort the whole folder: the rest of the index a slice at a
        time after the first screenful, each slice a few tens of ms at most."""
        return uids_after(self._store(account).cache, folder, order, uid, count)

    def message_index_head(self, account: str, folder: str, count: int) -> array[int]:
        """The first ``count`` UIDs of the default order (newest first): where new mail
        lands, so the list can take it in without reading the whole index again (tens of
        ms at 100,000)."""
        return self._store(account).cache.ordered_uids(folder, first=count)

    def sort_order(self, account: str, folder: str) -> SortOrder:
        """The order the user chose for ``folder`` (remembered across runs)."""
        return self._sort_memory.get(account, folder)

    def set_sort_order(self, account: str, folder: str, order: SortOrder) -> None:
        self._sort_memory.set(account, folder, order)

    def unseen_uids(self, account: str, folder: str) -> list[int]:
        """The unread messages of ``folder`` as cached ("mark all read" names them)."""
        return self._store(account).cache.unseen_uids(folder)

    def summaries(
        self, account: str, folder: str, uids: Sequence[int]
    ) -> dict[int, MessageSummary]:
        return self._store(account).cache.summaries(folder, uids)

    def conversation(self, account: str, folder: str, uid: int) -> list[int]:
        return self._store(account).cache.conversation(folder, uid)

    async def body_text(self, parsed: ParsedMessage) -> tuple[str, list[str]]:
        """The text to show and its numbered links: text/plain, else the HTML converted
        (off the event loop, and remembered: converting a big newsletter takes ~90 ms)."""
        if parsed.text is not None and parsed.text.strip():
            return parsed.text, []
        if parsed.html is None:
            return "", []
        import hashlib  # (OpenSSL's digests: not needed before the first HTML message)

        key = hashlib.sha256(parsed.html.encode("utf-8", "surrogatepass")).digest()
        cached = self._html.get(key)
        if cached is None:
            from kittiwake.core.message.html import html_to_text

            cached = await asyncio.to_thread(html_to_text, parsed.html)
            self._html[key] = cached
            while len(self._html) > 32:
                self._html.pop(next(iter(self._html)))
        return cached

    def counts(self, account: str, folder: str) -> tuple[int, int]:
        return self._store(account).cache.counts(folder)

    # -- actions --------------------------------------------------------------------------

    async def open_folder(self, account: str, folder: str) -> None:
        """The user looks at ``folder``: keep it live and fresh."""
        store = self._store(account)
        store.set_open_folder(folder)
        if store.state is ConnState.ONLINE:
            try:
                await store.sync_folder(folder)
            except KittiwakeError as exc:
                log.info("resync of %s failed: %s", folder, exc.message)

    def uidvalidity(self, account: str, folder: str) -> int | None:
        """The folder's UIDVALIDITY as cached: a view records it with the UIDs it shows, and
        its actions name it (``Action.uidvalidity``)."""
        state = self._store(account).cache.folder_state(folder)
        return state.uidvalidity if state is not None else None

    async def message(self, account: str, folder: str, uid: int) -> ParsedMessage | None:
        """The whole message, parsed (from the cache, else fetched once; concurrent calls share).
        Remembered by UIDVALIDITY too: a recreated folder's UID 7 is another message."""
        key = (account, folder, self.uidvalidity(account, folder), uid)
        task = self._bodies.get(key)
        if task is None or (task.done() and task.exception() is not None):
            task = asyncio.create_task(self._load(account, folder, uid))
            self._bodies[key] = task
            if len(self._bodies) > 64:
                for old in list(self._bodies)[:16]:
                    if self._bodies[old].done():
                        del self._bodies[old]
        return await asyncio.shield(task)

    async def _load(self, account: str, folder: str, uid: int) -> ParsedMessage | None:
        from kittiwake.core.message.mime import parse_message

        try:
            raw = await self._store(account).fetch_body(folder, uid)
            if raw is None:
                return None
            parsed = await asyncio.to_thread(parse_message, raw)
            return await self._unseal(account, folder, uid, parsed)
        except Exception:  # the reader shows one sentence; the detail belongs in the log
            log.warning("%s: loading %s UID %d failed", account, folder, uid, exc_info=True)
            raise

    async def raw_message(
        self, account: str, folder: str, uidvalidity: int | None, uid: int
    ) -> bytes | None:
        """The message's RFC 5322 bytes exactly as the server holds them (for a pipe or an
        export), or None when it is gone, or its folder was recreated since the user saw
        it (``uidvalidity``: the folder's then; None: as cached now)."""
        if uidvalidity is not None and self.uidvalidity(account, folder) != uidvalidity:
            return None
        return await self._store(account).fetch_body(folder, uid)

    async def raw_messages(
        self, account: str, aim: Sequence[tuple[str, int | None, Sequence[int]]]
    ) -> list[tuple[str, bytes]]:
        """(subject, raw bytes) of the messages named by (folder, UIDVALIDITY, UIDs), oldest
        first (a patch series in its order); ``KittiwakeError`` (one sentence) when one of
        them is gone: a pipe or an export is all of what the user chose, or nothing."""
        return [(subject, raw) for subject, raw, _, _ in await self._raw_rows(account, aim)]

    async def _raw_rows(
        self, account: str, aim: Sequence[tuple[str, int | None, Sequence[int]]]
    ) -> list[tuple[str, bytes, frozenset[str], datetime | None]]:
        """``raw_messages`` with each message's flags and INTERNALDATE (an mbox export)."""
        named: list[tuple[float, int, str, int | None, MessageSummary | None]] = []
        for folder, validity, uids in aim:
            rows = self.summaries(account, folder, list(uids))
            for uid in uids:
                row = rows.get(uid)
                when = (row.envelope.date or row.internal_date) if row is not None else None
                named.append((when.timestamp() if when else 0.0, uid, folder, validity, row))
        named.sort(key=lambda n: (n[0], n[1]))
        out: list[tuple[str, bytes, frozenset[str], datetime | None]] = []
        for _, uid, folder, validity, row in named:
            raw = await self.raw_message(account, folder, validity, uid)
            if raw is None:
                raise KittiwakeError(
                    f"A message of {folder} (UID {uid}) is no longer there; nothing was done."
                )
            if row is None:
                out.append(("", raw, frozenset(), None))
            else:
                out.append((row.envelope.subject, raw, row.flags, row.internal_date))
        return out

    async def export_messages(
        self,
        account: str,
        aim: Sequence[tuple[str, int | None, Sequence[int]]],
        dest: Path,
        *,
        as_eml: bool,
    ) -> str:
        """The messages as one new mbox file ``dest``, or as ``.eml`` files in the
        directory ``dest``; one sentence back."""
        from kittiwake.core import transfer  # MIME parsing: loaded when first used

        rows = await self._raw_rows(account, aim)
        try:
            if as_eml:  # a .eml file is the message's exact bytes: no Status lines
                messages = [(subject, raw) for subject, raw, _, _ in rows]
                written = await asyncio.to_thread(transfer.write_eml, dest, messages)
                return f"Exported {len(written):,} message(s) as .eml files into {dest}"
            entries = [(raw, flags, when) for _, raw, flags, when in rows]
            count = await asyncio.to_thread(transfer.write_mbox, dest, entries)
        except FileExistsError:
            raise KittiwakeError(f"{dest} exists already; give another name.") from None
        except OSError as exc:
            raise KittiwakeError(f"{dest}: cannot be written ({exc.strerror})") from None
        return f"Exported {count:,} message(s) into {dest}"

    async def import_messages(
        self,
        account: str,
        folder: str,
        source: Path,
        progress: Callable[[int, int], None] | None = None,
    ) -> ImportResult:
        """An mbox file or a Maildir into ``folder``, each message once (see
        ``core/transfer.py``)."""
        from kittiwake.core import transfer

        items = await asyncio.to_thread(transfer.read_source, source)
        return await transfer.import_messages(self._store(account), folder, items, progress)

    async def _unseal(
        self, account: str, folder: str, uid: int, parsed: ParsedMessage, interactive: bool = False
    ) -> ParsedMessage:
        """A signed or encrypted message verified and decrypted (``core/crypto``). The
        plaintext stays in memory (``_bodies``); its words reach the search index only with
        ``index_decrypted``: the cache keeps the message as it came."""
        crypto = self.config.crypto
        from kittiwake.core.crypto import openpgp, smime  # with MIME parsing: when one opens
        from kittiwake.core.crypto.gpg import GnuPG

        acct = self.config.accounts.get(account)
        if smime.kind(parsed.raw) is not None:
            gpgsm = GnuPG(crypto.gpgsm, crypto.gnupg_home)
            shown = await smime.open_message(parsed, gpgsm, interactive=interactive)
        else:
            gnupg = GnuPG(crypto.gpg, crypto.gnupg_home, self._autocrypt_keyrings(acct))
            shown = await openpgp.open_message(parsed, gnupg, interactive=interactive)
        if acct is not None and acct.autocrypt:  # the peer state moves on once it was read
            await self._learn_autocrypt(acct, parsed.headers, parsed.date)
        security = shown.security
        if security is not None and security.decrypted and crypto.index_decrypted:
            text = shown.text if shown.text is not None else (shown.html or "")
            self._store(account).cache.index_body_words(folder, uid, normalize(text))
        return shown

    def _autocrypt_keyrings(self, acct: Account | None) -> tuple[str, ...]:
        """The account's Autocrypt keyring, read beside the user's when verifying: a peer's
        signature is then checked with the key its header brought (trust "undefined": the
        user never certified it), not reported as made by an unknown key."""
        if acct is None or not acct.autocrypt:
            return ()
        from kittiwake.core.crypto import autocrypt

        crypto = self.config.crypto
        keyring = autocrypt.default_store(acct.key, crypto.gpg, crypto.autocrypt_dir).keyring
        return (str(keyring),) if keyring.exists() else ()

    async def _learn_autocrypt(
        self, acct: Account, headers: Sequence[tuple[str, str]], date: datetime | None
    ) -> None:
        """A peer's Autocrypt header (or its absence) into the peer store; a failure is
        logged, never in the way of reading."""
        from kittiwake.core.crypto import autocrypt
        from kittiwake.core.crypto.gpg import GpgMissing

        own = (acct.email, *acct.addresses, *(i.address for i in acct.identities))
        crypto = self.config.crypto
        store = autocrypt.default_store(acct.key, crypto.gpg, crypto.autocrypt_dir)
        try:
            await asyncio.to_thread(autocrypt.learn, store, headers, date, own)
        except (GpgMissing, OSError, sqlite3.Error) as exc:
            log.info("%s: Autocrypt state not updated: %s", acct.key, exc)

    async def decrypt(self, account: str, folder: str, uid: int) -> ParsedMessage | None:
        """Decrypt again with pinentry allowed: the caller has stepped aside (App.suspend) so
        gpg-agent's pinentry can have the terminal. The result replaces the remembered one."""
        parsed = await self.message(account, folder, uid)
        if parsed is None or parsed.security is None or parsed.security.decrypted:
            return parsed
        return await self._reopen(account, folder, uid, parsed, interactive=True)

    async def fetch_keys(self, account: str, folder: str, uid: int) -> ParsedMessage | None:
        """Fetch the keys of the message's unknown OpenPGP signers from the keyserver
        (``[crypto] keyserver``, else the user's gpg and dirmngr configuration) into the
        user's keyring, then verify again; the result replaces the remembered one.
        ``KittiwakeError`` (one sentence) when a key could not be fetched."""
        parsed = await self.message(account, folder, uid)
        if parsed is None or parsed.security is None or not parsed.security.unknown_keys:
            return parsed
        from kittiwake.core.crypto import openpgp
        from kittiwake.core.crypto.gpg import GnuPG, GpgMissing

        crypto = self.config.crypto
        gnupg = GnuPG(crypto.gpg, crypto.gnupg_home)
        for key_id in parsed.security.unknown_keys:
            try:
                await asyncio.to_thread(openpgp.fetch_key, key_id, gnupg, crypto.keyserver)
            except (openpgp.CryptoError, GpgMissing) as exc:
                raise KittiwakeError(str(exc)) from None
        return await self._reopen(account, folder, uid, parsed)

    async def _reopen(
        self, account: str, folder: str, uid: int, parsed: ParsedMessage, interactive: bool = False
    ) -> ParsedMessage:
        """``parsed`` verified and decrypted again from its raw bytes, remembered in place of
        the earlier result."""
        from kittiwake.core.message.mime import parse_message

        plain = await asyncio.to_thread(parse_message, parsed.raw)
        shown = await self._unseal(account, folder, uid, plain, interactive=interactive)
        key = (account, folder, self.uidvalidity(account, folder), uid)

        async def reopened() -> ParsedMessage | None:
            return shown

        self._bodies[key] = asyncio.create_task(reopened())
        return shown

    def prefetch(self, account: str, folder: str, uid: int) -> None:
        """Start loading a message the user is likely to open next; errors are ignored."""
        if (account, folder, self.uidvalidity(account, folder), uid) in self._bodies:
            return
        task = asyncio.create_task(self.message(account, folder, uid))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def mark_seen(
        self,
        account: str,
        folder: str,
        uid: int,
        seen: bool = True,
        *,
        uidvalidity: int | None = None,
    ) -> None:
        """Opening a message marks it read: journaled like any action, so offline is fine.
        A message gone meanwhile (``uidvalidity``: the folder's when it was shown) is left
        alone, quietly: the reader says it is gone."""
        try:
            self.act(
                account,
                Action(
                    kind="flags",
                    folder=folder,
                    uidvalidity=uidvalidity,
                    uids=(uid,),
                    add=(SEEN,) if seen else (),
                    remove=() if seen else (SEEN,),
                ),
                undoable=False,
            )
        except ActionRefused as exc:
            log.info("%s: not marked read: %s", account, exc.message)

    # -- triage ---------------------------------------------------------------------------

    def act(self, account: str, action: Action, *, undoable: bool = True) -> Action:
        """Apply ``action`` at once on screen; the server follows (now, or on reconnect)."""
        return self.act_many(account, [action], undoable=undoable)[0]

    def act_many(
        self, account: str, actions: Sequence[Action], *, undoable: bool = True
    ) -> list[Action]:
        """One user action made of several journaled ones (e.g. one per folder, for search
        results or a conversation that includes Sent): each is applied like ``act``, and
        they are one undo step, which ``undo`` reverts whole.

        Each names its messages as the user saw them (folder, UIDVALIDITY, UIDs; None: as
        the cache has it now): messages gone since are left out, and ``ActionRefused`` (one
        sentence) says when nothing is left to act on; nothing else is ever touched."""
        store = self._store(account)
        triage = store.triage
        seen: list[Action] = []
        refused: ActionRefused | None = None
        for action in actions:
            if action.kind == "create":  # names a folder to be, not messages the user saw
                seen.append(action)
                continue
            try:
                seen.append(as_seen(store.cache, action))
            except ActionRefused as exc:
                refused = refused or exc
        if refused is not None and not seen:
            raise refused
        done: list[Action] = []
        for action in seen:
            if action.kind in ("move", "copy"):
                moved = self.summaries(account, action.folder, list(action.uids))
                self._moved_ids.extend(
                    s.envelope.message_id for s in moved.values() if s.envelope.message_id
                )
            done.append(triage.submit(action))
        if undoable and done:
            for submitted in done:
                triage.keep(submitted)
            if len(self._history) == self._history.maxlen:  # the oldest step falls off
                self._forget(*self._history[0])
            self._history.append((account, tuple(done)))
        return done

    def _forget(self, account: str, actions: Sequence[Action]) -> None:
        """A step left the undo history: its actions' undo records can go."""
        triage = self._store(account).triage
        for action in actions:
            triage.forget(action)

    def undo(self, account: str | None = None) -> str:
        """Undo the most recent user action in ``account`` (any account if None), every
        part of it, newest part first; returns one sentence saying what happened. Undo is
        per account, as the user sees one account at a time: ``z`` in one must not reach
        into another that is not on screen."""
        entries = [i for i, (a, _) in enumerate(self._history) if account in (None, a)]
        if not entries:
            return "Nothing to undo"
        account, actions = self._history[entries[-1]]
        del self._history[entries[-1]]
        triage = self._store(account).triage
        undone: list[Action] = []
        refused: list[str] = []
        for action in reversed(actions):
            if triage.cancel_pending(action):
                undone.append(action)
                continue
            inverse = triage.inverse(action)
            if isinstance(inverse, str):
                refused.append(f"cannot undo {action.describe()}: {inverse}")
                continue
            for step in inverse:
                triage.submit(step)
            undone.append(action)
        self._forget(account, actions)
        said = [f"Undone: {describe_actions(undone[::-1])}"] if undone else []
        said += refused
        sentence = "; ".join(said)
        return sentence[:1].upper() + sentence[1:]

    def moved_by_user(self, message_id: str | None) -> bool:
        """The user moved or copied this message in this session (so its arrival somewhere,
        an undo for instance, is not new mail)."""
        return message_id is not None and message_id in self._moved_ids

    # -- Gmail labels (``core/gmailids.py``) -------------------------------------------------

    def has_labels(self, account: str) -> bool:
        """Whether ``account``'s server has Gmail's labels (the label key is offered there)."""
        store = self.engine.stores.get(account)
        return store is not None and store.has_labels

    def labels(self, account: str, folder: str, uid: int) -> tuple[str, ...] | None:
        """The message's Gmail labels; None when the server has none (not Gmail)."""
        return gmailids.labels_of(self._store(account).cache.db, folder, uid)

    def label_action(
        self,
        account: str,
        folder: str,
        uids: Sequence[int],
        *,
        add: Sequence[str] = (),
        remove: Sequence[str] = (),
    ) -> Action:
        """Add and remove Gmail labels (``STORE X-GM-LABELS``): journaled, shown at once,
        sent now or on reconnect, undoable like any action."""
        return self.act(
            account,
            Action(
                kind="labels",
                folder=folder,
                uidvalidity=self.uidvalidity(account, folder),
                uids=tuple(uids),
                add=tuple(add),
                remove=tuple(remove),
            ),
        )

    def folder_roles(self, account: str) -> dict[str, FolderRole | None]:
        """Folder name -> role: ``folders`` without counting every message (which costs
        milliseconds at 100,000, each time the cache has changed: new mail's way to the
        screen)."""
        if account not in self.engine.stores:
            return {}
        return self._store(account).cache.folder_roles()

    def role_folder(self, account: str, role: FolderRole) -> str | None:
        for name, found in sorted(self.folder_roles(account).items()):
            if found is role:
                return name
        return None

    def archive_folder(self, account: str) -> str | None:
        """SPECIAL-USE \\Archive, else the configured ``archive_folder`` (if it exists), else
        Gmail's All Mail (``\\All``): moving a message there is Gmail's own archive, which
        takes the Inbox label off and leaves the message where every message is."""
        found = self.role_folder(account, FolderRole.ARCHIVE)
        if found is not None:
            return found
        configured = self.config.accounts[account].archive_folder
        if configured and configured in {f.name for f in self.folders(account)}:
            return configured
        return self.role_folder(account, FolderRole.ALL)

    def new_folder_name(self, account: str, name: str) -> str:
        """What to call a folder Kittiwake offers to make ("Archive"): under the account's
        personal namespace (Courier takes ``INBOX.Archive``, never ``Archive``)."""
        return self._store(account).new_folder_name(name)

    async def create_folder(self, account: str, name: str) -> None:
        _check_folder_name(account, name)
        await self._store(account).create_folder(name)

    async def create_folder_for_move(self, account: str, name: str) -> None:
        """A new folder typed as the destination of a move or copy: on IMAP a journaled
        CREATE, sent ahead of the move that follows it (so offline, both wait together and
        survive a restart); a local account's folder is made at once."""
        _check_folder_name(account, name)
        if account in self.engine.imap:
            self.act(
                account,
                Action(kind="create", folder=name, uidvalidity=None, uids=()),
                undoable=False,
            )
            return
        await self.create_folder(account, name)

    async def rename_folder(self, account: str, old: str, new: str) -> None:
        _check_folder_name(account, new)
        await self._store(account).rename_folder(old, new)

    async def delete_folder(self, account: str, folder: str) -> None:
        await self._store(account).delete_folder(folder)

    # -- OAuth2 sign-in (the logic is in ``core/oauth2/``) ------------------------------------

    def sign_in_needed(self, account: str) -> str | None:
        """Why ``account`` waits for the user to sign in (OAuth2), or None."""
        imap = self.engine.imap.get(account)
        return imap.sign_in_needed if imap is not None else None

    def can_sign_in(self, account: str) -> bool:
        info = self.config.accounts.get(account)
        return info is not None and info.oauth2 is not None

    def can_sign_in_with_code(self, account: str) -> bool:
        from kittiwake.core.oauth2.tokens import token_source

        info = self.config.accounts[account]
        return token_source(info).endpoints.device_url is not None

    async def sign_in(
        self,
        account: str,
        show_browser: Callable[[BrowserPrompt, LoopbackReceiver], Awaitable[None] | None],
        show_code: Callable[[DeviceStart], None] | None = None,
    ) -> str:
        """Sign ``account`` in (by the browser, or by a code on another device when
        ``show_code`` is given); the account reconnects at once. One sentence back."""
        from kittiwake.core.oauth2.flow import sign_in_with_browser, sign_in_with_device
        from kittiwake.core.oauth2.tokens import token_source

        info = self.config.accounts[account]
        if info.oauth2 is None:
            raise KittiwakeError(f"accounts.{account} signs in with a password, not OAuth2")
        source = token_source(info)
        if show_code is not None:
            tokens = await sign_in_with_device(info.oauth2, source.endpoints, show_code)
        else:
            tokens = await sign_in_with_browser(
                info.oauth2, source.endpoints, show_browser, login_hint=info.email
            )
        where = await source.signed_in(tokens)
        imap = self.engine.imap.get(account)
        if imap is not None:
            imap.signed_in()
        return f"Signed in to {account}; the sign-in is kept {where}."

    def diagnose(self, account: str) -> AsyncIterator[Check]:
        """``kittiwake doctor`` for ``account``: its checks, layer by layer, as they run."""
        from kittiwake.core.setup.doctor import diagnose

        return diagnose(self.config.accounts[account])

    def pending_actions(self, account: str) -> int:
        return len(self._store(account).triage.journal)

    # -- checking for mail (ctrl+r; POP3 polls, see ``core/pop3/poller.py``) -----------------

    async def check_now(self, account: str | None = None, folder: str | None = None) -> None:
        """Look for new mail now: a POP3 account downloads (every one of them when
        ``account`` is None), an IMAP account resyncs ``folder``. Failures arrive as events."""
        pollers = self.engine.pop3
        names = [account] if account is not None else list(pollers)
        checks = [pollers[n].check_now() for n in names if n in pollers]
        if account is not None and account not in pollers and folder is not None:
            checks.append(self.open_folder(account, folder))
        await asyncio.gather(*checks)

    def next_check_in(self, account: str) -> float | None:
        """Seconds until a POP3 account's next check (None while one runs, and for IMAP)."""
        poller = self.engine.pop3.get(account)
        return poller.next_check_in if poller is not None else None

    # -- search and threads (the logic is in ``core/search/service.py``) --------------------

    def search_folders(self, account: str, folder: str | None) -> list[str]:
        """The folders a search covers: ``folder``, or every selectable one of the account;
        where a ``\\All`` folder holds every message (Gmail's All Mail), that one with Trash
        and Junk (the only ones Gmail leaves out of it)."""
        if folder is not None:
            return [folder]
        every = self.role_folder(account, FolderRole.ALL)
        if every is not None:
            roles = (FolderRole.ALL, FolderRole.TRASH, FolderRole.JUNK)
            return [f.name for f in self.folders(account) if f.selectable and f.role in roles]
        return [f.name for f in self.folders(account) if f.selectable]

    def check_query(self, query: str) -> str | None:
        """None when ``query`` can be understood, else one sentence saying what is wrong."""
        from kittiwake.core.search.query import QueryError, gmail_raw, parse_query

        raw = gmail_raw(query)
        if raw is not None:
            return None if raw else "Nothing to search for after gmail:."
        try:
            parse_query(query)
        except QueryError as exc:
            return exc.message
        return None

    def searches_server(self, account: str) -> bool:
        """Whether a search in ``account`` is completed by a server (IMAP accounts)."""
        return self._store(account).searches_server

    def search_cached(self, account: str, folder: str | None, query: str) -> list[Hit]:
        """The cached messages matching ``query`` in ``folder`` (None: every folder), newest
        first, at once. A malformed query raises ``QueryError`` (one sentence); a ``gmail:``
        query finds nothing here (only Gmail can judge it: ``search_server``)."""
        from kittiwake.core.search.query import gmail_raw

        if gmail_raw(query) is not None:
            return []
        from kittiwake.core.search.service import local_hits

        return local_hits(self._store(account).cache, None if folder is None else [folder], query)

    async def prepare_search(
        self, account: str, folder: str, progress: Callable[[int, int], None] | None = None
    ) -> None:
        """Have ``folder``'s search index complete before a search that runs on the loop (a
        list's limit): after a first sync the decode pass leaves the index to the first
        search, and indexing 100,000 rows at once held the loop for ~2 s. In batches here,
        the loop free between them; ``progress(done, total)`` follows them."""
        from kittiwake.core.search.service import index_deferred

        await index_deferred(self._store(account).cache, [folder], progress)

    async def search_local(
        self,
        account: str,
        folder: str | None,
        query: str,
        progress: Callable[[int, int], None] | None = None,
    ) -> list[Hit]:
        """``search_cached`` off the event loop (what the UI uses: rows a first sync left raw
        are decoded to be judged, which takes time on a big folder). The first search after
        a first sync indexes the rows the decode pass left unindexed: ``progress(done,
        total)`` follows that."""
        from kittiwake.core.search.query import gmail_raw
        from kittiwake.core.search.service import local_hits_off_loop

        if gmail_raw(query) is not None:
            return []
        return await local_hits_off_loop(
            self._store(account).cache, None if folder is None else [folder], query, progress
        )

    async def search_server(
        self, account: str, folder: str | None, query: str, known: Sequence[Hit]
    ) -> list[Hit]:
        """What the server adds to ``known`` (the cached answer), newest first; messages it
        finds that were not cached are fetched into the cache first. Nothing for accounts
        without a server to ask. A ``gmail:`` query goes to Gmail as X-GM-RAW, in All Mail
        when no folder is given (every message but Trash and Spam is there)."""
        from kittiwake.core.search.query import gmail_raw, parse_query
        from kittiwake.core.search.service import server_gmail_hits, server_hits

        if gmail_raw(query) is not None:
            every = self.role_folder(account, FolderRole.ALL)
            folders = [folder] if folder is not None else [every] if every else []
            return await server_gmail_hits(self._store(account), folders, query, set(known))
        return await server_hits(
            self._store(account),
            self.search_folders(account, folder),
            parse_query(query),
            set(known),
        )

    async def search(self, account: str, folder: str | None, query: str) -> list[Hit]:
        """The cache's answer followed by the server's additions (for scripts and tests; the
        UI shows the two stages as they come)."""
        cached = self.search_cached(account, folder, query)
        return cached + await self.search_server(account, folder, query, cached)

    def summary_of(self, account: str, hit: Hit) -> MessageSummary | None:
        return self._store(account).cache.summary(hit.folder, hit.uid)

    async def threads(
        self, account: str, folder: str, order: SortOrder | None = None
    ) -> tuple[Threading[tuple[int, int]], dict[int, str]]:
        """The conversations of ``folder`` with the account's Sent folder threaded in, keyed
        by (folder id, uid), and folder names by id; built off the event loop, then put in
        ``order`` (by default the folder's remembered one, as its message list)."""
        from kittiwake.core.search.service import thread_folder

        sent = self.role_folder(account, FolderRole.SENT)
        cache = self._store(account).cache
        threading, names = await thread_folder(cache, folder, sent)
        chosen = order or self.sort_order(account, folder)
        memo = self._sort_memo(account, folder)
        return ordered_threads(cache, threading, names, folder, chosen, memo), names

    def _sort_memo(self, account: str, folder: str) -> SortTexts:
        """The sender and subject keys kept for ``folder`` as it is now (its UIDVALIDITY), for
        the folders seen lately."""
        key = (account, folder, self.uidvalidity(account, folder))
        memo = self._sort_texts.get(key)
        if memo is None:
            memo = self._sort_texts[key] = SortTexts(self._store(account).cache)
            if len(self._sort_texts) > 8:
                self._sort_texts.pop(next(iter(self._sort_texts))).drop()
        return memo

    # -- compose and send (the logic is in ``core/compose/service.py``) ------------------------

    def can_send(self) -> bool:
        return bool(self._composer.senders())

    async def send(self, local: LocalDraft) -> str:
        """Into the outbox, durably, then off; one sentence back. Results come as events."""
        return await self._composer.send(local)

    async def save_draft(self, local: LocalDraft) -> LocalDraft:
        """Local copy, then the Drafts folder (the previous copy there is replaced)."""
        return await self._composer.save(local)

    async def draft_from(self, account: str, folder: str, uid: int) -> LocalDraft:
        """A draft from the Drafts folder, reopened to edit and send."""
        return await self._composer.reopen(account, folder, uid)

    def outbox_status(self) -> OutboxStatus:
        return self._tally.status()

    def complete_addresses(self, prefix: str, exclude: list[str] | None = None) -> list[Address]:
        return self._composer.complete(prefix, exclude or [])

    async def query_addresses(self, prefix: str, exclude: list[str] | None = None) -> list[Address]:
        """Matches from the ``[addressbook] query_command`` (an external address book)."""
        return await self._composer.query(prefix, exclude or [])


def __getattr__(name: str) -> Any:
    """``Hit`` (a search result) is named here for the UI but lives in the search service,
    which is loaded when first asked for."""
    if name == "Hit":
        from kittiwake.core.search.service import Hit

        return Hit
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["AccountInfo", "Event", "Hit", "MailApi"]
