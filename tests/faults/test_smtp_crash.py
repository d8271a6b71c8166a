"""Kill -9 the outbox at every step of sending a message (each write to the server, each
reply read, each save of the item, the journal of accepted recipients, the Sent copy), then
restart it twice. Nothing is lost, nothing delivered twice, a second restart sends nothing,
a message that went out without a confirmed reply waits for the user ("uncertain"), and an
accepted message has exactly one Sent copy. See smtp_lab for how each is counted."""

from __future__ import annotations

from collections.abc import Callable, Iterator

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


def test_kill_while_the_real_filer_files_the_sent_copy(
    postfix: Postfix,
    dovecot: Dovecot,
    user: User,
    dovecot_factory: Callable[..., Dovecot],
) -> None:
    """The Sent copy filed by the engine's ``SentFiler`` over IMAP: killed at every step of
    filing it (each IMAP write, the middle of the APPEND literal, each reply as it arrives
    and before the app has seen it), restarted twice: one Sent copy, one delivery, never sent
    again. Every step of the whole send is a kill point in scripts/faults-long."""
    lab = SmtpLab(postfix, dovecot, user, new_workdir(), imap=dovecot_factory(tls=False))
    try:
        events = lab.events()
        assert "wrote half of the APPEND literal" in events, events
        points = lab.filing_points()
        assert len(points) >= 5, points
        outcomes = [lab.crash(kill_at) for kill_at in points]
    finally:
        lab.close()
    bad = [o for o in outcomes if not o.consistent]
    assert not bad, "\n".join(map(str, bad))
    assert all(o.sent_copies == 1 and o.delivered == 1 for o in outcomes), outcomes
