"""The one "wait, unless asked to stop" every loop uses (the scheduler, the control loop, retries)."""

from __future__ import annotations

import asyncio
import contextlib


async def sleep_or_stop(seconds: float, stopping: asyncio.Event | None) -> bool:
    """Sleep `seconds`, cut short when `stopping` is set; True when it is set (now or meanwhile)."""
    if stopping is None:
        await asyncio.sleep(max(0.0, seconds))
        return False
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), max(0.0, seconds))
    return stopping.is_set()
