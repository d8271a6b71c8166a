"""Inputs that complete as you type: addresses (To/Cc/Bcc) and file paths (attachments).

The suggestion shows greyed after the cursor; → or End accepts it (Textual's ``Suggester``).
A suggestion must continue what was typed, so an address is offered when its name or its
address starts with the last word typed.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from textual.suggester import Suggester
from textual.widgets import Input

from kittiwake.core.addressbook import fold
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
    expanded = os.path.expanduser(value)
    directory, _, stem = expanded.rpartition("/")
    folder = Path(directory or ".") if "/" in expanded else Path(".")
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return None
    hidden_ok = stem.startswith(".")
    for name in names:
        if not name.startswith(stem) or (name.startswith(".") and not hidden_ok):
            continue
        is_dir = (folder / name).is_dir()
        if name != stem or is_dir:
            return value + name[len(stem) :] + ("/" if is_dir else "")
    return None


class PathSuggester(Suggester):
    def __init__(self) -> None:
        super().__init__(use_cache=False, case_sensitive=True)

    async def get_suggestion(self, value: str) -> str | None:
        return path_suggestion(value)
