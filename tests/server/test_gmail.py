"""Kittiwake against the Gmail test profile (harness/gmail.py): labels as folders, All Mail.

The profile is pymap shaped like Gmail's IMAP (X-GM-EXT-1, ``[Gmail]/`` special-use folders,
one message in every folder of its labels and in All Mail). What the server holds is checked
over a separate imaplib connection, as another device would see it.
"""

from __future__ import annotations

import contextlib
import imaplib
import re
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import TcpProxy
from harness.clients import imap_device, wait_for_async
from harness.gmail import ALL_MAIL, IMPORTANT, MAX_CONNECTIONS, SENT, SPAM, TRASH, GmailProfile
from harness.mail import append_many, message

from kittiwake.core.api import MailApi
from kittiwake.core.config import config_from_dict
from kittiwake.core.engine import Engine
from kittiwake.core.events import ConnectionChanged, ConnState
from kittiwake.core.imap.account import Tuning
from kittiwake.core.journal import Action
from kittiwake.core.models import FolderRole

pytestmark = pytest.mark.servers


@pytest.fixture
def device(gmail: GmailProfile) -> Iterator[imaplib.IMAP4_SSL]:
    imap = imap_device(gmail, gmail.user)  # type: ignore[arg-type]
    yield imap
    with contextlib.suppress(imaplib.IMAP4.error, OSError):
        imap.logout()


def _config(gmail: GmailProfile) -> dict[str, Any]:
    return {
        "email": gmail.user.email,
        "imap": {
            "host": gmail.host,
            "port": gmail.ports.imaps,
            "user": gmail.user.login,
            "password": gmail.user.password,
            "ca_file": str(gmail.ca_file),
            "timeout": 5,
        },
    }


@pytest.fixture
async def api(tmp_path: Path, gmail: GmailProfile) -> AsyncIterator[MailApi]:
    config = config_from_dict({"accounts": {"me": _config(gmail)}})
    tuning = Tuning(backoff_min=0.05, backoff_max=0.5, first_window=10, batch=20)
    made = MailApi(Engine(config, tmp_path / "cache", tuning))
    yield made
    await made.stop()


async def _started(api: MailApi) -> None:
    api.start()
    await api.engine.imap["me"].wait_synced(15)


async def _settled(api: MailApi) -> None:
    await api.engine.imap["me"].flush_actions()
    assert api.pending_actions("me") == 0


def _quoted(folder: str) -> str:
    return f'"{folder}"'


def gm_fetch(device: imaplib.IMAP4, folder: str) -> dict[int, tuple[int, set[str]]]:
    """UID -> (X-GM-MSGID, X-GM-LABELS) of every message in ``folder``."""
    device.select(_quoted(folder), readonly=True)
    _, data = device.uid("FETCH", "1:*", "(X-GM-MSGID X-GM-LABELS)")
    out: dict[int, tuple[int, set[str]]] = {}
    for item in data:
        text = item.decode() if isinstance(item, bytes) else ""
        uid = re.search(r"UID (\d+)", text)
        msgid = re.search(r"X-GM-MSGID (\d+)", text)
        found = re.search(r"X-GM-LABELS \(([^)]*)\)", text)
        if uid and msgid and found:
            labels = {x.replace("\\\\", "\\") for x in re.findall(r'"([^"]*)"', found.group(1))}
            out[int(uid.group(1))] = (int(msgid.group(1)), labels)
    return out


def msgids(device: imaplib.IMAP4, folder: str) -> set[int]:
    return {msgid for msgid, _ in gm_fetch(device, folder).values()}


def labelled(device: imaplib.IMAP4, n: int, *folders: str) -> None:
    """Message ``n`` into INBOX, then copied into ``folders``: Gmail's labels."""
    typ, _ = device.append("INBOX", "", None, message(n, f"Labelled {n}"))
    assert typ == "OK"
    device.select("INBOX")
    _, data = device.uid("SEARCH", "SUBJECT", f'"Labelled {n}"')
    uid = data[0].decode().split()[-1]
    for folder in folders:
        if not folder.startswith("[Gmail]/"):
            device.create(_quoted(folder))  # a new label; NO if it exists: fine
        assert device.uid("COPY", uid, _quoted(folder))[0] == "OK"


# -- the profile itself ----------------------------------------------------------------------


def test_the_profile_speaks_gmail(gmail: GmailProfile, device: imaplib.IMAP4) -> None:
    assert "X-GM-EXT-1" in device.capabilities
    listed = b"\n".join(device.list()[1])  # type: ignore[arg-type]
    for folder, use in [(ALL_MAIL, b"\\All"), (TRASH, b"\\Trash"), (SPAM, b"\\Junk")]:
        assert re.search(
            rb"\(.*" + re.escape(use) + rb".*\) \"/\" \"?" + re.escape(folder.encode()), listed
        )
    assert b"\\Important" in listed
    labelled(device, 1, IMPORTANT, "Work")  # a user label is a folder too
    inbox, everything = gm_fetch(device, "INBOX"), gm_fetch(device, ALL_MAIL)
    assert len(inbox) == len(everything) == 1
    [(msgid, labels)] = inbox.values()
    assert labels == {"\\Inbox", "\\Important", "Work"}
    assert msgids(device, "Work") == msgids(device, IMPORTANT) == {msgid}
    assert everything == inbox or list(everything.values()) == [(msgid, labels)]


def test_the_profile_refuses_a_sixteenth_connection(gmail: GmailProfile) -> None:
    opened: list[imaplib.IMAP4_SSL] = []
    try:
        for _ in range(MAX_CONNECTIONS):
            opened.append(imap_device(gmail, gmail.user))  # type: ignore[arg-type]
        with pytest.raises(imaplib.IMAP4.error, match="Too many simultaneous connections"):
            imap_device(gmail, gmail.user)  # type: ignore[arg-type]
    finally:
        for imap in opened:
            with contextlib.suppress(imaplib.IMAP4.error, OSError):
                imap.logout()


async def test_too_many_connections_is_said_in_one_sentence(
    api: MailApi, gmail: GmailProfile
) -> None:
    opened = [imap_device(gmail, gmail.user) for _ in range(MAX_CONNECTIONS)]  # type: ignore[arg-type]
    try:
        events = api.subscribe()
        api.start()
        event = await events.wait_for(ConnectionChanged, 10, state=ConnState.OFFLINE)
        assert event.reason is not None
        assert "too many connections open to this account" in event.reason
        assert event.reason.count(". ") == 0 and "\n" not in event.reason
    finally:
        for imap in opened:
            with contextlib.suppress(imaplib.IMAP4.error, OSError):
                imap.logout()
    await api.engine.imap["me"].wait_synced(15)  # and once some are closed, it gets in


# -- All Mail, archive, delete, junk ----------------------------------------------------------


async def test_all_mail_is_not_downloaded_until_opened(api: MailApi, device: imaplib.IMAP4) -> None:
    append_many(device, 6)
    await _started(api)
    account = api.engine.imap["me"]
    assert account.cache.counts("INBOX") == (6, 6)
    assert api.role_folder("me", FolderRole.ALL) == ALL_MAIL
    assert account.cache.folder_state(ALL_MAIL) is None
    assert not account.cache.flags(ALL_MAIL)
    await account.sync_all()  # a later full sync (ctrl+r, the poll) leaves it alone too
    assert not account.cache.flags(ALL_MAIL)
    await api.open_folder("me", ALL_MAIL)
    assert len(account.cache.flags(ALL_MAIL)) == 6


async def test_archive_takes_the_inbox_label_off_and_keeps_the_message(
    api: MailApi, device: imaplib.IMAP4
) -> None:
    labelled(device, 1, "Work")
    labelled(device, 2)
    await _started(api)
    assert api.archive_folder("me") == ALL_MAIL
    account = api.engine.imap["me"]
    uid = min(account.cache.flags("INBOX"))
    api.act("me", Action(kind="move", folder="INBOX", uidvalidity=None, uids=(uid,), dest=ALL_MAIL))
    await _settled(api)
    assert len(gm_fetch(device, "INBOX")) == 1
    everything = gm_fetch(device, ALL_MAIL)
    assert len(everything) == 2  # still there, once, as in Gmail's web interface
    assert sorted(sorted(labels) for _, labels in everything.values()) == [["Work"], ["\\Inbox"]]


async def test_archive_from_a_labels_folder_keeps_the_label(
    api: MailApi, device: imaplib.IMAP4
) -> None:
    """In Gmail's web interface, archive in a label's view takes only the Inbox label off."""
    labelled(device, 1, "Work")
    await _started(api)
    account = api.engine.imap["me"]
    [uid] = account.cache.flags("Work")
    api.label_action("me", "Work", [uid], remove=["\\Inbox"])
    await _settled(api)
    assert not gm_fetch(device, "INBOX")
    assert [labels for _, labels in gm_fetch(device, "Work").values()] == [{"Work"}]
    assert len(gm_fetch(device, ALL_MAIL)) == 1
    await wait_for_async(lambda: not account.cache.flags("INBOX"), 10, message="INBOX resynced")


@pytest.mark.parametrize("role", [FolderRole.TRASH, FolderRole.JUNK])
async def test_delete_and_junk_take_the_message_out_of_every_label(
    api: MailApi, device: imaplib.IMAP4, role: FolderRole
) -> None:
    labelled(device, 1, "Work", IMPORTANT)
    labelled(device, 2)
    await _started(api)
    dest = api.role_folder("me", role)
    assert dest == (TRASH if role is FolderRole.TRASH else SPAM)
    account = api.engine.imap["me"]
    [uid] = [
        u for u, s in account.cache.flags("INBOX").items() if u == min(account.cache.flags("INBOX"))
    ]
    gone = gm_fetch(device, "INBOX")[uid][0]
    api.act("me", Action(kind="move", folder="INBOX", uidvalidity=None, uids=(uid,), dest=dest))
    await _settled(api)
    for folder in ("INBOX", ALL_MAIL, "Work", IMPORTANT):
        assert gone not in msgids(device, folder), folder
    assert msgids(device, dest) == {gone}
    assert len(gm_fetch(device, ALL_MAIL)) == 1


# -- one message, however many labels ----------------------------------------------------------


async def test_a_message_with_three_labels_is_one_message(
    api: MailApi, device: imaplib.IMAP4
) -> None:
    labelled(device, 1, SENT, "Work")  # Inbox, Sent and Work: three labels, four folders
    labelled(device, 2)
    await _started(api)
    await api.open_folder("me", ALL_MAIL)
    account = api.engine.imap["me"]
    for folder in ("INBOX", SENT, "Work", ALL_MAIL):  # every copy is cached ...
        assert account.cache.flags(folder), folder
    # ... and the message is found once, counted once, and in its conversation once
    hits = await api.search("me", None, "subject:labelled")
    assert len(hits) == 2, hits
    assert len(await api.search("me", None, "is:unread")) == 2
    assert account.cache.counts(ALL_MAIL) == (2, 2)
    threading, _ = await api.threads("me", "INBOX")  # INBOX with Sent threaded in
    assert sorted(t.messages for t in threading.threads) == [1, 1]
    assert sum(1 for key in threading.keys if key is not None) == 2


async def test_conversations_are_gmail_s_own(api: MailApi, device: imaplib.IMAP4) -> None:
    """X-GM-THRID: Gmail puts same-subject notifications from one sender in one
    conversation though no header links them (JWZ alone leaves them apart); a message of
    another conversation stays apart."""
    shop = "Shop <orders@shop.example>"
    for n in (1, 2):
        assert (
            device.append("INBOX", "", None, message(n, "Your order has shipped", shop))[0] == "OK"
        )
    assert device.append("INBOX", "", None, message(3, "Lunch", "Ann <ann@example.org>"))[0] == "OK"
    await _started(api)
    account = api.engine.imap["me"]
    by_subject = {
        account.cache.summary("INBOX", uid).envelope.subject: uid  # type: ignore[union-attr]
        for uid in account.cache.uids("INBOX")
    }
    assert len(by_subject) == 2  # both notifications have one subject
    threading, _ = await api.threads("me", "INBOX")
    assert sorted(t.messages for t in threading.threads) == [1, 2]
    shipped = next(t for t in threading.threads if t.messages == 2)
    rows = threading.keys[shipped.first_row : shipped.first_row + shipped.rows]
    assert [threading.depths[shipped.first_row + i] for i in range(len(rows))] == [0, 1]
    lunch = next(t for t in threading.threads if t.messages == 1)
    assert lunch.first_key[1] == by_subject["Lunch"]


async def test_search_before_all_mail_was_opened_finds_each_message_once(
    api: MailApi, device: imaplib.IMAP4
) -> None:
    labelled(device, 1, "Work", IMPORTANT)
    labelled(device, 2)
    device.select("INBOX")
    device.uid("MOVE", "102", _quoted(ALL_MAIL))  # archived elsewhere: only in All Mail now
    await _started(api)
    account = api.engine.imap["me"]
    assert not account.cache.flags(ALL_MAIL)
    assert api.search_folders("me", None) == [ALL_MAIL, SPAM, TRASH]
    hits = await api.search("me", None, "subject:labelled")
    subjects = sorted(
        s.envelope.subject for h in hits if (s := api.summary_of("me", h)) is not None
    )
    assert subjects == ["Labelled 1", "Labelled 2"], hits


async def test_gmail_syntax_goes_to_the_server_as_x_gm_raw(
    api: MailApi, device: imaplib.IMAP4
) -> None:
    labelled(device, 1, IMPORTANT)
    labelled(device, 2, "Work")
    labelled(device, 3)
    await _started(api)
    assert api.check_query("gmail:label:work") is None
    assert api.search_cached("me", None, "gmail:label:work") == []  # only Gmail can judge it
    hits = await api.search("me", None, "gmail:label:work")
    # found in All Mail, never synced before: the one message, fetched to be shown
    assert [h.folder for h in hits] == [ALL_MAIL]
    summary = api.summary_of("me", hits[0])
    assert summary is not None and summary.envelope.subject == "Labelled 2"
    both = await api.search("me", "INBOX", "gmail:subject:labelled")
    assert len(both) == 3


# -- labels as a triage action ---------------------------------------------------------------


async def test_labels_are_fetched_and_added_and_removed(
    api: MailApi, device: imaplib.IMAP4
) -> None:
    labelled(device, 1, "Work")
    await _started(api)
    [uid] = api.engine.imap["me"].cache.flags("INBOX")
    assert set(api.labels("me", "INBOX", uid) or ()) == {"\\Inbox", "Work"}
    api.label_action("me", "INBOX", [uid], add=["Travel", "\\Important"], remove=["Work"])
    assert set(api.labels("me", "INBOX", uid) or ()) == {"\\Inbox", "Travel", "\\Important"}
    await _settled(api)
    [(msgid, labels)] = gm_fetch(device, "INBOX").values()
    assert labels == {"\\Inbox", "Travel", "\\Important"}
    assert msgids(device, "Travel") == msgids(device, IMPORTANT) == {msgid}
    assert not msgids(device, "Work")
    # and back, by undo
    assert api.undo("me") != "Nothing to undo"
    await _settled(api)
    assert gm_fetch(device, "INBOX")[uid][1] == {"\\Inbox", "Work"}


async def test_a_label_change_made_offline_survives_quitting(
    tmp_path: Path,
    gmail: GmailProfile,
    device: imaplib.IMAP4,
    proxy_factory: Callable[[str, int], TcpProxy],
) -> None:
    labelled(device, 1)
    proxy = proxy_factory(gmail.host, gmail.ports.imaps)
    config = _config(gmail)
    config["imap"].update(host=proxy.host, port=proxy.port)
    tuning = Tuning(backoff_min=0.05, backoff_max=0.5, first_window=10, batch=20)

    def make() -> MailApi:
        return MailApi(
            Engine(config_from_dict({"accounts": {"me": config}}), tmp_path / "c", tuning)
        )

    first = make()
    await _started(first)
    [uid] = first.engine.imap["me"].cache.flags("INBOX")
    events = first.subscribe()
    proxy.refuse_new_connections()
    proxy.kill_connections()
    await events.wait_for(ConnectionChanged, 10, state=ConnState.OFFLINE)
    first.label_action("me", "INBOX", [uid], add=["Receipts"])
    assert first.pending_actions("me") == 1
    await first.stop()  # quit the app while offline
    assert gm_fetch(device, "INBOX")[uid][1] == {"\\Inbox"}  # not on the server yet
    proxy.accept_new_connections()
    second = make()
    try:
        assert second.pending_actions("me") == 1  # the journal kept it
        assert "Receipts" in (second.labels("me", "INBOX", uid) or ())
        await _started(second)
        await _settled(second)
    finally:
        await second.stop()
    assert gm_fetch(device, "INBOX")[uid][1] == {"\\Inbox", "Receipts"}
