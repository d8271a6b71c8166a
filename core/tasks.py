"""Waiting for a task one has cancelled, without swallowing one's own cancellation.

``with contextlib.suppress(asyncio.CancelledError): await task`` after ``task.cancel()`` also
swallows a cancellation of the *waiting* task, when it is cancelled meanwhile (asyncio's
teardown, a task group, a timeout around ``stop()``): the waiter then carries on as if nothing
had happened (a supervisor reconnecting forever kept the process from exiting).
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["reap"]


async def reap(task: asyncio.Future[Any]) -> None:
    """Wait for a cancelled ``task`` to end, whatever it ended with (its failure is not
    ours: it was being cancelled), but pass on a cancellation of the waiting task itself."""
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise
    except Exception:  # noqa: S110
        pass
