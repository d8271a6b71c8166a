"""Live updates against the Exchange profile's IDLE cut (harness/exchange.py).

Exchange ends an IDLE after 30 minutes with ``* BYE``; NAT boxes close idle links sooner.
Kittiwake renews its IDLE every ``idle_renew`` (5 minutes by default), so a cut is never
reached; and when one comes anyway (a shorter cut than the renewal), the dead IDLE is noticed,
the account reconnects, catches up, and watches again. The profile's cut here is short (a
second or two) so the tests run in seconds; the renewal is shortened to match.
"""

from __future__ import annotations

import contextlib
import imaplib
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from harness import Dovecot, User
from harness.clients import imap_device, wait_for_async
from harness.exchange import ExchangeProfile
from harness.mail import append_many

from kittiwake.core.cache import Cache
from kittiwake.core.config import config_from_dict
from kittiwake.core.events import ConnectionChanged, ConnState, EventBus, FlagsChanged, Subscription
from kittiwake.core.imap.account import ImapAccount, Tuning
from kittiwake.core.models import FLAGGED


@pytest.fixture
def exchange_factory(dovecot: Dovecot) -> Iterator[Callable[..., ExchangeProfile]]:
    """An Exchange profile of this test's own, in front of the shared Dovecot, with its own
    IDLE cut: ``exchange_factory(idle_cut=1.0, cut_with_bye=False)``."""
    made: list[ExchangeProfile] = []

    def make(**kw: float | bool) -> ExchangeProfile:
        profile = ExchangeProfile(dovecot, **kw).start()  # type: ignore[arg-type]
        made.append(profile)
        return profile

    yield make
    for profile in made:
        profile.stop()


@pytest.fixture
async def account_on(
    tmp_path: Path,
) -> AsyncIterator[Callable[[ExchangeProfile, User, Tuning], ImapAccount]]:
    made: list[ImapAccount] = []

    def make(profile: ExchangeProfile, user: User, tuning: Tuning) -> ImapAccount:
        imap = {
            "host": profile.host,
            "port": profile.ports.imaps,
            "user": user.login,
            "password": user.password,
            "ca_file": str(profile.ca_file),
            "timeout": 5,
        }
        config = config_from_dict({"accounts": {"a": {"email": user.email, "imap": imap}}})
        account = ImapAccount(
            config.accounts["a"], Cache(tmp_path / f"a{len(made)}.sqlite3"), EventBus(), tuning
        )
        made.append(account)
        return account

    yield make
    for account in made:
        await account.stop()
        account.cache.close()


def _device(profile: ExchangeProfile, user: User) -> imaplib.IMAP4_SSL:
    device = imap_device(profile, user)  # type: ignore[arg-type]
    append_many(device, 3)
    return device


async def _flag_arrives(device: imaplib.IMAP4, events: Subscription, uid: int) -> None:
    device.select("INBOX")
    device.uid("STORE", str(uid), "+FLAGS", "(\\Flagged)")

    def arrived() -> bool:
        return any(
            isinstance(e, FlagsChanged) and FLAGGED in e.flags.get(uid, ())
            for e in events.pending()
        )

    await wait_for_async(arrived, timeout=10, message="the flag change after the IDLE cut")


@pytest.mark.parametrize("cut_with_bye", [True, False], ids=["bye", "closed"])
async def test_a_cut_idle_is_noticed_and_renewed(
    exchange_factory: Callable[..., ExchangeProfile],
    account_on: Callable[[ExchangeProfile, User, Tuning], ImapAccount],
    cut_with_bye: bool,
) -> None:
    """The cut comes before Kittiwake's renewal: a ``* BYE`` (Exchange) or a bare close (a NAT
    box). The account goes offline, comes back, and a change made after the cut arrives."""
    profile = exchange_factory(idle_cut=1.0, cut_with_bye=cut_with_bye)
    user = profile.add_user("idle")
    device = _device(profile, user)
    try:
        account = account_on(profile, user, Tuning(backoff_min=0.05, backoff_max=0.2))
        events = account.bus.subscribe()
        account.start()
        await account.wait_synced(15)
        await account.watch_folder("INBOX")
        await wait_for_async(lambda: profile.idle_cuts >= 1, 10, message="the profile's cut")
        await wait_for_async(
            lambda: any(
                isinstance(e, ConnectionChanged) and e.state is ConnState.OFFLINE
                for e in events.pending()
            ),
            10,
            message="the cut noticed",
        )
        idles = profile.idles
        await wait_for_async(lambda: profile.idles > idles, 10, message="IDLE started again")
        await _flag_arrives(device, events, 2)
    finally:
        with contextlib.suppress(imaplib.IMAP4.error, OSError):
            device.logout()


async def test_idle_is_renewed_before_the_server_cuts_it(
    exchange_factory: Callable[..., ExchangeProfile],
    account_on: Callable[[ExchangeProfile, User, Tuning], ImapAccount],
) -> None:
    """Renewal (``idle_renew``) shorter than the server's cut: the cut never comes. Four IDLEs
    take longer than one cut's time, so a client that did not renew would have been cut."""
    profile = exchange_factory(idle_cut=1.5)
    user = profile.add_user("renew")
    device = _device(profile, user)
    try:
        account = account_on(profile, user, Tuning(idle_renew=0.5, backoff_min=0.05))
        events = account.bus.subscribe()
        account.start()
        await account.wait_synced(15)
        await account.watch_folder("INBOX")
        await wait_for_async(lambda: profile.idles >= 4, 10, message="four IDLEs")
        assert profile.idle_cuts == 0
        assert not any(
            isinstance(e, ConnectionChanged) and e.state is ConnState.OFFLINE
            for e in events.pending()
        )
        await _flag_arrives(device, events, 1)
    finally:
        with contextlib.suppress(imaplib.IMAP4.error, OSError):
            device.logout()
