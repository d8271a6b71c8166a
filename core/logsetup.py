"""Logging to a file under the XDG state dir, with every known secret masked.

The user never sees a traceback; the log keeps the detail. A filter masks any secret value
the process has fetched, so even a library that logs its own commands cannot leak one.
"""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

_MASK = "********"
_known_secrets: set[str] = set()


def register_secret(value: str) -> None:
    """Remember ``value`` so that every log record mentioning it is masked."""
    if len(value) >= 3:
        _known_secrets.add(value)


def mask(text: str) -> str:
    for secret in _known_secrets:
        if secret in text:
            text = text.replace(secret, _MASK)
    return text


class SecretMaskingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if _known_secrets:
            record.msg = mask(record.getMessage())
            record.args = None
            if record.exc_text:
                record.exc_text = mask(record.exc_text)
        return True


class _MaskingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return mask(super().format(record))


def setup_logging(path: Path, level: int = logging.INFO) -> None:
    """Send all logging to ``path`` (rotated at 5 MB), masked; nothing to the terminal."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    handler = logging.handlers.RotatingFileHandler(
        path, maxBytes=5_000_000, backupCount=3, encoding="utf-8"
    )
    handler.setFormatter(_MaskingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(SecretMaskingFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
