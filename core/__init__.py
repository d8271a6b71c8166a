"""Kittiwake's engine: protocols, sync, cache, MIME and config. Never imports Textual."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("kittiwake")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
