"""Strings that reach an IMAP command line, against the real Dovecot: a folder name or a
Message-ID carrying CR, LF or NUL never ends the command line and starts another."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from harness import Dovecot, User
from harness.clients import imap_device

from kittiwake.core.api import MailApi
from kittiwake.core.config import config_from_dict
from kittiwake.core.engine import Engine
from kittiwake.core.errors import KittiwakeError
from kittiwake.core.imap.account import ImapAccount

INJECTION = "\r\nZ1 CREATE Injected\r\nZ2 NOOP"


def server_folders(dovecot: Dovecot, user: User) -> set[str]:
    device = imap_device(dovecot, user)
    try:
        typ, data = device.list()
        assert typ == "OK"
        names = (re.match(r'\(.*?\) (?:NIL|"[^"]*") (.*)$', line.decode()) for line in data)
        return {m.group(1).strip('"') for m in names if m is not None}
    finally:
        device.logout()


async def connected_api(tmp_path: Path, dovecot: Dovecot, user: User) -> MailApi:
    imap = {
        "host": dovecot.host,
        "port": dovecot.ports.imaps,
        "user": user.login,
        "password": user.password,
        "ca_file": str(dovecot.ca_file),
        "timeout": 5,
    }
    engine = Engine(
        config_from_dict({"accounts": {"a": {"email": user.email, "imap": imap}}}),
        cache_dir=tmp_path / "cache",
    )
    account = engine.stores["a"]
    assert isinstance(account, ImapAccount)
    await account.connect_once()
    await account.sync_all()
    return MailApi(engine)


@pytest.mark.parametrize("bad", ["Evil" + INJECTION, "Line\nbreak", "Nul\x00byte", "Cr\rhere"])
async def test_a_folder_name_with_cr_lf_or_nul_is_refused_in_one_sentence(
    tmp_path: Path, dovecot: Dovecot, user: User, bad: str
) -> None:
    api = await connected_api(tmp_path, dovecot, user)
    before = server_folders(dovecot, user)
    try:
        with pytest.raises(KittiwakeError) as create:
            await api.create_folder("a", bad)
        with pytest.raises(KittiwakeError) as rename:
            await api.rename_folder("a", "Sent", bad)
        for refused in (create.value.message, rename.value.message):
            assert "line break" in refused and "\n" not in refused and "\r" not in refused
        assert server_folders(dovecot, user) == before
        await api.create_folder("a", "Fine")  # the connection is still in step
    finally:
        await api.stop()
    assert server_folders(dovecot, user) == before | {"Fine"}


async def test_a_message_id_with_cr_lf_never_injects_a_command(
    tmp_path: Path, dovecot: Dovecot, user: User
) -> None:
    api = await connected_api(tmp_path, dovecot, user)
    store = api.engine.stores["a"]
    before = server_folders(dovecot, user)
    try:
        assert not await store.has_message_id("INBOX", "<x@example.org>" + INJECTION)
        assert not await store.has_message_id("INBOX", "<x@example.org>\x00")
        assert await store.has_message_id("INBOX", "<absent@example.org>") is False
    finally:
        await api.stop()
    assert "Injected" not in server_folders(dovecot, user)
    assert server_folders(dovecot, user) == before
