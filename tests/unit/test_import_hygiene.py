"""The engine must never load Textual: the layering rule, checked at run time."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import kittiwake.core


def test_importing_every_core_module_never_loads_textual() -> None:
    names = [m.name for m in pkgutil.walk_packages(kittiwake.core.__path__, "kittiwake.core.")]
    assert "kittiwake.core.config" in names
    code = (
        "import importlib, sys\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich')"
        " or m.startswith('kittiwake.tui'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"core pulled in: {out.stdout}"


def test_headless_cli_does_not_load_textual() -> None:
    code = (
        "import sys\n"
        "from kittiwake.cli import main\n"
        "print(any(m.split('.')[0] == 'textual' for m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_every_core_module_stands_on_a_floor() -> None:
    """A module left out of the layers contract would be free to import anything."""
    import tomllib
    from pathlib import Path

    config = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    (floors,) = [c for c in config["tool"]["importlinter"]["contracts"] if c["type"] == "layers"]
    placed = {m.strip() for layer in floors["layers"] for m in layer.replace("|", ":").split(":")}
    modules = [m.name for m in pkgutil.walk_packages(kittiwake.core.__path__, "kittiwake.core.")]
    unplaced = [
        m
        for m in modules
        if not any(m == p or m.startswith(p + ".") for p in placed)
        and not any(p.startswith(m + ".") for p in placed)  # a package named module by module
    ]
    assert unplaced == []
