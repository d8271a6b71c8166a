"""One SMTP submission session on aiosmtplib, with the connection rules of the IMAP side.

* ``security = "tls"``: implicit TLS (``use_tls=True``); ``"starttls"``: ``start_tls=True``,
  never aiosmtplib's default ``None`` (which quietly carries on in plain text, AUTH included,
  when the server does not offer STARTTLS); plain text only for ``"none"``. After connecting,
  TLS is checked once more before any credential is sent.
* Certificates are verified as for IMAP (``transport.tls_context``: system store + ``ca_file``).
* Credentials and the login sequence come from ``core.transport`` (``sign_in``: off the
  event loop, an OAuth2 token refused once is refreshed once).
* A recipient refused while others are accepted does not raise: ``SubmitResult.refused`` holds
  the server's words per recipient.

Errors say what to do with the message: ``SmtpTemporaryError`` (4xx, network: try later),
``SmtpPermanentError`` (5xx: the server will not take it as it is), ``SmtpAccountError`` (TLS,
STARTTLS missing, login refused: the message is fine, the account setup or the network path is
not; retry later, tell the user).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType

import aiosmtplib
from aiosmtplib.email import parse_address
from aiosmtplib.protocol import PERIOD_REGEX, normalize_message_line_endings

from kittiwake.core.config import PASSWORD_KEYS, Account, SmtpConfig
from kittiwake.core.errors import ConfigError, KittiwakeError, SecretError
from kittiwake.core.transport import Credential, sign_in, tls_context

log = logging.getLogger(__name__)

EHLO_NAME = "[127.0.0.1]"
"""What we call ourselves in EHLO: an address literal, so the machine's name does not leak."""
DATA_RATE = 20_000
"""Bytes per second assumed for DATA on a slow uplink: the DATA timeout grows with size."""


class SmtpError(KittiwakeError):
    """Base of the SMTP errors; ``code`` is the server's reply code when there was one."""

    permanent: bool = False

    def __init__(self, message: str, *, code: int | None = None, server_text: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.server_text = server_text


class SmtpTemporaryError(SmtpError):
    """Could not reach the server, or it answered 4xx: keep the message and retry later."""

    recoverable = True


class SmtpPermanentError(SmtpError):
    """5xx for the message (sender, size, content, every recipient): it will not be accepted as
    it is. ``refused`` holds per-recipient words when recipients were the reason."""

    permanent = True

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        server_text: str = "",
        refused: dict[str, tuple[int, str]] | None = None,
    ) -> None:
        super().__init__(message, code=code, server_text=server_text)
        self.refused = refused or {}


class SmtpAccountError(SmtpError):
    """TLS failed, STARTTLS not offered, login refused, no password: nothing about the message."""

    recoverable = True


class SmtpOutcomeUnknown(SmtpError):
    """The whole message went out but the server's reply never came (connection cut, no
    answer in time): it may have been delivered. SMTP cannot tell; sending it again could
    deliver it twice, so the user decides."""


class SmtpRecipientsDeferred(SmtpTemporaryError):
    """Every recipient was refused and at least one only for now (4xx): ``refused`` has all."""

    def __init__(self, message: str, refused: dict[str, tuple[int, str]]) -> None:
        super().__init__(message)
        self.refused = refused


@dataclass(frozen=True)
class SubmitResult:
    accepted: tuple[str, ...]
    refused: dict[str, tuple[int, str]] = field(default_factory=dict)
    """Recipient -> (code, the server's words), for recipients refused while others went."""
    response: str = ""
    """The server's reply to DATA (often its queue id)."""


@dataclass(frozen=True)
class Capabilities:
    smtputf8: bool
    eightbitmime: bool
    size: int | None


def words(code: int | None, text: str) -> str:
    """The server's reply as one line: ``550 5.1.1 <x@y>: Recipient address rejected``."""
    text = " ".join(text.split())
    return f"{code} {text}".strip() if code else text


class SmtpSession:
    """A logged-in submission connection: ``async with SmtpSession(account) as s: ...``."""

    def __init__(self, account: Account, *, timeout: float | None = None) -> None:
        if account.smtp is None:
            raise SmtpAccountError(f"account {account.key} has no [accounts.{account.key}.smtp]")
        self.account = account
        self.cfg: SmtpConfig = account.smtp
        self.at = f"accounts.{account.key}.smtp"
        self.timeout = timeout if timeout is not None else self.cfg.timeout
        self.where = f"{self.cfg.host}:{self.cfg.port}"
        self._smtp: aiosmtplib.SMTP | None = None

    async def __aenter__(self) -> SmtpSession:
        await self.connect()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    @property
    def capabilities(self) -> Capabilities:
        smtp = self._require()
        size = smtp.esmtp_extensions.get("size", "")
        return Capabilities(
            smtputf8=smtp.supports_extension("smtputf8"),
            eightbitmime=smtp.supports_extension("8bitmime"),
            size=int(size) if size.strip().isdigit() and int(size) > 0 else None,
        )

    async def connect(self) -> None:
        cfg = self.cfg
        security = cfg.security
        try:
            context = tls_context(cfg, self.at)
        except ConfigError as exc:
            raise SmtpAccountError(exc.message) from None
        smtp = aiosmtplib.SMTP(
            hostname=cfg.host,
            port=cfg.port,
            local_hostname=EHLO_NAME,
            timeout=self.timeout,
            use_tls=security == "tls",
            start_tls=security == "starttls",  # explicit: never None (see the module doc)
            tls_context=context,
            validate_certs=security != "none",
        )
        try:
            await smtp.connect()
            await smtp.ehlo()
        except Exception as exc:
            smtp.close()
            raise self._connect_error(exc) from None
        self._smtp = smtp
        try:
            if security != "none" and smtp.get_transport_info("sslcontext") is None:
                raise SmtpAccountError(f"{self.where}: the connection is not encrypted; not sent")
            await self._login(smtp)
        except BaseException:
            await self.close()
            raise

    async def _login(self, smtp: aiosmtplib.SMTP) -> None:
        cfg = self.cfg
        wants_auth = cfg.auth == "oauth2" or any(getattr(cfg, k) is not None for k in PASSWORD_KEYS)
        if not wants_auth:
            return
        if not smtp.supports_extension("auth"):
            log.info("%s offers no AUTH; sending without logging in", self.where)
            return
        user = cfg.user or self.account.email

        async def login(c: Credential) -> None:
            if c.oauth2:
                await self._oauth(smtp, c.user, c.secret.reveal())
            else:
                await smtp.login(c.user, c.secret.reveal())

        try:
            await sign_in(cfg, self.at, self.account, login, aiosmtplib.SMTPAuthenticationError)
        except SecretError as exc:
            raise SmtpAccountError(exc.message) from None
        except aiosmtplib.SMTPAuthenticationError as exc:
            if 400 <= exc.code < 500:
                raise SmtpTemporaryError(
                    f"{self.where} could not log in for now: {words(exc.code, exc.message)}",
                    code=exc.code,
                    server_text=exc.message,
                ) from None
            raise SmtpAccountError(
                f"{self.where} refused the login for {user}: {words(exc.code, exc.message)}",
                code=exc.code,
                server_text=exc.message,
            ) from None
        except aiosmtplib.SMTPException as exc:
            raise self._command_error(exc, "login") from None

    async def _oauth(self, smtp: aiosmtplib.SMTP, user: str, token: str) -> None:
        """OAUTHBEARER (RFC 7628) where offered, else XOAUTH2; an error challenge is
        answered as the RFC says, and its status joins the server's refusal."""
        if "oauthbearer" not in smtp.server_auth_methods:
            await smtp.auth_xoauth2(user, token)
            return
        name = user.replace("=", "=3D").replace(",", "=2C")
        payload = (
            f"n,a={name},\x01host={self.cfg.host}\x01port={self.cfg.port}\x01"
            f"auth=Bearer {token}\x01\x01"
        )
        reply = await smtp.execute_command(
            b"AUTH", b"OAUTHBEARER", base64.b64encode(payload.encode())
        )
        detail = ""
        if reply.code == 334:  # the error challenge: a base64 JSON status
            with contextlib.suppress(ValueError):
                detail = base64.b64decode(reply.message).decode("utf-8", "replace")
            reply = await smtp.execute_command(b"AQ==")
        if reply.code != 235:
            message = reply.message + (f" ({detail})" if detail else "")
            raise aiosmtplib.SMTPAuthenticationError(reply.code, message)

    async def submit(
        self,
        envelope_from: str,
        recipients: list[str] | tuple[str, ...],
        raw: bytes,
        *,
        smtputf8: bool = False,
        on_data: Callable[[], None] | None = None,
    ) -> SubmitResult:
        """MAIL, RCPT for each recipient, DATA. Raises unless at least one recipient took it.

        ``on_data`` runs once the server is ready for the message (its 354), just before the
        message goes: from then until the server's reply a lost connection leaves the outcome
        unknown, which raises ``SmtpOutcomeUnknown``."""
        smtp = self._require()
        options: list[str] = []
        caps = self.capabilities
        if smtputf8:
            if not caps.smtputf8:
                raise SmtpPermanentError(
                    f"{self.where} does not offer SMTPUTF8, which this message's non-ASCII "
                    "addresses need"
                )
            options.append("SMTPUTF8")
        if any(b > 127 for b in raw):
            if not caps.eightbitmime:
                raise SmtpPermanentError(
                    f"{self.where} does not accept 8-bit data (no 8BITMIME); the message has "
                    "to be encoded again"
                )
            options.append("BODY=8BITMIME")
        if caps.size is not None and len(raw) > caps.size:
            raise SmtpPermanentError(
                f"{self.where} accepts messages up to {caps.size // 1024} KiB; this one is "
                f"{len(raw) // 1024} KiB"
            )
        if smtp.supports_extension("size"):  # RFC 1870: the octets as transmitted
            options.insert(0, f"SIZE={len(normalize_message_line_endings(raw))}")
        timeout = self.timeout + len(raw) / DATA_RATE
        try:
            refused = await self._envelope(smtp, envelope_from, recipients, options, timeout)
            response = await self._data(smtp, raw, timeout, on_data)
        except SmtpOutcomeUnknown:
            self._smtp = None
            smtp.close()
            raise
        except aiosmtplib.SMTPRecipientsRefused as exc:
            refused = {r.recipient: (r.code, r.message) for r in exc.recipients}
            summary = "; ".join(f"{rcpt}: {words(c, t)}" for rcpt, (c, t) in refused.items())
            if all(code >= 500 for code, _ in refused.values()):
                raise SmtpPermanentError(
                    f"{self.where} refused every recipient: {summary}", refused=refused
                ) from None
            raise SmtpRecipientsDeferred(
                f"{self.where} refused every recipient for now: {summary}", refused
            ) from None
        except ValueError as exc:  # aiosmtplib refuses an address it cannot send safely
            raise SmtpPermanentError(f"cannot send: {exc}") from None
        except aiosmtplib.SMTPException as exc:
            self._smtp = None
            smtp.close()
            raise self._command_error(exc, "sending") from None
        accepted = tuple(r for r in recipients if r not in refused)
        return SubmitResult(accepted, refused, response.message)

    async def _envelope(
        self,
        smtp: aiosmtplib.SMTP,
        sender: str,
        recipients: list[str] | tuple[str, ...],
        options: list[str],
        timeout: float,
    ) -> dict[str, tuple[int, str]]:
        """MAIL and one RCPT per recipient (what aiosmtplib's ``sendmail`` does before DATA);
        returns the refused recipients, and raises when every one was."""
        encoding = "utf-8" if "SMTPUTF8" in options else "ascii"
        for address in (sender, *recipients):
            parse_address(address)  # a bad address fails before anything is sent
        await smtp.mail(sender, options=options, encoding=encoding, timeout=timeout)
        refused: dict[str, tuple[int, str]] = {}
        for rcpt in recipients:
            try:
                await smtp.rcpt(rcpt, encoding=encoding, timeout=timeout)
            except aiosmtplib.SMTPRecipientRefused as exc:
                refused[rcpt] = (exc.code, exc.message)
        if len(refused) == len(recipients):
            raise aiosmtplib.SMTPRecipientsRefused(
                [aiosmtplib.SMTPRecipientRefused(c, t, r) for r, (c, t) in refused.items()]
            )
        return refused

    async def _data(
        self,
        smtp: aiosmtplib.SMTP,
        raw: bytes,
        timeout: float,
        on_data: Callable[[], None] | None,
    ) -> aiosmtplib.SMTPResponse:
        """DATA, then the message. Done here rather than by aiosmtplib's ``data`` to know the
        moment the message leaves: a lost connection before it is a plain failure (nothing
        was delivered), after it the outcome is unknown."""
        start = await smtp.execute_command(b"DATA", timeout=timeout)
        if start.code != 354:
            raise aiosmtplib.SMTPDataError(start.code, start.message)
        protocol = smtp.protocol
        if protocol is None:
            raise aiosmtplib.SMTPServerDisconnected("Connection lost")
        if on_data is not None:
            try:
                on_data()
            except BaseException:
                self._smtp = None
                smtp.close()  # mid-DATA: the server must not take what follows as the message
                raise
        payload = PERIOD_REGEX.sub(b"..", normalize_message_line_endings(raw)) + b".\r\n"
        protocol.write(payload)  # raises at once if the connection is already gone
        try:
            response = await protocol.read_response(timeout=timeout)
        except aiosmtplib.SMTPTimeoutError:
            raise SmtpOutcomeUnknown(
                f"{self.where} did not confirm the message within {timeout:.0f} s of receiving "
                "it; it may have been delivered"
            ) from None
        except aiosmtplib.SMTPServerDisconnected:
            raise SmtpOutcomeUnknown(
                f"the connection to {self.where} was lost after the message was sent and "
                "before the server confirmed it; it may have been delivered"
            ) from None
        if response.code != 250:
            raise aiosmtplib.SMTPDataError(response.code, response.message)
        return response

    async def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            if smtp.is_connected:
                await asyncio.wait_for(smtp.quit(), timeout=min(self.timeout, 5))
        except Exception as exc:
            log.debug("%s: QUIT failed: %s", self.where, exc)
        finally:
            smtp.close()

    def _require(self) -> aiosmtplib.SMTP:
        if self._smtp is None:
            raise SmtpTemporaryError(f"{self.where}: not connected")
        return self._smtp

    def _connect_error(self, exc: BaseException) -> SmtpError:
        where = self.where
        cause: BaseException | None = exc
        while cause is not None:
            if isinstance(cause, ssl.SSLCertVerificationError):
                return SmtpAccountError(
                    f"{where}: the server's certificate is not trusted "
                    f"({cause.verify_message or cause.reason}); nothing was sent"
                )
            if isinstance(cause, ssl.SSLError):
                return SmtpAccountError(f"{where}: TLS failed ({cause.reason}); nothing was sent")
            cause = cause.__cause__ or cause.__context__
        if isinstance(exc, aiosmtplib.SMTPResponseException):
            return self._command_error(exc, "connecting")
        if isinstance(exc, aiosmtplib.SMTPException) and not isinstance(
            exc,
            aiosmtplib.SMTPServerDisconnected
            | aiosmtplib.SMTPTimeoutError
            | aiosmtplib.SMTPConnectError,
        ):
            if "starttls" in exc.message.lower():
                return SmtpAccountError(
                    f'{where} does not offer STARTTLS, which security = "starttls" requires; '
                    "nothing was sent (no password either)"
                )
            return SmtpAccountError(f"{where}: {exc.message}")
        if isinstance(exc, TimeoutError):
            return SmtpTemporaryError(f"{where} did not answer within {self.timeout:g} s")
        if isinstance(exc, aiosmtplib.SMTPException):
            return SmtpTemporaryError(f"cannot reach {where}: {_short(exc.message)}")
        if isinstance(exc, OSError):
            return SmtpTemporaryError(f"cannot reach {where}: {exc.strerror or exc}")
        return SmtpTemporaryError(f"cannot reach {where}: {exc}")

    def _command_error(self, exc: aiosmtplib.SMTPException, doing: str) -> SmtpError:
        where = self.where
        if isinstance(exc, aiosmtplib.SMTPResponseException):
            said = words(exc.code, exc.message)
            if isinstance(exc, aiosmtplib.SMTPSenderRefused):
                what = f"{where} refused the sender {exc.sender}: {said}"
            elif isinstance(exc, aiosmtplib.SMTPDataError):
                what = f"{where} refused the message: {said}"
            else:
                what = f"{where} answered {said} while {doing}"
            if exc.code >= 500:
                return SmtpPermanentError(what, code=exc.code, server_text=exc.message)
            return SmtpTemporaryError(what, code=exc.code, server_text=exc.message)
        if isinstance(exc, aiosmtplib.SMTPNotSupported):
            return SmtpPermanentError(f"{where}: {exc.message}")
        if isinstance(exc, aiosmtplib.SMTPTimeoutError):
            return SmtpTemporaryError(f"{where} stopped answering while {doing}")
        if isinstance(exc, aiosmtplib.SMTPServerDisconnected):
            return SmtpTemporaryError(f"{where} closed the connection while {doing}")
        return SmtpTemporaryError(f"{where}: {exc.message} while {doing}")


def _short(text: str) -> str:
    return text.split(": ", 1)[-1] if text.startswith("Error connecting") else text


async def probe(account: Account) -> Capabilities:
    """Connect and log in once to learn what the server offers (SMTPUTF8, 8BITMIME, SIZE)."""
    async with SmtpSession(account) as session:
        return session.capabilities
