"""Fixtures for the unit tests: the system keyring in the states a machine can be in.

``keyring`` picks its backend once per process; each fixture sets the environment that
decides it and re-runs that choice, and re-runs it again afterwards with the environment
restored, so no test leaks its keyring into another.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import keyring.core
import pytest


def _reselect() -> None:
    keyring.core.init_backend()


@pytest.fixture
def plaintext_keyring(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A real file-based backend (keyrings.alt), chosen explicitly as a user would with
    PYTHON_KEYRING_BACKEND; its file lives under the test's XDG_DATA_HOME."""
    data = tmp_path / "keyring-data"
    monkeypatch.setenv("XDG_DATA_HOME", str(data))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "keyring-config"))
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyrings.alt.file.PlaintextKeyring")
    _reselect()
    yield data / "python_keyring" / "keyring_pass.cfg"
    monkeypatch.undo()
    _reselect()


@pytest.fixture
def fail_keyring(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The backend keyring ends up with on a machine that has none: every call raises
    NoKeyringError."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "keyring-config"))
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    _reselect()
    yield
    monkeypatch.undo()
    _reselect()


@pytest.fixture
def headless_keyring(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A login over SSH: no D-Bus session, no keyring configured, so keyring chooses by
    itself among what is installed (here at best keyrings.alt's plain-text file, which keyring
    itself rates "not recommended")."""
    monkeypatch.delenv("PYTHON_KEYRING_BACKEND", raising=False)
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "keyring-config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "keyring-data"))
    _reselect()
    yield
    monkeypatch.undo()
    _reselect()
