"""Reconnect cycles, IDLE renewals and incremental resyncs leave no descriptor, task or
database connection behind (``leaks``); nor do start/stop and check cycles of the POP3 poller,
or start/stop and send cycles of the outbox runner. Memory is checked by the long form
(scripts/faults-long --leak-cycles), after a warm-up long enough for asyncio to have purged
the timers cancelled by earlier reconnects (it does so lazily, past 100): in 30 cycles the
growth is still that warm-up (about 600 bytes a cycle, in asyncio's timer heap)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from faults.leaks import outbox_cycles, pop3_cycles, reconnect_cycles
from harness import Dovecot, Postfix, User


@pytest.mark.timeout(360)  # 61 s of the default 120 on 2 cores with 2 busy loops, once over
async def test_reconnect_cycles_leak_nothing(
    dovecot_factory: Callable[..., Dovecot], tmp_path: Path
) -> None:
    server = dovecot_factory(tls=False)
    report = await reconnect_cycles(server, server.add_user("cycles"), tmp_path, cycles=30)
    assert not report.handles_leaked, report
    assert report.warm.sqlite_files > 0  # the count sees the cache's files


@pytest.mark.timeout(360)  # 44 s of the default 120 on 2 cores with 2 busy loops
async def test_pop3_poller_cycles_leak_nothing(
    dovecot_factory: Callable[..., Dovecot], tmp_path: Path
) -> None:
    server = dovecot_factory(tls=False)
    report = await pop3_cycles(server, server.add_user("pop"), tmp_path, cycles=30)
    assert not report.handles_leaked, report
    # The UIDL ledger is opened for each check and closed after it: never left open.
    assert (tmp_path / "pop3.sqlite3").exists()
    assert report.end.sqlite_files == 0, report


async def test_outbox_runner_cycles_leak_nothing(
    postfix: Postfix, user: User, user2: User, tmp_path: Path
) -> None:
    report = await outbox_cycles(postfix, user, user2, tmp_path, cycles=30)
    assert not report.handles_leaked, report
