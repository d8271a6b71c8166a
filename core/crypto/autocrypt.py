"""Autocrypt Level 1 (https://autocrypt.org/level1.html): keys travel in a mail header.

Outgoing mail of an account with ``autocrypt = true`` carries ``Autocrypt: addr=...;
[prefer-encrypt=mutual;] keydata=...``, the sender's OpenPGP key exported minimal (one user
ID, the encryption subkey). Incoming headers update a peer table (the spec's state:
``last_seen``, ``autocrypt_timestamp``, ``public_key``, ``prefer_encrypt``) in SQLite under
the XDG data directory, and the keys go into a GnuPG home of their own beside it: the
user's keyring is never written to. Encryption reads that keyring too (gpg ``--keyring``),
and ``recommend`` gives the spec's per-message recommendation: "encrypt" when every
recipient and the user prefer it (mutual), "available", "discourage" (a peer's last
Autocrypt header is more than 35 days older than its last message), or "disable".

A message is learnt from when it is opened (the whole header is read then); one peer table
serves every account, as the user's own keyring does.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import getaddresses
from pathlib import Path

from kittiwake.core.crypto.gpg import GnuPG, run
from kittiwake.core.sqltx import transaction

#: Level 1: a peer whose Autocrypt header is this much older than its last mail may have
#: moved to a client without Autocrypt (or lost the key): encryption is discouraged.
STALE = 35 * 86400
_CRITICAL = {"addr", "keydata", "prefer-encrypt", "type"}
_SCHEMA = """
CREATE TABLE IF NOT EXISTS peers (
    addr TEXT PRIMARY KEY,
    last_seen REAL NOT NULL,
    autocrypt_timestamp REAL NOT NULL,
    public_key BLOB,
    fingerprint TEXT NOT NULL DEFAULT '',
    prefer_encrypt TEXT NOT NULL DEFAULT 'nopreference'
)
"""


@dataclass(frozen=True)
class Header:
    addr: str
    keydata: bytes
    prefer_encrypt: str
    """ "mutual" or "nopreference"."""


@dataclass(frozen=True)
class Peer:
    addr: str
    last_seen: float
    autocrypt_timestamp: float
    fingerprint: str
    prefer_encrypt: str


def parse_header(value: str) -> Header | None:
    """An ``Autocrypt`` header's attributes, or None when the header is not valid: a
    missing ``addr`` or ``keydata``, a ``type`` other than 1, an unknown attribute that does
    not start with "_" (the spec makes every other attribute critical)."""
    attrs: dict[str, str] = {}
    for item in value.split(";"):
        key, eq, val = item.strip().partition("=")
        if not eq:
            if item.strip():
                return None
            continue
        key = key.strip().lower()
        if key in attrs:
            return None
        attrs[key] = val.strip()
    if any(k not in _CRITICAL and not k.startswith("_") for k in attrs):
        return None
    if attrs.get("type", "1") != "1" or "addr" not in attrs or "keydata" not in attrs:
        return None
    try:
        keydata = base64.b64decode("".join(attrs["keydata"].split()), validate=True)
    except (binascii.Error, ValueError):
        return None
    prefer = "mutual" if attrs.get("prefer-encrypt", "").lower() == "mutual" else "nopreference"
    return Header(attrs["addr"].strip().lower(), keydata, prefer) if keydata else None


def header_field(addr: str, keydata: bytes, mutual: bool) -> str:
    """The whole ``Autocrypt:`` header field, folded (CRLF lines of at most 78 octets)."""
    lines = [f"Autocrypt: addr={addr};" + (" prefer-encrypt=mutual;" if mutual else "")]
    lines.append(" keydata=")
    encoded = base64.b64encode(keydata).decode("ascii")
    lines += [" " + encoded[i : i + 76] for i in range(0, len(encoded), 76)]
    return "\r\n".join(lines) + "\r\n"


def own_keydata(addr: str, gpg: GnuPG) -> bytes | None:
    """The user's key for ``addr`` as Autocrypt wants it: binary, minimal, clean, with only
    the user ID for that address; None when there is no secret key for it."""
    from kittiwake.core.crypto.openpgp import keys_for

    own = keys_for(addr, gpg, secret=True)
    if not own:
        return None
    result = run(
        gpg,
        [
            "--export-options",
            "export-minimal,export-clean",
            "--export-filter",
            f"keep-uid=mbox = {addr.lower()}",
            "--export",
            own[0],
        ],
    )
    return result.stdout or None


class PeerStore:
    """The peer table and its keyring, both under ``root`` (``$XDG_DATA_HOME/kittiwake/
    autocrypt`` by default). A connection per call: it is used from worker threads."""

    def __init__(self, root: Path, gpg: str = "gpg") -> None:
        self.root = root
        self.gnupg = GnuPG(gpg, str(root / "gnupg"))

    @property
    def keyring(self) -> Path:
        """The keybox gpg reads with ``--keyring`` when encrypting to peers."""
        return self.root / "gnupg" / "pubring.kbx"

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        (self.root / "gnupg").mkdir(parents=True, exist_ok=True, mode=0o700)
        db = sqlite3.connect(self.root / "peers.sqlite3", isolation_level=None, timeout=10)
        try:
            db.execute(_SCHEMA)
            yield db
        finally:
            db.close()

    def peer(self, addr: str) -> Peer | None:
        with self._db() as db:
            row = db.execute(
                "SELECT addr, last_seen, autocrypt_timestamp, fingerprint, prefer_encrypt "
                "FROM peers WHERE addr = ?",
                (addr.lower(),),
            ).fetchone()
        return Peer(*row) if row else None

    def update(self, addr: str, date: float, header: Header | None) -> None:
        """The Level 1 update for one message from ``addr`` sent at ``date`` (a date in the
        future counts as now) with ``header`` (None: the message had no valid one)."""
        addr = addr.lower()
        date = min(date, time.time())
        with self._db() as db:
            row = db.execute(
                "SELECT last_seen, autocrypt_timestamp, fingerprint FROM peers WHERE addr = ?",
                (addr,),
            ).fetchone()
        if row is not None and date <= row[1]:
            return  # older than what the state already says: its key is not even imported
        fingerprint = self._import(header.keydata) if header is not None else ""
        with self._db() as db, transaction(db):
            if not fingerprint:  # no header, or keydata that is no usable key
                if row is not None and date > row[0]:
                    db.execute("UPDATE peers SET last_seen = ? WHERE addr = ?", (date, addr))
                return
            assert header is not None
            db.execute(
                "INSERT OR REPLACE INTO peers (addr, last_seen, autocrypt_timestamp, "
                "public_key, fingerprint, prefer_encrypt) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    addr,
                    max(date, row[0] if row else date),
                    date,
                    header.keydata,
                    fingerprint,
                    header.prefer_encrypt,
                ),
            )
        old = row[2] if row is not None else ""
        if old and old != fingerprint:  # one key per peer: the newest
            run(self.gnupg, ["--yes", "--delete-keys", old])

    def _import(self, keydata: bytes) -> str:
        """The key into the peers' keyring; its fingerprint, or "" when gpg took none (a
        header holds exactly one key)."""
        result = run(self.gnupg, ["--import", "--import-options", "import-minimal"], keydata)
        imported = {line[2] for line in result.status if line[0] == "IMPORT_OK" and len(line) > 2}
        return imported.pop() if len(imported) == 1 else ""

    def recommend(self, addrs: Iterable[str], own_mutual: bool) -> str:
        """The Level 1 recommendation for a message to ``addrs``: "disable", "discourage",
        "available" or "encrypt"."""
        found = [self.peer(a) for a in addrs]
        if not found or any(p is None or not p.fingerprint for p in found):
            return "disable"
        peers = [p for p in found if p is not None]
        if any(p.autocrypt_timestamp < p.last_seen - STALE for p in peers):
            return "discourage"
        if own_mutual and all(p.prefer_encrypt == "mutual" for p in peers):
            return "encrypt"
        return "available"


def default_store(gpg: str = "gpg", root: str | None = None) -> PeerStore:
    """The user's peer store: ``root``, else ``$XDG_DATA_HOME/kittiwake/autocrypt``."""
    from kittiwake.core.paths import data_dir

    return PeerStore(Path(root) if root else data_dir() / "autocrypt", gpg)


def learn(
    store: PeerStore,
    headers: Sequence[tuple[str, str]],
    date: datetime | None,
    own: Iterable[str] = (),
) -> str | None:
    """Update ``store`` from one received message's header fields; the peer's address, or
    None when the message does not count (no single From, no Date, a report, or from one of
    the user's ``own`` addresses)."""
    froms = getaddresses([v for k, v in headers if k.lower() == "from"])
    if len(froms) != 1 or not froms[0][1] or date is None:
        return None
    sender = froms[0][1].lower()
    if sender in {a.lower() for a in own}:
        return None
    ctype = next((v for k, v in headers if k.lower() == "content-type"), "")
    if ctype.strip().lower().startswith("multipart/report"):
        return None
    found = [parse_header(v) for k, v in headers if k.lower() == "autocrypt"]
    valid = [h for h in found if h is not None and h.addr == sender]
    store.update(sender, date.timestamp(), valid[0] if len(valid) == 1 else None)
    return sender
