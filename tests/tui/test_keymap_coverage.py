"""Every key binding of the app can be remapped through ``[keys]``: a binding whose class is
missing from ``keymap_classes()`` would be reported as "no such action" instead."""

from __future__ import annotations

import importlib
import pkgutil

from textual.dom import DOMNode

import kittiwake.tui
from kittiwake.tui.app import KittiwakeApp, keymap_classes
from kittiwake.tui.keymap import binding_ids


def _every_class() -> set[type[DOMNode]]:
    for module in pkgutil.walk_packages(kittiwake.tui.__path__, "kittiwake.tui."):
        importlib.import_module(module.name)
    found: set[type[DOMNode]] = set()
    todo: list[type[DOMNode]] = [DOMNode]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            if sub.__module__.startswith("kittiwake.tui") and sub not in found:
                found.add(sub)
            todo.append(sub)
    return found


def test_every_binding_id_is_remappable() -> None:
    ours = binding_ids(sorted(_every_class(), key=lambda c: c.__qualname__))
    assert ours, "no bindings found at all"
    known = binding_ids([*keymap_classes(), KittiwakeApp])  # what the app accepts in [keys]
    assert ours <= known, sorted(ours - known)


def test_no_two_bindings_of_a_screen_share_a_key() -> None:
    """Two features given one key: only one of them would ever run (limit and label on
    ``l`` did, once)."""
    from textual.binding import Binding, BindingsMap

    clashes = []
    for cls in sorted(_every_class(), key=lambda c: c.__qualname__):
        for base in reversed(cls.__mro__):  # a subclass may rebind its base's key on purpose
            own: dict[str, str] = {}
            for b in BindingsMap(getattr(base, "BINDINGS", [])).key_to_bindings.values():
                for binding in b:
                    assert isinstance(binding, Binding)
                    if binding.key in own and own[binding.key] != binding.action:
                        clashes.append(f"{cls.__qualname__}: {binding.key}")
                    own[binding.key] = binding.action
    assert clashes == []
