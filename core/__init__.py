"""Kittiwake's engine: protocols, sync, cache, MIME and config. Never imports Textual."""

from __future__ import annotations

_version: str | None = None


def __getattr__(name: str) -> str:
    """``__version__``, read from the installed metadata when first asked for: the lookup
    (``importlib.metadata`` and a scan of ``sys.path``) is a start-up cost the app does not
    need to pay unless something shows the version."""
    global _version
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if _version is None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            _version = version("kittiwake")
        except PackageNotFoundError:  # running from a source tree that was never installed
            _version = "0+unknown"
    return _version
