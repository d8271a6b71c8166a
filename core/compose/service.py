"""The composer's side of the API: drafts made from messages, saved, reopened and sent.

``MailApi`` delegates here (``api.compose``), so the UI never builds MIME, speaks SMTP or
knows where drafts live. Order everywhere: the local copy first, then the server.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

from kittiwake.core.cache import Cache
from kittiwake.core.compose.addressbook import (
    Seen,
    alias_matches,
    complete,
    expand_aliases,
    seen_in_cache,
)
from kittiwake.core.compose.draft import ComposeError, Draft, parse_addresses
from kittiwake.core.compose.drafts import LocalDraft, LocalDrafts
from kittiwake.core.compose.query import run_query
from kittiwake.core.compose.signature import identity_for, sign, signature_text, swap
from kittiwake.core.compose.status import OutboxTally
from kittiwake.core.config import Account
from kittiwake.core.crypto import autocrypt
from kittiwake.core.crypto.gpg import GnuPG
from kittiwake.core.engine import Engine
from kittiwake.core.errors import KittiwakeError
from kittiwake.core.events import (
    ConnectionChanged,
    ConnState,
    DraftsRecovered,
    Event,
    FolderListChanged,
)
from kittiwake.core.journal import Action
from kittiwake.core.message.ids import make_message_id
from kittiwake.core.models import ANSWERED, DRAFT, FORWARDED, SEEN, Address, FolderRole
from kittiwake.core.smtp.filing import context_for, find_folder, role_folder
from kittiwake.core.store import MailStore

# Building and parsing MIME, replies and the outbox load when a message is first composed or
# sent, not when the app starts (the Composer itself is made at start: it follows events).
if TYPE_CHECKING:
    from kittiwake.core.message.mime import ParsedMessage
    from kittiwake.core.smtp.outbox import ItemState

log = logging.getLogger(__name__)

LoadMessage: TypeAlias = "Callable[[str, str, int], Awaitable[ParsedMessage | None]]"
SEEN_TTL = 300.0
"""Seconds the address list read from the caches is reused for completion."""
CAPS_TIMEOUT = 10.0


@dataclass(frozen=True)
class RefusedItem:
    """A message the server refused for good, kept in the outbox to edit or delete."""

    account: str
    item_id: str
    words: str
    """The server's words."""
    subject: str
    recipients: tuple[str, ...]

    def describe(self) -> str:
        """ "“Subject” to a@b (+1)": which message, in a palette entry's few words."""
        to = self.recipients[0] if self.recipients else "nobody"
        more = f" (+{len(self.recipients) - 1})" if len(self.recipients) > 1 else ""
        return f"“{self.subject or '(no subject)'}” to {to}{more}"


class Composer:
    def __init__(
        self,
        engine: Engine,
        load: LoadMessage,
        tally: OutboxTally,
        drafts_root: Path | None = None,
    ) -> None:
        self.engine = engine
        self.config = engine.config
        self._load = load
        self.local = LocalDrafts(drafts_root)
        self.open_ids: set[str] = set()
        """Drafts open in the composer now (recovery leaves them alone)."""
        #: What waits in the outboxes (``MailApi`` keeps it from the start and notes the
        #: events into it: this composer is made when first used).
        self.tally = tally
        self._seen: tuple[float, list[Seen]] | None = None
        self._queried: dict[str, tuple[float, list[Address]]] = {}
        self._recovering: set[str] = set()
        self._tasks: set[asyncio.Task[list[LocalDraft]]] = set()

    # -- accounts -------------------------------------------------------------------------

    def senders(self) -> list[str]:
        """Accounts that can send (those with an [smtp] section)."""
        return list(self.engine.outboxes)

    def sender_for(self, account: str | None) -> Account:
        """``account`` when it can send, else the first account that can."""
        if account in self.engine.outboxes:
            return self.config.accounts[account]
        if not self.engine.outboxes:
            raise ComposeError("no account can send mail: add an [accounts.NAME.smtp] section")
        return self.config.accounts[next(iter(self.engine.outboxes))]

    def identities(self) -> list[tuple[str, Address]]:
        """Every (account, From) a message can be sent as: each sending account's own
        address, then its ``[[accounts.NAME.identities]]``."""
        from kittiwake.core.compose.reply import account_address

        out = []
        for key in self.senders():
            acct = self.config.accounts[key]
            out += [(key, account_address(acct, i.address)) for i in acct.identities]
            if not acct.identities:
                out.append((key, account_address(acct)))
        return out

    def change_account(
        self, local: LocalDraft, account: str, address: str | None = None
    ) -> LocalDraft:
        """The draft sent from another account or identity (``address``; default the
        account's own): its From follows, and the old signature block becomes the new one."""
        from kittiwake.core.compose.reply import account_address

        old_acct = self.config.accounts.get(local.account)
        acct = self.sender_for(account)
        from_ = account_address(acct, address)
        old = signature_text(identity_for(old_acct, local.draft.from_.addr)) if old_acct else ""
        new = signature_text(identity_for(acct, from_.addr))
        body = swap(local.draft.body, old, new)
        return replace(local, account=acct.key, draft=replace(local.draft, from_=from_, body=body))

    # -- making drafts --------------------------------------------------------------------

    def new(
        self, account: str | None, to: str = "", subject: str = "", body: str = ""
    ) -> LocalDraft:
        """A new message; ``to`` as typed (``Name <a@b>, c@d``), checked here."""
        from kittiwake.core.compose.reply import new_message

        acct = self.sender_for(account)
        draft = new_message(acct, to=self.parse_recipients(to, "To"), subject=subject, body=body)
        return self._start(acct, draft, {}, is_new=True)

    def from_draft(self, account: str | None, draft: Draft) -> LocalDraft:
        """A prepared draft (a mailto: URL): From set from the account, signed."""
        from kittiwake.core.compose.reply import account_address

        acct = self.sender_for(account)
        is_new = not draft.body.strip()
        from_ = account_address(acct)
        body = sign(draft.body, signature_text(identity_for(acct, from_.addr)))
        draft = replace(draft, from_=from_, body=body)
        return self._start(acct, draft, {}, is_new=is_new)

    def parse_recipients(self, text: str, header: str = "To") -> tuple[Address, ...]:
        """To/Cc/Bcc as typed, ``[aliases]`` expanded; raises DraftParseError naming the
        header when an entry is not an address."""
        return parse_addresses(expand_aliases(text, self.config.aliases), header)

    async def reply(self, account: str, folder: str, uid: int, *, all: bool = False) -> LocalDraft:
        from kittiwake.core.compose.reply import reply

        parsed = await self._message(account, folder, uid)
        acct = self.sender_for(account)
        context = self._context(account, folder, uid, ANSWERED)
        return self._start(acct, _sealed(parsed, reply(parsed, acct, all=all)), context)

    async def forward(
        self, account: str, folder: str, uid: int, *, attached: bool = False
    ) -> LocalDraft:
        from kittiwake.core.compose.reply import forward_attached, forward_inline

        parsed = await self._message(account, folder, uid)
        acct = self.sender_for(account)
        # Inline, every attachment is decoded (thousands of parts are read first): a thread.
        forward = forward_attached if attached else forward_inline
        draft = await asyncio.to_thread(forward, parsed, acct)
        draft = _sealed(parsed, draft)
        context = self._context(account, folder, uid, FORWARDED)
        return self._start(acct, draft, context)

    async def reopen(self, account: str, folder: str, uid: int) -> LocalDraft:
        """A draft saved in the Drafts folder, to edit and send; saving replaces it there."""
        from kittiwake.core.compose.reply import account_address, draft_from_message

        parsed = await self._message(account, folder, uid)
        draft = _sealed(parsed, await asyncio.to_thread(draft_from_message, parsed))
        acct = self.sender_for(account)
        if not draft.from_.addr:
            draft = replace(draft, from_=account_address(acct))
        context = await asyncio.to_thread(self._context_of_draft, account, draft)
        local = LocalDraft(
            LocalDrafts.new_id(), acct.key, draft, context, server_folder=folder, server_uid=uid
        )
        return await self.keep(local)

    def _context_of_draft(self, account: str, draft: Draft) -> dict[str, str]:
        """What a draft from the Drafts folder answers (its In-Reply-To) or forwards (the
        message attached to it), found in the cache by Message-ID: the message to flag
        \\Answered/$Forwarded once it is sent. Nothing of this travels in the draft itself."""
        from kittiwake.core.compose.reply import forwarded_message_id

        store = self.engine.stores.get(account)
        if store is None:
            return {}
        wanted, flag = draft.in_reply_to, ANSWERED
        if wanted is None:
            wanted, flag = forwarded_message_id(draft), FORWARDED
        if wanted is None:
            return {}
        found = store.cache.find_message_id(wanted)
        roles = {info.name: info.role for info in store.cache.folders()}
        elsewhere = {FolderRole.DRAFTS, FolderRole.SENT, FolderRole.TRASH, FolderRole.JUNK}
        found.sort(key=lambda hit: (roles.get(hit[0]) in elsewhere, hit[0] != "INBOX"))
        if not found:
            return {}
        folder, uid = found[0]
        return self._context(account, folder, uid, flag)

    def _start(
        self, acct: Account, draft: Draft, context: dict[str, str], *, is_new: bool = False
    ) -> LocalDraft:
        domain = acct.email.rpartition("@")[2]
        draft = replace(draft, message_id=draft.message_id or make_message_id(domain))
        local = LocalDraft(LocalDrafts.new_id(), acct.key, draft, context, is_new=is_new)
        self.local.save(local)  # on disk before the editor opens
        self.open_ids.add(local.id)
        return local

    async def _message(self, account: str, folder: str, uid: int) -> ParsedMessage:
        parsed = await self._load(account, folder, uid)
        if parsed is None:
            raise KittiwakeError(f"the message is no longer in {folder}")
        return parsed

    def _context(self, account: str, folder: str, uid: int, flag: str) -> dict[str, str]:
        store = self.engine.stores.get(account)
        state = store.cache.folder_state(folder) if store is not None else None
        return context_for(account, folder, uid, state.uidvalidity if state else None, flag)

    # -- the local copy -------------------------------------------------------------------

    def text_path(self, local: LocalDraft) -> Path:
        """The file to hand to the editor (holds ``local.draft.to_text()``)."""
        return self.local.text_path(local.id)

    async def keep(self, local: LocalDraft) -> LocalDraft:
        """Write the local copy (autosave, every change)."""
        await asyncio.to_thread(self.local.save, local)
        self.open_ids.add(local.id)
        return local

    def read_back(self, local: LocalDraft) -> str:
        """What the editor left in the draft's file."""
        return self.text_path(local).read_text("utf-8", "replace")

    # -- Drafts folder --------------------------------------------------------------------

    async def save(self, local: LocalDraft, *, create: bool = True) -> LocalDraft:
        """Local copy, then APPEND to Drafts (\\Draft), then the previous copy there is
        expunged (a journaled action): replaced, never duplicated. Raises KittiwakeError
        with one sentence when only the local copy could be made."""
        from kittiwake.core.compose.mime import draft_bytes

        local = await self.keep(local)
        store = self.engine.stores.get(local.account)
        if store is None:
            raise KittiwakeError(
                f"the draft is saved on this machine ({local.account} has no Drafts folder)"
            )
        acct = self.config.accounts[local.account]
        try:
            folder = (
                await role_folder(store, FolderRole.DRAFTS)
                if create
                else find_folder(store, FolderRole.DRAFTS)
            )
            if folder is None:
                raise KittiwakeError(f"{local.account} has no Drafts folder yet")
            raw = await asyncio.to_thread(draft_bytes, local.draft, acct, gpg=self._gnupg(acct))
            uid = await store.append(folder, raw, frozenset({DRAFT, SEEN}))
        except ComposeError:
            raise
        except (KittiwakeError, OSError) as exc:
            log.info("draft %s not saved to the server: %s", local.id, exc)
            raise KittiwakeError(
                f"the draft is saved on this machine; it goes to Drafts of {local.account} "
                "once the server can be reached"
            ) from exc
        if uid is None:
            uid = self._find(store.cache, folder, local.draft.message_id)
        if (
            local.server_uid is not None
            and local.server_folder is not None
            and ((local.server_folder, local.server_uid) != (folder, uid))
        ):
            self._expunge(local.account, local.server_folder, local.server_uid)
        if uid is not None and local.draft.message_id:
            await self._drop_lost_copies(store, local, folder, uid)
        local = replace(local, server_folder=folder, server_uid=uid)
        await asyncio.to_thread(self.local.save, local)
        return local

    async def _drop_lost_copies(
        self, store: MailStore, local: LocalDraft, folder: str, uid: int
    ) -> None:
        """Earlier copies of this draft whose APPEND reply was lost (connection cut, app
        killed) are in Drafts under UIDs we never learnt: every other copy with its
        Message-ID goes, so saving again replaces rather than duplicates."""
        assert local.draft.message_id is not None
        try:
            found = await store.message_id_uids(folder, local.draft.message_id)
        except (KittiwakeError, OSError) as exc:  # the copy is saved; tidy up next time
            log.info("draft %s: earlier copies not looked for: %s", local.id, exc)
            return
        known = {local.server_uid} if local.server_folder == folder else set()
        stale = sorted(found - {uid} - known)
        if stale:
            log.info("draft %s: %d earlier copies in %s removed", local.id, len(stale), folder)
            store.triage.submit(
                Action(kind="expunge", folder=folder, uidvalidity=None, uids=tuple(stale))
            )

    def _find(self, cache: Cache, folder: str, message_id: str | None) -> int | None:
        """The UID of the draft just appended, when the server did not say (no UIDPLUS)."""
        if message_id is None:
            return None
        uids = cache.ordered_uids(folder)
        for uid, summary in cache.summaries(folder, uids[:200]).items():
            if summary.envelope.message_id == message_id:
                return uid
        return None

    def _expunge(self, account: str, folder: str, uid: int) -> None:
        store = self.engine.stores.get(account)
        if store is not None:
            store.triage.submit(
                Action(kind="expunge", folder=folder, uidvalidity=None, uids=(uid,))
            )

    async def discard(self, local: LocalDraft, *, keep_server_copy: bool = False) -> None:
        """The composer closes: the local copy goes (and the Drafts copy, unless kept)."""
        if local.server_uid is not None and local.server_folder and not keep_server_copy:
            self._expunge(local.account, local.server_folder, local.server_uid)
        self.open_ids.discard(local.id)
        await asyncio.to_thread(self.local.remove, local.id)

    async def recover(self, account: str) -> list[LocalDraft]:
        """Drafts an earlier run left on disk (it stopped mid-compose) go to Drafts now."""
        done = []
        for local in await asyncio.to_thread(self.local.all):
            if local.account != account or local.id in self.open_ids | self._recovering:
                continue
            self._recovering.add(local.id)
            try:
                saved = await self.save(local, create=False)
            except KittiwakeError as exc:
                log.info("draft %s not recovered yet: %s", local.id, exc.message)
                continue
            finally:
                self._recovering.discard(local.id)
            await asyncio.to_thread(self.local.remove, saved.id)
            done.append(saved)
        if done:
            folder = next((d.server_folder for d in done if d.server_folder), "Drafts")
            subjects = tuple(d.draft.subject or "(no subject)" for d in done)
            self.engine.bus.publish(DraftsRecovered(account, folder, subjects))
        return done

    # -- sending --------------------------------------------------------------------------

    async def send(self, local: LocalDraft) -> str:
        """Into the outbox (durably) and off; returns one sentence. The outcome arrives as
        MessageSent / SendFailed / OutboxChanged events."""
        from kittiwake.core.compose.mime import build_mime
        from kittiwake.core.smtp.client import SmtpError

        runner = self.engine.outboxes.get(local.account)
        if runner is None:
            raise ComposeError(f"account {local.account} cannot send: it has no [smtp] section")
        acct = self.config.accounts[local.account]
        local = await self.keep(local)
        caps = runner.outbox.capabilities()
        if caps is None:
            try:
                caps = await asyncio.wait_for(runner.capabilities(), CAPS_TIMEOUT)
            except (SmtpError, TimeoutError, OSError) as exc:
                log.info("%s: capabilities unknown (%s); building for any server", acct.key, exc)
        utf8, eight = (caps.smtputf8, caps.eightbitmime) if caps else (False, False)
        built = await asyncio.to_thread(
            functools.partial(build_mime, gpg=self._gnupg(acct)), local.draft, acct, utf8, eight
        )
        await runner.enqueue(
            built.raw,
            built.envelope_from,
            built.envelope_rcpts,
            message_id=built.message_id,
            smtputf8=built.smtputf8,
            sent_copy=built.sent_copy,
            context=local.context,
        )
        await self.discard(local)
        n = len(built.envelope_rcpts)
        return f"Sending to {n} recipient{'s' if n != 1 else ''} from {acct.key}"

    def _gnupg(self, acct: Account) -> GnuPG:
        """gpg, or gpgsm for an account whose ``crypto`` is "smime" (same GnuPG home)."""
        crypto = self.config.crypto
        if acct.crypto == "smime":
            return GnuPG(crypto.gpgsm, crypto.gnupg_home)
        keyrings: tuple[str, ...] = ()
        if acct.autocrypt:  # the peers' keys learnt from their Autocrypt headers
            keyring = autocrypt.default_store(acct.key, crypto.gpg, crypto.autocrypt_dir).keyring
            keyrings = (str(keyring),) if keyring.exists() else ()
        return GnuPG(crypto.gpg, crypto.gnupg_home, keyrings)

    async def recommendation(self, local: LocalDraft) -> str | None:
        """Autocrypt's recommendation for the draft's recipients ("encrypt", "available",
        "discourage", "disable"); None when the account does not use Autocrypt."""
        acct = self.config.accounts.get(local.account)
        if acct is None or not acct.autocrypt or acct.crypto != "openpgp":
            return None
        crypto = self.config.crypto
        store = autocrypt.default_store(acct.key, crypto.gpg, crypto.autocrypt_dir)
        addrs = [a.addr for a in local.draft.recipients]
        return await asyncio.to_thread(store.recommend, addrs, acct.autocrypt_mutual)

    def protocol(self, account: str) -> str:
        """ "OpenPGP" or "S/MIME": how the account signs and encrypts (the review screen)."""
        acct = self.config.accounts.get(account)
        return "S/MIME" if acct is not None and acct.crypto == "smime" else "OpenPGP"

    async def missing_keys(self, local: LocalDraft) -> list[str]:
        """The recipients with no usable OpenPGP key in the keyring (or, for an S/MIME
        account, no valid certificate)."""
        recipients = local.draft.recipients
        from kittiwake.core.compose.mime import recipient_keys

        acct = self.config.accounts[local.account]
        _, missing = await asyncio.to_thread(
            recipient_keys, recipients, self._gnupg(acct), acct.crypto
        )
        return missing

    async def crypto_defaults(self, local: LocalDraft) -> LocalDraft:
        """The account's ``pgp_sign`` / ``pgp_encrypt`` applied to a draft: encryption only
        when every recipient has a key (the review screen's ``p`` changes either), and also
        when Autocrypt recommends it (every recipient and the account prefer mutual)."""
        acct = self.config.accounts.get(local.account)
        if acct is None or local.draft.sign or local.draft.encrypt:
            return local
        encrypt = acct.pgp_encrypt and bool(local.draft.recipients)
        if not encrypt and local.draft.recipients:
            encrypt = await self.recommendation(local) == "encrypt"  # Autocrypt, mutual
        if encrypt:
            encrypt = not await self.missing_keys(local)
        if not (acct.pgp_sign or encrypt):
            return local
        return replace(local, draft=replace(local.draft, sign=acct.pgp_sign, encrypt=encrypt))

    def refused(self) -> list[tuple[str, str, str]]:
        """Messages the server refused for good, kept in the outbox to edit:
        (account, item id, the server's words)."""
        from kittiwake.core.smtp.outbox import ItemState

        out = []
        for key, runner in self.engine.outboxes.items():
            for item in runner.outbox.items():
                if item.state is ItemState.FAILED:
                    out.append((key, item.id, item.error or "refused"))
        return out

    def refused_items(self) -> list[RefusedItem]:
        """``refused`` with what the palette shows of each: subject and recipients."""
        from kittiwake.core.smtp.outbox import ItemState

        return self._held(ItemState.FAILED)

    def uncertain_items(self) -> list[RefusedItem]:
        """Messages that may have been delivered (their reply was lost), kept in the outbox
        until the user sends them again (``resend_uncertain``) or deletes them."""
        from kittiwake.core.smtp.outbox import ItemState

        return self._held(ItemState.UNCERTAIN)

    def _held(self, state: ItemState) -> list[RefusedItem]:
        from kittiwake.core.smtp.outbox import item_subject

        out = []
        for key, runner in self.engine.outboxes.items():
            for item in runner.outbox.items():
                if item.state is not state:
                    continue
                out.append(
                    RefusedItem(
                        key,
                        item.id,
                        item.error or state.value,
                        item_subject(runner.outbox, item.id),
                        item.recipients,
                    )
                )
        return out

    async def resend_uncertain(self, account: str, item_id: str) -> None:
        """The user says a message that may have been delivered was not: send it again."""
        runner = self.engine.outboxes[account]
        item = await asyncio.to_thread(runner.outbox.retry, item_id)
        if item is None:
            raise KittiwakeError("that message is no longer in the outbox (or is being sent)")
        self.tally.recount(account)
        runner._publish_counts()
        runner.wake()

    async def delete_uncertain(self, account: str, item_id: str) -> None:
        """A message that may have been delivered, which the user will not send again. It
        leaves the outbox once its copy is in Sent (``Outbox.settle_uncertain``): it may
        well have arrived, and then Sent must show it."""
        runner = self.engine.outboxes[account]
        item = await asyncio.to_thread(runner.outbox.settle_uncertain, item_id)
        if item is None:
            raise KittiwakeError("that message is no longer in the outbox (or is being sent)")
        self.tally.recount(account)
        runner._publish_counts()
        runner.wake()

    async def delete_refused(self, account: str, item_id: str) -> None:
        """A refused message the user gives up on: gone from the outbox, for good."""
        runner = self.engine.outboxes[account]
        await asyncio.to_thread(runner.outbox.remove, item_id)
        self.tally.recount(account)
        runner._publish_counts()

    async def edit_refused(self, account: str, item_id: str) -> LocalDraft:
        """A refused message back in the composer; it leaves the outbox only once its
        draft is on disk."""
        from kittiwake.core.compose.reply import draft_from_message
        from kittiwake.core.message.mime import parse_message

        outbox = self.engine.outboxes[account].outbox
        item = outbox.get(item_id)
        if item is None:
            raise KittiwakeError("that message is no longer in the outbox")
        raw = await asyncio.to_thread(outbox.sent_copy, item_id)
        parsed = await asyncio.to_thread(parse_message, raw)
        draft = await asyncio.to_thread(draft_from_message, parsed)
        local = LocalDraft(LocalDrafts.new_id(), account, draft, dict(item.context))
        local = await self.keep(local)
        await asyncio.to_thread(outbox.remove, item_id)
        self.tally.recount(account)
        self.engine.outboxes[account]._publish_counts()
        return local

    # -- status ---------------------------------------------------------------------------

    def note(self, event: Event) -> None:
        """Follow the events that matter here (called by ``MailApi``'s tracker)."""
        if isinstance(event, ConnectionChanged) and event.state is ConnState.ONLINE:
            runner = self.engine.outboxes.get(event.account)
            if runner is not None:
                runner.wake()  # a Sent copy that waited for the server goes now
            self._recover_soon(event.account)
        elif isinstance(event, FolderListChanged):
            self._recover_soon(event.account)

    def _recover_soon(self, account: str) -> None:
        """Drafts left on disk by an earlier run go to the server once it is reachable."""
        left = next(self.local.root.glob("*/meta.json"), None)  # cheap: usually nothing
        if self._recovering or left is None:
            return
        task = asyncio.get_running_loop().create_task(self.recover(account))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- addresses ------------------------------------------------------------------------

    def complete(self, prefix: str, exclude: Iterable[str] = (), limit: int = 8) -> list[Address]:
        """Addresses for To/Cc/Bcc that match ``prefix``, best first (from every cache)."""
        from kittiwake.core.compose.reply import own_addresses

        now = time.monotonic()
        if self._seen is None or now - self._seen[0] > SEEN_TTL:
            seen: list[Seen] = []
            for key, store in self.engine.stores.items():
                acct = self.config.accounts.get(key)
                own = own_addresses(acct) if acct else frozenset()
                seen += seen_in_cache(store.cache, own)
            self._seen = (now, seen)
        mine: set[str] = set()
        for acct in self.config.accounts.values():
            mine |= own_addresses(acct)
        typed = {e.lower() for e in exclude}
        aliases = alias_matches(self.config.aliases, prefix)
        names = [a for a in aliases if a.addr.lower() not in typed]
        found = complete(self._seen[1], prefix, limit=limit, exclude=[*exclude, *mine])
        return (names + found)[:limit]

    async def query(self, prefix: str, exclude: Iterable[str] = ()) -> list[Address]:
        """Matches from ``[addressbook] query_command`` (none when unset), the answer for a
        prefix reused a while: the command runs once per prefix typed, not per keystroke
        repeated."""
        command = self.config.addressbook.query_command
        if command is None or not prefix.strip():
            return []
        key = prefix.strip()
        now = time.monotonic()
        cached = self._queried.get(key)
        if cached is None or now - cached[0] > SEEN_TTL:
            found = await run_query(command, key, self.config.addressbook.timeout)
            if len(self._queried) > 200:
                self._queried.clear()
            self._queried[key] = cached = (now, found)
        skip = {e.lower() for e in exclude}
        return [a for a in cached[1] if a.addr.lower() not in skip]


def _sealed(parsed: ParsedMessage, draft: Draft) -> Draft:
    """A reply to, forward of, or reopened draft of an encrypted message quotes its plaintext:
    it starts out encrypted too (``p`` on the review screen can still change that)."""
    if parsed.security is not None and parsed.security.encrypted:
        return replace(draft, encrypt=True)
    return draft
