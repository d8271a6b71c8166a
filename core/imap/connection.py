"""``ImapConnection``: the small typed async API the engine uses to talk IMAP.

It owns one ``protocol.ImapProtocol`` (aioimaplib's protocol with the hardened receive,
dispatch and send paths; see that module for why) and does the things aioimaplib lacks or
gets wrong at the connection level:

* construction: our own ``loop.create_connection`` (aioimaplib's ``IMAP4_SSL`` cannot take a
  connection-lost callback and ``IMAP4`` hard-codes its protocol class), with certificate
  verification through the given ``SSLContext`` and ``server_hostname``;
* STARTTLS (absent from aioimaplib): required when configured; a server without it is an
  error before any credential is sent; pre-handshake bytes are discarded; CAPABILITY is
  re-read over TLS;
* authentication: AUTHENTICATE PLAIN when advertised (SASL-IR when possible) else LOGIN,
  never on a plaintext link unless the account says ``security = "none"``; XOAUTH2 with the
  error challenge answered so the server says NO instead of hanging;
* every command bounded by an inactivity timeout; every untagged response to
  ``on_untagged``; connection loss reported to ``on_lost`` and failing all pending commands.

Arguments: ``command()`` sends its arguments as given (atoms, already-quoted strings or
``Literal`` objects). Use ``quote()``/``astring()`` for strings from the outside world;
mailbox names must already be modified-UTF-7 (``utf7.encode``) unless UTF8=ACCEPT is enabled.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import ssl
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal as TypingLiteral

from kittiwake.core.errors import (
    AuthFailed,
    CommandFailed,
    ConnectFailed,
    ConnectionLost,
    ImapError,
    ImapStateError,
    ProtocolError,
    StartTlsUnavailable,
    TlsError,
)
from kittiwake.core.imap.codes import limit_sentence, plain_words, server_limit, temporary
from kittiwake.core.imap.framing import DEFAULT_MAX_RESPONSE_SIZE
from kittiwake.core.imap.protocol import (
    AUTH,
    LITERAL_MINUS_MAX,
    LOGOUT,
    NONAUTH,
    SELECTED,
    Arg,
    ContinuationHandler,
    ImapProtocol,
    Literal,
    PendingCommand,
    ResponseSink,
    StreamReader,
    UntaggedCallback,
)
from kittiwake.core.transport import describe_ssl_error, open_transport

__all__ = [
    "DEFAULT_TIMEOUT",
    "CommandResult",
    "ImapConnection",
    "Literal",
    "LostCallback",
    "Security",
    "astring",
    "quote",
]

log = logging.getLogger(__name__)

Security = TypingLiteral["tls", "starttls", "none"]
LostCallback = Callable[[ConnectionLost], None]
Status = TypingLiteral["OK", "NO", "BAD"]

DEFAULT_TIMEOUT = 60.0

_ATOM_SPECIALS = re.compile(r'[\x00-\x20\x7f(){%*"\\\]]')
_CAPABILITY_CODE = re.compile(rb"\[CAPABILITY ([^\]]*)\]", re.IGNORECASE)


def _refused(label: str, text: str) -> str:
    """One sentence for a BYE greeting. Gmail's cap (15 connections per account, shared by
    every program and device) is the one users meet; its words are its own, so say what
    it means."""
    limit = server_limit(text)
    if limit is not None:
        return limit_sentence(limit, label)
    return f"{label} refused the connection: {text}"


def quote(value: str) -> str:
    """``value`` as an IMAP quoted string. Raises ValueError for CR, LF or NUL."""
    if any(c in value for c in "\r\n\x00"):
        raise ValueError("CR, LF and NUL cannot be sent in a quoted string")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def astring(value: str) -> Arg:
    """``value`` as an IMAP astring: a quoted string if 7-bit and printable, else a literal."""
    if value.isascii() and not any(c in value for c in "\r\n\x00"):
        return quote(value)
    return Literal(value.encode("utf-8"))


@dataclass(frozen=True, slots=True)
class CommandResult:
    """A command's outcome: tagged status, response code and text, untagged responses."""

    status: Status
    code: str | None
    text: str
    untagged: list[bytes] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "OK"

    @property
    def code_name(self) -> str | None:
        """The response code's atom, upper-cased: "APPENDUID", "TRYCREATE", ..."""
        return self.code.split(" ", 1)[0].upper() if self.code else None


def _split_code(text: bytes) -> tuple[str | None, str]:
    s = text.decode("utf-8", "replace")
    if s.startswith("["):
        end = s.find("]")
        if end > 0:
            return s[1:end], s[end + 1 :].lstrip()
    return None, s


def _status_code(resp: bytes) -> tuple[str | None, str] | None:
    """(code atom, text) of an untagged ``OK``/``NO``/``BAD``/``BYE``/``PREAUTH``; else None."""
    parts = resp.split(b" ", 2)
    if len(parts) < 2 or parts[0] != b"*":
        return None
    if parts[1].upper() not in (b"OK", b"NO", b"BAD", b"BYE", b"PREAUTH"):
        return None
    code, text = _split_code(parts[2].rstrip(b"\r\n") if len(parts) > 2 else b"")
    return (code.split(" ", 1)[0].upper() if code else None), text


def _caps_from_untagged(resp: bytes) -> frozenset[str] | None:
    if resp[:13].upper() == b"* CAPABILITY ":
        return frozenset(resp[13:].decode("ascii", "replace").upper().split())
    return None


def _caps_from_code(text: bytes) -> frozenset[str] | None:
    m = _CAPABILITY_CODE.search(text)
    if m is None:
        return None
    return frozenset(m.group(1).decode("ascii", "replace").upper().split())


def _format_flags(flags: Iterable[str]) -> str:
    return "(" + " ".join(flags) + ")"


def internaldate_arg(when: datetime) -> str:
    if when.tzinfo is None:
        raise ValueError("internaldate must be timezone-aware")
    months = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
    off = when.strftime("%z")
    return f'"{when.day:02d}-{months[when.month - 1]}-{when.year:04d} {when:%H:%M:%S} {off}"'


class ImapConnection:
    """One IMAP connection. Create it, ``await connect(...)``, then authenticate."""

    def __init__(
        self,
        *,
        on_untagged: UntaggedCallback | None = None,
        on_lost: LostCallback | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_response_size: int = DEFAULT_MAX_RESPONSE_SIZE,
        disabled: Collection[str] = (),
    ) -> None:
        #: Capabilities the server advertises but breaks (``[accounts.X.imap] disable``):
        #: removed from every capability list it sends, so nothing here or above uses them.
        self._disabled = frozenset(c.upper() for c in disabled)
        self._on_untagged = on_untagged
        self.on_lost: LostCallback | None = on_lost
        self.timeout = timeout
        self._max_response_size = max_response_size
        self._protocol: ImapProtocol | None = None
        self._capabilities: frozenset[str] = frozenset()
        self._security: Security = "tls"
        self._tls = False
        self._closing = False
        self._lost_reported = False
        self._idle: PendingCommand | None = None
        self._enabled: set[str] = set()
        self.host = ""
        self.port = 0
        self.greeting = ""
        #: (code, text) of the status responses sent before a client could listen: the
        #: greeting and the login's answers. ``ImapClient.tell_early`` puts their ``[ALERT]``
        #: in plain words (RFC 3501 7.1: the user must see it).
        self.said_early: list[tuple[str | None, str]] = []

    # -- properties ----------------------------------------------------------------------------

    @property
    def capabilities(self) -> frozenset[str]:
        return self._capabilities

    def has_capability(self, name: str) -> bool:
        return name.upper() in self._capabilities

    @property
    def enabled(self) -> frozenset[str]:
        """Extensions the server confirmed in ENABLED responses."""
        return frozenset(self._enabled)

    @property
    def tls_active(self) -> bool:
        return self._tls

    @property
    def state(self) -> str:
        """aioimaplib's state names: CONNECTED, NONAUTH, AUTH, SELECTED, LOGOUT."""
        if self._protocol is None:
            return "STARTED"
        return str(self._protocol.state)

    @property
    def is_connected(self) -> bool:
        return self._protocol is not None and self._protocol.lost is None

    @property
    def idling(self) -> bool:
        return self._idle is not None

    @property
    def on_untagged(self) -> UntaggedCallback | None:
        return self._on_untagged

    @on_untagged.setter
    def on_untagged(self, callback: UntaggedCallback | None) -> None:
        self._on_untagged = callback
        if self._protocol is not None:
            self._protocol.on_untagged = callback

    @property
    def bytes_in(self) -> int:
        """IMAP bytes received so far (after TLS decryption)."""
        return self._protocol.bytes_in if self._protocol is not None else 0

    @property
    def bytes_out(self) -> int:
        return self._protocol.bytes_out if self._protocol is not None else 0

    @property
    def label(self) -> str:
        return f"{self.host}:{self.port}"

    # -- connection -----------------------------------------------------------------------------

    async def connect(
        self,
        host: str,
        port: int,
        security: Security,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float | None = None,
        *,
        server_hostname: str | None = None,
    ) -> None:
        """Open the connection, read the greeting and capabilities, set up TLS as configured.

        Raises ConnectFailed (refused, unreachable, timed out, BYE greeting), TlsError
        (handshake/verification failure; StartTlsUnavailable if STARTTLS is required but not
        offered), ProtocolError.
        """
        if self._protocol is not None:
            raise ImapStateError("This connection object was already used; make a new one.")
        if security not in ("tls", "starttls", "none"):
            raise ValueError(f"unknown security mode {security!r}")
        t = self.timeout if timeout is None else timeout
        self.host, self.port, self._security = host, port, security
        if security != "none" and ssl_context is None:
            ssl_context = ssl.create_default_context()
        hostname = server_hostname or host
        loop = asyncio.get_running_loop()
        proto = ImapProtocol(
            loop,
            label=self.label,
            on_untagged=self._on_untagged,
            conn_lost_cb=self._transport_lost,
            max_response_size=self._max_response_size,
        )
        self._protocol = proto
        try:
            try:
                async with asyncio.timeout(t):
                    self._tls = await open_transport(
                        lambda: proto,
                        host,
                        port,
                        tls=ssl_context if security == "tls" else None,
                        server_hostname=hostname,
                        timeout=t,
                    )
                    greeting = await proto.greeting
            except ssl.SSLError as exc:
                raise TlsError(f"TLS with {self.label} failed: {describe_ssl_error(exc)}.") from exc
            except ConnectionLost as exc:
                if isinstance(exc, ConnectFailed):
                    raise
                raise ConnectFailed(
                    f"{self.label} closed the connection before greeting ({exc.message})"
                ) from exc
            except ImapError:
                raise
            except TimeoutError as exc:
                raise ConnectFailed(f"Timed out connecting to {self.label}.") from exc
            except OSError as exc:
                raise ConnectFailed(
                    f"Could not connect to {self.label}: {exc.strerror or exc}."
                ) from exc
            self._read_greeting(greeting)
            if self._capabilities == frozenset():
                await self.capability(timeout=t)
            if security == "starttls":
                await self._starttls(ssl_context, hostname, t)
        except BaseException:
            self._closing = True
            if proto.lost is None:
                proto.abort(ConnectionLost(f"Connection to {self.label} closed."))
            raise

    def _read_greeting(self, greeting: bytes) -> None:
        proto = self._require()
        self.greeting = greeting.decode("utf-8", "replace")
        word = greeting[2:].split(b" ", 1)[0].upper()
        if word == b"OK":
            proto.state = NONAUTH
        elif word == b"PREAUTH":
            proto.state = AUTH
        elif word == b"BYE":
            raise ConnectFailed(_refused(self.label, self.greeting[6:]))
        else:
            raise ProtocolError(f"{self.label} sent an invalid greeting: {self.greeting[:80]}")
        caps = _caps_from_code(greeting)
        if caps is not None:
            self._capabilities = caps - self._disabled
        said = _status_code(greeting)
        if said is not None and said[0] is not None:
            if self._security == "starttls":
                # Before TLS anyone on the path could have written it: never shown as the
                # server's words (a forged "[ALERT] your password expired, go to ...").
                log.info("%s: greeting before STARTTLS not shown: %s", self.label, said[1])
            else:
                self.said_early.append(said)

    async def _starttls(self, ctx: ssl.SSLContext | None, hostname: str, t: float) -> None:
        proto = self._require()
        assert ctx is not None
        if proto.state != NONAUTH:
            raise TlsError(
                f"{self.label} pre-authenticated the plaintext connection, so STARTTLS is "
                "impossible; refusing to continue without TLS."
            )
        if "STARTTLS" not in self._capabilities:
            raise StartTlsUnavailable(
                f"{self.label} does not offer STARTTLS, which this account requires."
            )
        cmd = self._new("STARTTLS", timeout=t)
        cmd.starttls = True
        await proto.run(cmd)
        if cmd.status != "OK":
            raise TlsError(f"{self.label} refused STARTTLS: {cmd.text.decode('utf-8', 'replace')}")
        loop = asyncio.get_running_loop()
        proto.begin_tls()
        # No await between begin_tls() and start_tls() switching the transport's protocol:
        # start_tls pauses reading and installs the TLS layer before its first suspension.
        try:
            async with asyncio.timeout(t):
                transport = await loop.start_tls(
                    proto.transport,
                    proto,
                    ctx,
                    server_hostname=hostname,
                    ssl_handshake_timeout=t,
                )
        except ssl.SSLError as exc:
            err = TlsError(f"STARTTLS with {self.label} failed: {describe_ssl_error(exc)}.")
            proto.abort(err)
            raise err from exc
        except (OSError, TimeoutError) as exc:
            err = TlsError(f"STARTTLS with {self.label} failed: {exc}.")
            proto.abort(err)
            raise err from exc
        if transport is None:  # pragma: no cover - closed during the handshake
            raise ConnectionLost(f"Connection to {self.label} lost during STARTTLS.")
        proto.transport = transport
        self._tls = True
        # RFC 3501 6.2.1: forget capabilities learnt in plaintext, ask again over TLS.
        self._capabilities = frozenset()
        await self.capability(timeout=t)

    def _transport_lost(self, exc: Exception | None) -> None:
        proto = self._protocol
        if self._closing or self._lost_reported or proto is None:
            return
        self._lost_reported = True
        err = proto.lost if isinstance(proto.lost, ConnectionLost) else None
        if err is None:
            err = ConnectionLost(
                proto.lost.message if proto.lost else f"Connection to {self.label} lost."
            )
        callback = self.on_lost
        if callback is not None:
            try:
                callback(err)
            except Exception:
                log.exception("%s: on_lost callback failed", self.label)

    def drop(self, exc: ConnectionLost) -> None:
        """End the connection now as lost with ``exc``: pending commands fail with it and
        on_lost hears it, as when the server says BYE."""
        proto = self._protocol
        if proto is not None:
            proto.abort(exc)

    async def close(self) -> None:
        """Drop the connection now (no LOGOUT); on_lost is not called."""
        self._closing = True
        proto = self._protocol
        if proto is None:
            return
        if proto.lost is None:
            proto.abort(ConnectionLost(f"Connection to {self.label} closed."))
        await proto.wait_closed()

    async def logout(self, timeout: float | None = None) -> None:
        """LOGOUT politely, then close. Never raises for a connection already gone."""
        self._closing = True
        proto = self._protocol
        if proto is None:
            return
        if proto.lost is None:
            try:
                if self._idle is not None:
                    await self.idle_done(timeout)
                await self._run(self._new("LOGOUT", timeout=timeout), check=False)
                proto.state = LOGOUT
            except ImapError as exc:
                log.debug("%s: LOGOUT: %s", self.label, exc.message)
        await self.close()

    # -- commands --------------------------------------------------------------------------------

    def _require(self) -> ImapProtocol:
        proto = self._protocol
        if proto is None:
            raise ImapStateError("Not connected.")
        return proto

    def _non_sync(self, size: int) -> bool:
        caps = self._capabilities
        return "LITERAL+" in caps or ("LITERAL-" in caps and size <= LITERAL_MINUS_MAX)

    def _new(
        self,
        name: str,
        *args: Arg,
        prefix: str | None = None,
        timeout: float | None = None,
        sensitive: bool = False,
        collect: bool = True,
        on_continuation: ContinuationHandler | None = None,
        sink: ResponseSink | None = None,
        reader: StreamReader | None = None,
    ) -> PendingCommand:
        proto = self._require()
        return PendingCommand(
            name,
            proto.new_tag(),
            args,
            prefix=prefix,
            non_sync=self._non_sync,
            timeout=self.timeout if timeout is None else timeout,
            sensitive=sensitive,
            collect=collect,
            on_continuation=on_continuation,
            sink=sink,
            reader=reader,
        )

    async def _run(self, cmd: PendingCommand, *, check: bool = True) -> CommandResult:
        proto = self._require()
        if proto.lost is None and self._idle is not None:
            raise ImapStateError(f"{cmd.name} issued while IDLE is active; call idle_done().")
        await proto.run(cmd)
        code, text = _split_code(cmd.text)
        status: Status = "OK" if cmd.status == "OK" else "NO" if cmd.status == "NO" else "BAD"
        result = CommandResult(status, code, text, cmd.untagged)
        self._note_result(cmd, result)
        if check and status != "OK":
            raise CommandFailed(
                f"{self.label} refused {cmd.name}: {status} {text}",
                command=cmd.name,
                status=status,
                text=text,
                code=code.split(" ", 1)[0].upper() if code else None,
            )
        return result

    def _note_result(self, cmd: PendingCommand, result: CommandResult) -> None:
        for resp in result.untagged:
            caps = _caps_from_untagged(resp)
            if caps is not None:
                self._capabilities = caps - self._disabled
            elif resp[:10].upper() == b"* ENABLED ":
                self._enabled.update(resp[10:].decode("ascii", "replace").upper().split())
        if result.ok:
            caps = _caps_from_code(cmd.text)
            if caps is not None:
                self._capabilities = caps - self._disabled

    async def command(
        self,
        name: str,
        *args: Arg,
        timeout: float | None = None,
        check: bool = True,
    ) -> CommandResult:
        """Run any command. ``name`` may be two words for UID commands ("UID FETCH").

        Raises CommandFailed on NO/BAD when ``check`` (the default), ConnectionLost (also
        CommandTimeout) when the link dies or stays silent longer than ``timeout``.
        """
        words = name.upper().split()
        prefix = None
        if len(words) == 2 and words[0] == "UID":
            prefix, words = "UID", words[1:]
        if len(words) != 1:
            raise ValueError(f"bad command name {name!r}")
        if words[0] in ("IDLE", "STARTTLS", "AUTHENTICATE", "LOGIN", "DONE"):
            raise ValueError(f"use the dedicated method for {words[0]}")
        return await self._run(
            self._new(words[0], *args, prefix=prefix, timeout=timeout), check=check
        )

    async def execute(
        self,
        line: str,
        literal: bytes | None = None,
        *,
        then: Sequence[tuple[str, bytes]] = (),
        timeout: float | None = None,
        check: bool = False,
        sink: ResponseSink | None = None,
        reader: StreamReader | None = None,
    ) -> CommandResult:
        """Run a command given as its rendered line (without tag), e.g. ``'LIST "" "*"'``.

        ``literal``, if given, is sent as a final literal argument (APPEND); ``then`` adds
        (words, literal) pairs after it (MULTIAPPEND's further messages). Unlike
        ``command()``, a NO/BAD is returned (``result.ok`` is false) unless ``check``.
        The line must already be quoted correctly; CR, LF and NUL are rejected. ``sink``
        sees each untagged response as it arrives; those it consumes (returns True for)
        are left out of ``result.untagged``. ``reader`` (see ``protocol.StreamReader``)
        takes runs of responses it recognises straight from the received data; those are
        neither collected nor passed to ``on_untagged``.
        """
        name, _, rest = line.strip().partition(" ")
        prefix = None
        if name.upper() == "UID":
            prefix = "UID"
            name, _, rest = rest.partition(" ")
        name = name.upper()
        if not name or name in ("IDLE", "STARTTLS", "AUTHENTICATE", "LOGIN", "DONE"):
            raise ValueError(f"execute() cannot run {line.split(' ', 1)[0]!r}")
        args: list[Arg] = [rest] if rest else []
        if literal is not None:
            args.append(Literal(literal))
        for words, data in then:
            if words:
                args.append(words)
            args.append(Literal(data))
        cmd = self._new(name, *args, prefix=prefix, timeout=timeout, sink=sink, reader=reader)
        return await self._run(cmd, check=check)

    async def capability(self, timeout: float | None = None) -> frozenset[str]:
        await self._run(self._new("CAPABILITY", timeout=timeout))
        return self._capabilities

    async def noop(self, timeout: float | None = None) -> CommandResult:
        """NOOP: collects pending untagged updates; with a short timeout, a liveness probe."""
        return await self._run(self._new("NOOP", timeout=timeout))

    # -- authentication -------------------------------------------------------------------------

    def _check_can_authenticate(self) -> ImapProtocol:
        proto = self._require()
        if proto.state != NONAUTH:
            raise ImapStateError(f"Cannot authenticate in state {proto.state}.")
        if not self._tls and self._security != "none":
            raise TlsError(
                f"Refusing to send credentials to {self.label} over an unencrypted connection."
            )
        return proto

    async def _authenticated(self, result: CommandResult, timeout: float | None) -> None:
        self._require().state = AUTH
        for resp in result.untagged:  # "* OK [ALERT] Your password expires in 3 days"
            said = _status_code(resp)
            if said is not None:
                self.said_early.append(said)
        self.said_early.append((result.code_name, result.text))
        if not (result.code or "").upper().startswith("CAPABILITY "):
            await self.capability(timeout=timeout)  # capabilities change after login

    def _auth_failed(self, result: CommandResult, what: str, detail: str = "") -> AuthFailed:
        text = result.text or result.status
        plain = plain_words(result.code_name, result.text, self.label)
        code = result.code.split(" ", 1)[0].upper() if result.code else None
        limit = server_limit(result.text)
        if limit is not None:  # Gmail: "NO [ALERT] Too many simultaneous connections"
            plain = limit_sentence(limit, self.label)
        return AuthFailed(
            plain or f"{self.label} rejected the login: {text}",
            command=what,
            status=result.status,
            text=text,
            detail=detail,
            code=code,
            temporary=temporary(code, text),
        )

    async def login(self, user: str, password: str, timeout: float | None = None) -> None:
        """Authenticate with AUTHENTICATE PLAIN if advertised, else LOGIN.

        Raises AuthFailed (wrong credentials, or LOGINDISABLED and no PLAIN), TlsError (not
        on TLS and security is not "none").
        """
        self._check_can_authenticate()
        caps = self._capabilities
        if "AUTH=PLAIN" in caps:
            ir = base64.b64encode(f"\0{user}\0{password}".encode()).decode("ascii")
            sent_ir = "SASL-IR" in caps
            cancel_next = sent_ir

            def step(_challenge: bytes) -> bytes:
                nonlocal cancel_next
                if cancel_next:
                    return b"*"  # a second challenge for PLAIN makes no sense: cancel
                cancel_next = True
                return ir.encode("ascii")

            args: tuple[Arg, ...] = ("PLAIN", ir) if sent_ir else ("PLAIN",)
            cmd = self._new(
                "AUTHENTICATE", *args, timeout=timeout, sensitive=True, on_continuation=step
            )
            what = "AUTHENTICATE PLAIN"
        elif "LOGINDISABLED" in caps:
            raise AuthFailed(
                f"{self.label} disables LOGIN and offers no AUTHENTICATE PLAIN.",
                command="LOGIN",
            )
        else:
            cmd = self._new(
                "LOGIN", astring(user), astring(password), timeout=timeout, sensitive=True
            )
            what = "LOGIN"
        result = await self._run(cmd, check=False)
        if not result.ok:
            raise self._auth_failed(result, what)
        await self._authenticated(result, timeout)

    async def authenticate_oauth(self, user: str, token: str, timeout: float | None = None) -> None:
        """AUTHENTICATE OAUTHBEARER (RFC 7628) or XOAUTH2, whichever the server offers.

        A failure (the error challenge) raises AuthFailed promptly instead of hanging.
        """
        self._check_can_authenticate()
        if "AUTH=OAUTHBEARER" in self._capabilities:
            mech = "OAUTHBEARER"
            gs2 = "n,a=" + user.replace("=", "=3D").replace(",", "=2C") + ","
            payload = (
                f"{gs2}\x01host={self.host}\x01port={self.port}\x01auth=Bearer {token}\x01\x01"
            )
        elif "AUTH=XOAUTH2" in self._capabilities:
            mech = "XOAUTH2"
            payload = f"user={user}\x01auth=Bearer {token}\x01\x01"
        else:
            raise AuthFailed(
                f"{self.label} offers neither OAUTHBEARER nor XOAUTH2.", command="AUTHENTICATE"
            )
        ir = base64.b64encode(payload.encode())
        sent_ir = "SASL-IR" in self._capabilities
        sent_token = sent_ir
        challenge_detail = ""

        def step(challenge: bytes) -> bytes:
            nonlocal sent_token, challenge_detail
            if not sent_token:
                sent_token = True
                return ir
            # The error challenge (base64 JSON status): answer empty so the server says NO.
            try:
                challenge_detail = base64.b64decode(challenge, validate=True).decode(
                    "utf-8", "replace"
                )
            except ValueError:
                challenge_detail = challenge.decode("utf-8", "replace")
            return b""

        args: tuple[Arg, ...] = (mech, ir.decode("ascii")) if sent_ir else (mech,)
        cmd = self._new(
            "AUTHENTICATE", *args, timeout=timeout, sensitive=True, on_continuation=step
        )
        result = await self._run(cmd, check=False)
        if not result.ok:
            raise self._auth_failed(result, f"AUTHENTICATE {mech}", challenge_detail)
        await self._authenticated(result, timeout)

    # -- typed wrappers ---------------------------------------------------------------------

    async def enable(self, *extensions: str, timeout: float | None = None) -> frozenset[str]:
        """ENABLE; returns the extensions the server confirmed."""
        result = await self._run(self._new("ENABLE", *extensions, timeout=timeout))
        confirmed: set[str] = set()
        for resp in result.untagged:
            if resp[:10].upper() == b"* ENABLED ":
                confirmed.update(resp[10:].decode("ascii", "replace").upper().split())
        return frozenset(confirmed)

    async def id(
        self, fields: Mapping[str, str | None] | None = None, timeout: float | None = None
    ) -> CommandResult:
        if not fields:
            arg = "NIL"
        else:
            parts = []
            for key, value in fields.items():
                parts.append(quote(key))
                parts.append("NIL" if value is None else quote(value))
            arg = "(" + " ".join(parts) + ")"
        return await self._run(self._new("ID", arg, timeout=timeout))

    async def select(
        self,
        mailbox: str,
        *,
        readonly: bool = False,
        condstore: bool = False,
        qresync: tuple[int, int] | tuple[int, int, str] | None = None,
        timeout: float | None = None,
    ) -> CommandResult:
        """SELECT (or EXAMINE if ``readonly``) with optional CONDSTORE / QRESYNC.

        ``qresync`` is ``(uidvalidity, highestmodseq[, known_uids])``; QRESYNC must have been
        ENABLEd. A failed SELECT leaves no mailbox selected.
        """
        args: list[Arg] = [astring(mailbox)]
        if qresync is not None:
            params = " ".join(str(p) for p in qresync)
            args.append(f"(QRESYNC ({params}))")
        elif condstore:
            args.append("(CONDSTORE)")
        proto = self._require()
        name = "EXAMINE" if readonly else "SELECT"
        try:
            result = await self._run(self._new(name, *args, timeout=timeout))
        except CommandFailed:
            proto.state = AUTH
            raise
        proto.state = SELECTED
        return result

    async def examine(
        self,
        mailbox: str,
        *,
        condstore: bool = False,
        qresync: tuple[int, int] | tuple[int, int, str] | None = None,
        timeout: float | None = None,
    ) -> CommandResult:
        return await self.select(
            mailbox, readonly=True, condstore=condstore, qresync=qresync, timeout=timeout
        )

    async def unselect(self, timeout: float | None = None) -> CommandResult:
        """UNSELECT if available, else CLOSE (which expunges; prefer UNSELECT servers)."""
        name = "UNSELECT" if "UNSELECT" in self._capabilities else "CLOSE"
        result = await self._run(self._new(name, timeout=timeout))
        self._require().state = AUTH
        return result

    async def uid_fetch(
        self,
        uid_set: str,
        items: str,
        *,
        changedsince: int | None = None,
        vanished: bool = False,
        timeout: float | None = None,
    ) -> CommandResult:
        """UID FETCH ``uid_set`` ``items`` (items as the wire form, e.g. "(UID FLAGS)")."""
        args: list[Arg] = [uid_set, items]
        if changedsince is not None:
            mods = f"CHANGEDSINCE {changedsince}" + (" VANISHED" if vanished else "")
            args.append(f"({mods})")
        return await self._run(self._new("FETCH", *args, prefix="UID", timeout=timeout))

    async def uid_store(
        self,
        uid_set: str,
        action: str,
        flags: Iterable[str],
        *,
        unchangedsince: int | None = None,
        timeout: float | None = None,
    ) -> CommandResult:
        """UID STORE; ``action`` is e.g. "+FLAGS.SILENT", "-FLAGS", "FLAGS"."""
        args: list[Arg] = [uid_set]
        if unchangedsince is not None:
            args.append(f"(UNCHANGEDSINCE {unchangedsince})")
        args += [action, _format_flags(flags)]
        return await self._run(self._new("STORE", *args, prefix="UID", timeout=timeout))

    async def uid_copy(
        self, uid_set: str, mailbox: str, timeout: float | None = None
    ) -> CommandResult:
        return await self._run(
            self._new("COPY", uid_set, astring(mailbox), prefix="UID", timeout=timeout)
        )

    async def uid_move(
        self, uid_set: str, mailbox: str, timeout: float | None = None
    ) -> CommandResult:
        if "MOVE" not in self._capabilities:
            raise ImapStateError(f"{self.label} does not support MOVE.")
        return await self._run(
            self._new("MOVE", uid_set, astring(mailbox), prefix="UID", timeout=timeout)
        )

    async def uid_expunge(self, uid_set: str, timeout: float | None = None) -> CommandResult:
        if "UIDPLUS" not in self._capabilities:
            raise ImapStateError(f"{self.label} does not support UID EXPUNGE (UIDPLUS).")
        return await self._run(self._new("EXPUNGE", uid_set, prefix="UID", timeout=timeout))

    async def expunge(self, timeout: float | None = None) -> CommandResult:
        return await self._run(self._new("EXPUNGE", timeout=timeout))

    async def uid_search(
        self, *criteria: Arg, charset: str | None = None, timeout: float | None = None
    ) -> CommandResult:
        args: list[Arg] = ["CHARSET", charset] if charset else []
        args += criteria
        return await self._run(self._new("SEARCH", *args, prefix="UID", timeout=timeout))

    async def list(
        self,
        reference: str = "",
        pattern: str = "*",
        *,
        return_: Iterable[str] = (),
        timeout: float | None = None,
    ) -> CommandResult:
        args: list[Arg] = [astring(reference), astring(pattern)]
        options = list(return_)
        if options:
            args.append("RETURN (" + " ".join(options) + ")")
        return await self._run(self._new("LIST", *args, timeout=timeout))

    async def status(
        self, mailbox: str, items: Iterable[str], timeout: float | None = None
    ) -> CommandResult:
        return await self._run(
            self._new("STATUS", astring(mailbox), "(" + " ".join(items) + ")", timeout=timeout)
        )

    async def create(self, mailbox: str, timeout: float | None = None) -> CommandResult:
        return await self._run(self._new("CREATE", astring(mailbox), timeout=timeout))

    async def append(
        self,
        mailbox: str,
        message: bytes,
        *,
        flags: Iterable[str] = (),
        internaldate: datetime | None = None,
        timeout: float | None = None,
    ) -> CommandResult:
        """APPEND one message (a literal; non-synchronizing when LITERAL+/LITERAL- allow)."""
        args: list[Arg] = [astring(mailbox)]
        flag_list = list(flags)
        if flag_list:
            args.append(_format_flags(flag_list))
        if internaldate is not None:
            args.append(internaldate_arg(internaldate))
        args.append(Literal(message))
        return await self._run(self._new("APPEND", *args, timeout=timeout))

    # -- IDLE -------------------------------------------------------------------------------

    async def idle_start(self, timeout: float | None = None) -> None:
        """Send IDLE and return once the server confirms (``+``). Untagged responses during
        IDLE go to ``on_untagged``. No inactivity timeout applies while idling: call
        ``idle_done`` within 29 minutes (RFC 9051) and rely on its timeout.
        """
        proto = self._require()
        if self._idle is not None:
            raise ImapStateError("IDLE is already active.")
        if "IDLE" not in self._capabilities:
            raise ImapStateError(f"{self.label} does not support IDLE.")
        started: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def on_plus(_text: bytes) -> bytes | None:
            if not started.done():
                started.set_result(None)
                proto.disarm_watchdog()
            return None

        cmd = self._new("IDLE", timeout=timeout, collect=False, on_continuation=on_plus)
        await proto.start(cmd)
        finished = asyncio.ensure_future(cmd.wait())
        try:
            await asyncio.wait({started, finished}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            finished.cancel()
            raise
        if started.done():
            finished.cancel()
            self._idle = cmd
            return
        await finished  # raises ConnectionLost / CommandTimeout if that is what happened
        _code, text = _split_code(cmd.text)
        raise CommandFailed(
            f"{self.label} refused IDLE: {cmd.status} {text}",
            command="IDLE",
            status=cmd.status,
            text=text,
        )

    async def idle_done(self, timeout: float | None = None) -> CommandResult:
        """End IDLE (DONE) and wait for its tagged reply within ``timeout``.

        A silent server (dead link) raises CommandTimeout and the connection is dropped.
        """
        proto = self._require()
        cmd = self._idle
        if cmd is None:
            raise ImapStateError("IDLE is not active.")
        self._idle = None
        if not cmd.done:
            proto.write(b"DONE\r\n", log_form="DONE")
            proto.arm_watchdog(self.timeout if timeout is None else timeout)
        await cmd.wait()
        code, text = _split_code(cmd.text)
        status: Status = "OK" if cmd.status == "OK" else "NO" if cmd.status == "NO" else "BAD"
        return CommandResult(status, code, text, [])
