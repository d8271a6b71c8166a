"""Pure, linear, hostile-input-safe parsing of IMAP server responses.

Input is one complete response as the framer (``framing.ResponseFramer``) emits it: the
bytes the server sent, literals inlined in wire form (``{n}\\r\\n`` + n bytes), without the
final CRLF (a trailing CRLF is tolerated). No I/O happens here.

Two layers:

* ``read_values`` turns response bytes into a generic value tree (``Value``): atoms are
  ``str`` (bytes taken as Latin-1, so lossless), numbers ``int``, quoted strings and literals
  (also literal8 ``~{n}``) ``bytes``, ``NIL`` is ``None``, parenthesised lists ``list``. A
  fetch-att with a section such as ``BODY[HEADER.FIELDS (A B)]<0>`` is one atom. The reader is
  a loop over regex tokens with an explicit stack (no recursion), linear in the input, and
  raises only ``ParseError`` on malformed input (nesting is bounded by ``max_depth``).
* ``parse_untagged`` / ``parse_tagged`` / ``parse_response`` decode a response into one of the
  typed dataclasses below. Unknown untagged responses become ``Unknown`` rather than errors;
  a known response that is malformed raises ``ParseError``.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar, TypeAlias, cast

from kittiwake.core.imap.parseerror import DecodeError, ParseError
from kittiwake.core.imap.uidset import UidSet, parse_ranges
from kittiwake.core.message import utf7
from kittiwake.core.message.dates import MONTHS, tz_for_offset
from kittiwake.core.models import FolderInfo, FolderRole, shared_flags

__all__ = [
    "MAX_DEPTH",
    "QUIRKS",
    "AppendUid",
    "Bad",
    "Bye",
    "Capability",
    "Condition",
    "Continuation",
    "CopyUid",
    "DecodeError",
    "ESearch",
    "Enabled",
    "Exists",
    "Expunge",
    "Fetch",
    "Flags",
    "ListItem",
    "Namespace",
    "No",
    "Ok",
    "ParseError",
    "PreAuth",
    "Quirk",
    "Recent",
    "ResponseCode",
    "Search",
    "Status",
    "Tagged",
    "UidSet",
    "Unknown",
    "Untagged",
    "Value",
    "Vanished",
    "parse_internaldate",
    "parse_response",
    "parse_tagged",
    "parse_untagged",
    "read_values",
]

Value: TypeAlias = str | int | bytes | list["Value"] | None

#: Default bound on list nesting. Real responses stay far below it (a BODYSTRUCTURE ten MIME
#: levels deep nests ~20 lists); deeper input is hostile and raises ParseError.
MAX_DEPTH = 256

# --- the reader ---------------------------------------------------------------------------
#
# One token per match; leading blanks are skipped. Groups: 1 quoted, 2 "(", 3 ")", 4 number,
# 5 atom, 6 anything else (an error); trailing blanks match as an empty token. An atom may
# carry "[...]" sections (which may hold blanks and parens, never CR/LF or another "[") and
# "<origin>"; "]" is an atom character (ASTRING-CHAR), "[" without a closing "]" too.
# Possessive quantifiers keep every branch linear. Numbers have no leading zeros (so "007"
# stays the atom it may be, a mailbox name) and at most 20 digits (int() of a huge digit
# string is slow and capped).
_TOKEN = re.compile(
    rb' *+(?:("[^"\\]*+(?:\\.[^"\\]*+)*+")'
    rb"|(\()"
    rb"|(\))"
    rb'|(0|[1-9][0-9]{0,19})(?![^\x00-\x20\x7f()"{])'
    rb'|((?:[^\x00-\x20\x7f()"{\[]++|\[[^\]\[\r\n]*+\]|\[)++)'
    rb"|(.)|\Z)",
    re.DOTALL,
)
# A literal announcement ends the line it is on: "{n}", "{n+}" or "~{n}" right before CRLF.
_LITERAL_TAIL = re.compile(rb"~?\{([0-9]{1,20})\+?\}\Z")
_UNESCAPE = re.compile(rb"\\(.)", re.DOTALL)
_NIL = frozenset(bytes("".join(chars), "ascii") for chars in itertools.product("Nn", "Ii", "Ll"))

# The fast path splits a segment at '"' (C speed; a regex split if there are escaped quotes),
# joins the pieces outside quotes with a NUL standing for each quoted string, pads parens
# with blanks and splits at blanks: one flat token list from a few C calls, then one cheap
# loop. It is used only when it provably gives what _TOKEN gives: balanced quotes, no
# control character, '"' or "{" outside quotes, and no quoted string inside a "[...]"
# section; anything else (all malformed input included) takes the regex path, whose errors
# are the reference. Blanks and parens inside sections are protected by stand-in control
# characters (absent from valid text) while splitting.
_QUOTED_SPLIT = re.compile(rb'"([^"\\]*+(?:\\.[^"\\]*+)*+)"', re.DOTALL)
_BAD_OUTSIDE = bytes(range(1, 32)) + b'\x7f{"'
_SECTION = re.compile(rb"\[[^\]\[]*\]")
_PROTECT = bytes.maketrans(b" ()", b"\x01\x02\x03")
_RESTORE = str.maketrans("\x01\x02\x03", " ()")
# 1: a quoted string, 2: "(", 3: ")", 4: NIL; 0 (absent): an atom or a number.
_SPECIAL: dict[bytes, int] = {b"\x00": 1, b"(": 2, b")": 3}
_SPECIAL.update(dict.fromkeys(_NIL, 4))


class _Fallback(Exception):
    """The fast path cannot vouch for this segment."""


def _protect(m: re.Match[bytes]) -> bytes:
    section = m.group()
    if b"\x00" in section:
        raise _Fallback
    return section.translate(_PROTECT)


def _segment_slow(
    data: bytes,
    pos: int,
    seg_end: int,
    cur: list[Value],
    stack: list[list[Value]],
    max_depth: int,
) -> list[Value]:
    """Tokenise ``data[pos:seg_end]`` into ``cur`` with the token regex; returns new ``cur``."""
    for q, o, c, n, a, x in _TOKEN.findall(data, pos, seg_end):
        if q:
            s = q[1:-1]
            if b"\\" in s:
                s = _UNESCAPE.sub(rb"\1", s)
            cur.append(s)
        elif o:
            if len(stack) >= max_depth:
                raise ParseError(f"The server sent lists nested deeper than {max_depth}.")
            new: list[Value] = []
            cur.append(new)
            stack.append(cur)
            cur = new
        elif c:
            if not stack:
                raise ParseError("The server sent an unbalanced ')'.")
            cur = stack.pop()
        elif n:
            cur.append(int(n))
        elif a:
            cur.append(None if a in _NIL else a.decode("latin-1"))
        elif x:
            raise ParseError(f"The server sent an unexpected {x!r} in a response.")
    return cur


def _segment(
    data: bytes,
    pos: int,
    seg_end: int,
    cur: list[Value],
    stack: list[list[Value]],
    max_depth: int,
) -> list[Value]:
    """Tokenise ``data[pos:seg_end]`` into ``cur`` (fast path, see above); returns new ``cur``."""
    seg = data[pos:seg_end]
    parts = seg.split(b'"')
    if not len(parts) & 1:
        return _segment_slow(data, pos, seg_end, cur, stack, max_depth)
    quoted = parts[1::2]
    if quoted:
        joined = b"\x00".join(quoted)
        if b"\\" in joined:
            if b"\\\x00" in joined or joined.endswith(b"\\"):  # maybe an escaped quote
                parts = _QUOTED_SPLIT.split(seg)
                quoted = parts[1::2]
            quoted = [_UNESCAPE.sub(rb"\1", q) if b"\\" in q else q for q in quoted]
    outside = b" \x00 ".join(parts[0::2])
    if len(outside.translate(None, _BAD_OUTSIDE)) != len(outside) or outside.count(b"\x00") != len(
        quoted
    ):
        return _segment_slow(data, pos, seg_end, cur, stack, max_depth)
    protected = b"[" in outside
    if protected and quoted and any(p.rfind(b"[") > p.rfind(b"]") for p in parts[0::2]):
        # A "[" left open before a quote: the reference reads a section running across the
        # quote ("[\"]" is one atom there), which the split at quotes cannot see.
        return _segment_slow(data, pos, seg_end, cur, stack, max_depth)
    if protected:
        try:
            outside = _SECTION.sub(_protect, outside)
        except _Fallback:
            return _segment_slow(data, pos, seg_end, cur, stack, max_depth)
    next_quoted = iter(quoted).__next__
    special = _SPECIAL.get
    app = cur.append
    push = stack.append
    pop = stack.pop
    depth = len(stack)
    for t in outside.replace(b"(", b" ( ").replace(b")", b" ) ").split():
        k = special(t, 0)
        if k == 1:
            app(next_quoted())
        elif k == 2:
            depth += 1
            if depth > max_depth:
                raise ParseError(f"The server sent lists nested deeper than {max_depth}.")
            new: list[Value] = []
            app(new)
            push(cur)
            cur = new
            app = new.append
        elif k == 3:
            if not depth:
                raise ParseError("The server sent an unbalanced ')'.")
            depth -= 1
            cur = pop()
            app = cur.append
        elif k == 4:
            app(None)
        elif t.isdigit() and len(t) <= 20 and (t[0] != 0x30 or len(t) == 1):
            app(int(t))
        else:
            a = t.decode("latin-1")
            if protected and "[" in a:
                a = a.translate(_RESTORE)
            app(a)
    return cur


def read_values(
    data: bytes, pos: int = 0, end: int | None = None, *, max_depth: int = MAX_DEPTH
) -> list[Value]:
    """The values in ``data[pos:end]``, as a list (see the module docstring).

    Raises ParseError on unbalanced parens, an unterminated quoted string, a stray ``{``,
    CR/LF or control character outside a literal, a literal overrunning the data, or
    nesting deeper than ``max_depth``.
    """
    if not isinstance(data, bytes):
        data = bytes(data)
    if end is None or end > len(data):
        end = len(data)
    return _read(data, pos, end, max_depth, _segment)


_SegmentFn = Callable[[bytes, int, int, list[Value], list[list[Value]], int], list[Value]]


def _read(data: bytes, pos: int, end: int, max_depth: int, segment: _SegmentFn) -> list[Value]:
    top: list[Value] = []
    cur = top
    stack: list[list[Value]] = []
    find = data.find
    while True:
        crlf = find(b"\r\n", pos, end)
        literal = -1
        if crlf < 0:
            seg_end = end
        else:
            m = _LITERAL_TAIL.search(data, max(pos, crlf - 24), crlf)
            if m is not None:
                seg_end = m.start()
                literal = int(m.group(1))
            elif crlf + 2 == end:  # a trailing line terminator
                seg_end = crlf
            else:
                raise ParseError("The server sent a line break outside a literal.")
        if seg_end > pos:
            cur = segment(data, pos, seg_end, cur, stack, max_depth)
        if literal < 0:
            break
        start = crlf + 2
        pos = start + literal
        if pos > end:
            raise ParseError("A literal is longer than the response that holds it.")
        cur.append(data[start:pos])
    if stack:
        raise ParseError("The server sent an unbalanced '('.")
    return top


def _read_values_slow(data: bytes, max_depth: int = MAX_DEPTH) -> list[Value]:
    """``read_values`` with the regex tokenizer only (for tests: both must agree)."""
    return _read(bytes(data), 0, len(data), max_depth, _segment_slow)


# --- small value helpers ------------------------------------------------------------------


def text_of(v: Value) -> str:
    """A string-ish value as text: bytes as UTF-8 (Latin-1 if invalid), NIL as ""."""
    if isinstance(v, str):
        return v
    if isinstance(v, bytes):
        try:
            return v.decode("utf-8")
        except UnicodeDecodeError:
            return v.decode("latin-1")
    if v is None:
        return ""
    if isinstance(v, int):
        return str(v)
    raise DecodeError("Expected a string, got a list.")


def _int(v: Value, what: str) -> int:
    if isinstance(v, int):
        return v
    if isinstance(v, str | bytes) and v.isdigit() and len(v) <= 20:
        return int(v)
    raise DecodeError(f"Expected a number for {what}, got {type(v).__name__}.")


def _seqset_text(v: Value) -> str:
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str | bytes):
        return text_of(v)
    raise DecodeError("Expected a sequence set.")


def _list(v: Value, what: str) -> list[Value]:
    if isinstance(v, list):
        return v
    raise DecodeError(f"Expected a list for {what}.")


_SYSTEM_FLAGS = {
    f.lower(): f
    for f in ("\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft", "\\Recent", "\\*")
}


def _flag_set(v: Value) -> frozenset[str]:
    out: list[str] = []
    for f in _list(v, "flags"):
        if isinstance(f, list):
            continue
        s = text_of(f)
        if s.startswith("\\"):
            s = _SYSTEM_FLAGS.get(s.lower(), s)
        if s:
            out.append(s)
    return shared_flags(frozenset(out))


def _mailbox(v: Value, utf8: bool) -> tuple[str, str]:
    """(decoded name, raw name) of a mailbox astring."""
    if isinstance(v, bytes):
        raw = v
    elif isinstance(v, str):
        raw = v.encode("latin-1")  # atoms were decoded as Latin-1: this is lossless
    elif isinstance(v, int):
        raw = str(v).encode("ascii")
    elif v is None:
        raw = b"NIL"  # an atom NIL in astring position is a mailbox called NIL
    else:
        raise DecodeError("Expected a mailbox name, got a list.")
    raw_text = raw.decode("utf-8", "surrogateescape")
    decoded = raw.decode("utf-8", "replace") if utf8 else utf7.decode(raw)
    if decoded.upper() == "INBOX":
        decoded = "INBOX"
    return decoded, raw_text


# --- INTERNALDATE -------------------------------------------------------------------------

_INTERNALDATE = re.compile(
    r"\s*(\d{1,2})-([A-Za-z]{3})-(\d{4}) (\d{1,2}):(\d{2}):(\d{2})(?: ([+-])(\d{2})(\d{2}))?\s*"
)


def parse_internaldate(v: Value) -> datetime | None:
    """An INTERNALDATE (``"17-Jul-1996 02:44:25 -0700"``) as an aware datetime, else None."""
    if isinstance(v, bytes):
        v = v.decode("latin-1")
    if not isinstance(v, str):
        return None
    m = _INTERNALDATE.fullmatch(v)
    if m is None:
        return None
    day, mon, year, hh, mm, ss, sign, tzh, tzm = m.groups()
    month = MONTHS.get(mon.lower())
    if month is None:
        return None
    offset = 0
    if sign is not None:
        offset = int(tzh) * 60 + int(tzm)
        if sign == "-":
            offset = -offset
    if abs(offset) >= 24 * 60:
        return None
    try:
        return datetime(
            int(year), month, int(day), int(hh), int(mm), int(ss), tzinfo=tz_for_offset(offset)
        )
    except ValueError:
        return None


# --- response codes -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CopyUid:
    """``[COPYUID uidvalidity source dest]`` (RFC 4315)."""

    uidvalidity: int
    source: UidSet
    dest: UidSet
    source_order: tuple[tuple[int, int], ...] = ()
    dest_order: tuple[tuple[int, int], ...] = ()

    def pairs(self) -> Iterator[tuple[int, int]]:
        """(source uid, destination uid) in the server's correspondence order."""
        src = self.source_order or self.source.ranges
        dst = self.dest_order or self.dest.ranges

        def expand(ranges: tuple[tuple[int, int], ...]) -> Iterator[int]:
            for a, b in ranges:
                yield from range(a, b + 1)

        return zip(expand(src), expand(dst), strict=False)


@dataclass(frozen=True, slots=True)
class AppendUid:
    """``[APPENDUID uidvalidity uids]`` (RFC 4315; a set with MULTIAPPEND)."""

    uidvalidity: int
    uids: UidSet


CodeValue: TypeAlias = (
    int | UidSet | frozenset[str] | tuple[str, ...] | CopyUid | AppendUid | str | None
)


@dataclass(frozen=True, slots=True)
class ResponseCode:
    """A ``[NAME args]`` response code. ``name`` is upper case; ``value`` is typed for the
    codes the engine uses (int for UIDVALIDITY/UIDNEXT/UNSEEN/HIGHESTMODSEQ/APPENDLIMIT,
    frozenset for PERMANENTFLAGS/CAPABILITY, CopyUid, AppendUid, UidSet for MODIFIED, tuple
    for BADCHARSET), None for codes without arguments, else the raw argument text."""

    name: str
    value: CodeValue = None
    raw: str = ""

    @property
    def int_value(self) -> int | None:
        return self.value if isinstance(self.value, int) else None


_INT_CODES = frozenset({"UIDVALIDITY", "UIDNEXT", "UNSEEN", "HIGHESTMODSEQ", "APPENDLIMIT"})
_CODE_NAME = re.compile(rb"\[([^\x00-\x20\x7f()\"{\[\]]+)")
# The end of a code's arguments: the first "]" outside a quoted string.
_CODE_ARGS = re.compile(rb'(?:[^\]"\r\n]++|"(?:[^"\\\r\n]|\\.)*+")*+\]', re.DOTALL)


def _code_value(name: str, args: bytes) -> CodeValue:
    if name == "CAPABILITY":
        return frozenset(w.upper() for w in args.decode("latin-1").split())
    if not args.strip():
        return None
    try:
        vals = read_values(args, max_depth=8)
        if name in _INT_CODES:
            return _int(vals[0], name)
        if name == "PERMANENTFLAGS":
            return _flag_set(vals[0])
        if name == "BADCHARSET":
            return tuple(text_of(v) for v in _list(vals[0], name))
        if name == "COPYUID":
            validity = _int(vals[0], name)
            src = parse_ranges(_seqset_text(vals[1]))
            dst = parse_ranges(_seqset_text(vals[2]))
            return CopyUid(validity, UidSet(src), UidSet(dst), tuple(src), tuple(dst))
        if name == "APPENDUID":
            return AppendUid(_int(vals[0], name), UidSet.parse(_seqset_text(vals[1])))
        if name == "MODIFIED":
            return UidSet.parse(_seqset_text(vals[0]))
    except (ParseError, IndexError):
        pass
    return args.decode("utf-8", "replace").strip()


def _resp_text(data: bytes, pos: int) -> tuple[ResponseCode | None, str]:
    """Parse ``resp-text`` (``[code] text``) at ``pos``; never raises."""
    end = len(data)
    if data.endswith(b"\r\n"):
        end -= 2
    while pos < end and data[pos] == 0x20:
        pos += 1
    code: ResponseCode | None = None
    if pos < end and data[pos] == 0x5B:  # "["
        m = _CODE_NAME.match(data, pos, end)
        close = data.find(b"]", pos, end)
        if m is not None and close >= 0:
            name = m.group(1).decode("latin-1").upper()
            args_start = m.end()
            if data[args_start] == 0x5D:  # "]" right after the name
                code = ResponseCode(name)
                pos = args_start + 1
            elif data[args_start] == 0x20:
                am = _CODE_ARGS.match(data, args_start, end)
                args_end = am.end() - 1 if am is not None else close
                args = data[args_start + 1 : args_end]
                code = ResponseCode(
                    name, _code_value(name, args), args.decode("utf-8", "replace").strip()
                )
                pos = args_end + 1
            if code is not None and pos < end and data[pos] == 0x20:
                pos += 1
    return code, data[pos:end].decode("utf-8", "replace")


# --- response types -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Condition:
    """A status response: ``OK``/``NO``/``BAD``/``BYE``/``PREAUTH`` with code and text."""

    status: ClassVar[str] = ""
    code: ResponseCode | None
    text: str

    @property
    def code_name(self) -> str | None:
        return self.code.name if self.code is not None else None


@dataclass(frozen=True, slots=True)
class Ok(Condition):
    status: ClassVar[str] = "OK"


@dataclass(frozen=True, slots=True)
class No(Condition):
    status: ClassVar[str] = "NO"


@dataclass(frozen=True, slots=True)
class Bad(Condition):
    status: ClassVar[str] = "BAD"


@dataclass(frozen=True, slots=True)
class Bye(Condition):
    status: ClassVar[str] = "BYE"


@dataclass(frozen=True, slots=True)
class PreAuth(Condition):
    status: ClassVar[str] = "PREAUTH"


@dataclass(frozen=True, slots=True)
class Tagged:
    """A tagged completion: ``tag`` and its result (Ok, No or Bad)."""

    tag: str
    result: Ok | No | Bad

    @property
    def ok(self) -> bool:
        return isinstance(self.result, Ok)


@dataclass(frozen=True, slots=True)
class Continuation:
    """A ``+`` continuation request; ``text`` is the rest of the line (base64 for SASL)."""

    code: ResponseCode | None
    text: str


def _section_key(spec: str) -> str:
    """Normalise a section spec for comparison: upper case, no quotes, single blanks."""
    return " ".join(spec.upper().replace('"', "").split())


_ORIGIN = re.compile(r"<\d+>\Z")
_UINT32 = 2**32 - 1
#: Mod-sequences (RFC 7162) and sizes stay below 2^63; larger numbers overflow the cache.
_INT63 = 2**63 - 1


@dataclass(frozen=True, slots=True)
class Fetch:
    """``* seq FETCH (...)``. ``items`` maps upper-case item names (sections included, as
    the server wrote them, e.g. ``BODY[HEADER.FIELDS (REFERENCES)]``) to raw values."""

    seq: int
    items: dict[str, Value] = field(default_factory=dict, hash=False)
    #: Why the response could not be read ("" if it could): ``items`` then holds only what
    #: was salvaged (UID, FLAGS), and the caller shows the message from its raw headers.
    degraded: str = ""

    def get(self, name: str) -> Value:
        return self.items.get(name.upper())

    @property
    def uid(self) -> int | None:
        """UID, None if absent or outside 1..2^32-1 (a UID no command could name)."""
        v = self.items.get("UID")
        return v if isinstance(v, int) and 0 < v <= _UINT32 else None

    @property
    def flags(self) -> frozenset[str] | None:
        """FLAGS, with system flags in canonical case; None if not fetched."""
        v = self.items.get("FLAGS")
        return _flag_set(v) if isinstance(v, list) else None

    @property
    def modseq(self) -> int | None:
        v = self.items.get("MODSEQ")
        if isinstance(v, list) and v:
            v = v[0]
        return v if isinstance(v, int) and v <= _INT63 else None

    @property
    def size(self) -> int | None:
        """RFC822.SIZE, None if absent or beyond what a 64-bit signed integer holds."""
        v = self.items.get("RFC822.SIZE")
        return v if isinstance(v, int) and v <= _INT63 else None

    @property
    def internal_date(self) -> datetime | None:
        return parse_internaldate(self.items.get("INTERNALDATE"))

    @property
    def envelope(self) -> Value:
        """The raw ENVELOPE value (decode with ``decode.envelope_from_value``)."""
        return self.items.get("ENVELOPE")

    @property
    def bodystructure(self) -> Value:
        """The raw BODYSTRUCTURE (or non-extensible BODY) value."""
        v = self.items.get("BODYSTRUCTURE")
        if v is None:
            v = self.items.get("BODY")
        return v if isinstance(v, list) else None

    def section(self, spec: str = "", *, binary: bool = False) -> bytes | None:
        """The data of ``BODY[spec]`` (``BINARY[spec]`` if ``binary``), any origin.

        ``spec`` is compared case-insensitively, ignoring quotes and extra blanks, so
        ``section("header.fields (References)")`` finds ``BODY[HEADER.FIELDS (REFERENCES)]``.
        Returns None if absent or NIL.
        """
        prefix = "BINARY[" if binary else "BODY["
        want = _section_key(spec)
        for key, v in self.items.items():
            if not key.startswith(prefix):
                continue
            inner = _ORIGIN.sub("", key)[len(prefix) :]
            if inner.endswith("]") and _section_key(inner[:-1]) == want:
                if isinstance(v, bytes):
                    return v
                if isinstance(v, str):
                    return v.encode("latin-1")
                return None
        return None

    @property
    def gm_labels(self) -> tuple[str, ...] | None:
        """Gmail ``X-GM-LABELS`` (modified UTF-7 decoded), None if not fetched."""
        v = self.items.get("X-GM-LABELS")
        if not isinstance(v, list):
            return None
        out: list[str] = []
        for label in v:
            if isinstance(label, str | bytes):
                out.append(utf7.decode(label))
            elif isinstance(label, int):
                out.append(str(label))
        return tuple(out)

    @property
    def gm_msgid(self) -> int | None:
        v = self.items.get("X-GM-MSGID")
        return v if isinstance(v, int) else None

    @property
    def gm_thrid(self) -> int | None:
        v = self.items.get("X-GM-THRID")
        return v if isinstance(v, int) else None


@dataclass(frozen=True, slots=True)
class Exists:
    count: int


@dataclass(frozen=True, slots=True)
class Recent:
    count: int


@dataclass(frozen=True, slots=True)
class Expunge:
    seq: int


@dataclass(frozen=True, slots=True)
class Vanished:
    """``* VANISHED [(EARLIER)] uids`` (RFC 7162 QRESYNC)."""

    uids: UidSet
    earlier: bool = False


@dataclass(frozen=True, slots=True)
class Flags:
    flags: frozenset[str]


_ROLE_ATTRS = {
    "\\all": FolderRole.ALL,
    "\\archive": FolderRole.ARCHIVE,
    "\\drafts": FolderRole.DRAFTS,
    "\\flagged": FolderRole.FLAGGED,
    "\\junk": FolderRole.JUNK,
    "\\sent": FolderRole.SENT,
    "\\trash": FolderRole.TRASH,
    # Gmail's XLIST names
    "\\inbox": FolderRole.INBOX,
    "\\allmail": FolderRole.ALL,
    "\\spam": FolderRole.JUNK,
    "\\starred": FolderRole.FLAGGED,
}


@dataclass(frozen=True, slots=True)
class ListItem:
    """``* LIST`` / ``* LSUB`` / ``* XLIST``.

    ``name_raw`` is the name exactly as the server sent it (modified UTF-7, or UTF-8 under
    UTF8=ACCEPT), as UTF-8 text with surrogate escapes, so ``name_raw.encode("utf-8",
    "surrogateescape")`` is the wire name: send that back in SELECT. ``name_decoded`` is for
    people; INBOX is always spelled ``INBOX``.
    """

    attributes: frozenset[str]
    delimiter: str | None
    name_decoded: str
    name_raw: str
    command: str = "LIST"
    childinfo: frozenset[str] = frozenset()
    extended: dict[str, Value] = field(default_factory=dict, hash=False)

    @property
    def attributes_lower(self) -> frozenset[str]:
        return frozenset(a.lower() for a in self.attributes)

    @property
    def role(self) -> FolderRole | None:
        """INBOX, else the SPECIAL-USE (RFC 6154) or XLIST role, else None."""
        if self.name_decoded == "INBOX":
            return FolderRole.INBOX
        for a in sorted(self.attributes_lower):
            role = _ROLE_ATTRS.get(a)
            if role is not None:
                return role
        return None

    @property
    def selectable(self) -> bool:
        attrs = self.attributes_lower
        return "\\noselect" not in attrs and "\\nonexistent" not in attrs

    @property
    def subscribed(self) -> bool:
        return self.command == "LSUB" or "\\subscribed" in self.attributes_lower

    def folder_info(self, subscribed: bool | None = None) -> FolderInfo:
        return FolderInfo(
            name=self.name_decoded,
            delimiter=self.delimiter,
            role=self.role,
            attributes=self.attributes,
            subscribed=self.subscribed if subscribed is None else subscribed,
        )


@dataclass(frozen=True, slots=True)
class Status:
    """``* STATUS mailbox (MESSAGES n UNSEEN n ...)``; ``values`` has upper-case keys."""

    mailbox: str
    mailbox_raw: str
    values: dict[str, int] = field(default_factory=dict, hash=False)

    @property
    def messages(self) -> int | None:
        return self.values.get("MESSAGES")

    @property
    def unseen(self) -> int | None:
        return self.values.get("UNSEEN")

    @property
    def recent(self) -> int | None:
        return self.values.get("RECENT")

    @property
    def uidnext(self) -> int | None:
        return self.values.get("UIDNEXT")

    @property
    def uidvalidity(self) -> int | None:
        return self.values.get("UIDVALIDITY")

    @property
    def highestmodseq(self) -> int | None:
        return self.values.get("HIGHESTMODSEQ")


@dataclass(frozen=True, slots=True)
class Search:
    """``* SEARCH n n ... [(MODSEQ m)]``: UIDs after UID SEARCH, else sequence numbers."""

    uids: tuple[int, ...]
    modseq: int | None = None


@dataclass(frozen=True, slots=True)
class ESearch:
    """``* ESEARCH (TAG "t") [UID] MIN n MAX n COUNT n ALL set MODSEQ m`` (RFC 4731)."""

    tag: str | None = None
    uid: bool = False
    all: UidSet | None = None
    count: int | None = None
    min: int | None = None
    max: int | None = None
    modseq: int | None = None
    extra: dict[str, Value] = field(default_factory=dict, hash=False)


@dataclass(frozen=True, slots=True)
class Capability:
    """``* CAPABILITY ...``; names upper case."""

    capabilities: frozenset[str]


@dataclass(frozen=True, slots=True)
class Enabled:
    """``* ENABLED ...`` (RFC 5161); names upper case."""

    capabilities: frozenset[str]


NamespaceList: TypeAlias = tuple[tuple[str, str | None], ...]


@dataclass(frozen=True, slots=True)
class Namespace:
    """``* NAMESPACE`` (RFC 2342): (prefix, delimiter) pairs per class."""

    personal: NamespaceList = ()
    other: NamespaceList = ()
    shared: NamespaceList = ()


@dataclass(frozen=True, slots=True)
class Unknown:
    """An untagged response this module does not decode; ``name`` is its keyword."""

    raw: bytes
    name: str = ""


Untagged: TypeAlias = (
    Fetch
    | Exists
    | Expunge
    | Recent
    | Vanished
    | Flags
    | ListItem
    | Status
    | Search
    | ESearch
    | Capability
    | Enabled
    | Namespace
    | Ok
    | No
    | Bad
    | Bye
    | PreAuth
    | Unknown
)

# --- the quirks of real servers -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Quirk:
    """One way real servers bend the grammar, and what Kittiwake makes of it.

    ``example`` is a response showing it; ``tests/unit/test_imap_quirks.py`` parses every
    example and checks the outcome ``handling`` promises, so the table cannot drift.
    """

    name: str
    seen: str
    example: bytes
    handling: str


QUIRKS: tuple[Quirk, ...] = (
    Quirk(
        "nil-in-envelope",
        "Exchange, some Zimbra",
        b"* 1 FETCH (UID 1 ENVELOPE (NIL NIL ((NIL NIL NIL NIL)) NIL NIL "
        b'((NIL NIL "bob" NIL)) NIL NIL NIL NIL))',
        "NIL where a string belongs is an empty string; an address without mailbox and "
        "host is dropped, one without host keeps its local part",
    ),
    Quirk(
        "nil-in-bodystructure",
        "Exchange",
        b"* 1 FETCH (UID 1 BODYSTRUCTURE (NIL NIL NIL NIL NIL NIL NIL))",
        "a NIL type, subtype, encoding or size reads as text/plain, no encoding, size 0",
    ),
    Quirk(
        "unescaped-quote",
        "Exchange, old Domino",
        b'* 1 FETCH (UID 1 ENVELOPE (NIL "The "best" offer" NIL NIL NIL NIL NIL NIL NIL "<a@b>"))',
        "when the strict reading fails or leaves an ENVELOPE without ten fields, a quote "
        "closes its string only before ')', the end, or a blank and the start of a value",
    ),
    Quirk(
        "stray-spaces",
        "Exchange, Yahoo",
        b"*  1  FETCH ( UID 1  FLAGS (\\Seen )  RFC822.SIZE 3 )",
        "runs of blanks count as one, blanks before ')' or after '(' are ignored",
    ),
    Quirk(
        "empty-continuation",
        "Exchange (AUTHENTICATE, APPEND), iCloud",
        b"+",
        "a '+' without a blank or text is a continuation with empty text",
    ),
    Quirk(
        "number-out-of-range",
        "iCloud (RFC822.SIZE), broken proxies",
        b"* 1 FETCH (UID 1 RFC822.SIZE 18446744073709551615 MODSEQ (18446744073709551616))",
        "a size or mod-sequence beyond 2^63-1 is unknown, a UID outside 1..2^32-1 absent, a "
        "number of more than 20 digits an atom: never an overflow in the cache",
    ),
    Quirk(
        "trailing-space-capability",
        "Yahoo, Exchange",
        b"* CAPABILITY IMAP4rev1 IDLE ",
        "ignored",
    ),
    Quirk("trailing-space-search", "Exchange, Yahoo", b"* SEARCH 2 3 ", "ignored"),
    Quirk(
        "trailing-space-status",
        "Exchange",
        b"* STATUS INBOX (MESSAGES 3 UIDNEXT 4 ) ",
        "ignored",
    ),
    Quirk(
        "unreadable-fetch",
        "any (a message the server describes wrongly)",
        b'* 7 FETCH (UID 9 FLAGS (\\Seen) ENVELOPE ("x" {99}\r\nshort))',
        "the message is degraded, not dropped: UID and FLAGS are salvaged from before the "
        "first string, and the client shows it from BODY.PEEK[HEADER]; the command's other "
        "responses are untouched",
    ),
)

# --- decoders per response ----------------------------------------------------------------


def _single_list(data: bytes, pos: int, what: str) -> list[Value]:
    vals = read_values(data, pos)
    if len(vals) != 1 or not isinstance(vals[0], list):
        raise ParseError(f"The server sent a malformed {what} response.")
    return vals[0]


def _fetch_items(data: bytes, pos: int) -> dict[str, Value]:
    lst = _single_list(data, pos, "FETCH")
    if len(lst) % 2:
        raise ParseError("The server sent a FETCH response with an odd number of items.")
    keys = lst[0::2]
    if not set(map(type, keys)) <= {str}:
        raise ParseError("The server sent a FETCH item name that is not an atom.")
    names = map(str.upper, cast("list[str]", keys))  # checked just above
    return dict(zip(names, lst[1::2], strict=True))


def _envelope_fits(items: dict[str, Value]) -> bool:
    envelope = items.get("ENVELOPE")
    return not isinstance(envelope, list) or len(envelope) == 10


def _fetch(seq: int, data: bytes, pos: int) -> Fetch:
    """A FETCH response, read as strictly as the grammar says, else with the tolerant quote
    rule (QUIRKS: unescaped-quote), else what can be salvaged, marked ``degraded``: one
    message the server describes wrongly never hides the others (per-message isolation)."""
    strict: dict[str, Value] | None = None
    try:
        strict = _fetch_items(data, pos)
    except ParseError as e:
        error = str(e)
    if strict is not None and (_envelope_fits(strict) or b'"' not in data):
        return Fetch(seq, strict)
    if b'"' in data:
        try:
            tolerant = _fetch_items(_requote(data, pos), pos)
        except ParseError:
            pass
        else:
            if strict is None or _envelope_fits(tolerant):
                return Fetch(seq, tolerant)
    if strict is not None:  # an ENVELOPE of the wrong length: decode pads or cuts it
        return Fetch(seq, strict)
    return Fetch(seq, _salvage(data, pos), degraded=error)


# A '"' inside a quoted string closes it only when what follows can follow a string in a
# FETCH response: ")", the end, or a blank and the start of another value (a quote, a list,
# a literal, NIL, a number, an upper-case item name). Anything else is the text's own quote.
_CLOSES = re.compile(
    rb'\)|\r\n|\Z| +(?:["(]|~?\{|(?i:NIL)(?=[ )]|\Z)|[0-9]+(?=[ )]|\Z)'
    rb'|[A-Z][A-Z0-9.\-]*(?:\[[^\]\r\n"]*\])?(?:<[0-9]+>)?(?=[ (]))'
)
_LITERAL_AT = re.compile(rb"~?\{([0-9]{1,20})\+?\}\r\n")


def _requote(data: bytes, pos: int) -> bytes:
    """``data`` with the quotes that cannot close their string escaped (linear: each byte is
    looked at once, the look-ahead is bounded by the next blank)."""
    out = bytearray(data[:pos])
    i, n, quoted = pos, len(data), False
    while i < n:
        c = data[i]
        if quoted:
            if c == 0x5C and i + 1 < n:  # an escape: keep it and its character
                out += data[i : i + 2]
                i += 2
                continue
            if c == 0x22:
                if _CLOSES.match(data, i + 1):
                    quoted = False
                    out.append(c)
                else:
                    out += b'\\"'
                i += 1
                continue
        elif c == 0x22:
            quoted = True
        elif c == 0x7B or c == 0x7E:
            m = _LITERAL_AT.match(data, i)
            if m is not None:  # copy the literal untouched
                stop = min(n, m.end() + int(m.group(1)))
                out += data[i:stop]
                i = stop
                continue
        out.append(c)
        i += 1
    return bytes(out)


_SALVAGE_UID = re.compile(rb"[( ]UID +([0-9]{1,10})(?=[ )]|\Z)", re.IGNORECASE)
_SALVAGE_FLAGS = re.compile(rb"[( ]FLAGS +\(([^()\"{]*)\)", re.IGNORECASE)


def _salvage(data: bytes, pos: int) -> dict[str, Value]:
    """UID and FLAGS of a FETCH response that cannot be read, taken only from before its
    first quoted string or literal (where a subject cannot fake them)."""
    stop = len(data)
    for ch in (b'"', b"{"):
        at = data.find(ch, pos)
        if 0 <= at < stop:
            stop = at
    items: dict[str, Value] = {}
    m = _SALVAGE_UID.search(data, pos, stop)
    if m is not None:
        items["UID"] = int(m.group(1))
    m = _SALVAGE_FLAGS.search(data, pos, stop)
    if m is not None:
        items["FLAGS"] = [f.decode("latin-1") for f in m.group(1).split()]
    return items


def _list_item(command: str, data: bytes, pos: int, utf8: bool) -> ListItem:
    vals = read_values(data, pos)
    attr_list = vals[0] if vals else None
    if len(vals) < 3 or not isinstance(attr_list, list):
        raise ParseError(f"The server sent a malformed {command} response.")
    attrs = frozenset(text_of(a) for a in attr_list if not isinstance(a, list))
    delim_v = vals[1]
    if isinstance(delim_v, list):
        raise ParseError(f"The server sent a malformed {command} delimiter.")
    delimiter = text_of(delim_v) if delim_v is not None else None
    if delimiter == "":
        delimiter = None
    name, raw = _mailbox(vals[2], utf8)
    extended: dict[str, Value] = {}
    childinfo: frozenset[str] = frozenset()
    if len(vals) > 3 and isinstance(vals[3], list):
        ext = vals[3]
        for i in range(0, len(ext) - 1, 2):
            tag = ext[i]
            if isinstance(tag, list):
                continue
            key = text_of(tag).upper()
            value = ext[i + 1]
            extended[key] = value
            if key == "CHILDINFO" and isinstance(value, list):
                childinfo = frozenset(text_of(c).upper() for c in value if not isinstance(c, list))
    return ListItem(attrs, delimiter, name, raw, command, childinfo, extended)


def _status(data: bytes, pos: int, utf8: bool) -> Status:
    vals = read_values(data, pos)
    if len(vals) != 2 or not isinstance(vals[1], list):
        raise ParseError("The server sent a malformed STATUS response.")
    name, raw = _mailbox(vals[0], utf8)
    values: dict[str, int] = {}
    pairs = vals[1]
    for i in range(0, len(pairs) - 1, 2):
        key, value = pairs[i], pairs[i + 1]
        if isinstance(key, str) and isinstance(value, int):
            values[key.upper()] = value
    return Status(name, raw, values)


def _search(data: bytes, pos: int) -> Search:
    vals = read_values(data, pos)
    modseq: int | None = None
    tail = vals[-1] if vals else None
    if isinstance(tail, list):
        vals.pop()
        if len(tail) == 2 and isinstance(tail[0], str) and tail[0].upper() == "MODSEQ":
            modseq = _int(tail[1], "MODSEQ")
        else:
            raise ParseError("The server sent a malformed SEARCH response.")
    ids: list[int] = []
    for v in vals:
        if not isinstance(v, int):
            raise ParseError("The server sent a SEARCH result that is not a number.")
        ids.append(v)
    return Search(tuple(ids), modseq)


def _esearch(data: bytes, pos: int) -> ESearch:
    vals = read_values(data, pos)
    i = 0
    tag: str | None = None
    if vals and isinstance(vals[0], list):
        corr = vals[0]
        if len(corr) >= 2 and text_of(corr[0]).upper() == "TAG":
            tag = text_of(corr[1])
        i = 1
    uid = False
    if i < len(vals) and isinstance(vals[i], str) and str(vals[i]).upper() == "UID":
        uid = True
        i += 1
    fields: dict[str, int | UidSet | None] = {}
    extra: dict[str, Value] = {}
    while i + 1 < len(vals):
        key_v, value = vals[i], vals[i + 1]
        i += 2
        if isinstance(key_v, list):
            raise ParseError("The server sent a malformed ESEARCH response.")
        key = text_of(key_v).upper()
        if key in ("MIN", "MAX", "COUNT", "MODSEQ"):
            fields[key] = _int(value, key)
        elif key == "ALL":
            fields[key] = UidSet.parse(_seqset_text(value))
        else:
            extra[key] = value
    if i < len(vals):
        raise ParseError("The server sent an ESEARCH item without a value.")

    def num(k: str) -> int | None:
        v = fields.get(k)
        return v if isinstance(v, int) else None

    all_v = fields.get("ALL")
    return ESearch(
        tag=tag,
        uid=uid,
        all=all_v if isinstance(all_v, UidSet) else None,
        count=num("COUNT"),
        min=num("MIN"),
        max=num("MAX"),
        modseq=num("MODSEQ"),
        extra=extra,
    )


def _vanished(data: bytes, pos: int) -> Vanished:
    vals = read_values(data, pos)
    earlier = False
    if vals and isinstance(vals[0], list):
        earlier = any(isinstance(v, str) and v.upper() == "EARLIER" for v in vals[0])
        vals = vals[1:]
    if len(vals) != 1:
        raise ParseError("The server sent a malformed VANISHED response.")
    return Vanished(UidSet.parse(_seqset_text(vals[0])), earlier)


def _namespace(data: bytes, pos: int) -> Namespace:
    vals = read_values(data, pos)
    groups: list[NamespaceList] = []
    for v in vals[:3]:
        entries: list[tuple[str, str | None]] = []
        if isinstance(v, list):
            for entry in v:
                if isinstance(entry, list) and len(entry) >= 2:
                    delim = entry[1]
                    entries.append(
                        (
                            utf7.decode(text_of(entry[0])),
                            None if delim is None else text_of(delim),
                        )
                    )
        groups.append(tuple(entries))
    while len(groups) < 3:
        groups.append(())
    return Namespace(groups[0], groups[1], groups[2])


def _words(data: bytes, pos: int) -> frozenset[str]:
    return frozenset(w.upper() for w in data[pos:].decode("latin-1").split())


_CONDITIONS: dict[str, type[Ok | No | Bad | Bye | PreAuth]] = {
    "OK": Ok,
    "NO": No,
    "BAD": Bad,
    "BYE": Bye,
    "PREAUTH": PreAuth,
}

# Blanks between the parts are counted loosely (QUIRKS: stray-spaces).
_HEAD = re.compile(rb"\* +(?:(0|[1-9][0-9]{0,19}) +)?([A-Za-z][A-Za-z0-9._\-]*)(?= |\r\n|\Z)")


def parse_untagged(resp: bytes, *, utf8_names: bool = False) -> Untagged:
    """Decode one untagged response (``* ...``).

    ``utf8_names``: mailbox names are UTF-8, not modified UTF-7 (after ENABLE UTF8=ACCEPT).
    Raises ParseError if ``resp`` is not untagged or a known response is malformed.
    """
    if not isinstance(resp, bytes):
        resp = bytes(resp)
    m = _HEAD.match(resp)
    if m is None:
        if resp.startswith(b"*"):
            return Unknown(resp)
        raise ParseError("Not an untagged response.")
    num, kw_b = m.groups()
    kw = kw_b.decode("ascii").upper()
    pos = m.end()
    if num is not None:
        n = int(num)
        if kw == "FETCH":
            return _fetch(n, resp, pos)
        if kw == "EXISTS":
            return Exists(n)
        if kw == "EXPUNGE":
            return Expunge(n)
        if kw == "RECENT":
            return Recent(n)
        return Unknown(resp, kw)
    cond = _CONDITIONS.get(kw)
    if cond is not None:
        code, text = _resp_text(resp, pos)
        return cond(code, text)
    handler = _HANDLERS.get(kw)
    if handler is None:
        return Unknown(resp, kw)
    return handler(kw, resp, pos, utf8_names)


_Handler = Callable[[str, bytes, int, bool], Untagged]


def _h_flags(kw: str, d: bytes, p: int, u: bool) -> Untagged:
    return Flags(_flag_set(_single_list(d, p, "FLAGS")))


_HANDLERS: dict[str, _Handler] = {
    "LIST": _list_item,
    "LSUB": _list_item,
    "XLIST": _list_item,
    "STATUS": lambda kw, d, p, u: _status(d, p, u),
    "SEARCH": lambda kw, d, p, u: _search(d, p),
    "ESEARCH": lambda kw, d, p, u: _esearch(d, p),
    "VANISHED": lambda kw, d, p, u: _vanished(d, p),
    "FLAGS": _h_flags,
    "CAPABILITY": lambda kw, d, p, u: Capability(_words(d, p)),
    "ENABLED": lambda kw, d, p, u: Enabled(_words(d, p)),
    "NAMESPACE": lambda kw, d, p, u: _namespace(d, p),
}

_TAGGED = re.compile(rb"([^\x00-\x20\x7f(){%*\"\\\]+][^\x00-\x20\x7f(){%*\"\\\]]*) ([A-Za-z]+)")
_TAGGED_RESULTS: dict[str, type[Ok | No | Bad]] = {"OK": Ok, "NO": No, "BAD": Bad}


def parse_tagged(resp: bytes) -> Tagged:
    """Decode a tagged completion (``A1 OK [code] text``); ParseError if it is not one."""
    if not isinstance(resp, bytes):
        resp = bytes(resp)
    m = _TAGGED.match(resp)
    if m is None:
        raise ParseError("The server sent a malformed tagged response.")
    cls = _TAGGED_RESULTS.get(m.group(2).decode("ascii").upper())
    if cls is None or (m.end() < len(resp) and resp[m.end()] not in b" \r"):
        raise ParseError("The server sent a tagged response that is not OK, NO or BAD.")
    code, text = _resp_text(resp, m.end())
    return Tagged(m.group(1).decode("latin-1"), cls(code, text))


def parse_response(resp: bytes, *, utf8_names: bool = False) -> Untagged | Tagged | Continuation:
    """Decode any server response: untagged, continuation request or tagged completion."""
    if resp.startswith(b"*"):
        return parse_untagged(resp, utf8_names=utf8_names)
    if resp.startswith(b"+"):
        code, text = _resp_text(bytes(resp), 1)
        return Continuation(code, text)
    return parse_tagged(resp)
