"""Local copies of the drafts being composed: on disk before anything else, so a crash, a kill
or a lost connection loses nothing. The Drafts folder on the server is the second copy.

One directory per draft under ``paths.data_dir()/drafts/<id>/``::

    draft.txt   the editor form (``Draft.to_text``); the external editor edits this very file
    meta.json   account, what the draft answers, its copy on the server, threading ids
    attached/N  in-memory attachments (a forwarded message, a reopened draft's parts)

Every file is replaced atomically (write, fsync, rename). A directory left behind means the
app stopped mid-compose: ``MailApi.recover_drafts`` files it in Drafts on the next start.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from kittiwake.core import paths
from kittiwake.core.compose.draft import DataAttachment, Draft, DraftParseError
from kittiwake.core.files import make_durable_dirs

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LocalDraft:
    """A message being composed, as the composer and the disk know it."""

    id: str
    account: str
    draft: Draft
    context: dict[str, str] = field(default_factory=dict)
    """For the outbox: which message to flag \\Answered/$Forwarded once sent."""
    is_new: bool = False
    """A new message (not a reply or forward): an unchanged empty body discards it."""
    server_folder: str | None = None
    server_uid: int | None = None
    """The copy in the Drafts folder this one replaces when saved again."""


def drafts_dir(root: Path | None = None) -> Path:
    return root or paths.data_dir() / "drafts"


class LocalDrafts:
    def __init__(self, root: Path | None = None) -> None:
        self.root = drafts_dir(root)

    @staticmethod
    def new_id() -> str:
        return f"{time.time_ns():x}-{secrets.token_hex(4)}"

    def text_path(self, draft_id: str) -> Path:
        """The file the editor edits (created by ``save``)."""
        return self.root / draft_id / "draft.txt"

    def save(self, local: LocalDraft) -> None:
        """Write the draft durably (attachments once; text and meta replaced atomically)."""
        directory = self.root / local.id
        # A new draft's directory is made durable in its parent, or a power cut could take
        # the whole draft with it however well its files were fsync'd.
        make_durable_dirs(directory / "attached")
        names = []
        written = False
        for n, att in enumerate(local.draft.attached):
            target = directory / "attached" / str(n)
            if not target.exists() or target.stat().st_size != len(att.data):
                _write_durably(target, att.data)
                written = True
            names.append([att.filename, att.content_type])
        if written:
            _fsync_dir(directory / "attached")
        draft = local.draft
        meta: dict[str, Any] = {
            "account": local.account,
            "context": local.context,
            "is_new": local.is_new,
            "server_folder": local.server_folder,
            "server_uid": local.server_uid,
            "in_reply_to": draft.in_reply_to,
            "references": list(draft.references),
            "message_id": draft.message_id,
            "attached": names,
            "sign": draft.sign,
            "encrypt": draft.encrypt,
        }
        _write_durably(self.text_path(local.id), draft.to_text().encode("utf-8"))
        _write_durably(directory / "meta.json", json.dumps(meta, ensure_ascii=False).encode())
        _fsync_dir(directory)

    def load(self, draft_id: str) -> LocalDraft | None:
        directory = self.root / draft_id
        try:
            meta = json.loads((directory / "meta.json").read_bytes())
            text = self.text_path(draft_id).read_text("utf-8", "replace")
            attached = tuple(
                DataAttachment(
                    str(name), str(ctype), (directory / "attached" / str(n)).read_bytes()
                )
                for n, (name, ctype) in enumerate(meta.get("attached", []))
            )
        except (OSError, ValueError, TypeError) as exc:
            log.warning("local draft %s unreadable: %s", draft_id, exc)
            return None
        base = Draft(
            in_reply_to=meta.get("in_reply_to"),
            references=tuple(meta.get("references", ())),
            message_id=meta.get("message_id"),
            attached=attached,
            sign=bool(meta.get("sign", False)),
            encrypt=bool(meta.get("encrypt", False)),
        )
        try:
            draft = Draft.from_text(text, base)
        except DraftParseError:
            draft = replace(base, body=text)  # a header block broken in the editor: keep it all
        uid = meta.get("server_uid")
        return LocalDraft(
            id=draft_id,
            account=str(meta["account"]),
            draft=draft,
            context={str(k): str(v) for k, v in dict(meta.get("context", {})).items()},
            is_new=bool(meta.get("is_new", False)),
            server_folder=meta.get("server_folder"),
            server_uid=int(uid) if uid is not None else None,
        )

    def all(self) -> list[LocalDraft]:
        """Every draft left on disk, oldest first."""
        if not self.root.is_dir():
            return []
        found = (
            self.load(entry.name)
            for entry in sorted(self.root.iterdir())
            if entry.is_dir() and not entry.name.startswith(".")
        )
        return [d for d in found if d is not None]

    def remove(self, draft_id: str) -> None:
        directory = self.root / draft_id
        if directory.exists():
            grave = self.root / f".removed-{draft_id}"
            os.rename(directory, grave)
            shutil.rmtree(grave, ignore_errors=True)


def _write_durably(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
