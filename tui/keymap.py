"""User key overrides: the ``[keys]`` table maps binding ids to keys (posting's approach).

Every binding the user may change has an ``id`` such as ``list.next``; the help screen shows
them. Unknown ids are reported (a typo must not silently do nothing).
"""

from __future__ import annotations

from textual.binding import Binding
from textual.dom import DOMNode

#: Ids that were renamed: the old name still works, with a warning saying the new one. The
#: reader had its own triage ids until it took the list's (``tui/triage.py``).
RENAMED = {
    f"reader.{name}": f"triage.{name}"
    for name in ("flag", "read", "archive", "delete", "move", "junk", "undo")
}


def binding_ids(classes: list[type[DOMNode]]) -> set[str]:
    ids: set[str] = set()
    for cls in classes:
        for item in getattr(cls, "BINDINGS", []):
            if isinstance(item, Binding) and item.id:
                ids.add(item.id)
    return ids


def check_keymap(
    keys: dict[str, str], known: set[str], where: str
) -> tuple[dict[str, str], list[str]]:
    """(the keymap to apply, warnings) for the user's ``[keys]`` table."""
    keymap: dict[str, str] = {}
    warnings: list[str] = []
    for ident, spec in keys.items():
        if ident in RENAMED and RENAMED[ident] in known:
            new = RENAMED[ident]
            if new in keys:
                warnings.append(
                    f"{where}: keys.{ident}: ignored, keys.{new} is set (it is its new name)"
                )
                continue
            warnings.append(f"{where}: keys.{ident} is now called {new} (it applies everywhere)")
            ident = new
        if ident not in known:
            close = sorted(k for k in known if k.split(".")[-1] == ident.split(".")[-1])
            hint = f" (did you mean {close[0]}?)" if close else ""
            warnings.append(f"{where}: keys.{ident}: no such action{hint}")
            continue
        cleaned = ",".join(part.strip() for part in spec.split(",") if part.strip())
        if not cleaned:
            warnings.append(f"{where}: keys.{ident}: empty key")
            continue
        keymap[ident] = cleaned
    return keymap, warnings
