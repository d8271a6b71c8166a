"""The quick form of the parser fuzzing (the long form: ``benches/fuzz_parsers.py``).

Each target (tests/faults/hostile_fuzz_targets.py) gets its kept corpus, deterministic
splices of it, and a bounded number of hypothesis examples mutated from it; hypothesis runs
derandomized so CI sees the same inputs every time. A target fails on any exception other
than the parser's documented refusal, on a chunking that parses differently, and on a
terminal control that survives sanitizing.
"""

from __future__ import annotations

import pytest
from hostile_fuzz_targets import SEEDS, TARGETS, seeds, splices
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

#: Bytes that steer parsers into their corners.
SPECIALS = [
    b"(",
    b")",
    b'"',
    b"\\",
    b"{5}\r\n",
    b"{99999999999}\r\n",
    b"~{3}\r\n",
    b"NIL",
    b" ",
    b"\r\n",
    b"\r",
    b"\n",
    b".\r\n",
    b"..",
    b"\x00",
    b"\x1b]0;",
    b"\x9b",
    b"=?utf-8?q?",
    b"=?x?b?",
    b"?=",
    b"&",
    b"-",
    b"*0*=",
    b"''",
    b"%",
    b";",
    b"\xe2\x80\xae",
    b"\xff",
]


@st.composite
def mutated(draw: st.DrawFn, target: str) -> bytes:
    corpus = seeds(target)
    data = bytearray(draw(st.sampled_from(corpus)))
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(data)))
        kind = draw(st.integers(0, 4))
        if kind == 0:  # insert a special
            data[at:at] = draw(st.sampled_from(SPECIALS))
        elif kind == 1:  # insert random bytes
            data[at:at] = draw(st.binary(max_size=16))
        elif kind == 2:  # delete a run
            del data[at : at + draw(st.integers(1, 32))]
        elif kind == 3:  # duplicate a run
            run = data[at : at + draw(st.integers(1, 64))]
            data[at:at] = run * draw(st.integers(1, 8))
        else:  # splice in part of another seed
            other = draw(st.sampled_from(corpus))
            start = draw(st.integers(0, len(other)))
            data[at:at] = other[start : start + draw(st.integers(1, 80))]
    return bytes(data)


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_the_kept_corpus_and_its_splices(target: str) -> None:
    corpus = seeds(target)
    assert corpus, f"no seeds for {target} in tests/faults/corpus/{SEEDS[target]}"
    for seed in corpus:
        for data in [seed, *splices(seed)]:
            TARGETS[target](data)


@pytest.mark.parametrize("target", sorted(TARGETS))
@settings(
    max_examples=400,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_mutated_seeds(target: str, data: st.DataObject) -> None:
    TARGETS[target](data.draw(mutated(target)))


@pytest.mark.parametrize("target", sorted(TARGETS))
@settings(max_examples=200, derandomize=True, deadline=None, database=None)
@given(raw=st.binary(max_size=512))
def test_random_bytes(target: str, raw: bytes) -> None:
    TARGETS[target](raw)
