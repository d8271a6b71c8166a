"""Where Kittiwake keeps its files: the XDG base directories (honouring ``XDG_*``)."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP = "kittiwake"


def config_dir() -> Path:
    return Path(platformdirs.user_config_dir(APP))


def default_config_path() -> Path:
    """``--config`` beats ``KITTIWAKE_CONFIG`` beats the XDG config dir."""
    env = os.environ.get("KITTIWAKE_CONFIG")
    if env:
        return Path(env).expanduser()
    return config_dir() / "config.toml"


def cache_dir() -> Path:
    return Path(platformdirs.user_cache_dir(APP))


def data_dir() -> Path:
    return Path(platformdirs.user_data_dir(APP))


def state_dir() -> Path:
    return Path(platformdirs.user_state_dir(APP))


def log_path() -> Path:
    return state_dir() / "kittiwake.log"


def user_themes_dir() -> Path:
    return config_dir() / "themes"


def download_dir() -> Path:
    return Path(platformdirs.user_downloads_dir())


def account_cache_path(account: str) -> Path:
    """One SQLite file per account; the name is the config key, which is validated as safe."""
    return cache_dir() / f"{account}.sqlite3"
