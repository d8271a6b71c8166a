"""From parsed FETCH values to the engine's models: Envelope, BodyPart, MessageSummary.

Everything here takes ``parser.Value`` trees (or a ``parser.Fetch``) and is tolerant of
what real servers send: RFC 2047 encoded words (adjacent words joined at the byte level, so
a character split across two words survives), unknown charsets, broken base64, raw 8-bit
bytes (UTF-8, else Latin-1), RFC 2231 parameters (``filename*0*=utf-8''...``), group syntax
in address lists, NIL where a string belongs, missing extension data, and dates that do not
parse (None). Shapes that cannot be understood at all raise ``DecodeError`` (a ParseError);
``summary_from_fetch`` degrades instead of raising for a bad ENVELOPE or BODYSTRUCTURE.

Dates are always timezone-aware: a date without a usable zone is taken as UTC, so summaries
can be compared and sorted without TypeError.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Sequence

from kittiwake.core.imap.parseerror import DecodeError
from kittiwake.core.imap.parser import Fetch, Value, parse_internaldate
from kittiwake.core.message.charset import decode_bytes
from kittiwake.core.message.dates import parse_date
from kittiwake.core.message.headers import decode_words, raw_text
from kittiwake.core.message.ids import msgids
from kittiwake.core.models import Address, BodyPart, Envelope, MessageSummary

__all__ = [
    "MAX_BODY_DEPTH",
    "DecodeError",
    "bodystructure_from_value",
    "decoded_parts",
    "envelope_from_value",
    "has_attachments",
    "parse_internaldate",
    "references_from_fetch",
    "references_from_header",
    "summary_from_fetch",
]

#: MIME nesting deeper than this is one raw part (BodyPart.walk and repr recurse), as the
#: reader shows it (``core.message.mime.MAX_MIME_DEPTH``).
MAX_BODY_DEPTH = 64

# --- header text --------------------------------------------------------------------------


def _header_text(v: Value) -> str:
    s = raw_text(v)
    if "=?" in s:
        s = decode_words(s)
    return s


def _opt(v: Value) -> str | None:
    s = raw_text(v).strip()
    return s or None


# --- ENVELOPE -----------------------------------------------------------------------------

_FAKE_HOSTS = frozenset({".missing-host-name.", "missing_domain", "missing-domain"})


def _address(item: list[Value]) -> Address:
    name = _header_text(item[0]).strip()
    if len(name) >= 2 and name[0] == name[-1] == '"':
        name = name[1:-1].strip()
    mailbox = raw_text(item[2]).strip()
    host = raw_text(item[3]).strip()
    addr = f"{mailbox}@{host}" if host and host.lower() not in _FAKE_HOSTS else mailbox
    return Address(name, addr)


def _addresses(v: Value) -> tuple[Address, ...]:
    """An address list, group syntax flattened: members kept, group markers dropped. A
    "group start" never closed is a bare local part from a lax server and is kept."""
    if not isinstance(v, list):
        return ()
    out: list[Address | None] = []
    open_groups: list[int] = []
    for item in v:
        if not isinstance(item, list) or len(item) < 4:
            continue
        if item[3] is None:
            if item[2] is None:  # end of group
                if open_groups:
                    out[open_groups.pop()] = None
                continue
            open_groups.append(len(out))  # start of group (provisionally an address)
            out.append(_address(item))
            continue
        out.append(_address(item))
    return tuple(a for a in out if a is not None and (a.addr or a.name))


def envelope_from_value(v: Value) -> Envelope:
    """Decode an ENVELOPE list; DecodeError if ``v`` is not a list."""
    if not isinstance(v, list):
        raise DecodeError("ENVELOPE is not a list.")
    f: list[Value] = v[:10]
    if len(f) < 10:
        f = f + [None] * (10 - len(f))
    from_ = _addresses(f[2])
    # Sender and Reply-To usually repeat From (servers fill them in): compare, don't decode.
    sender = from_ if f[3] == f[2] else _addresses(f[3])
    reply_to = from_ if f[4] == f[2] else _addresses(f[4])
    return Envelope(
        date=parse_date(f[0]),
        subject=_header_text(f[1]),
        from_=from_,
        sender=sender,
        reply_to=reply_to,
        to=_addresses(f[5]),
        cc=_addresses(f[6]),
        bcc=_addresses(f[7]),
        in_reply_to=_opt(f[8]),
        message_id=_opt(f[9]),
    )


# --- BODYSTRUCTURE ------------------------------------------------------------------------

_PARAM_EXT = re.compile(r"([^*]+)\*(?:(\d{1,4})(\*)?)?")
_PERCENT = re.compile(rb"%([0-9A-Fa-f]{2})")


def _unpercent(s: str) -> bytes:
    raw = s.encode("utf-8", "surrogateescape")
    return _PERCENT.sub(lambda m: bytes([int(m.group(1), 16)]), raw)


def _params(v: Value) -> dict[str, str]:
    """A body-fld-param list as a dict (lower-case keys), RFC 2231 parameters combined."""
    if not isinstance(v, list):
        return {}
    out: dict[str, str] = {}
    ext: dict[str, list[tuple[int, bool, str]]] = {}
    for i in range(0, len(v) - 1, 2):
        key_v, val_v = v[i], v[i + 1]
        if isinstance(key_v, list) or isinstance(val_v, list) or key_v is None:
            continue
        key = raw_text(key_v).strip().lower()
        val = raw_text(val_v)
        m = _PARAM_EXT.fullmatch(key)
        if m is None:
            out.setdefault(key, val)
            continue
        name, idx, star = m.groups()
        # "name*" alone is encoded; "name*N" plain, "name*N*" encoded.
        ext.setdefault(name, []).append((int(idx) if idx else 0, idx is None or bool(star), val))
    for name, segments in ext.items():
        segments.sort(key=lambda s: s[0])
        charset = ""
        raw = bytearray()
        for n, (_idx, encoded, val) in enumerate(segments):
            if encoded:
                if n == 0 and val.count("'") >= 2:
                    charset, _lang, val = val.split("'", 2)
                raw += _unpercent(val)
            else:
                raw += val.encode("utf-8", "surrogateescape")
        out[name] = decode_bytes(bytes(raw), charset or None)  # extended beats plain
    return out


def _disposition(v: Value) -> tuple[str | None, dict[str, str]]:
    if isinstance(v, list) and v:
        kind = v[0]
        if isinstance(kind, list):
            return None, {}
        return (_opt(kind) or "").lower() or None, _params(v[1] if len(v) > 1 else None)
    if isinstance(v, bytes | str):  # some servers send just the type
        return raw_text(v).strip().lower() or None, {}
    return None, {}


def _filename(dparams: dict[str, str], params: dict[str, str]) -> str | None:
    name = dparams.get("filename") or params.get("name")
    if not name:
        return None
    if "=?" in name:
        name = decode_words(name)
    name = name.strip()
    return name or None


def _size(v: Value) -> int:
    if isinstance(v, int):
        return v
    if isinstance(v, bytes | str) and v.isdigit() and len(v) < 20:
        return int(v)
    return 0


def _child_section(parent: str, n: int) -> str:
    return f"{parent}.{n}" if parent else str(n)


def _body(v: Value, section: str, depth: int) -> BodyPart:
    if depth > MAX_BODY_DEPTH:  # the rest is one raw part (a message nested 1,000 deep)
        return BodyPart(section or "1", "application", "octet-stream", disposition="attachment")
    if not isinstance(v, list) or not v:
        raise DecodeError("A BODYSTRUCTURE part is not a list.")
    if isinstance(v[0], list):  # multipart: parts, then subtype, then extension data
        i = 0
        while i < len(v) and isinstance(v[i], list):
            i += 1
        subtype = (_opt(v[i]) if i < len(v) else None) or "mixed"
        ext = v[i + 1 :]
        params = _params(ext[0]) if ext else {}
        disposition, _dparams = _disposition(ext[1]) if len(ext) > 1 else (None, {})
        children = tuple(
            _body(child, _child_section(section, n), depth + 1) for n, child in enumerate(v[:i], 1)
        )
        return BodyPart(
            section=section,
            maintype="multipart",
            subtype=subtype.lower(),
            params=params,
            disposition=disposition,
            children=children,
        )
    f = v + [None] * (7 - len(v)) if len(v) < 7 else v
    maintype = (_opt(f[0]) or "text").lower()
    subtype = (_opt(f[1]) or "plain").lower()
    params = _params(f[2])
    encoding = _opt(f[5])
    ext_at, inner = _leaf_layout(f, maintype, subtype)
    children_t: tuple[BodyPart, ...] = ()
    if inner is not None:
        if inner and isinstance(inner[0], list):  # encapsulated multipart: parts s.1, s.2
            children_t = (_body(inner, section, depth + 1),)
        else:
            children_t = (_body(inner, f"{section}.1", depth + 1),)
    disposition, dparams = _disposition(_disposition_value(f, ext_at))
    return BodyPart(
        section=section,
        maintype=maintype,
        subtype=subtype,
        params=params,
        content_id=_opt(f[3]),
        description=(_header_text(f[4]).strip() or None),
        encoding=encoding.lower() if encoding else None,
        size=_size(f[6]),
        disposition=disposition,
        filename=_filename(dparams, params),
        children=children_t,
    )


def _leaf_layout(f: list[Value], maintype: str, subtype: str) -> tuple[int, list[Value] | None]:
    """Where a single part's extension data starts, and its encapsulated body if any."""
    if (
        maintype == "message"
        and subtype in ("rfc822", "global")
        and len(f) >= 10
        and isinstance(f[7], list)
        and isinstance(f[8], list)
    ):
        return 10, f[8]  # envelope, body, lines, then extension data
    # Extension data follows body-fld-lines for text/* (and, from lax servers, for other
    # types): md5 is never a number, so a number at 7 is the line count.
    return (8 if len(f) > 7 and isinstance(f[7], int) else 7), None


def _disposition_value(f: list[Value], ext_at: int) -> Value:
    """The body-fld-dsp of a single part: md5 comes first and is never a list, so a list
    there is a disposition (from a lax server that omits md5)."""
    ext = f[ext_at : ext_at + 2]
    for cand in ext:
        if isinstance(cand, list):
            return cand
    return ext[1] if len(ext) > 1 else None


def _has_key(params: Value, prefix: bytes) -> bool:
    if not isinstance(params, list):
        return False
    for key in params[::2]:
        if isinstance(key, bytes | str):
            k = key.lower() if isinstance(key, bytes) else key.lower().encode("latin-1")
            if k.startswith(prefix):
                return True
    return False


def _value_has_attachments(v: Value) -> bool:
    """``has_attachments(bodystructure_from_value(v))`` without building the tree: same
    answer, same DecodeError cases, several times faster (the summary path)."""
    found = False
    stack: list[tuple[Value, int]] = [(v, 0)]
    while stack:
        part, depth = stack.pop()
        if depth > MAX_BODY_DEPTH:  # a raw part, as ``_body`` makes it: an attachment
            found = True
            continue
        if not isinstance(part, list) or not part:
            raise DecodeError("A BODYSTRUCTURE part is not a list.")
        if isinstance(part[0], list):
            for child in part:
                if not isinstance(child, list):
                    break
                stack.append((child, depth + 1))
            continue
        f = part + [None] * (7 - len(part)) if len(part) < 7 else part
        maintype = (_opt(f[0]) or "text").lower()
        subtype = (_opt(f[1]) or "plain").lower()
        ext_at, inner = _leaf_layout(f, maintype, subtype)
        if inner is not None:
            stack.append((inner, depth + 1))
        if found:
            continue
        ctype = f"{maintype}/{subtype}"
        if ctype in ("message/rfc822", "message/global"):
            found = True
            continue
        if ctype in _SIGNATURES:
            continue
        disp_v = _disposition_value(f, ext_at)
        dparams_v: Value = None
        if isinstance(disp_v, list) and disp_v:
            kind = disp_v[0]
            if not isinstance(kind, list) and (_opt(kind) or "").lower() == "attachment":
                found = True
                continue
            dparams_v = disp_v[1] if len(disp_v) > 1 else None
        elif isinstance(disp_v, bytes | str) and raw_text(disp_v).strip().lower() == "attachment":
            found = True
            continue
        if (_has_key(dparams_v, b"filename") or _has_key(f[2], b"name")) and _filename(
            _disposition(disp_v)[1], _params(f[2])
        ):
            found = True
    return found


def bodystructure_from_value(v: Value) -> BodyPart:
    """Decode BODYSTRUCTURE (or BODY) into a BodyPart tree with RFC 3501 section numbers.

    A multipart root has section ``""`` and children ``"1"``, ``"2"``...; a single-part
    message's body is ``"1"``. A message/rfc822 part ``s`` has one child: its encapsulated
    body, which is ``s.1`` if single-part, or (if multipart) a multipart node with section
    ``s`` whose parts are ``s.1``, ``s.2``... DecodeError on a malformed tree; below
    ``MAX_BODY_DEPTH`` levels the rest is one raw part (application/octet-stream attachment).
    """
    if not isinstance(v, list) or not v:
        raise DecodeError("BODYSTRUCTURE is not a list.")
    return _body(v, "" if isinstance(v[0], list) else "1", 0)


_SIGNATURES = frozenset(
    {"application/pgp-signature", "application/pkcs7-signature", "application/x-pkcs7-signature"}
)


def has_attachments(part: BodyPart) -> bool:
    """Whether a message shows a paperclip: a leaf that ``is_attachment`` (signature parts
    excepted), or an attached message (message/rfc822, which has children)."""
    stack = [part]
    while stack:
        p = stack.pop()
        ctype = p.content_type
        if ctype in ("message/rfc822", "message/global"):
            return True
        if p.is_attachment and ctype not in _SIGNATURES:
            return True
        stack.extend(p.children)
    return False


# --- summaries ----------------------------------------------------------------------------

_REFERENCES_FIELD = re.compile(rb"(?im)^references[ \t]*:((?:.*)(?:\r?\n[ \t].*)*)")


def references_from_fetch(fetch: Fetch) -> tuple[str, ...]:
    """Message-IDs (``<id>``, in order, no duplicates) from a fetched References header."""
    header: bytes | None = None
    for key, v in fetch.items.items():
        if key.startswith("BODY[HEADER.FIELDS") and "REFERENCES" in key and isinstance(v, bytes):
            header = v
            break
    return references_from_header(header) if header else ()


def references_from_header(header: bytes) -> tuple[str, ...]:
    """The Message-IDs of a fetched References header block (see ``references_from_fetch``)."""
    if len(header) <= 2:  # none, or only the blank line that ends the block
        return ()
    fields = b" ".join(m.group(1) for m in _REFERENCES_FIELD.finditer(header))
    return msgids(fields.decode("utf-8", "replace"))


_FOLDING = re.compile(r"\r?\n[ \t]+")


def header_fields_from_fetch(fetch: Fetch, names: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """(name, value) of the fields a ``BODY.PEEK[HEADER.FIELDS (names)]`` item brought, in
    order, values unfolded; () when the item is missing (the server sent no such field)."""
    from email.parser import BytesHeaderParser  # only new mail of an Autocrypt account:
    from email.policy import compat32  # the first screen loads no email parser

    wanted = {n.upper() for n in names}
    for key, v in fetch.items.items():
        head, _, rest = key.upper().replace('"', "").partition("BODY[HEADER.FIELDS (")
        if head or not rest or set(rest.partition(")")[0].split()) != wanted:
            continue  # another item (the summary's REFERENCES); field names may be quoted
        if isinstance(v, bytes):
            parsed = BytesHeaderParser(policy=compat32).parsebytes(v)
            return tuple(
                (name, _FOLDING.sub(" ", str(value)).strip()) for name, value in parsed.items()
            )
    return ()


def summary_from_fetch(fetch: Fetch) -> MessageSummary:
    """A MessageSummary from a FETCH of UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE
    BODYSTRUCTURE [MODSEQ] [BODY.PEEK[HEADER.FIELDS (REFERENCES)]].

    DecodeError only if UID is missing; a broken ENVELOPE gives an empty Envelope, a broken
    BODYSTRUCTURE gives ``has_attachments=False``.
    """
    uid = fetch.uid
    if uid is None:
        raise DecodeError("A FETCH response for a summary has no UID.")
    envelope, references, attachments = decoded_parts(fetch)
    return MessageSummary(
        uid=uid,
        flags=fetch.flags or frozenset(),
        internal_date=fetch.internal_date,
        size=fetch.size or 0,
        envelope=envelope,
        references=references,
        has_attachments=attachments,
        modseq=fetch.modseq,
    )


def decoded_parts(fetch: Fetch) -> tuple[Envelope, tuple[str, ...], bool]:
    """The expensive part of a summary: (envelope, references, has_attachments). Never
    raises: a broken ENVELOPE gives an empty Envelope, a broken BODYSTRUCTURE no paperclip.
    Shared by ``summary_from_fetch`` and the lazy path (``lazy.decode_raw``)."""
    env_v = fetch.envelope
    envelope = Envelope()
    if env_v is not None:
        with contextlib.suppress(DecodeError):
            envelope = envelope_from_value(env_v)
    attachments = False
    body_v = fetch.bodystructure
    if body_v is not None:
        with contextlib.suppress(DecodeError):
            attachments = _value_has_attachments(body_v)
    return envelope, references_from_fetch(fetch), attachments
