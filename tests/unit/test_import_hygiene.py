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
