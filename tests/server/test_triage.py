"""Triage against the real Dovecot: each action and its undo, without MOVE, offline, conflicts.

The server's state is always checked over a separate IMAP connection (another device).
"""

from __future__ import annotations

import imaplib
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from harness import Dovecot, User
from harness.clients import imap_device
from harness.mail import BARE_CAPS, append_many

from kittiwake.core.api import MailApi
from kittiwake.core.config import config_from_dict
from kittiwake.core.engine import Engine
from kittiwake.core.events import ConnectionChanged, ConnState, SyncError
from kittiwake.core.imap.account import Tuning
from kittiwake.core.journal import Action
from kittiwake.core.models import DELETED, FLAGGED, JUNK, SEEN


def server_flags(device: imaplib.IMAP4, folder: str) -> dict[int, set[str]]:
    device.select(f'"{folder}"', readonly=True)
    _, data = device.uid("FETCH", "1:*", "(FLAGS)")
    out: dict[int, set[str]] = {}
    for item in data:
        if not item:
            continue
        text = item.decode() if isinstance(item, bytes) else item[0].decode()
        m = re.search(r"UID (\d+) FLAGS \(([^)]*)\)", text) or re.search(
            r"FLAGS \(([^)]*)\) UID (\d+)", text
        )
        if m is None:
            continue
        if m.re.pattern.startswith("UID"):
            uid, flags = int(m.group(1)), m.group(2)
        else:
            flags, uid = m.group(1), int(m.group(2))
        out[uid] = set(flags.split()) - {"\\Recent"}
    return out


def subjects(device: imaplib.IMAP4, folder: str) -> list[str]:
    device.select(f'"{folder}"', readonly=True)
    _, data = device.uid("FETCH", "1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    out = []
    for item in data:
        if isinstance(item, tuple):
            out.append(item[1].decode().strip().removeprefix("Subject: "))
    return sorted(out)


ApiFactory = Callable[..., "MailApi"]


@pytest.fixture
async def api_for(tmp_path: Path) -> AsyncIterator[Callable[..., MailApi]]:
    made: list[MailApi] = []

    def make(server: Dovecot, user: User) -> MailApi:
        config = config_from_dict(
            {
                "accounts": {
                    "me": {
                        "email": user.email,
                        "imap": {
                            "host": server.host,
                            "port": server.ports.imaps,
                            "user": user.login,
                            "password": user.password,
                            "ca_file": str(server.ca_file),
                            "timeout": 5,
                        },
                    }
                }
            }
        )
        api = MailApi(Engine(config, tmp_path / "cache", Tuning(backoff_min=0.05, backoff_max=0.3)))
        made.append(api)
        return api

    yield make
    for api in made:
        await api.stop()


async def started(api: MailApi) -> None:
    api.start()
    await api.engine.imap["me"].wait_synced(15)


async def settled(api: MailApi) -> None:
    """Until the journal is empty: every action confirmed by the server."""
    await api.engine.imap["me"].flush_actions()
    assert api.pending_actions("me") == 0


def flags_action(
    uids: list[int], add: tuple[str, ...] = (), remove: tuple[str, ...] = ()
) -> Action:
    return Action(
        kind="flags", folder="INBOX", uidvalidity=None, uids=tuple(uids), add=add, remove=remove
    )


@pytest.mark.parametrize("count", [1, 50])
async def test_flag_read_and_their_undo(
    api_for: Callable[..., MailApi], dovecot: Dovecot, user: User, count: int
) -> None:
    device = imap_device(dovecot, user)
    append_many(device, 60)
    api = api_for(dovecot, user)
    await started(api)
    uids = list(range(1, count + 1))
    api.act("me", flags_action(uids, add=(FLAGGED,)))
    api.act("me", flags_action(uids, add=(SEEN,)))
    # On screen (the cache) at once, before the server has answered.
    assert all(FLAGGED in f for f in api.engine.imap["me"].cache.flags("INBOX", uids).values())
    await settled(api)
    server = server_flags(device, "INBOX")
    assert all({FLAGGED, SEEN} <= server[u] for u in uids) and not server[60]
    assert api.undo().startswith("Undone")  # the read
    await settled(api)
    assert api.undo().startswith("Undone")  # the flag
    await settled(api)
    server = server_flags(device, "INBOX")
    assert all(server[u] == set() for u in uids)


@pytest.mark.parametrize("count", [1, 50])
async def test_move_to_archive_and_undo(
    api_for: Callable[..., MailApi], dovecot: Dovecot, user: User, count: int
) -> None:
    device = imap_device(dovecot, user)
    append_many(device, 60)
    api = api_for(dovecot, user)
    await started(api)
    archive = api.archive_folder("me")
    assert archive == "Archive"
    uids = tuple(range(11, 11 + count))
    api.act("me", Action(kind="move", folder="INBOX", uidvalidity=None, uids=uids, dest=archive))
    assert not set(uids) & set(
        api.engine.imap["me"].cache.uids("INBOX")
    )  # gone from the list at once
    await settled(api)
    assert len(subjects(device, "Archive")) == count
    assert len(subjects(device, "INBOX")) == 60 - count
    assert api.undo().startswith("Undone")
    await settled(api)
    assert len(subjects(device, "Archive")) == 0
    assert len(subjects(device, "INBOX")) == 60


async def test_undo_follows_a_message_that_came_back_with_a_new_uid(
    api_for: Callable[..., MailApi], dovecot: Dovecot, user: User
) -> None:
    """Flag, delete, undo the delete (the message returns with a new UID), undo the flag:
    the second undo finds the message under its new UID."""
    device = imap_device(dovecot, user)
    append_many(device, 3)
    api = api_for(dovecot, user)
    await started(api)
    api.act("me", flags_action([2], add=(FLAGGED,)))
    api.act("me", Action(kind="move", folder="INBOX", uidvalidity=None, uids=(2,), dest="Trash"))
    await settled(api)
    assert api.undo("me").startswith("Undone")  # the delete: back in INBOX as UID 4
    await settled(api)
    assert server_flags(device, "INBOX")[4] == {FLAGGED}
    assert api.undo("me").startswith("Undone")
    await settled(api)
    assert server_flags(device, "INBOX") == {1: set(), 3: set(), 4: set()}


async def test_undo_of_a_flag_and_a_move_in_one_step_takes_both_back(
    api_for: Callable[..., MailApi], dovecot: Dovecot, user: User
) -> None:
    """Junk is one step: flag, then move. Undone once the server has both, the message moves
    back (a new UID) and the flag comes off it there, not off the UID it had before."""
    device = imap_device(dovecot, user)
    append_many(device, 3)
    api = api_for(dovecot, user)
    await started(api)
    api.act_many(
        "me",
        [
            flags_action([2], add=(JUNK,)),
            Action(kind="move", folder="INBOX", uidvalidity=None, uids=(2,), dest="Junk"),
        ],
    )
    await settled(api)
    assert JUNK in next(iter(server_flags(device, "Junk").values()))
    assert api.undo("me").startswith("Undone")
    await settled(api)
    assert server_flags(device, "Junk") == {}
    assert server_flags(device, "INBOX") == {1: set(), 3: set(), 4: set()}
    assert api.undo("me") == "Nothing to undo"


async def test_delete_moves_to_trash_and_in_trash_deletes_for_good(
    api_for: Callable[..., MailApi], dovecot: Dovecot, user: User
) -> None:
    device = imap_device(dovecot, user)
    append_many(device, 5)
    api = api_for(dovecot, user)
    await started(api)
    api.act("me", Action(kind="move", folder="INBOX", uidvalidity=None, uids=(1, 2), dest="Trash"))
    await settled(api)
    assert len(subjects(device, "Trash")) == 2
    await api.engine.imap["me"].sync_folder("Trash")
    trash_uids = api.engine.imap["me"].cache.uids("Trash")
    api.act(
        "me", Action(kind="expunge", folder="Trash", uidvalidity=None, uids=tuple(trash_uids[:1]))
    )
    await settled(api)
    assert len(subjects(device, "Trash")) == 1
    assert "cannot" in api.undo().lower()


async def test_copy_and_undo(api_for: Callable[..., MailApi], dovecot: Dovecot, user: User) -> None:
    device = imap_device(dovecot, user)
    append_many(device, 3)
    api = api_for(dovecot, user)
    await started(api)
    api.act(
        "me", Action(kind="copy", folder="INBOX", uidvalidity=None, uids=(1, 2), dest="Archive")
    )
    await settled(api)
    assert subjects(device, "Archive") == ["Message 1", "Message 2"]
    assert len(subjects(device, "INBOX")) == 3
    assert api.undo().startswith("Undone")
    await settled(api)
    assert subjects(device, "Archive") == []


async def test_without_move_uid_expunge_spares_other_deleted_messages(
    api_for: Callable[..., MailApi], dovecot_factory: Callable[..., Dovecot]
) -> None:
    server = dovecot_factory(extra_conf=BARE_CAPS)  # no MOVE (UIDPLUS stays)
    user = server.add_user("hal")
    device = imap_device(server, user)
    append_many(device, 6)
    device.select("INBOX")
    device.uid("STORE", "6", "+FLAGS", "(\\Deleted)")  # another device's pending delete
    api = api_for(server, user)
    await started(api)
    assert not api.engine.imap["me"].client.has("MOVE")
    api.act("me", Action(kind="move", folder="INBOX", uidvalidity=None, uids=(1, 2), dest="Trash"))
    await settled(api)
    flags = server_flags(device, "INBOX")
    assert set(flags) == {3, 4, 5, 6}  # 1 and 2 expunged, 6 untouched
    assert DELETED in flags[6]
    assert len(subjects(device, "Trash")) == 2
    assert api.undo().startswith("Undone")
    await settled(api)
    assert len(subjects(device, "INBOX")) == 6


async def test_offline_actions_survive_quitting_and_land_exactly_once(
    api_for: Callable[..., MailApi], dovecot_factory: Callable[..., Dovecot]
) -> None:
    server = dovecot_factory()
    user = server.add_user("ida")
    device = imap_device(server, user)
    append_many(device, 30)
    device.logout()
    first = api_for(server, user)
    await started(first)
    events = first.subscribe()
    server.stop()
    await events.wait_for(ConnectionChanged, 5, state=ConnState.OFFLINE)
    for uid in range(1, 11):
        first.act("me", flags_action([uid], add=(FLAGGED,)))
    for uid in range(11, 21):
        first.act(
            "me", Action(kind="move", folder="INBOX", uidvalidity=None, uids=(uid,), dest="Archive")
        )
    assert first.pending_actions("me") == 20
    assert len(first.engine.imap["me"].cache.uids("INBOX")) == 20  # applied on screen at once
    await first.stop()  # quit the app
    server.start()
    second = api_for(server, user)
    assert second.pending_actions("me") == 20  # the journal survived
    await started(second)
    await settled(second)
    device = imap_device(server, user)
    flags = server_flags(device, "INBOX")
    assert sorted(u for u, f in flags.items() if FLAGGED in f) == list(range(1, 11))
    assert sorted(flags) == list(range(1, 11)) + list(range(21, 31))
    assert subjects(device, "Archive") == sorted(f"Message {n}" for n in range(11, 21))


async def test_replay_after_another_device_expunged_drops_and_tells(
    api_for: Callable[..., MailApi], dovecot_factory: Callable[..., Dovecot]
) -> None:
    server = dovecot_factory()
    user = server.add_user("jo")
    device = imap_device(server, user)
    append_many(device, 5)
    api = api_for(server, user)
    await started(api)
    events = api.subscribe()
    server.stop()
    api.act(
        "me", Action(kind="move", folder="INBOX", uidvalidity=None, uids=(2, 3), dest="Archive")
    )
    server.start()
    device = imap_device(server, user)
    device.select("INBOX")
    device.uid("STORE", "2", "+FLAGS", "(\\Deleted)")
    device.expunge()
    error = await events.wait_for(SyncError, 15)
    assert "1 of 2 messages were already moved or deleted" in error.message
    await settled(api)
    assert subjects(device, "Archive") == ["Message 3"]


async def test_kittiwake_sync_replays_the_journal(
    api_for: Callable[..., MailApi], dovecot_factory: Callable[..., Dovecot]
) -> None:
    server = dovecot_factory()
    user = server.add_user("kim")
    append_many(imap_device(server, user), 4)
    app = api_for(server, user)
    await started(app)
    events = app.subscribe()
    server.stop()
    await events.wait_for(ConnectionChanged, 5, state=ConnState.OFFLINE)
    app.act("me", flags_action([1, 2], add=(FLAGGED,)))
    await app.stop()
    server.start()
    headless = api_for(server, user)  # what `kittiwake sync` builds: same cache, no UI
    stats = await headless.engine.sync_once("me")
    assert stats["me"].messages >= 4
    assert headless.pending_actions("me") == 0
    flags = server_flags(imap_device(server, user), "INBOX")
    assert sorted(u for u, f in flags.items() if FLAGGED in f) == [1, 2]
