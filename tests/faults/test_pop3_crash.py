"""Kill -9 a POP3 download into a Maildir at every step (retrieve, write and fsync, rename,
directory fsync, the ledger's records, DELE, QUIT), with hostile unique-ids put in by the
proxy; after two restarts: 0 lost, 0 duplicate files, 0
files outside the Maildir, 0 partial files in new/ or cur/, the maildrop emptied, and the
second restart downloads nothing. The checks are in ``pop3_lab``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from faults.journal_lab import new_workdir
from faults.pop3_lab import SEEDED, Pop3Lab, maildir_files, stray_files
from harness import Dovecot, ServerRoot, TestCA


@pytest.fixture(scope="module")
def pop3_server(server_root: ServerRoot, tls_ca: TestCA) -> Iterator[Dovecot]:
    server = Dovecot(server_root.instance_dir("dovecot"), tls_ca, tls=False)
    server.start()
    yield server
    server.close()


@pytest.mark.timeout(360)  # 108 s of the default 120 on 2 cores with 2 busy loops
def test_kill_at_every_step_of_a_pop3_download(pop3_server: Dovecot) -> None:
    """With hostile unique-ids (the same steps as Dovecot's own; scripts/faults-long runs
    both, three times)."""
    lab = Pop3Lab(pop3_server, new_workdir(), hostile=True)
    try:
        points = lab.kill_points()
        for step in (
            "retrieved",
            "after spool write+fsync",
            "after rename",
            "after ledger.begin",
            "after ledger.stored",
            "before DELE",
            "after QUIT",
            "after ledger.deleted",
        ):
            assert step in points, f"the instrumentation never saw {step}: {points}"
        bad = [o for o in map(lab.crash, range(1, len(points) + 1)) if not o.consistent]
        assert not bad, "\n".join(map(str, bad))
    finally:
        lab.close()


def test_hostile_uidls_are_downloaded_once_into_the_maildir(pop3_server: Dovecot) -> None:
    lab = Pop3Lab(pop3_server, new_workdir(), hostile=True)
    try:
        user, home = lab.fresh()
        code, out = lab.drive(user, home)
        assert code == 0 and out["new"] == SEEDED, out
        assert len(maildir_files(home / "mail")) == SEEDED
        assert stray_files(home) == []
        assert not list(home.parent.glob("x")) and not (home / "x").exists()
        code, again = lab.drive(user, home)
        assert code == 0 and again["new"] == 0
    finally:
        lab.close()


def test_random_kills_with_connection_resets(pop3_server: Dovecot) -> None:
    """Killed at a random step, half of the runs with the connection also reset after a
    random number of the server's bytes, with Dovecot's unique-ids and hostile ones (which
    the proxy must then put in every listing: a download tried again lists them again).
    scripts/faults-long runs a few hundred."""
    runs = []
    for hostile in (False, True):
        lab = Pop3Lab(pop3_server, new_workdir(), hostile=hostile)
        try:
            steps = len(lab.kill_points())
            runs += [lab.random_run(seed, steps) for seed in range(1, 7)]
        finally:
            lab.close()
    bad = [o for o, _ in runs if not o.consistent]
    assert not bad, "\n".join(map(str, bad))
    assert sum(o.cut_by_reset for o, _ in runs) >= 1, runs  # a reset did cut a download
