"""Appending a new account to config.toml without touching a byte of the user's text.

The file is never parsed and re-serialised (that would lose the user's comments, order and
formatting): the new ``[accounts.NAME]`` block is rendered on its own and appended after a
blank line. Every key and value is written by tomli-w, which quotes and escapes them; the
comments saying where each setting came from are ours (tomli-w writes none) and are reduced
to one line of printable text, so nothing in them can end the comment and start TOML.

The result is checked before it lands: the complete new file is written to a temporary file
next to the config, loaded with ``load_config`` exactly as Kittiwake will load it, and only
then renamed over the config (after an fsync). A block that would make the config invalid, or
a config that changed on disk meanwhile, leaves the file as it was.
"""

from __future__ import annotations

import contextlib
import os
import re
import tomllib
import unicodedata
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import tomli_w

from kittiwake.core.config import Config, is_valid_account_name, load_config
from kittiwake.core.errors import ConfigError
from kittiwake.core.files import PRIVATE_FILE, atomic_write, file_mode, make_private_dirs

COMMENT_MAX = 200
"""Characters of one ``# from: ...`` comment (longer text is cut, with an ellipsis)."""

# Domain labels that are a registry's, not the provider's: alice@example.co.uk -> "example".
_SECOND_LEVEL = frozenset({"co", "com", "net", "org", "ac", "gov", "edu", "ne", "or", "gv"})


def suggest_account_name(email: str, existing: Iterable[str] = ()) -> str:
    """A valid account name (letters, digits, '.', '_', '-') from ``email`` that is not in
    ``existing``: the provider's part of the domain ("example" for alice@mail.example.org's
    example.org, "example" for example.co.uk), else the local part, else "mail"; "-2", "-3"...
    when taken."""
    taken = set(existing)
    local, _, domain = email.strip().rpartition("@")
    labels = [label for label in domain.lower().split(".") if label]
    if len(labels) >= 3 and labels[-2] in _SECOND_LEVEL and len(labels[-1]) == 2:
        labels = labels[:-1]
    candidates = [labels[-2] if len(labels) >= 2 else (labels[0] if labels else ""), local]
    base = "mail"
    for candidate in candidates:
        cleaned = _name_chars(candidate)
        if cleaned:
            base = cleaned
            break
    if base not in taken:
        return base
    n = 2
    while True:
        suffix = f"-{n}"
        name = base[: 64 - len(suffix)] + suffix
        if name not in taken:
            return name
        n += 1


def _name_chars(text: str) -> str:
    """``text`` in the characters an account name allows: accents dropped (müller -> muller),
    anything else removed, starting with a letter or digit, at most 64 characters."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    cleaned = re.sub(r"[^A-Za-z0-9_.-]", "", ascii_text.lower())
    cleaned = re.sub(r"^[^A-Za-z0-9]+", "", cleaned)[:64]
    return cleaned if is_valid_account_name(cleaned) else ""


# --- rendering ------------------------------------------------------------------------------


def comment(text: str) -> str:
    """``text`` as the body of one TOML comment: every control character (line breaks
    included: TOML forbids them in comments, and a line break would end the comment),
    Unicode line and paragraph separators and format characters (bidi overrides) become a
    space, runs of spaces one space, and at most ``COMMENT_MAX`` characters are kept."""
    chars = [
        " " if unicodedata.category(c) in {"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"} else c
        for c in text
    ]
    flat = " ".join("".join(chars).split())
    if len(flat) > COMMENT_MAX:
        flat = flat[: COMMENT_MAX - 1] + "…"
    return flat


def _key(key: str) -> str:
    """``key`` as TOML writes it (bare when it can be, else quoted and escaped)."""
    line = tomli_w.dumps({key: 0}).rstrip("\n")
    rendered, sep, value = line.rpartition(" = ")
    assert sep and value == "0", line
    return rendered


def _value(value: Any) -> str:
    """``value`` as TOML: scalars and arrays by tomli-w, tables inline."""
    if isinstance(value, Mapping):
        items = [f"{_key(k)} = {_value(v)}" for k, v in value.items() if v is not None]
        return "{ " + ", ".join(items) + " }" if items else "{}"
    text = tomli_w.dumps({"v": value}).rstrip("\n")
    prefix = "v = "
    assert text.startswith(prefix), text
    return text[len(prefix) :]


def _with_comment(line: str, source: str | None) -> str:
    if source is None:
        return line
    text = comment(source)
    return f"{line}  # from: {text}" if text else line


def render_account(
    name: str,
    account: Mapping[str, Any],
    sources: Mapping[str, str] | None = None,
    heading: str | None = None,
) -> str:
    """The ``[accounts.NAME]`` block for ``account`` (keys as in the config; ``imap``,
    ``pop3`` and ``smtp`` are dicts and become sub-tables; a dict inside them, such as
    ``password_keyring``, an inline table; None values are left out).

    ``sources`` says where settings came from, by dotted key relative to the account:
    ``"imap"`` comments the ``[accounts.NAME.imap]`` header, ``"imap.port"`` that one line,
    ``"email"`` a top-level key. ``heading`` is a comment line above the block."""
    if not is_valid_account_name(name):
        raise ConfigError(
            f"{name!r} is not a usable account name: use letters, digits, '.', '_' and '-'"
        )
    sources = sources or {}
    lines: list[str] = []
    if heading:
        lines.append(f"# {comment(heading)}")
    header = f"accounts.{_key(name)}"  # "a.b" is a valid name, and must be quoted
    lines.append(_with_comment(f"[{header}]", sources.get("")))
    tables: list[tuple[str, Mapping[str, Any]]] = []
    for key, value in account.items():
        if value is None:
            continue
        if isinstance(value, Mapping):
            tables.append((key, value))
            continue
        lines.append(_with_comment(f"{_key(key)} = {_value(value)}", sources.get(key)))
    for table, entries in tables:
        section_source = sources.get(table)
        lines.append("")
        lines.append(_with_comment(f"[{header}.{_key(table)}]", section_source))
        for key, value in entries.items():
            if value is None:
                continue
            source = sources.get(f"{table}.{key}")
            if source == section_source:
                source = None  # said once, on the header
            lines.append(_with_comment(f"{_key(key)} = {_value(value)}", source))
    return "\n".join(lines) + "\n"


# --- appending ------------------------------------------------------------------------------


def append_account(
    path: Path,
    name: str,
    account: Mapping[str, Any],
    sources: Mapping[str, str] | None = None,
    heading: str | None = None,
) -> Config:
    """Append ``account`` as ``[accounts.NAME]`` to the config at ``path`` (created with mode
    0600, in directories created 0700, when it does not exist) and return the loaded result.

    The existing bytes are kept exactly; the file keeps its mode; a symbolic link is followed
    (the file it points to is replaced, the link stays). Raises ``ConfigError`` (one sentence)
    when the name is taken or not valid, or when the config with the new block would not load:
    then nothing is written."""
    target = Path(os.path.realpath(path))
    try:
        old = target.read_bytes()
        before = os.stat(target)
    except FileNotFoundError:
        old, before = b"", None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror})") from None
    _refuse_taken_name(path, old, name)
    newline = "\r\n" if b"\r\n" in old else "\n"
    block = render_account(name, account, sources, heading).replace("\n", newline)
    separator = ""
    if old:
        separator = ("" if old.endswith(b"\n") else newline) + newline
    data = old + (separator + block).encode("utf-8")
    mode = file_mode(target) if before is not None else None

    def check(candidate: Path) -> None:
        try:
            loaded = load_config(candidate)
        except ConfigError as exc:
            detail = exc.message.replace(str(candidate), str(path))
            raise ConfigError(
                f"the account was not added, as the config would not load: {detail}"
            ) from None
        if name not in loaded.accounts:  # pragma: no cover - load_config would have failed
            raise ConfigError(f"{path}: the account {name} was not added (it does not load)")
        _refuse_concurrent_change(path, target, before)

    if before is None:
        make_private_dirs(target.parent)
    try:
        atomic_write(target, data, mode if mode is not None else PRIVATE_FILE, check)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be written ({exc.strerror})") from None
    config = load_config(target)
    return Config(
        path, config.accounts, config.ui, config.keys, config.warnings, crypto=config.crypto
    )


def _refuse_taken_name(path: Path, old: bytes, name: str) -> None:
    if not is_valid_account_name(name):
        raise ConfigError(
            f"{name!r} is not a usable account name: use letters, digits, '.', '_' and '-'"
        )
    if not old:
        return
    try:
        existing = tomllib.loads(old.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError):
        load_config(path)  # raises the usual one-sentence error naming the line
        raise ConfigError(f"{path}: cannot be read as TOML") from None
    accounts = existing.get("accounts")
    if isinstance(accounts, dict) and name in accounts:
        raise ConfigError(f"{path} already has an account named {name}: choose another name")


def _refuse_concurrent_change(path: Path, target: Path, before: os.stat_result | None) -> None:
    now: os.stat_result | None = None
    with contextlib.suppress(FileNotFoundError):
        now = os.stat(target)
    unchanged = (before is None and now is None) or (
        before is not None
        and now is not None
        and (before.st_ino, before.st_size, before.st_mtime_ns)
        == (now.st_ino, now.st_size, now.st_mtime_ns)
    )
    if not unchanged:
        raise ConfigError(f"{path} changed while the account was being added; run setup again")
