"""The model-based test of sync (issue 17, item 5), quick form: a derandomized run of the
state machine in ``sync_machine`` (user actions, another client's changes, faults, restarts)
against a private Dovecot; after each quiet resync the server equals the model and the cache
equals the server. The long form is ``scripts/faults-long --sync-examples N``."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
from faults import sync_machine
from faults.journal_lab import new_workdir
from faults.sync_machine import SyncLab
from harness import Dovecot, ServerRoot, TestCA

QUICK_EXAMPLES = 25
QUICK_STEPS = 20


@pytest.fixture(scope="module")
def lab(server_root: ServerRoot, tls_ca: TestCA) -> Iterator[SyncLab]:
    server = Dovecot(server_root.instance_dir("dovecot"), tls_ca, tls=False)
    server.start()
    lab = SyncLab(server, new_workdir())
    yield lab
    server.close()
    shutil.rmtree(lab.workdir, ignore_errors=True)


@pytest.mark.timeout(600)  # passing takes about 30 s; a failure is shrunk to a short example
def test_sync_matches_the_model_under_faults_and_restarts(lab: SyncLab) -> None:
    counts = sync_machine.run(lab, examples=QUICK_EXAMPLES, steps=QUICK_STEPS, derandomize=True)
    # The run did what it is for: not only examples that stopped at once.
    assert counts.examples >= QUICK_EXAMPLES
    assert counts.actions > 0 and counts.remote > 0 and counts.faults > 0
    assert counts.restarts > 0 and counts.checks >= counts.examples
