"""Inputs that complete as you type: addresses (To/Cc/Bcc) and file paths (attachments).

The suggestion shows greyed after the cursor; → or End accepts it (Textual's ``Suggester``);
in a path, Tab completes as a shell does (to the longest common prefix).
A suggestion must continue what was typed, so an address is offered when its name or its
address starts with the last word typed.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.suggester import Suggester
from textual.widgets import Input

from kittiwake.core.compose.addressbook import fold
from kittiwake.core.models import Address
from kittiwake.core.sanitize import clean_line

Complete = Callable[[str, list[str]], list[Address]]


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
    def __init__(self, complete: Complete) -> None:
        super().__init__(use_cache=False, case_sensitive=True)
        self.complete = complete

    async def get_suggestion(self, value: str) -> str | None:
        return address_suggestion(value, self.complete)


class AddressInput(Input):
    """To, Cc or Bcc: ``Name <a@b>, c@d`` with completion from the addresses you know."""

    def __init__(self, complete: Complete, value: str = "", **kwargs: object) -> None:
        super().__init__(value=value, suggester=AddressSuggester(complete), **kwargs)  # type: ignore[arg-type]


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
