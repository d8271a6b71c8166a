"""What follows a send, on the account's mail store: the copy in Sent, \\Answered/$Forwarded.

Kept apart from the outbox (which knows files and SMTP, not folders) and written only against
the ``MailStore`` protocol, so IMAP and local (POP3) accounts file their Sent copies alike.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from kittiwake.core.events import Event, MessageSent
from kittiwake.core.journal import Action
from kittiwake.core.models import SEEN, FolderRole
from kittiwake.core.store import MailStore

if TYPE_CHECKING:  # the outbox (and SMTP) load only for accounts that send
    from kittiwake.core.smtp.outbox import SentInfo

log = logging.getLogger(__name__)

DEFAULT_NAMES = {FolderRole.SENT: "Sent", FolderRole.DRAFTS: "Drafts"}


def context_for(
    account: str, folder: str, uid: int, uidvalidity: int | None, flag: str
) -> dict[str, str]:
    """The outbox item's ``context`` that has ``flag`` set on the original once it is sent."""
    return {
        "account": account,
        "folder": folder,
        "uid": str(uid),
        "uidvalidity": "" if uidvalidity is None else str(uidvalidity),
        "flag": flag,
    }


def find_folder(store: MailStore, role: FolderRole) -> str | None:
    """The folder with the SPECIAL-USE ``role``, else one named as usual ("Sent", "Drafts")."""
    folders = store.cache.folders()
    for info in folders:
        if info.role is role:
            return info.name
    wanted = DEFAULT_NAMES.get(role, "")
    if not wanted:
        return None
    usual = {wanted.lower(), store.new_folder_name(wanted).lower()}
    for info in folders:
        if info.name.lower() in usual or info.name.lower().endswith("/" + wanted.lower()):
            return info.name
    return None


async def role_folder(store: MailStore, role: FolderRole) -> str:
    """``find_folder``, creating the usual name when the account has no such folder yet.

    The cache may simply not know yet (``kittiwake sync`` on a fresh cache sends the outbox
    before it lists the folders): the server's list is read before anything is created."""
    found = find_folder(store, role)
    if found is None:
        await store.refresh_folders()
        found = find_folder(store, role)
    if found is not None:
        return found
    name = store.new_folder_name(DEFAULT_NAMES[role])
    log.info("%s: no %s folder; creating %s", store.name, role.value, name)
    await store.create_folder(name)
    return name


class SentFiler:
    """The engine's ``on_sent`` and the hook on ``MessageSent`` for every outbox runner."""

    def __init__(
        self, stores: Callable[[], Mapping[str, MailStore]], publish: Callable[[Event], None]
    ) -> None:
        self._stores = stores
        self._publish = publish

    @property
    def stores(self) -> Mapping[str, MailStore]:
        return self._stores()

    async def file_copy(self, account: str, raw: bytes, info: SentInfo) -> None:
        """APPEND the copy to Sent with \\Seen, exactly once. Raising has the outbox retry."""
        store = self.stores.get(account)
        if store is None:
            log.info("%s: no mail store to file the Sent copy of %s", account, info.message_id)
            return
        folder = await role_folder(store, FolderRole.SENT)
        if info.possibly_done and await store.has_message_id(folder, info.message_id):
            log.info("%s: Sent copy of %s was filed before", account, info.message_id)
            return
        await store.append(folder, raw, frozenset({SEEN}))

    def publish(self, event: Event) -> None:
        """Pass every event on; a sent message also flags the one it answers or forwards."""
        self._publish(event)
        if isinstance(event, MessageSent):
            self.flag_original(event.context)

    def flag_original(self, context: Mapping[str, str]) -> None:
        """A journaled action: offline is fine, it reaches the server on reconnect."""
        flag = context.get("flag")
        store = self.stores.get(context.get("account", ""))
        folder = context.get("folder")
        uid = context.get("uid", "")
        if not flag or store is None or not folder or not uid.isdigit():
            return
        validity = context.get("uidvalidity", "")
        store.triage.submit(
            Action(
                kind="flags",
                folder=folder,
                uidvalidity=int(validity) if validity.isdigit() else None,
                uids=(int(uid),),
                add=(flag,),
            )
        )
