"""Inputs that complete as you type: addresses (To/Cc/Bcc) and file paths (attachments).

The suggestion shows greyed after the cursor; → or End accepts it (Textual's ``Suggester``);
in a path, Tab completes as a shell does (to the longest common prefix).
A suggestion must continue what was typed, so an address is offered when its name or its
address starts with the last word typed. Aliases and the addresses learnt from mail come
first, then those of the external address book (``[addressbook] query_command``).
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.suggester import Suggester
from textual.widgets import Input

from kittiwake.core.compose.addressbook import fold
from kittiwake.core.models import Address
from kittiwake.core.sanitize import clean_line

Complete = Callable[[str, list[str]], list[Address]]
Query = Callable[[str, list[str]], Awaitable[list[Address]]]


def _formatted(address: Address) -> str:
    name = clean_line(address.name).replace('"', "'")
    if not name:
        return address.addr
    if any(ch in name for ch in ",;<>@:()[]\\"):
        name = f'"{name}"'
    return f"{name} <{address.addr}>"


def address_suggestion(value: str, complete: Complete) -> str | None:
    """``value`` with its last (comma-separated) entry completed, or None."""
    head, comma, last = value.rpartition(",")
    token = last.lstrip()
    if len(token) < 1 or "<" in token:
        return None
    lead = value[: len(value) - len(token)]
    typed = [part.strip() for part in head.split(",") if part.strip()] if comma else []
    folded = fold(token)
    for address in complete(token, typed):
        for form in (_formatted(address), address.addr):
            if fold(form).startswith(folded):
                return lead + form  # the case and accents as they are in the address
    return None


class AddressSuggester(Suggester):
    def __init__(self, complete: Complete, query: Query | None = None) -> None:
        super().__init__(use_cache=False, case_sensitive=True)
        self.complete = complete
        self.query = query

    async def get_suggestion(self, value: str) -> str | None:
        found = address_suggestion(value, self.complete)
        if found is not None or self.query is None:
            return found
        query = self.query
        head, comma, last = value.rpartition(",")
        token = last.strip()
        if not token or "<" in token:
            return None
        typed = [part.strip() for part in head.split(",") if part.strip()] if comma else []
        answer = await query(token, typed)
        return address_suggestion(value, lambda _token, _typed: answer)


class AddressInput(Input):
    """To, Cc or Bcc: ``Name <a@b>, c@d`` with completion from the addresses you know."""

    def __init__(
        self, complete: Complete, value: str = "", query: Query | None = None, **kwargs: object
    ) -> None:
        suggester = AddressSuggester(complete, query)
        super().__init__(value=value, suggester=suggester, **kwargs)  # type: ignore[arg-type]


def path_suggestion(value: str) -> str | None:
    """The first file or directory (``/`` appended) that continues the typed path."""
    if not value:
        return None
    folder, stem, names = _continuations(value)
    for name in names:
        is_dir = (folder / name).is_dir()
        if name != stem or is_dir:
            return value + name[len(stem) :] + ("/" if is_dir else "")
    return None


def path_completion(value: str) -> str | None:
    """Tab, as a shell does it: ``value`` extended to the longest prefix shared by every
    name that continues it (``/`` after a lone directory); None when nothing is added."""
    if not value:
        return None
    folder, stem, names = _continuations(value)
    if not names:
        return None
    common = os.path.commonprefix(names)  # noqa: RUF071 (names, not paths: per character)
    slash = "/" if len(names) == 1 and (folder / names[0]).is_dir() else ""
    done = value + common[len(stem) :] + slash
    return done if done != value else None


def _continuations(value: str) -> tuple[Path, str, list[str]]:
    """The folder ``value`` points into, the partial name typed, and the names (sorted;
    hidden ones only when a dot was typed) that continue it."""
    expanded = os.path.expanduser(value)
    directory, slash, stem = expanded.rpartition("/")
    folder = Path(directory or "/") if slash else Path(".")
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return folder, stem, []
    hidden_ok = stem.startswith(".")
    found = [n for n in names if n.startswith(stem) and (hidden_ok or not n.startswith("."))]
    return folder, stem, found


class PathInput(Input):
    """A file path: the suggestion shows greyed (→ takes it), Tab completes like a shell."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("tab", "complete", "Complete", id="compose.path_complete", show=False),
    ]

    def __init__(self, value: str = "", **kwargs: object) -> None:
        super().__init__(value=value, suggester=PathSuggester(), **kwargs)  # type: ignore[arg-type]

    def action_complete(self) -> None:
        done = path_completion(self.value)
        if done is not None:
            self.value = done
            self.cursor_position = len(done)


class PathSuggester(Suggester):
    def __init__(self) -> None:
        super().__init__(use_cache=False, case_sensitive=True)

    async def get_suggestion(self, value: str) -> str | None:
        return path_suggestion(value)
