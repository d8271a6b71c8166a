"""The long form of the parser fuzzing: every target of tests/faults/hostile_fuzz_targets.py for
a while, timed per input, with the figures for FIGURES/RELIABILITY.

    .venv/bin/python benches/fuzz_parsers.py [--seconds 60] [--engine atheris|hypothesis]
        [--max-len 4096] [--target imap ...] [--save-crashes DIR]

atheris (coverage-guided, libFuzzer) is used when it is installed (``pip install atheris``;
not a dependency: the quick form in CI uses hypothesis); each target then runs in a process of
its own, seeded with the kept corpus. With hypothesis, mutated seeds and random bytes are drawn
until the time is up. Either way an input longer than ``--max-len`` is not tried, and every
input's parse time is measured: the goal is no crash and no input over 50 ms.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
FAULTS = HERE.parent / "tests" / "faults"
sys.path.insert(0, str(FAULTS))
LIMIT_MS = 50.0


class Stats:
    def __init__(self, target: str, path: Path | None) -> None:
        self.target, self.path = target, path
        self.runs = self.crashes = self.slow = 0
        self.max_ms = 0.0
        self.worst: bytes = b""
        self.first_crash = ""
        self.saved_at = time.monotonic()
        self.retimed = 0.0

    def record(
        self, data: bytes, ms: float, crash: BaseException | None, target: Any = None
    ) -> None:
        self.runs += 1
        if ms > self.max_ms:
            self.max_ms, self.worst = ms, data
        if ms > LIMIT_MS and target is not None:
            # Over the bound: time it again (best of three) before counting it, so a first
            # call's imports or a busy machine are not taken for a slow parser.
            self.slow += self.best_of_three(target, data) > LIMIT_MS
        if crash is not None:
            self.crashes += 1
            if not self.first_crash:
                self.first_crash = "".join(traceback.format_exception(crash))[-2000:]
        if self.path is not None and (crash or time.monotonic() - self.saved_at > 2):
            self.save()

    def retime(self, target: Any) -> float:
        """The worst input again: a first call pays imports and codec lookups, which is not
        the parser's cost."""
        return self.best_of_three(target, self.worst)

    @staticmethod
    def best_of_three(target: Any, data: bytes) -> float:
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            with contextlib.suppress(Exception):
                target(data)
            best = min(best, (time.perf_counter() - started) * 1000)
        return best

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "runs": self.runs,
            "crashes": self.crashes,
            "over_50ms": self.slow,
            "max_ms": round(self.max_ms, 2),
            "worst_len": len(self.worst),
            "worst_retimed_ms": round(self.retimed, 2),
            "worst_head": self.worst[:120].decode("latin-1"),
            "first_crash": self.first_crash,
        }

    def save(self) -> None:
        assert self.path is not None
        self.path.write_text(json.dumps(self.as_dict()))
        self.saved_at = time.monotonic()


def timed(target: Any, stats: Stats, data: bytes) -> None:
    started = time.perf_counter()
    crash: BaseException | None = None
    try:
        target(data)
    except Exception as exc:  # a crash: counted, the run goes on
        crash = exc
    stats.record(data, (time.perf_counter() - started) * 1000, crash, target)


def run_atheris_child(target_name: str, seconds: int, max_len: int, out: Path) -> None:
    import atheris

    with atheris.instrument_imports():
        import hostile_fuzz_targets as targets
    stats = Stats(target_name, out)
    target = targets.TARGETS[target_name]

    def one(data: bytes) -> None:
        timed(target, stats, data)

    corpus = Path(tempfile.mkdtemp(prefix=f"kw-fuzz-{target_name}-"))
    for i, seed in enumerate(targets.seeds(target_name)):
        (corpus / f"seed{i}").write_bytes(seed[:max_len])
    args = [sys.argv[0], f"-max_total_time={seconds}", f"-max_len={max_len}", str(corpus)]
    atheris.Setup(args, one)

    def finish() -> None:
        stats.retimed = stats.retime(target)
        stats.save()

    import atexit

    atexit.register(finish)
    atheris.Fuzz()


def run_hypothesis(target_name: str, seconds: int, max_len: int) -> dict[str, Any]:
    import hostile_fuzz_targets as targets
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    from test_fuzz_parsers import mutated

    stats = Stats(target_name, None)
    target = targets.TARGETS[target_name]
    deadline = time.monotonic() + seconds
    strategy = st.one_of(mutated(target_name), st.binary(max_size=max_len))

    @settings(
        max_examples=10**9,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def loop(data: bytes) -> None:
        if time.monotonic() > deadline:
            raise _TimeUp
        if len(data) <= max_len:
            timed(target, stats, data)

    try:
        loop()
    except Exception:  # the deadline's _TimeUp, perhaps wrapped by hypothesis's replay
        if time.monotonic() < deadline:
            raise
    stats.retimed = stats.retime(target)
    return stats.as_dict()


class _TimeUp(Exception):
    pass


def main() -> int:
    import hostile_fuzz_targets as targets

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60, help="per target")
    parser.add_argument("--engine", choices=["atheris", "hypothesis"])
    parser.add_argument("--max-len", type=int, default=4096)
    parser.add_argument("--target", action="append", choices=sorted(targets.TARGETS))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_atheris_child(args.child, args.seconds, args.max_len, Path(args.out))
        return 0
    engine = args.engine
    if engine is None:
        try:
            import atheris  # noqa: F401

            engine = "atheris"
        except ImportError:
            engine = "hypothesis"
    results = []
    for name in args.target or sorted(targets.TARGETS):
        if engine == "hypothesis":
            results.append(run_hypothesis(name, args.seconds, args.max_len))
        else:
            out = Path(tempfile.mkstemp(prefix=f"kw-fuzz-{name}-", suffix=".json")[1])
            subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    name,
                    "--out",
                    str(out),
                    "--seconds",
                    str(args.seconds),
                    "--max-len",
                    str(args.max_len),
                ],
                check=False,
                env={**os.environ, "PYTHONPATH": str(FAULTS)},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            results.append(json.loads(out.read_text() or "{}"))
            out.unlink()
        r = results[-1]
        print(
            f"{engine:10} {name:14} runs {r['runs']:>8}  crashes {r['crashes']}  "
            f">50ms (retimed) {r['over_50ms']}  max {r['max_ms']:.1f} ms (len {r['worst_len']}, "
            f"again {r['worst_retimed_ms']:.1f} ms)",
            flush=True,
        )
        if r["first_crash"]:
            print(r["first_crash"])
    bad = sum(r["crashes"] + r["over_50ms"] for r in results)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
