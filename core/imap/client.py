"""Typed IMAP commands: what the sync engine asks of a server, with the fallbacks it needs.

Sits on the hardened transport (``connection.py``) and the pure parser (``parser.py``).
Every untagged response a command brings back is parsed here; the ones that are not the
command's own answer (another device's EXISTS, EXPUNGE, FETCH FLAGS, VANISHED) are handed
to ``on_unsolicited`` so no change is ever lost.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
from collections.abc import AsyncGenerator, Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from kittiwake.core.cache import LazySummaries, RawRow
from kittiwake.core.errors import CommandFailed, ConnectionLost, ProtocolError
from kittiwake.core.imap import salvage
from kittiwake.core.imap.codes import plain_words, stale_mailbox
from kittiwake.core.imap.connection import CommandResult, ImapConnection, internaldate_arg
from kittiwake.core.imap.decode import header_fields_from_fetch, summary_from_fetch
from kittiwake.core.imap.lazy import LAZY_MIN, extract, read_stream
from kittiwake.core.imap.parser import (
    AppendUid,
    Bad,
    Bye,
    Capability,
    CopyUid,
    Enabled,
    ESearch,
    Exists,
    Expunge,
    Fetch,
    Flags,
    ListItem,
    Namespace,
    No,
    Ok,
    Search,
    Status,
    Untagged,
    Vanished,
    parse_untagged,
)
from kittiwake.core.imap.protocol import StreamReader
from kittiwake.core.imap.uidset import UidSet
from kittiwake.core.message import utf7
from kittiwake.core.models import FolderInfo, FolderRole, MessageSummary, shared_flags
from kittiwake.core.tasks import reap

log = logging.getLogger(__name__)

#: Session-specific and gone from IMAP4rev2: never stored, never compared.
RECENT = "\\Recent"

#: What the message list needs; REFERENCES is fetched for threading.
SUMMARY_ITEMS = (
    "UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODYSTRUCTURE"
    " BODY.PEEK[HEADER.FIELDS (REFERENCES)]"
)

_FALLBACK_ROLES = {
    "sent": FolderRole.SENT,
    "sent items": FolderRole.SENT,
    "sent messages": FolderRole.SENT,
    "sent mail": FolderRole.SENT,
    "[gmail]/sent mail": FolderRole.SENT,
    "drafts": FolderRole.DRAFTS,
    "[gmail]/drafts": FolderRole.DRAFTS,
    "trash": FolderRole.TRASH,
    "deleted items": FolderRole.TRASH,
    "deleted messages": FolderRole.TRASH,
    "[gmail]/trash": FolderRole.TRASH,
    "[gmail]/bin": FolderRole.TRASH,
    "junk": FolderRole.JUNK,
    "junk e-mail": FolderRole.JUNK,
    "junk email": FolderRole.JUNK,
    "spam": FolderRole.JUNK,
    "[gmail]/spam": FolderRole.JUNK,
    "archive": FolderRole.ARCHIVE,
    "archives": FolderRole.ARCHIVE,
    "[gmail]/all mail": FolderRole.ALL,
}


_FOLDING = re.compile(r"[\r\n]+[ \t]*")


def quote(text: str) -> str:
    """An IMAP quoted string (astring), escaping backslash and double quote. CR, LF and NUL
    cannot be quoted (sent raw, CR LF would end the command line and start another one), so
    they raise ValueError: callers refuse them first, in a sentence, or remove them."""
    if any(c in text for c in "\r\n\x00"):
        raise ValueError("CR, LF and NUL cannot be sent in an IMAP quoted string")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass
class SelectInfo:
    """What SELECT/EXAMINE told us, including QRESYNC's catch-up data."""

    exists: int = 0
    uidvalidity: int | None = None
    uidnext: int | None = None
    highestmodseq: int | None = None
    nomodseq: bool = False
    vanished: UidSet = field(default_factory=UidSet)
    changed: dict[int, frozenset[str]] = field(default_factory=dict)
    modseqs: dict[int, int] = field(default_factory=dict)
    readonly: bool = False


class ImapClient:
    """One logged-in connection with typed commands. Not safe for concurrent commands."""

    def __init__(
        self,
        conn: ImapConnection,
        on_unsolicited: Callable[[str | None, Untagged], None] | None = None,
    ) -> None:
        self.conn = conn
        self.on_unsolicited = on_unsolicited
        #: Sees the plain-words sentence of every ``[ALERT]``, ``[OVERQUOTA]``, ... the
        #: server sends (``codes.py``), for the status bar.
        self.on_notice: Callable[[str], None] | None = None
        self.selected: str | None = None
        #: The selected folder's UIDVALIDITY when it was selected: a folder recreated since
        #: our cache was filled shows here first.
        self.selected_uidvalidity: int | None = None
        self.enabled: frozenset[str] = frozenset()
        self._raw_names: dict[str, str] = {"INBOX": "INBOX"}
        #: The personal namespace's prefix and delimiter (``INBOX.`` on Courier and Cyrus),
        #: read once with the first LIST; ``("", None)`` without NAMESPACE.
        self.personal_namespace: tuple[str, str | None] | None = None
        self._utf8 = False
        self._busy = False
        conn.on_untagged = self._on_raw

    def early_notices(self) -> list[str]:
        """The notices of the greeting and the login (``ImapConnection.said_early``), sent
        before this client listened: ``* OK [ALERT] Maintenance tonight`` as a greeting."""
        said = (plain_words(code, text, self.conn.label) for code, text in self.conn.said_early)
        return [plain for plain in said if plain is not None]

    # -- capabilities -------------------------------------------------------------------

    @property
    def caps(self) -> frozenset[str]:
        return self.conn.capabilities

    def has(self, cap: str) -> bool:
        return cap.upper() in self.caps

    @property
    def qresync(self) -> bool:
        return "QRESYNC" in self.enabled

    @property
    def condstore(self) -> bool:
        return "CONDSTORE" in self.enabled or self.qresync

    async def enable_extensions(self) -> None:
        """ENABLE QRESYNC (which implies CONDSTORE) where offered, and send ID."""
        wanted = [c for c in ("QRESYNC", "CONDSTORE", "UTF8=ACCEPT") if self.has(c)]
        if "QRESYNC" in wanted and "CONDSTORE" in wanted:
            wanted.remove("CONDSTORE")
        if "UTF8=ACCEPT" in wanted:
            wanted.remove("UTF8=ACCEPT")  # names stay in modified UTF-7: simpler and universal
        if self.has("ENABLE") and wanted:
            responses, _ = await self.run("ENABLE " + " ".join(wanted))
            for r in responses:
                if isinstance(r, Enabled):
                    self.enabled = self.enabled | r.capabilities
        if self.has("CONDSTORE") and "CONDSTORE" not in self.enabled and not self.qresync:
            # CONDSTORE is switched on by the first command that uses it; remember it is there.
            self.enabled = self.enabled | {"CONDSTORE"}
        if self.has("ID"):
            try:
                await self.run('ID ("name" "Kittiwake")')
            except CommandFailed:
                log.debug("server refused ID")

    # -- running commands ---------------------------------------------------------------

    async def run(
        self,
        line: str,
        literal: bytes | None = None,
        claim: Callable[[Untagged], bool] = bool,
        *,
        then: Sequence[tuple[str, bytes]] = (),
        sink: Callable[[bytes], bool] | None = None,
        reader: StreamReader | None = None,
        refused_ok: bool = False,
    ) -> tuple[list[Untagged], CommandResult]:
        """Run one command; return the untagged responses it claims and the tagged result.

        Responses that ``claim`` rejects (another device's EXISTS, EXPUNGE, VANISHED or FETCH
        FLAGS that arrived during the command) go to ``on_unsolicited``. ``sink`` sees every
        untagged response as it arrives, ``reader`` the received bytes (see
        ``ImapConnection.execute``); what they consume is theirs. ``refused_ok``: a ``NO``
        is returned (see ``result.ok``) rather than raised, with what arrived before it.
        """
        self._busy = True
        try:
            result = await self.conn.execute(
                line, literal=literal, then=then, sink=sink, reader=reader
            )
        finally:
            self._busy = False
        out: list[Untagged] = []
        for raw in result.untagged:
            try:
                item = parse_untagged(raw, utf8_names=self._utf8)
            except ValueError:
                log.warning("unparseable response to %s", line.split(" ", 1)[0])
                continue
            self._notice(item)
            if isinstance(item, Bye):
                continue
            if claim(item):
                out.append(item)
            elif self.on_unsolicited is not None:
                self.on_unsolicited(self.selected, item)
        plain = plain_words(result.code_name, result.text, self.conn.label)
        if result.ok and plain is not None and self.on_notice is not None:
            self.on_notice(plain)  # "A1 OK [ALERT] your password expires soon"
        if not result.ok and not (refused_ok and result.status == "NO"):
            verb = (
                " ".join(line.split(" ", 2)[:2]) if line.startswith("UID ") else line.split(" ")[0]
            )
            raise CommandFailed(
                plain or f"{self.conn.label} refused {verb}: {result.text}",
                command=verb,
                status=result.status,
                text=result.text,
                code=result.code_name,
            )
        return out, result

    def _on_raw(self, raw: bytes) -> None:
        """Untagged data outside our own commands (IDLE, NOTIFY, or between commands)."""
        if self._busy or self.on_unsolicited is None:
            return  # run() sees these in the command's result
        try:
            item = parse_untagged(raw, utf8_names=self._utf8)
        except ValueError:
            return
        self._notice(item)
        self.on_unsolicited(self.selected, item)

    def _notice(self, item: Untagged) -> None:
        """``* OK [ALERT] ...``, ``* NO [OVERQUOTA] ...``, ``* BYE [UNAVAILABLE] ...``."""
        if self.on_notice is None or not isinstance(item, Ok | No | Bad | Bye):
            return
        plain = plain_words(item.code_name, item.text, self.conn.label)
        if plain is not None:
            self.on_notice(plain)

    def raw_name(self, folder: str) -> str:
        return self._raw_names.get(folder) or utf7.encode(folder)

    def mailbox_arg(self, folder: str) -> str:
        return quote(self.raw_name(folder))

    # -- folders ------------------------------------------------------------------------

    async def namespace(self) -> tuple[str, str | None]:
        """The personal namespace (RFC 2342): where the user's own folders live, and so where
        roles are guessed and new folders made (Courier refuses any name outside ``INBOX.``)."""
        if self.personal_namespace is None:
            found: tuple[str, str | None] = ("", None)
            if self.has("NAMESPACE"):
                responses, _ = await self.run("NAMESPACE", claim=lambda r: isinstance(r, Namespace))
                for r in responses:
                    if isinstance(r, Namespace) and r.personal:
                        prefix, delimiter = r.personal[0]
                        found = (utf7.decode(prefix), delimiter)
            self.personal_namespace = found
        return self.personal_namespace

    async def list_folders(self) -> tuple[list[FolderInfo], dict[str, Status]]:
        """All folders with roles and subscription; STATUS too when LIST-STATUS is offered."""
        prefix, _ = await self.namespace()
        items: list[ListItem] = []
        statuses: dict[str, Status] = {}
        subscribed: set[str] | None = None
        if self.has("LIST-EXTENDED") or self.has("LIST-STATUS"):
            returns = ["SUBSCRIBED", "CHILDREN"]
            if self.has("SPECIAL-USE"):
                returns.append("SPECIAL-USE")
            if self.has("LIST-STATUS"):
                returns.append(f"STATUS ({self._status_items()})")
            responses, _ = await self.run(
                f'LIST "" "*" RETURN ({" ".join(returns)})',
                claim=lambda r: isinstance(r, ListItem | Status),
            )
        else:
            responses, _ = await self.run('LIST "" "*"', claim=lambda r: isinstance(r, ListItem))
            lsub, _ = await self.run('LSUB "" "*"', claim=lambda r: isinstance(r, ListItem))
            subscribed = {r.name_decoded for r in lsub if isinstance(r, ListItem)}
        for r in responses:
            if isinstance(r, ListItem) and r.command == "LIST":
                items.append(r)
            elif isinstance(r, Status):
                statuses[r.mailbox] = r
        folders: list[FolderInfo] = []
        for item in items:
            self._raw_names[item.name_decoded] = item.name_raw
            info = item.folder_info(None if subscribed is None else item.name_decoded in subscribed)
            if item.name_decoded == "INBOX":
                info = FolderInfo(
                    info.name, info.delimiter, FolderRole.INBOX, info.attributes, True
                )
            folders.append(info)
        return _fill_fallback_roles(folders, prefix), statuses

    def _status_items(self) -> str:
        items = "MESSAGES UNSEEN UIDNEXT UIDVALIDITY"
        return items + " HIGHESTMODSEQ" if self.has("CONDSTORE") else items

    async def status(self, folder: str) -> Status:
        responses, _ = await self.run(
            f"STATUS {self.mailbox_arg(folder)} ({self._status_items()})",
            claim=lambda r: isinstance(r, Status),
        )
        for r in responses:
            if isinstance(r, Status):
                return r
        return Status(folder, folder, {})

    async def create(self, folder: str) -> None:
        await self.run(f"CREATE {quote(utf7.encode(folder))}")
        await self.run(f"SUBSCRIBE {quote(utf7.encode(folder))}")

    async def rename(self, old: str, new: str) -> None:
        if self.selected == old:
            await self.run("UNSELECT" if self.has("UNSELECT") else "CLOSE")
            self.selected = None
        await self.run(f"RENAME {self.mailbox_arg(old)} {quote(utf7.encode(new))}")
        await self.run(f"UNSUBSCRIBE {self.mailbox_arg(old)}")
        await self.run(f"SUBSCRIBE {quote(utf7.encode(new))}")
        self._raw_names.pop(old, None)

    async def delete(self, folder: str) -> None:
        if self.selected == folder:
            await self.run("UNSELECT" if self.has("UNSELECT") else "CLOSE")
            self.selected = None
        await self.run(f"UNSUBSCRIBE {self.mailbox_arg(folder)}")
        await self.run(f"DELETE {self.mailbox_arg(folder)}")
        self._raw_names.pop(folder, None)

    # -- selecting ----------------------------------------------------------------------

    async def select(
        self,
        folder: str,
        *,
        readonly: bool = False,
        qresync: tuple[int, int, UidSet | None] | None = None,
    ) -> SelectInfo:
        """SELECT (or EXAMINE) ``folder``; with ``qresync`` = (uidvalidity, modseq, known
        uids) the server also reports what vanished and changed since (RFC 7162)."""
        verb = "EXAMINE" if readonly else "SELECT"
        args = ""
        if qresync is not None and self.qresync:
            uidvalidity, modseq, known = qresync
            known_text = f" {known.format()}" if known else ""
            args = f" (QRESYNC ({uidvalidity} {modseq}{known_text}))"
        elif self.condstore:
            args = " (CONDSTORE)"
        self.selected = None
        info = SelectInfo(readonly=readonly)

        def claim(r: Untagged) -> bool:
            return True  # everything during SELECT describes the new mailbox

        try:
            responses, tagged = await self.run(
                f"{verb} {self.mailbox_arg(folder)}{args}", claim=claim
            )
        except CommandFailed as exc:
            if not stale_mailbox(exc.text):
                raise
            # Dovecot refuses a folder deleted and recreated by another session for the rest
            # of this one (its FETCH gets BYE with the same words); a new session reads it.
            # Left open, the connection failed every resync and body load of that folder.
            lost = ConnectionLost(
                f"Connection to {self.conn.label} ended: the server refused {folder} in this "
                f"session ({exc.text})."
            )
            self.conn.drop(lost)
            raise lost from exc
        self.selected = folder
        for r in responses:
            if isinstance(r, Exists):
                info.exists = r.count
            elif isinstance(r, Vanished):
                info.vanished = info.vanished.union(r.uids)
            elif isinstance(r, Fetch) and r.uid is not None:
                flags = r.flags
                if flags is not None:
                    info.changed[r.uid] = flags
                if r.modseq is not None:
                    info.modseqs[r.uid] = r.modseq
            elif isinstance(r, Ok) and r.code is not None:
                code = r.code
                if code.name == "UIDVALIDITY":
                    info.uidvalidity = code.int_value
                elif code.name == "UIDNEXT":
                    info.uidnext = code.int_value
                elif code.name == "HIGHESTMODSEQ":
                    info.highestmodseq = code.int_value
                elif code.name == "NOMODSEQ":
                    info.nomodseq = True
        if tagged.code_name == "READ-ONLY":
            info.readonly = True
        self.selected_uidvalidity = info.uidvalidity
        if info.uidnext is None:
            # Courier's SELECT has no [UIDNEXT] (RFC 3501 requires it). Without it the cache
            # never learns where new mail starts, so every sync would be taken for a first one
            # and never fetch flags again. STATUS says it; a message arriving in between
            # comes with an EXISTS (the folder is resynced) and is found by its count.
            info.uidnext = (await self.status(folder)).uidnext
        return info

    # -- fetching -----------------------------------------------------------------------

    def _summary_items(self) -> str:
        return SUMMARY_ITEMS + (" MODSEQ" if self.condstore else "")

    async def fetch_summaries(self, seq_lo: int, seq_hi: int) -> Sequence[MessageSummary]:
        """Summaries of messages ``seq_lo``..``seq_hi`` by sequence number.

        From ``LAZY_MIN`` messages on, a ``LazySummaries`` (see ``lazy.py``): envelopes are
        decoded when read, and the responses are handled as they arrive.
        """
        lazy = seq_hi - seq_lo + 1 >= LAZY_MIN
        return await self._summaries(
            f"FETCH {seq_lo}:{seq_hi} ({self._summary_items()})", lazy, (seq_lo, seq_hi)
        )

    async def uid_fetch_summaries(
        self, uids: UidSet | str, headers: Sequence[str] = ()
    ) -> Sequence[MessageSummary]:
        """Summaries of ``uids`` (lazy from ``LAZY_MIN`` UIDs on, as ``fetch_summaries``).

        ``headers``: more header fields to fetch with them, into ``extra_headers`` (never
        lazy then: a lazy row is cached as fetched, and these fields are not for the cache).
        """
        text = uids.format() if isinstance(uids, UidSet) else uids
        items = self._summary_items()
        if headers:
            items += f" BODY.PEEK[HEADER.FIELDS ({' '.join(h.upper() for h in headers)})]"
        if "*" in text:
            out = await self._summaries(f"UID FETCH {text} ({items})", False, None, headers)
            # "n:*" returns the last message even when its UID is below n.
            start = int(text.split(":", 1)[0])
            return [s for s in out if s.uid >= start]
        wanted = uids if isinstance(uids, UidSet) else UidSet.parse(text, max_value=2**32 - 1)
        lazy = len(wanted) >= LAZY_MIN and not headers
        return await self._summaries(f"UID FETCH {text} ({items})", lazy, wanted, headers)

    async def fetch_summaries_newest_first(
        self, exists: int, first: int, batch: int
    ) -> AsyncGenerator[Sequence[MessageSummary], None]:
        """Summaries of messages ``exists``..1 by sequence number, newest first: ``first``
        messages, then batches of ``batch`` (each as ``fetch_summaries``).

        Pipelined: the next batch's FETCH is on the wire while the caller handles the batch
        it was given (stores it, publishes it), so the server works meanwhile. Use with
        ``contextlib.aclosing``: leaving early cancels the FETCH in flight.
        """
        ranges: list[tuple[int, int]] = []
        hi, window = exists, max(1, first)
        while hi >= 1:
            lo = max(1, hi - window + 1)
            ranges.append((lo, hi))
            hi, window = lo - 1, max(1, batch)
        if not ranges:
            return
        task = asyncio.ensure_future(self.fetch_summaries(*ranges[0]))
        try:
            for i in range(len(ranges)):
                result = await task
                if i + 1 < len(ranges):
                    task = asyncio.ensure_future(self.fetch_summaries(*ranges[i + 1]))
                    await asyncio.sleep(0)  # let it put its command on the wire
                yield result
        finally:
            if not task.done():
                task.cancel()
                await reap(task)

    async def _summaries(
        self,
        line: str,
        lazy: bool,
        wanted: UidSet | tuple[int, int] | None,
        headers: Sequence[str] = (),
    ) -> Sequence[MessageSummary]:
        """Run a summary FETCH. Per-message isolation (``salvage.py``): a degraded response
        is shown from its headers, and after a ``NO`` the messages of ``wanted`` (UIDs, or
        a sequence range) that did not come are fetched again one by one."""
        flags_only: dict[int, frozenset[str]] = {}
        degraded: list[int] = []

        def claim(r: Untagged) -> bool:
            return isinstance(r, Fetch)

        rows: list[RawRow] = []
        sink: Callable[[bytes], bool] | None = None
        reader: StreamReader | None = None
        if lazy:
            keep = rows.append

            def sink(resp: bytes) -> bool:
                row = extract(resp)
                if row is None:
                    return False  # not one the fast path vouches for: decoded in full below
                keep(row)
                return True

            def reader(data: bytes, pos: int, max_size: int) -> int:
                return read_stream(data, pos, max_size, rows)

        responses, result = await self.run(
            line, claim=claim, sink=sink, reader=reader, refused_ok=wanted is not None
        )
        if not result.ok:  # Yahoo, Exchange: the others, then NO for one broken message
            responses = [*responses, *await self._refused(wanted, responses, rows)]
        out: list[MessageSummary] = []
        for r in responses:
            assert isinstance(r, Fetch)
            if r.degraded:
                if r.uid is not None:
                    degraded.append(r.uid)
                elif r.seq > 0:  # no UID before the damage: ask for it by number
                    degraded.extend(await salvage.uids_in(self, r.seq, r.seq))
                continue
            if r.get("ENVELOPE") is None:
                # An unsolicited flag update from another device that arrived mid-command.
                if r.uid is not None and r.flags is not None:
                    flags_only[r.uid] = r.flags - {RECENT}
                elif self.on_unsolicited is not None:
                    self.on_unsolicited(self.selected, r)
                continue
            try:
                summary = summary_from_fetch(r)
                if headers:
                    extra = header_fields_from_fetch(r, headers)
                    summary = dataclasses.replace(summary, extra_headers=extra)
                if RECENT in summary.flags:
                    summary = dataclasses.replace(summary, flags=summary.flags - {RECENT})
                out.append(summary)
            except ValueError:
                log.warning("skipping an unparseable FETCH response in %s", self.selected)
        if degraded:
            log.warning("%s: %d messages shown from raw headers", self.selected, len(degraded))
            out.extend(await salvage.header_summaries(self, degraded))
        if flags_only and self.on_unsolicited is not None:
            for uid, flags in flags_only.items():
                self.on_unsolicited(self.selected, _flag_fetch(uid, flags))
        if lazy:
            return LazySummaries.of(rows, out)
        return out

    async def _refused(
        self, wanted: UidSet | tuple[int, int] | None, got: list[Untagged], rows: list[RawRow]
    ) -> list[Fetch]:
        """After a ``NO``: the summaries of the messages of ``wanted`` that did not come,
        fetched one by one; those refused again come back degraded (shown from headers)."""
        have = {r.uid for r in got if isinstance(r, Fetch) and r.uid is not None}
        have.update(row[0] for row in rows)
        if isinstance(wanted, tuple):
            expected = await salvage.uids_in(self, *wanted)
        else:
            expected = set(wanted or ())
        missing = sorted(expected - have)
        log.warning("%s: FETCH refused; retrying %d messages alone", self.selected, len(missing))
        fetched, refused = await salvage.fetch_alone(self, missing, self._summary_items())
        return [*fetched, *(Fetch(0, {"UID": uid}, degraded="refused") for uid in refused)]

    async def uid_fetch_flags(
        self, uids: str = "1:*", changedsince: int | None = None
    ) -> tuple[dict[int, frozenset[str]], dict[int, int]]:
        """Flags (and modseqs) of ``uids``; with ``changedsince`` only what changed.

        Each answer is taken in as it arrives (``sink``): ``1:*`` of a big folder (a resync
        without CONDSTORE, a first sync resumed) would otherwise hold every response's bytes
        and parsed form at once, ~0.5 KB a message, beside the two dicts."""
        items = "(UID FLAGS MODSEQ)" if self.condstore else "(UID FLAGS)"
        mod = f" (CHANGEDSINCE {changedsince})" if changedsince is not None else ""
        flags: dict[int, frozenset[str]] = {}
        modseqs: dict[int, int] = {}

        def take(r: Untagged) -> bool:
            if not isinstance(r, Fetch):
                return False
            if r.uid is not None:
                f = r.flags
                if f is not None:
                    flags[r.uid] = shared_flags(f - {RECENT}) if RECENT in f else f
                if r.modseq is not None:
                    modseqs[r.uid] = r.modseq
            return True

        def sink(raw: bytes) -> bool:
            try:
                r = parse_untagged(raw, utf8_names=self._utf8)
            except ValueError:
                return False  # run() logs it
            return take(r)

        await self.run(f"UID FETCH {uids} {items}{mod}", claim=take, sink=sink)
        return flags, modseqs

    async def uid_fetch_changed(
        self, modseq: int
    ) -> tuple[dict[int, frozenset[str]], dict[int, int], UidSet]:
        """What changed in the selected folder since ``modseq``, without a new SELECT:
        flags (new messages included) and, with QRESYNC, what vanished (RFC 7162 3.2.6)."""
        modifier = (
            f"(CHANGEDSINCE {modseq} VANISHED)" if self.qresync else (f"(CHANGEDSINCE {modseq})")
        )
        responses, _ = await self.run(
            f"UID FETCH 1:* (UID FLAGS) {modifier}",
            claim=lambda r: isinstance(r, Fetch | Vanished),
        )
        flags: dict[int, frozenset[str]] = {}
        modseqs: dict[int, int] = {}
        vanished = UidSet()
        for r in responses:
            if isinstance(r, Vanished):
                vanished = vanished.union(r.uids)
            elif isinstance(r, Fetch) and r.uid is not None:
                f = r.flags
                if f is not None:
                    flags[r.uid] = f - {RECENT}
                if r.modseq is not None:
                    modseqs[r.uid] = r.modseq
        return flags, modseqs, vanished

    async def uid_search_all(self) -> UidSet:
        """Every UID in the selected folder (ESEARCH keeps the answer compact)."""
        if self.has("ESEARCH"):
            responses, _ = await self.run(
                "UID SEARCH RETURN (ALL) ALL", claim=lambda r: isinstance(r, ESearch)
            )
            for r in responses:
                if isinstance(r, ESearch):
                    return r.all or UidSet()
            return UidSet()
        responses, _ = await self.run("UID SEARCH ALL", claim=lambda r: isinstance(r, Search))
        uids: list[int] = []
        for r in responses:
            if isinstance(r, Search):
                uids.extend(r.uids)
        return UidSet.from_iterable(uids)

    async def uid_fetch_body(self, uid: int) -> bytes | None:
        """The whole message, without setting \\Seen (BODY.PEEK[], never RFC822: iCloud
        sends no body for it), its length checked against RFC822.SIZE: an empty body for a
        message that has a size (iCloud, under load) is fetched once more, then refused
        rather than cached as the message. A body of another length is kept (Exchange's
        RFC822.SIZE is an estimate)."""
        for attempt in (1, 2):
            responses, _ = await self.run(
                f"UID FETCH {uid} (UID RFC822.SIZE BODY.PEEK[])",
                claim=lambda r: isinstance(r, Fetch),
            )
            body: bytes | None = None
            size: int | None = None
            for r in responses:
                if isinstance(r, Fetch) and r.uid == uid:
                    body = r.section("") if body is None else body
                    size = r.size if size is None else size
            if body is None:
                return None
            if body or not size:
                if size is not None and len(body) != size:
                    log.debug("UID %d: %d bytes, RFC822.SIZE %d", uid, len(body), size)
                return body
            log.warning("%s: UID %d came without its body (try %d)", self.selected, uid, attempt)
        raise ProtocolError(
            f"{self.conn.label} sent message UID {uid} in {self.selected} without its body."
        )

    # -- changing -----------------------------------------------------------------------

    async def uid_store(self, uids: Iterable[int] | UidSet, op: str, flags: Sequence[str]) -> None:
        """``op`` is "+FLAGS", "-FLAGS" or "FLAGS"; .SILENT is added, changes come back by sync."""
        uidset = uids if isinstance(uids, UidSet) else UidSet.from_iterable(uids)
        await self.run(
            f"UID STORE {uidset.format()} {op}.SILENT ({' '.join(flags)})",
            claim=lambda r: isinstance(r, Fetch),
        )

    async def uid_search_existing(self, uids: Iterable[int]) -> set[int]:
        """Which of ``uids`` still exist in the selected folder."""
        wanted = UidSet.from_iterable(uids)
        if not wanted:
            return set()
        responses, _ = await self.run(
            f"UID SEARCH UID {wanted.format()}", claim=lambda r: isinstance(r, Search)
        )
        found: set[int] = set()
        for r in responses:
            if isinstance(r, Search):
                found.update(r.uids)
        return found & set(wanted)

    async def uid_search_header(self, name: str, value: str) -> set[int]:
        """UIDs in the selected folder whose header ``name`` contains ``value`` (ASCII).
        Servers compare unfolded header values, so line breaks in ``value`` (a folded
        Message-ID) are unfolded too; a NUL matches nothing and is never sent."""
        value = _FOLDING.sub(" ", value).strip()
        if "\x00" in value or "\x00" in name or _FOLDING.search(name):
            return set()
        responses, _ = await self.run(
            f"UID SEARCH HEADER {quote(name)} {quote(value)}",
            claim=lambda r: isinstance(r, Search),
        )
        found: set[int] = set()
        for r in responses:
            if isinstance(r, Search):
                found.update(r.uids)
        return found

    async def uid_copy_or_move(
        self,
        uids: Iterable[int],
        dest: str,
        move: bool,
        copied_before: Collection[int] = (),
    ) -> CopyUid | None:
        """UID MOVE (RFC 6851) or UID COPY; the COPYUID mapping when the server gives one.

        Without MOVE, a move is COPY + \\Deleted + UID EXPUNGE of exactly those UIDs; without
        UIDPLUS there is no UID EXPUNGE, and a plain EXPUNGE would also remove other devices'
        \\Deleted messages, so the originals are only marked \\Deleted then.
        ``copied_before``: UIDs an earlier COPY (whose reply was lost) already put in ``dest``;
        they are not copied again, only deleted from the source on a move.
        """
        uidset = UidSet.from_iterable(uids)
        verb = "MOVE" if move and self.has("MOVE") else "COPY"
        to_send = uidset
        if verb == "COPY" and copied_before:
            to_send = UidSet.from_iterable(u for u in uidset if u not in set(copied_before))
        mapping = await self._uid_transfer(verb, to_send, dest) if to_send else None
        if move and verb == "COPY":
            await self.uid_store(uidset, "+FLAGS", ["\\Deleted"])
            if self.has("UIDPLUS"):
                await self.uid_expunge(uidset)
        return mapping

    async def _uid_transfer(self, verb: str, uidset: UidSet, dest: str) -> CopyUid | None:
        def claim(r: Untagged) -> bool:
            return isinstance(r, Ok) and r.code is not None and r.code.name == "COPYUID"

        responses, result = await self.run(
            f"UID {verb} {uidset.format()} {self.mailbox_arg(dest)}", claim=claim
        )
        mapping: CopyUid | None = None
        for r in responses:
            if isinstance(r, Ok) and r.code is not None and isinstance(r.code.value, CopyUid):
                mapping = r.code.value
        if mapping is None and result.code:
            tagged = parse_untagged(f"* OK [{result.code}] done".encode())
            if isinstance(tagged, Ok) and tagged.code is not None:
                value = tagged.code.value
                mapping = value if isinstance(value, CopyUid) else None
        return mapping

    async def uid_expunge(self, uids: Iterable[int]) -> None:
        """Expunge exactly ``uids`` (never a plain EXPUNGE: it takes others' \\Deleted too)."""
        uidset = UidSet.from_iterable(uids)
        if not self.has("UIDPLUS"):
            raise CommandFailed(
                f"{self.conn.label} cannot expunge single messages (no UIDPLUS); "
                "they stay marked as deleted",
                command="UID EXPUNGE",
            )
        await self.run(f"UID EXPUNGE {uidset.format()}", claim=lambda r: False)

    async def append(
        self,
        folder: str,
        message: bytes,
        flags: Sequence[str] = (),
        when: datetime | None = None,
    ) -> int | None:
        """APPEND; the new message's UID when the server says (APPENDUID, RFC 4315)."""
        _, result = await self.run(
            f"APPEND {self.mailbox_arg(folder)} {_append_words(flags, when)}", literal=message
        )
        if result.code_name != "APPENDUID" or result.code is None:
            return None
        tagged = parse_untagged(f"* OK [{result.code}] done".encode())
        if isinstance(tagged, Ok) and tagged.code is not None:
            value = tagged.code.value
            if isinstance(value, AppendUid) and len(value.uids) == 1:
                return next(iter(value.uids))
        return None

    async def append_many(
        self, folder: str, messages: Sequence[tuple[bytes, Collection[str], datetime | None]]
    ) -> None:
        """APPEND every (message, flags, INTERNALDATE): one MULTIAPPEND command (RFC 3502,
        all or none of them) where the server has it, else one APPEND after another
        (this transport has one command in flight at a time, so they cannot overlap)."""
        if not messages:
            return
        if not self.has("MULTIAPPEND"):
            for raw, flags, when in messages:
                await self.append(folder, raw, sorted(flags), when)
            return
        (raw, flags, when), *rest = messages
        await self.run(
            f"APPEND {self.mailbox_arg(folder)} {_append_words(sorted(flags), when)}",
            literal=raw,
            then=[(_append_words(sorted(f), w), m) for m, f, w in rest],
        )

    async def noop(self) -> None:
        await self.run("NOOP", claim=lambda r: False)

    async def logout(self) -> None:
        await self.conn.logout()


def _append_words(flags: Sequence[str], when: datetime | None) -> str:
    """An APPEND's flag list and, when known, its INTERNALDATE."""
    words = f"({' '.join(flags)})"
    return f"{words} {internaldate_arg(when)}" if when is not None else words


def _flag_fetch(uid: int, flags: frozenset[str]) -> Fetch:
    return Fetch(0, {"UID": uid, "FLAGS": [f for f in sorted(flags)]})


def _fill_fallback_roles(folders: list[FolderInfo], prefix: str = "") -> list[FolderInfo]:
    """Where the server marks no SPECIAL-USE folder for a role, guess by common names, as
    they stand under the personal namespace ``prefix`` (Courier's ``INBOX.Trash``)."""
    taken = {f.role for f in folders if f.role is not None}
    out = []
    for f in folders:
        name = f.name[len(prefix) :] if prefix and f.name.startswith(prefix) else f.name
        guess = _FALLBACK_ROLES.get(name.lower())
        if f.role is None and guess is not None and guess not in taken and f.selectable:
            f = FolderInfo(f.name, f.delimiter, guess, f.attributes, f.subscribed)
            taken.add(guess)
        out.append(f)
    return out


__all__ = [
    "SUMMARY_ITEMS",
    "Capability",
    "Expunge",
    "Flags",
    "ImapClient",
    "SelectInfo",
    "quote",
]
