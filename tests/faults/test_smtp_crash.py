"""Kill -9 the outbox at every step of sending a message (each write to the server, each
reply read, each save of the item, the journal of accepted recipients, the Sent copy), then
restart it twice. Nothing is lost, nothing delivered twice, a second restart sends nothing,
a message that went out without a confirmed reply waits for the user ("uncertain"), and an
accepted message has exactly one Sent copy. See smtp_lab for how each is counted."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from faults.journal_lab import new_workdir
from faults.smtp_lab import SmtpLab
from harness import Dovecot, Postfix, User


@pytest.fixture
def lab(postfix: Postfix, dovecot: Dovecot, user: User) -> Iterator[SmtpLab]:
    made = SmtpLab(postfix, dovecot, user, new_workdir())
    yield made
    made.close()


def test_kill_at_every_step_of_sending(lab: SmtpLab) -> None:
    points = lab.kill_points()
    assert points > 10, points
    outcomes = [lab.crash(kill_at) for kill_at in range(1, points + 1)]
    bad = [o for o in outcomes if not o.consistent]
    assert not bad, "\n".join(map(str, bad))
    # The window SMTP cannot close was hit (the kill right after the final dot went out),
    # and the outbox kept it for the user instead of sending it again.
    assert any(o.uncertain and o.delivered == 1 for o in outcomes), outcomes
