"""TUI tests drive the real app (Pilot) against the real Dovecot, with XDG dirs in tmp_path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from harness import Dovecot, User
from harness.clients import imap_device
from harness.ui import app_config, message

from kittiwake.core.config import Config


@pytest.fixture
def xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("CACHE", "STATE", "DATA", "CONFIG"):
        monkeypatch.setenv(f"XDG_{name}_HOME", str(tmp_path / name.lower()))
    monkeypatch.setenv("XDG_DOWNLOAD_DIR", str(tmp_path / "downloads"))
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


@pytest.fixture
def mailbox(dovecot: Dovecot, user: User) -> Callable[..., Config]:
    """Fill the user's mailbox and return the app's config for it."""

    def fill(count: int = 60, extra: list[bytes] | None = None, **config: Any) -> Config:
        device = imap_device(dovecot, user)
        device.create("Work")
        device.subscribe("Work")
        device.append("Work", "", None, message(900, "Work item"))
        for n in range(1, count + 1):
            flags = "(\\Seen)" if n <= count - 5 else ""
            device.append("INBOX", flags, None, message(n, attach=(n % 10 == 0)))
        for raw in extra or []:
            device.append("INBOX", "", None, raw)
        device.logout()
        return app_config(dovecot, user, **config)

    return fill
