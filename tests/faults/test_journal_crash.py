"""Kill -9 the app at every step of the action journal; after a restart the server must be as
an uninterrupted run left it (nothing lost, nothing applied twice), and a second restart must
send no changing command. The scenarios and the checks are in ``journal_lab``; the long form
(random kill points, connection resets) is ``scripts/faults-long``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest
from faults.journal_lab import BARE_SCENARIOS, Lab, compare, new_workdir, scenarios
from harness import Dovecot, ServerRoot, TestCA
from harness.mail import BARE_CAPS


@pytest.fixture(scope="module")
def lab(server_root: ServerRoot, tls_ca: TestCA) -> Iterator[Lab]:
    server = Dovecot(server_root.instance_dir("dovecot"), tls_ca, tls=False)
    server.start()
    lab = Lab(server, new_workdir())
    yield lab
    lab.close()
    server.close()


@pytest.fixture(scope="module")
def bare_lab(server_root: ServerRoot, tls_ca: TestCA) -> Iterator[Lab]:
    server = Dovecot(server_root.instance_dir("dovecot"), tls_ca, tls=False, extra_conf=BARE_CAPS)
    server.start()
    lab = Lab(server, new_workdir())
    yield lab
    lab.close()
    server.close()


def every_point(lab: Lab, name: str, acts: list[dict[str, object]]) -> None:
    points = lab.kill_points(acts)  # type: ignore[arg-type]
    assert points, "no kill point: the instrumentation saw no journal write"
    bad = []
    for kill_at in range(1, len(points) + 1):
        outcome = lab.crash(name, acts, kill_at)  # type: ignore[arg-type]
        if not outcome.consistent:
            bad.append(outcome)
    assert not bad, "\n".join(map(str, bad))


@pytest.mark.timeout(360)  # 60 (draft) s of the default 120 on 2 cores with 2 busy loops
@pytest.mark.parametrize("name", sorted(scenarios()))
def test_kill_at_every_journal_step(lab: Lab, name: str) -> None:
    every_point(lab, name, scenarios()[name])  # type: ignore[arg-type]


@pytest.mark.parametrize("name", sorted(BARE_SCENARIOS))
def test_kill_at_every_step_without_move(bare_lab: Lab, name: str) -> None:
    every_point(bare_lab, name, BARE_SCENARIOS[name])  # type: ignore[arg-type]


def test_the_checks_see_a_double_and_a_loss(lab: Lab) -> None:
    """The comparison itself: a state with one message too many and one missing."""
    a = {"INBOX": Counter({("x", frozenset()): 1}), "Archive": Counter()}
    b = {"INBOX": Counter({("x", frozenset()): 2}), "Archive": Counter()}
    assert compare(a, b) == (0, 1)
    assert compare(b, a) == (1, 0)
    assert compare(a, {"INBOX": a["INBOX"]}) == (1, 0)


QUICK_SEEDS = range(1, 21)
"""The quick form's random kill points (the long form: scripts/faults-long)."""


@pytest.mark.timeout(360)  # 101 s of the default 120 on 2 cores with 2 busy loops
def test_random_kills_with_connection_resets(lab: Lab) -> None:
    bad = []
    resets = 0
    for seed in QUICK_SEEDS:
        outcome, reset = lab.random_run(seed)
        resets += reset
        if not outcome.consistent:
            bad.append((seed, outcome))
    assert not bad, "\n".join(map(str, bad))
    assert resets > 0
