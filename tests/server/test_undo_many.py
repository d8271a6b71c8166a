"""One user action over several folders is one undo step (``MailApi.act_many``), against the
real Dovecot: ``z`` brings back every folder's part, whether the server already has the
action (inverse: moves back through COPYUID, previous flags) or not (cancelled)."""

from __future__ import annotations

import imaplib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from harness import Dovecot, User
from harness.clients import imap_device, wait_for_async
from harness.ui import message

from kittiwake.core.api import MailApi
from kittiwake.core.config import config_from_dict
from kittiwake.core.engine import Engine
from kittiwake.core.imap.account import Tuning
from kittiwake.core.journal import Action
from kittiwake.core.models import FLAGGED


def subjects(device: imaplib.IMAP4, folder: str) -> list[str]:
    device.select(f'"{folder}"', readonly=True)
    _, data = device.uid("FETCH", "1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    return sorted(
        item[1].decode().strip().removeprefix("Subject: ")
        for item in data
        if isinstance(item, tuple)
    )


@pytest.fixture
async def api(tmp_path: Path, dovecot: Dovecot, user: User) -> AsyncIterator[MailApi]:
    device = imap_device(dovecot, user)
    try:
        assert device.create("Work")[0] == "OK"
        for n in (1, 2):
            assert device.append("INBOX", "", None, message(n))[0] == "OK"
        assert device.append("Work", "", None, message(3, "Work item"))[0] == "OK"
    finally:
        device.logout()
    imap = {
        "host": dovecot.host,
        "port": dovecot.ports.imaps,
        "user": user.login,
        "password": user.password,
        "ca_file": str(dovecot.ca_file),
        "timeout": 5,
    }
    config = config_from_dict({"accounts": {"me": {"email": user.email, "imap": imap}}})
    made = MailApi(Engine(config, tmp_path / "cache", Tuning(backoff_min=0.05, backoff_max=0.3)))
    yield made
    await made.stop()


def moves(dest: str) -> list[Action]:
    return [
        Action(kind="move", folder="INBOX", uidvalidity=None, uids=(1, 2), dest=dest),
        Action(kind="move", folder="Work", uidvalidity=None, uids=(1,), dest=dest),
    ]


async def test_undo_reverts_every_folder_of_one_action_the_server_has(
    api: MailApi, dovecot: Dovecot, user: User
) -> None:
    api.start()
    account = api.engine.imap["me"]
    await account.wait_synced(15)
    before = {"INBOX": ["Message 1", "Message 2"], "Work": ["Work item"]}
    api.act_many("me", moves("Trash"))
    await account.flush_actions()
    device = imap_device(dovecot, user)
    try:
        assert subjects(device, "INBOX") == [] and subjects(device, "Work") == []
        assert len(subjects(device, "Trash")) == 3
        assert api.undo() == "Undone: move 3 messages to Trash"
        await account.flush_actions()
        assert api.pending_actions("me") == 0
        for folder, expected in before.items():
            assert subjects(device, folder) == expected
        assert subjects(device, "Trash") == []
        # The cache follows (the moved-back messages arrive by the folders' resync).
        await wait_for_async(
            lambda: api.counts("me", "INBOX")[0] == 2 and api.counts("me", "Work")[0] == 1,
            message="the messages back in the cache",
        )
        assert api.counts("me", "Trash")[0] == 0
        # One step, not two: the next undo has nothing left.
        assert api.undo() == "Nothing to undo"
    finally:
        device.logout()


async def test_undo_cancels_every_part_not_sent_yet(api: MailApi) -> None:
    account = api.engine.imap["me"]
    await account.connect_once()
    await account.sync_all()  # not started: the actions stay in the journal
    flag = [
        Action(kind="flags", folder=f, uidvalidity=None, uids=(1,), add=(FLAGGED,))
        for f in ("INBOX", "Work")
    ]
    # An earlier action, not part of the next one (on another message: the flag below names
    # INBOX 1, which must still be there to be acted on).
    api.act("me", Action(kind="move", folder="INBOX", uidvalidity=None, uids=(2,), dest="Archive"))
    api.act_many("me", flag)
    assert FLAGGED in api.summaries("me", "Work", [1])[1].flags
    assert api.pending_actions("me") == 3
    assert api.undo() == "Undone: change flags of 2 messages"
    assert FLAGGED not in api.summaries("me", "Work", [1])[1].flags
    assert api.pending_actions("me") == 1  # the earlier move is still there
    assert api.counts("me", "INBOX")[0] == 1
    assert api.undo() == "Undone: move 1 message to Archive"
    assert api.counts("me", "INBOX")[0] == 2 and api.pending_actions("me") == 0


async def test_undo_is_per_account(api: MailApi) -> None:
    """``z`` in one account never undoes what was done in another one."""
    api.start()
    account = api.engine.imap["me"]
    await account.wait_synced(15)
    flag = Action(kind="flags", folder="INBOX", uidvalidity=None, uids=(1,), add=(FLAGGED,))
    api.act("me", flag)
    assert api.undo("elsewhere") == "Nothing to undo"
    assert FLAGGED in api.summaries("me", "INBOX", [1])[1].flags
    assert api.undo("me").startswith("Undone:")
    assert FLAGGED not in api.summaries("me", "INBOX", [1])[1].flags
    assert api.undo("me") == "Nothing to undo"
