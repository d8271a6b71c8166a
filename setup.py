"""Package discovery for the kittiwake wheel (everything else is in pyproject.toml).

The repository keeps core/, tui/, themes/, cli/ and demo/ at its top level (the design card) but
installs them as kittiwake.core, kittiwake.tui and so on. setuptools' own discovery cannot add
that prefix, so the package list is computed here from the tree: a new package is in the
wheel the moment it has an __init__.py, and nobody edits a list by hand (a hand-kept list once
left out kittiwake.core.local and every installed copy failed at start).
"""

from __future__ import annotations

from pathlib import Path

from setuptools import setup

TOP_LEVEL = ("core", "tui", "themes", "cli", "demo")
ROOT = Path(__file__).resolve().parent


def discover() -> tuple[list[str], dict[str, str]]:
    packages: list[str] = []
    package_dir: dict[str, str] = {}
    for top in TOP_LEVEL:
        base = ROOT / top
        if not (base / "__init__.py").exists():
            continue
        package_dir[f"kittiwake.{top}"] = top
        for init in sorted(base.rglob("__init__.py")):
            relative = init.parent.relative_to(ROOT)
            packages.append("kittiwake." + ".".join(relative.parts))
    return packages, package_dir


packages, package_dir = discover()
setup(packages=packages, package_dir=package_dir)
