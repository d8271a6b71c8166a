#!/usr/bin/env python3
"""Runs ``kittiwake`` (arguments as for it) and notes, inside the process, when the first frame
holding ``KW_FRAME_MARKER`` is handed to the terminal: wall seconds since the process started
and CPU seconds then, one line in the file ``KW_FRAME_CLOCK``.

``bench_warm_start.py`` polls the terminal (tmux) from outside: on a loaded machine it sees the
frame tens of ms late, and the process's CPU read then includes what the app did after the
frame (the list reads its whole index right after it). This clock is the frame itself.
``tui/driver.py``'s writer is wrapped when that module is first imported, so the imports and
their order are the app's own.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any


def _since_start() -> float:
    """Seconds since this process started (10 ms resolution: clock ticks)."""
    ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
    uptime = float(Path("/proc/uptime").read_text().split()[0])
    return uptime - ticks / os.sysconf("SC_CLK_TCK")


START = time.perf_counter() - _since_start()
OUT = Path(os.environ["KW_FRAME_CLOCK"])
MARKER = os.environ.get("KW_FRAME_MARKER", "Subject number")
_seen = False


def _saw(text: str) -> None:
    global _seen
    if not _seen and MARKER in text:
        _seen = True
        OUT.write_text(f"{time.perf_counter() - START:.4f} {time.process_time():.4f}\n")


def _wrap_writer(module: ModuleType) -> None:
    writer = module._Writer
    for name in ("write", "write_now"):
        method = getattr(writer, name)

        def wrapped(self: Any, text: str, _method: Any = method) -> None:
            _saw(text)
            _method(self, text)

        setattr(writer, name, wrapped)


class _Hook(importlib.abc.MetaPathFinder):
    """Wraps the frame writer of ``kittiwake.tui.driver`` once that module is loaded."""

    def find_spec(
        self, name: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if name != "kittiwake.tui.driver":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        exec_module = loader.exec_module

        def exec_and_wrap(module: ModuleType) -> None:
            exec_module(module)
            _wrap_writer(module)

        loader.exec_module = exec_and_wrap  # type: ignore[method-assign]
        return spec


if __name__ == "__main__":
    sys.meta_path.insert(0, _Hook())
    from kittiwake.cli.main import main

    sys.argv = ["kittiwake", *sys.argv[1:]]
    main()
