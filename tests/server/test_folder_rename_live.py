"""A folder renamed on the server by another device shows live, against the real Dovecot:
through the watch connection with NOTIFY, and through the polls without it (it showed only
after ctrl+r), on a Dovecot without NOTIFY and on the Exchange profile."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from harness import Dovecot, User
from harness.clients import imap_device
from harness.mail import BARE_CAPS, append_many

from kittiwake.core.cache import Cache
from kittiwake.core.config import config_from_dict
from kittiwake.core.events import EventBus, FolderListChanged, MessagesAdded, Subscription
from kittiwake.core.imap.account import ImapAccount, Tuning

Start = Callable[[Dovecot, User, Tuning], Awaitable[tuple[ImapAccount, Subscription]]]


@pytest.fixture
async def start(tmp_path: Path) -> AsyncIterator[Start]:
    started: list[ImapAccount] = []

    async def make(server: Dovecot, user: User, tuning: Tuning) -> tuple[ImapAccount, Subscription]:
        imap = {
            "host": server.host,
            "port": server.ports.imaps,
            "user": user.login,
            "password": user.password,
            "ca_file": str(server.ca_file),
            "timeout": 5,
        }
        config = config_from_dict({"accounts": {"a": {"email": user.email, "imap": imap}}})
        bus = EventBus()
        events = bus.subscribe()
        account = ImapAccount(config.accounts["a"], Cache(tmp_path / "a.sqlite3"), bus, tuning)
        started.append(account)
        account.start()
        await account.wait_synced(10)  # the watcher listens before the sync starts
        events.pending()
        return account, events

    yield make
    for account in started:
        await account.stop()
        account.cache.close()


def make_work_folder(server: Dovecot, user: User) -> None:
    device = imap_device(server, user)
    try:
        assert device.create("Work")[0] == "OK"
        assert device.subscribe("Work")[0] == "OK"
        append_many(device, 2, "Work")
    finally:
        device.logout()


def rename_elsewhere(server: Dovecot, user: User) -> None:
    device = imap_device(server, user)
    try:
        assert device.rename("Work", "Projects")[0] == "OK"
    finally:
        device.logout()


async def renamed_live(account: ImapAccount, events: Subscription, timeout: float) -> None:
    event = await events.wait_for(FolderListChanged, timeout)
    assert isinstance(event, FolderListChanged)
    names = {f.name for f in event.folders}
    assert "Projects" in names and "Work" not in names
    await events.wait_for(MessagesAdded, timeout, folder="Projects")  # and its messages
    assert account.cache.counts("Projects")[0] == 2


async def test_a_folder_renamed_elsewhere_shows_through_notify(
    start: Start, dovecot: Dovecot, user: User
) -> None:
    make_work_folder(dovecot, user)
    account, events = await start(dovecot, user, Tuning(poll_every=3600))
    assert account.client.has("NOTIFY")
    rename_elsewhere(dovecot, user)
    await renamed_live(account, events, timeout=3)


@pytest.mark.parametrize("without", ["bare-dovecot", "exchange"])
async def test_a_folder_renamed_elsewhere_shows_through_polls_without_notify(
    start: Start,
    dovecot_factory: Callable[..., Dovecot],
    request: pytest.FixtureRequest,
    without: str,
) -> None:
    """A Dovecot with its extensions switched off, and the Exchange profile (no NOTIFY)."""
    if without == "exchange":
        server = request.getfixturevalue("exchange")
    else:
        server = dovecot_factory(extra_conf=BARE_CAPS)
    user = server.add_user("erin")
    make_work_folder(server, user)
    account, events = await start(server, user, Tuning(poll_every=0.2))
    assert not account.client.has("NOTIFY")
    rename_elsewhere(server, user)
    await renamed_live(account, events, timeout=3)
