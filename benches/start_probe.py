#!/usr/bin/env python3
"""Run ``kittiwake`` as its console script does, and note what its start cost (issue 19).

    CHECKOUT/.venv/bin/python benches/start_probe.py OUT.json [--profile OUT.prof] -- ARGS...

The first time the app hands the terminal a frame holding ``$KW_PROBE_MARKER`` (default
"Subject number"), the process's CPU time (user + system, interpreter start included), its
peak RSS, the monotonic clock (comparable with ``time.perf_counter()`` of the parent on
Linux) and the number of modules loaded are written to OUT.json; the app then keeps running.
With ``--profile``, the start is run under cProfile and the profile up to that frame is
saved. Nothing of Kittiwake is patched, only Textual's Linux driver (its ``write``), and
only once Textual itself imports it, so the probe loads nothing early and works on any
checkout (``bench_tui.py --against`` runs it with each checkout's own Python).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

DRIVER = "textual.drivers.linux_driver"
#: Kittiwake's own driver (``FrameDriver``) writes frames through its ``_Writer``, not
#: through ``LinuxDriver.write``: both are watched, whichever the checkout has.
FRAME_DRIVER = "kittiwake.tui.driver"


def install(out: Path, marker: str, profiler: Any, profile_out: str | None) -> None:
    done = False

    def saw(data: str) -> None:
        nonlocal done
        if done or marker not in data:
            return
        done = True
        now = time.monotonic()
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(profile_out)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        out.write_text(
            json.dumps(
                {
                    "monotonic": now,
                    "cpu": usage.ru_utime + usage.ru_stime,
                    "rss_mb": usage.ru_maxrss / 1024,
                    "modules": len(sys.modules),
                }
            )
        )

    def wrap(cls: Any, name: str) -> None:
        original = getattr(cls, name)

        def write(self: Any, data: str) -> None:
            original(self, data)
            saw(data)

        setattr(cls, name, write)

    def patch(module: Any) -> None:
        if module.__name__ == DRIVER:
            wrap(module.LinuxDriver, "write")
        else:
            wrap(module._Writer, "write")
            wrap(module._Writer, "write_now")

    class Finder(importlib.abc.MetaPathFinder):
        def __init__(self) -> None:
            self.pending = {DRIVER, FRAME_DRIVER}

        def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
            if name not in self.pending:
                return None
            self.pending.discard(name)
            if not self.pending:
                sys.meta_path.remove(self)
            spec = importlib.machinery.PathFinder.find_spec(name, path)
            if spec is None or spec.loader is None:
                return spec
            loader = spec.loader
            exec_module = loader.exec_module

            def exec_and_patch(module: Any) -> None:
                exec_module(module)
                patch(module)

            loader.exec_module = exec_and_patch  # type: ignore[method-assign]
            return spec

    sys.meta_path.insert(0, Finder())


def main() -> None:
    args = sys.argv[1:]
    split = args.index("--")
    own, rest = args[:split], args[split + 1 :]
    out = Path(own[0])
    profile_out = own[own.index("--profile") + 1] if "--profile" in own else None
    profiler = None
    if profile_out:
        import cProfile

        profiler = cProfile.Profile()
    install(out, os.environ.get("KW_PROBE_MARKER", "Subject number"), profiler, profile_out)
    sys.argv = ["kittiwake", *rest]
    if profiler is not None:
        profiler.enable()
    from kittiwake.cli.main import main as kittiwake

    sys.exit(kittiwake())


if __name__ == "__main__":
    main()
