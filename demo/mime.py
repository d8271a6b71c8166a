"""A small, fast MIME writer for the demo's generated mail.

``email.message.EmailMessage`` is the right tool for one message, but it parses every header it
is given and refolds every header it writes: about a millisecond per message, three seconds for
the demo's seed. Here the stdlib ``email`` package does the encoding that is easy to get wrong
(RFC 2047 encoded words by ``email.header.Header``, addresses by ``email.utils.formataddr``,
RFC 2231 parameters by ``email.utils.encode_rfc2231``, dates by ``email.utils.format_datetime``)
and the structure is assembled directly: the output is plain RFC 5322/MIME with CRLF line ends,
7-bit clean (quoted-printable or base64 bodies), and parses without a defect in
``email.message_from_bytes(..., policy=email.policy.default)`` (the unit tests check every
generated message for that).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from email.header import Header
from email.utils import encode_rfc2231, formataddr

CRLF = "\r\n"
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_TSPECIAL = re.compile(r'[\s()<>@,;:\\"/\[\]?=]')


@dataclass(frozen=True, slots=True)
class Part:
    """One MIME entity: its own header lines (no CRLF) and its encoded body."""

    headers: tuple[str, ...]
    body: bytes


def _plain_ascii(text: str) -> bool:
    return text.isascii() and not _CONTROL.search(text)


class HeaderCache:
    """Encoded header lines, memoised: senders and thread subjects repeat a lot."""

    def __init__(self) -> None:
        self._lines: dict[tuple[str, str], str] = {}
        self._addrs: dict[tuple[str, str], str] = {}

    def line(self, name: str, value: str) -> str:
        """``Name: value``, folded; anything but printable ASCII becomes encoded words."""
        key = (name, value)
        cached = self._lines.get(key)
        if cached is None:
            charset = "us-ascii" if _plain_ascii(value) else "utf-8"
            encoded = Header(value, charset, header_name=name).encode(linesep=CRLF)
            cached = self._lines[key] = f"{name}: {encoded}"
        return cached

    def address(self, name: str, addr: str) -> str:
        """``Name <addr>``; a name with non-ASCII or control characters as an encoded word."""
        key = (name, addr)
        cached = self._addrs.get(key)
        if cached is None:
            if not name or _plain_ascii(name):
                cached = formataddr((name, addr))
            else:
                cached = f"{Header(name, 'utf-8').encode(linesep=CRLF)} <{addr}>"
            self._addrs[key] = cached
        return cached

    def addresses(self, name: str, values: list[str]) -> str:
        """An address-list header, one address per line once it gets long."""
        line = f"{name}: " + ", ".join(values)
        if len(line) <= 78:
            return line
        return f"{name}: " + f",{CRLF} ".join(values)


def _param(key: str, value: str) -> str:
    """A Content-Type/Disposition parameter, RFC 2231-encoded when it is not ASCII."""
    if _plain_ascii(value):
        quoted = value.replace("\\", "\\\\").replace('"', '\\"')
        return f'{key}="{quoted}"'
    return f"{key}*={encode_rfc2231(value, 'utf-8')}"


def _token_or_quoted(value: str) -> str:
    return f'"{value}"' if _TSPECIAL.search(value) else value


def text(
    content: str,
    subtype: str = "plain",
    *,
    params: dict[str, str] | None = None,
    filename: str | None = None,
    inline: bool = True,
) -> Part:
    """A text part: 7bit when it is short-lined printable ASCII, else quoted-printable UTF-8."""
    data = content.replace("\r\n", "\n")
    extra = "".join(f"; {k}={_token_or_quoted(v)}" for k, v in (params or {}).items())
    if filename is not None:
        # name= as well as the disposition's filename=: pymap's BODYSTRUCTURE loses the
        # disposition (see servers.py), and many clients only look at name= anyway.
        extra += f"; {_param('name', filename)}"
    headers = [f"Content-Type: text/{subtype}; charset=utf-8{extra}"]
    if _plain_ascii(data.replace("\n", "").replace("\t", "")) and all(
        len(line) <= 76 and not line.endswith(" ") for line in data.split("\n")
    ):
        headers.append("Content-Transfer-Encoding: 7bit")
        body = data.encode("ascii")
    else:
        headers.append("Content-Transfer-Encoding: quoted-printable")
        body = binascii.b2a_qp(data.encode("utf-8"), quotetabs=False, istext=True)
    if filename is not None:
        kind = "inline" if inline else "attachment"
        headers.append(f"Content-Disposition: {kind}; {_param('filename', filename)}")
    return Part(tuple(headers), body.replace(b"\n", b"\r\n"))


def binary(
    data: bytes,
    content_type: str,
    filename: str,
    *,
    inline: bool = False,
    content_id: str | None = None,
) -> Part:
    """A base64 part (an attachment unless ``inline``) with its file name."""
    kind = "inline" if inline else "attachment"
    headers = [
        f"Content-Type: {content_type}; {_param('name', filename)}",
        "Content-Transfer-Encoding: base64",
        f"Content-Disposition: {kind}; {_param('filename', filename)}",
    ]
    if content_id is not None:
        headers.append(f"Content-ID: <{content_id}>")
    body = base64.encodebytes(data).rstrip(b"\n").replace(b"\n", b"\r\n")
    return Part(tuple(headers), body)


def message(raw: bytes, filename: str) -> Part:
    """A message/rfc822 attachment (a forwarded message, kept whole)."""
    headers = (
        f"Content-Type: message/rfc822; {_param('name', filename)}",
        "Content-Transfer-Encoding: 7bit",
        f"Content-Disposition: attachment; {_param('filename', filename)}",
    )
    return Part(headers, raw.rstrip(b"\r\n"))


def multipart(subtype: str, parts: list[Part], boundary: str, **params: str) -> Part:
    extra = "".join(f"; {k}={_token_or_quoted(v)}" for k, v in params.items())
    delim = b"--" + boundary.encode("ascii")
    chunks: list[bytes] = []
    for part in parts:
        chunks += [delim, b"\r\n", CRLF.join(part.headers).encode("ascii"), b"\r\n\r\n"]
        chunks += [part.body, b"\r\n"]
    chunks += [delim, b"--\r\n"]
    header = f"Content-Type: multipart/{subtype}; boundary={_token_or_quoted(boundary)}{extra}"
    return Part((header,), b"".join(chunks))


def serialize(top: list[str], part: Part) -> bytes:
    """A whole message: the top-level header lines, MIME-Version, the part's own headers."""
    head = CRLF.join([*top, "MIME-Version: 1.0", *part.headers])
    return head.encode("ascii") + b"\r\n\r\n" + part.body
