"""The Gmail test profile's server process: pymap's in-memory backend, bent into Gmail's shape.

Run by ``harness.gmail.GmailProfile`` as ``python gmail_server.py``; the first line on stdin is
the spec (host, TLS files, user, password), stdout says ``{"port": N}`` once listening, and end
of stdin stops it. A process of its own because the bends are patches to pymap's classes,
which must not leak into the test process (the demo tests use pymap unpatched).

What it emulates, from Google's IMAP documentation (developers.google.com/gmail/imap):

- ``X-GM-EXT-1`` and ``SPECIAL-USE`` in CAPABILITY; ``[Gmail]/All Mail`` (``\\All``),
  ``[Gmail]/Sent Mail`` (``\\Sent``), ``[Gmail]/Drafts`` (``\\Drafts``), ``[Gmail]/Spam``
  (``\\Junk``), ``[Gmail]/Trash`` (``\\Trash``), ``[Gmail]/Important`` (``\\Important``),
  ``[Gmail]/Starred`` (``\\Flagged``).
- A message is stored once; each folder holding it is one of its labels. Every message not in
  Trash or Spam is in All Mail. FETCH ``X-GM-MSGID`` (the same in every folder),
  ``X-GM-THRID`` and ``X-GM-LABELS`` (the folders it is in, system ones as ``\\Inbox``,
  ``\\Sent``, ``\\Important``, ...).
- Removing a message from a label folder (MOVE out, or ``\\Deleted`` + EXPUNGE) removes that
  label only: it stays in All Mail. MOVE from INBOX to All Mail is Gmail's archive. MOVE into
  Trash or Spam takes it out of every other folder, All Mail included.
- COPY into a folder that already holds the message adds nothing (labels are a set).
- ``X-GM-THRID`` as Gmail threads: by Message-ID, In-Reply-To and References (pymap's thread
  keys), and also, as users see in Gmail, messages with the same subject (Re:, Fwd: and list
  tags aside) from the same sender without any of those headers: "Your order has shipped"
  notifications are one conversation there.
- Keywords are kept (PERMANENTFLAGS ends in ``\\*``), ``$Junk`` and the like included.
- At most 15 connections at once; the 16th is refused at the greeting, like Gmail's
  ``* BYE [UNAVAILABLE] Too many simultaneous connections``. The spec's ``max_connections``
  changes the cap, and ``"refuse": "login"`` refuses as Gmail documents it for a login over the
  cap: the greeting comes, and LOGIN/AUTHENTICATE is answered ``NO [ALERT] Too many
  simultaneous connections. (Failure)`` (the cap then counts logged-in connections).
- Bandwidth and command limits ("Account exceeded command or bandwidth limits", for minutes
  up to a day on Gmail), switched on for a while by a control line on stdin (below): every
  open connection hears ``* BYE [ALERT] Account exceeded command or bandwidth limits.
  (Failure)`` and is closed, and every login meanwhile is answered ``NO [ALERT]`` with the
  same words.

Control lines: after the spec, each line on stdin is a JSON object answered by one JSON line on
stdout: ``{"limit_for": seconds}`` (0 lifts the limit) and ``{"stats": true}``, which answers
``{"open": n, "logged_in": n, "logins": n, "refused": n}`` (connections open now, logged in now,
successful logins so far, connections and logins refused for the cap or the limit so far).

- ``STORE [+-]X-GM-LABELS[.SILENT] (labels)``: the message is copied into each label's folder
  (made if need be) or taken out of it; ``-X-GM-LABELS (\\Inbox)`` archives.
- ``SEARCH X-GM-RAW "..."`` with a small part of Gmail's query syntax: ``in:`` / ``label:``,
  ``from:``, ``subject:``, and bare words (anywhere in the message), all of which must match.

Not emulated: the real budgets behind the bandwidth limits (the test switches the limit on),
the rest of Gmail's search syntax.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
import ssl
import sys
import time
from argparse import Namespace
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from proxyprotocol.reader import ProxyProtocolReader
from proxyprotocol.version import ProxyProtocolVersion
from pymap.backend.dict import Config as DictConfig
from pymap.backend.dict import Identity, Login
from pymap.backend.dict.filter import FilterSet
from pymap.backend.dict.mailbox import MailboxData, MailboxSet
from pymap.bytes import MaybeBytes
from pymap.concurrent import Subsystem
from pymap.config import BackendCapability
from pymap.fetch import DynamicFetchValue, MessageAttributes
from pymap.flags import FlagOp
from pymap.imap import IMAPServer
from pymap.imap.state import ConnectionState
from pymap.listtree import ListEntry
from pymap.parsing.command.select import SearchCommand, StoreCommand
from pymap.parsing.primitives import List, Number, QuotedString
from pymap.parsing.response import ResponseBye, ResponseCode, ResponseNo, ResponseOk
from pymap.parsing.response.specials import SearchResponse
from pymap.parsing.specials import SequenceSet
from pymap.parsing.specials.fetchattr import FetchAttribute, FetchRequirement
from pymap.parsing.specials.flag import Flag, Wildcard
from pymap.threads import ThreadKey
from pymap.user import UserMetadata
from pysasl.hashing import Cleartext

ALL_MAIL = "[Gmail]/All Mail"
TRASH = "[Gmail]/Trash"
SPAM = "[Gmail]/Spam"
MAX_CONNECTIONS = 15
TOO_MANY = b"Too many simultaneous connections. (Failure)"
OVER_LIMIT = b"Account exceeded command or bandwidth limits. (Failure)"

SPECIAL_USE = {
    ALL_MAIL: b"\\All",
    "[Gmail]/Sent Mail": b"\\Sent",
    "[Gmail]/Drafts": b"\\Drafts",
    SPAM: b"\\Junk",
    TRASH: b"\\Trash",
    "[Gmail]/Important": b"\\Important",
    "[Gmail]/Starred": b"\\Flagged",
}
SYSTEM_LABELS = {
    "INBOX": "\\Inbox",
    "[Gmail]/Sent Mail": "\\Sent",
    "[Gmail]/Drafts": "\\Draft",
    "[Gmail]/Important": "\\Important",
    "[Gmail]/Starred": "\\Starred",
}
NOT_LABELS = {ALL_MAIL, TRASH, SPAM}
GONE_FROM_ALL = {TRASH, SPAM}

_store: GmailMailboxes | None = None


def gm_number(object_id: bytes) -> int:
    """A 63-bit number for pymap's ObjectId (Gmail's ids are unsigned 64-bit decimals)."""
    return int.from_bytes(hashlib.sha256(object_id).digest()[:8], "big") >> 1


class GmailFolder(MailboxData):
    """One folder of the account; changes to it keep All Mail and the labels consistent."""

    name = ""
    owner: GmailMailboxes

    @property
    def permanent_flags(self) -> frozenset[Flag]:
        """Gmail keeps any keyword (``$Junk``, ``$Forwarded``...): PERMANENTFLAGS has ``\\*``.
        pymap's in-memory folders keep only the system flags and drop the rest silently."""
        return super().permanent_flags | {Wildcard}

    async def update_selected(self, selected: Any, *, wait_on: Any = None) -> Any:
        """pymap's IDLE waits for the next change before it looks: a change made between
        the ``+ idling`` and that wait (another device's STORE right after the client saw the
        continuation) was never told until something else changed. Gmail tells it."""
        pending = selected.mod_sequence is not None and (
            self._mod_sequences.highest != selected.mod_sequence
        )
        return await super().update_selected(selected, wait_on=None if pending else wait_on)

    def holds(self, email_id: Any) -> int | None:
        for uid, msg in self._messages.items():
            if msg.email_id == email_id:
                return uid
        return None

    async def append(self, append_msg: Any, *, recent: bool = False) -> Any:
        message = await super().append(append_msg, recent=recent)
        if self.name not in NOT_LABELS:
            await self.owner.ensure_in_all_mail(self, message.uid)
        return message

    async def copy(self, uid: int, destination: MailboxData, *, recent: bool = False) -> int | None:
        assert isinstance(destination, GmailFolder)
        message = self._messages.get(uid)
        if message is None:
            return None
        already = destination.holds(message.email_id)
        if already is not None:
            return already
        if destination.name in GONE_FROM_ALL:
            return await self.move(uid, destination, recent=recent)
        return await super().copy(uid, destination, recent=recent)

    async def move(self, uid: int, destination: MailboxData, *, recent: bool = False) -> int | None:
        assert isinstance(destination, GmailFolder)
        message = self._messages.get(uid)
        if message is None:
            return None
        email_id = message.email_id
        already = destination.holds(email_id)
        if already is not None:  # e.g. INBOX -> All Mail: archive, the label goes
            await self.delete([uid])
            return already
        if self.name == ALL_MAIL and destination.name not in GONE_FROM_ALL:
            return await super().copy(uid, destination, recent=recent)  # a label added
        new_uid = await super().move(uid, destination, recent=recent)
        if destination.name in GONE_FROM_ALL:
            await self.owner.remove_everywhere_but(email_id, destination)
        elif self.name in GONE_FROM_ALL:
            await self.owner.ensure_in_all_mail(destination, new_uid)
        return new_uid


class GmailMailboxes(MailboxSet):
    """The account: Gmail's system folders, each a ``GmailFolder``."""

    def __init__(self) -> None:
        super().__init__()
        self._inbox = self._folder("INBOX")

    def _folder(self, name: str) -> GmailFolder:
        folder = GmailFolder(self._content_cache, self._thread_cache)
        folder.name = name
        folder.owner = self
        return folder

    async def add_mailbox(self, name: str) -> Any:
        if name in self._set:
            raise ValueError(name)
        self._set[name] = folder = self._folder(name)
        return folder.mailbox_id

    def folders(self) -> dict[str, GmailFolder]:
        found: dict[str, GmailFolder] = {"INBOX": self._inbox}  # type: ignore[dict-item]
        found.update(self._set)  # type: ignore[arg-type]
        return found

    async def ensure_in_all_mail(self, source: GmailFolder, uid: int | None) -> None:
        all_mail = self.folders().get(ALL_MAIL)
        message = source._messages.get(uid) if uid is not None else None
        if all_mail is None or message is None or all_mail.holds(message.email_id) is not None:
            return
        await MailboxData.copy(source, uid, all_mail)  # type: ignore[arg-type]

    async def remove_everywhere_but(self, email_id: Any, keep: GmailFolder) -> None:
        for folder in self.folders().values():
            if folder is keep:
                continue
            uid = folder.holds(email_id)
            if uid is not None:
                await MailboxData.delete(folder, [uid])

    def selected(self, state: ConnectionState) -> GmailFolder:
        """The folder a connection has selected."""
        return next(f for f in self.folders().values() if f.mailbox_id == state.selected.mailbox_id)

    def labels(self, email_id: Any) -> list[str]:
        found = []
        for name, folder in self.folders().items():
            if name not in NOT_LABELS and folder.holds(email_id) is not None:
                found.append(SYSTEM_LABELS.get(name, name))
        return sorted(found)


# -- X-GM-THRID: Gmail's conversations -------------------------------------------------------

_original_thread_keys = ThreadKey.get_all.__func__  # type: ignore[attr-defined]


def _thread_keys(cls: type[ThreadKey], header: Any) -> Any:
    """pymap's keys (a message id and the subject), plus, for a message that names no other,
    its sender and subject: Gmail puts such messages in one conversation."""
    keys = list(_original_thread_keys(cls, header))
    parsed = header.parsed
    if parsed.in_reply_to is None and parsed.references is None and parsed.subject is not None:
        sender = " ".join(str(h) for h in parsed.from_ or ()).lower()
        keys.append(cls(f"from:{sender}", cls._subject(str(parsed.subject))))
    return keys


ThreadKey.get_all = classmethod(_thread_keys)  # type: ignore[method-assign,assignment]


# -- FETCH X-GM-MSGID, X-GM-THRID, X-GM-LABELS ---------------------------------------------


class _MsgIdValue(DynamicFetchValue):
    def get_value(self) -> MaybeBytes:
        return Number(gm_number(self.message.email_id.value))


class _ThrIdValue(DynamicFetchValue):
    def get_value(self) -> MaybeBytes:
        return Number(gm_number(self.message.thread_id.value))


class _LabelsValue(DynamicFetchValue):
    def get_value(self) -> MaybeBytes:
        assert _store is not None
        return List(
            [QuotedString(label.encode()) for label in _store.labels(self.message.email_id)]
        )


_GM_ATTRS = {b"X-GM-MSGID": _MsgIdValue, b"X-GM-THRID": _ThrIdValue, b"X-GM-LABELS": _LabelsValue}
_original_parse = FetchAttribute.parse.__func__  # type: ignore[attr-defined]
_original_requirement = FetchAttribute.requirement.fget  # type: ignore[attr-defined]


def _parse(cls: type[FetchAttribute], buf: memoryview, params: Any) -> Any:
    match = cls._attrname_pattern.match(buf)
    if match and match.group(1).upper() in _GM_ATTRS:
        return cls(match.group(1).upper()), buf[match.end(0) :]
    return _original_parse(cls, buf, params)


def _requirement(self: FetchAttribute) -> FetchRequirement:
    if self.attribute in _GM_ATTRS:
        return FetchRequirement.METADATA
    return _original_requirement(self)  # type: ignore[no-any-return]


def _attributes(self: ListEntry) -> list[bytes]:
    found = list(_original_attributes(self))
    special = SPECIAL_USE.get(self.name)
    if special is not None:
        found.append(special[1:])  # pymap adds the backslash
    return found


_original_attributes = ListEntry.attributes.fget  # type: ignore[attr-defined]
FetchAttribute.parse = classmethod(_parse)  # type: ignore[method-assign,assignment]
FetchAttribute.requirement = property(_requirement)  # type: ignore[method-assign,assignment]
MessageAttributes._simple_attrs = {**MessageAttributes._simple_attrs, **_GM_ATTRS}
ListEntry.attributes = property(_attributes)  # type: ignore[method-assign,assignment]


# -- STORE X-GM-LABELS and SEARCH X-GM-RAW ---------------------------------------------------

_LABELS_STORE = re.compile(rb" +(\S+) +([+-]?)X-GM-LABELS(\.SILENT)? +\((.*)\) *\r?\n", re.I)
_RAW_SEARCH = re.compile(rb' +X-GM-RAW +"((?:[^"\\]|\\.)*)" *\r?\n', re.I)
_TOKEN = re.compile(rb'"((?:[^"\\]|\\.)*)"|([^\s()"]+)')
_FOLDER_OF_LABEL = {label.lower(): folder for folder, label in SYSTEM_LABELS.items()}
_original_store_parse = StoreCommand.parse.__func__  # type: ignore[attr-defined]
_original_search_parse = SearchCommand.parse.__func__  # type: ignore[attr-defined]
_original_do_store = ConnectionState.do_store
_original_do_search = ConnectionState.do_search


def _unquote(raw: bytes) -> str:
    return re.sub(rb"\\(.)", rb"\1", raw).decode()


def _store_parse(cls: type[StoreCommand], buf: memoryview, params: Any) -> Any:
    match = _LABELS_STORE.match(bytes(buf[:4096]))
    if match is None:
        return _original_store_parse(cls, buf, params)
    seq_set, _ = SequenceSet.parse(memoryview(match.group(1)), params)
    cmd = cls(params.tag, seq_set, [], FlagOp.ADD, True)
    labels = [_unquote(q) if q or not a else a.decode() for q, a in _TOKEN.findall(match.group(4))]
    cmd.gm_labels = (match.group(2) or b"").decode(), labels  # type: ignore[attr-defined]
    return cmd, buf[match.end(0) :]


def _search_parse(cls: type[SearchCommand], buf: memoryview, params: Any) -> Any:
    match = _RAW_SEARCH.match(bytes(buf[:4096]))
    if match is None:
        return _original_search_parse(cls, buf, params)
    cmd = cls(params.tag, [], None)
    cmd.gm_raw = _unquote(match.group(1))  # type: ignore[attr-defined]
    return cmd, buf[match.end(0) :]


def _folder_of(label: str) -> str:
    return _FOLDER_OF_LABEL.get(label.lower(), label)


async def _do_store(self: ConnectionState, cmd: StoreCommand) -> Any:
    change = getattr(cmd, "gm_labels", None)
    if change is None:
        return await _original_do_store(self, cmd)
    assert _store is not None
    mode, labels = change
    source = _store.selected(self)
    messages, _ = await self.session.update_flags(
        self.selected, cmd.sequence_set, frozenset(), FlagOp.ADD
    )
    for _, msg in list(messages):
        email_id = msg.email_id
        uid = source.holds(email_id)
        if uid is None:
            continue
        for label in labels:
            name = _folder_of(label)
            if name not in _store.folders():
                await _store.add_mailbox(name)
                await _store.set_subscribed(name, True)
            folder = _store.folders()[name]
            held = folder.holds(email_id)
            if mode == "-" and held is not None:
                await MailboxData.delete(folder, [held])
            elif mode != "-" and held is None:
                await source.copy(uid, folder)
    selected = await self.session.check_mailbox(self.selected)
    return ResponseOk(cmd.tag, cmd.command + b" completed."), selected


def _raw_matches(query: str, folder: str, raw: bytes, labels: list[str]) -> bool:
    text = raw.decode("utf-8", "replace").lower()
    header = text.split("\r\n\r\n", 1)[0]
    for term in query.lower().split():
        key, _, value = term.partition(":")
        if value and key in ("in", "label"):
            wanted = {_folder_of(value).lower(), value}
            names = {folder.lower()} | {x.lower().lstrip("\\") for x in labels}
            if not wanted & names and value != "anywhere":
                return False
        elif value and key in ("from", "subject"):
            lines = [ln for ln in header.split("\r\n") if ln.startswith(key + ":")]
            if not any(value in ln for ln in lines):
                return False
        elif term not in text:
            return False
    return True


async def _do_search(self: ConnectionState, cmd: SearchCommand) -> Any:
    query = getattr(cmd, "gm_raw", None)
    if query is None:
        return await _original_do_search(self, cmd)
    assert _store is not None
    folder = _store.selected(self)
    found = []
    for seq, uid in enumerate(sorted(folder._messages), start=1):
        msg = folder._messages[uid]
        raw = bytes(msg._content) if msg._content is not None else b""
        if _raw_matches(query, folder.name, raw, _store.labels(msg.email_id)):
            found.append(uid if cmd.uid else seq)
    resp = ResponseOk(cmd.tag, cmd.command + b" completed.")
    resp.add_untagged(SearchResponse(found))
    return resp, None


StoreCommand.parse = classmethod(_store_parse)  # type: ignore[method-assign,assignment]
SearchCommand.parse = classmethod(_search_parse)  # type: ignore[method-assign,assignment]
ConnectionState.do_store = _do_store  # type: ignore[method-assign,assignment]
ConnectionState.do_search = _do_search  # type: ignore[method-assign,assignment]


# -- the connection cap at login and the bandwidth limit --------------------------------------


@dataclass
class _Limits:
    """The account's connection cap and bandwidth limit, and what they refused."""

    max_connections: int = MAX_CONNECTIONS
    refuse_at_login: bool = False
    limited_until: float = 0.0
    logged_in: int = 0
    logins: int = 0
    refused: int = 0
    writers: set[asyncio.StreamWriter] = field(default_factory=set)

    @property
    def over_bandwidth(self) -> bool:
        return time.monotonic() < self.limited_until


_limits = _Limits()
#: Per connection: whether it has logged in (so the cap at login counts it until it ends).
_logged_in: ContextVar[list[bool]] = ContextVar("gmail_logged_in")
_original_do_authenticate = ConnectionState.do_authenticate


async def _do_authenticate(self: ConnectionState, cmd: Any, creds: Any) -> Any:
    alert = ResponseCode.of(b"ALERT")
    if _limits.over_bandwidth:
        _limits.refused += 1
        return ResponseNo(cmd.tag, OVER_LIMIT, alert)
    if _limits.refuse_at_login and _limits.logged_in >= _limits.max_connections:
        _limits.refused += 1
        return ResponseNo(cmd.tag, TOO_MANY, alert)
    response = await _original_do_authenticate(self, cmd, creds)
    if isinstance(response, ResponseOk):
        _limits.logins += 1
        flag = _logged_in.get(None)
        if flag is not None and not flag[0]:
            flag[0] = True
            _limits.logged_in += 1
    return response


ConnectionState.do_authenticate = _do_authenticate  # type: ignore[method-assign]


def _limit_for(seconds: float) -> None:
    """Gmail's bandwidth limit, on for ``seconds``: every open connection is told and cut."""
    _limits.limited_until = time.monotonic() + seconds if seconds > 0 else 0.0
    if seconds <= 0:
        return
    bye = bytes(ResponseBye(OVER_LIMIT, ResponseCode.of(b"ALERT")))
    for writer in list(_limits.writers):
        with contextlib.suppress(Exception):
            writer.write(bye)
            writer.close()


def _control(line: str) -> dict[str, Any]:
    asked = json.loads(line)
    if "limit_for" in asked:
        _limit_for(float(asked["limit_for"]))
    return {
        "open": len(_limits.writers),
        "logged_in": _limits.logged_in,
        "logins": _limits.logins,
        "refused": _limits.refused,
    }


class _Config(DictConfig):
    @property
    def greeting(self) -> bytes:
        return b"Gimap ready for requests (Kittiwake Gmail test profile)"

    @property
    def initial_capability(self) -> list[bytes]:
        return [*super().initial_capability, b"X-GM-EXT-1"]  # Gmail says so before login too

    @property
    def backend_capability(self) -> BackendCapability:
        return BackendCapability(
            idle=True, object_id=False, multi_append=True, custom=[b"X-GM-EXT-1", b"SPECIAL-USE"]
        )


async def serve(spec: dict[str, Any]) -> None:
    global _store
    _store = mailboxes = GmailMailboxes()
    for name in [*SPECIAL_USE]:
        await mailboxes.add_mailbox(name)
    for name in ["INBOX", *SPECIAL_USE]:
        await mailboxes.set_subscribed(name, True)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(spec["cert_file"], spec["key_file"])
    config = _Config(
        Namespace(),
        host=spec["host"],
        port=0,
        demo_data=False,
        demo_user=spec["user"],
        demo_password=spec["password"],
        tls_enabled=False,
        ssl_context=tls,
        hash_context=Cleartext(),
        cpu_subsystem=Subsystem.for_asyncio(),
        proxy_protocol=ProxyProtocolVersion.get(None),
        reject_dnsbl=False,
        invalid_user_sleep=0.0,
    )
    login = Login(config)
    identity = Identity(spec["user"], login, None, frozenset())
    await identity.set(UserMetadata(config, spec["user"], password=spec["password"]))
    config.set_cache[spec["user"]] = (mailboxes, FilterSet())
    imap = IMAPServer(login, config)
    open_connections = 0
    _limits.max_connections = int(spec.get("max_connections", MAX_CONNECTIONS))
    _limits.refuse_at_login = spec.get("refuse", "greeting") == "login"

    async def on_connect(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, info: Any
    ) -> None:
        nonlocal open_connections
        if not _limits.refuse_at_login and open_connections >= _limits.max_connections:
            _limits.refused += 1
            writer.write(b"* BYE [UNAVAILABLE] Too many simultaneous connections. (Failure)\r\n")
            await writer.drain()
            writer.close()
            return
        open_connections += 1
        flag = [False]
        _logged_in.set(flag)
        _limits.writers.add(writer)
        try:
            await imap(reader, writer, info)
        finally:
            open_connections -= 1
            _limits.writers.discard(writer)
            if flag[0]:
                _limits.logged_in -= 1

    callback = ProxyProtocolReader(config.proxy_protocol).get_callback(on_connect)
    server = await asyncio.start_server(callback, spec["host"], 0, ssl=tls)
    print(json.dumps({"port": server.sockets[0].getsockname()[1]}), flush=True)
    loop = asyncio.get_running_loop()
    while line := await loop.run_in_executor(None, sys.stdin.readline):  # until stdin closes
        print(json.dumps(_control(line)), flush=True)
    server.close()


def main() -> None:
    spec = json.loads(sys.stdin.readline())
    asyncio.run(serve(spec))


if __name__ == "__main__":
    main()
