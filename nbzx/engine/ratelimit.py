"""The Zabbix budget: calls per second (aiolimiter's leaky bucket) and calls in flight (a semaphore)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiolimiter import AsyncLimiter


class Budget:
    """At most `rate_per_s` calls per second (bursts up to `burst`) and `concurrency` in flight."""

    def __init__(self, rate_per_s: float, concurrency: int, burst: float | None = None) -> None:
        capacity = burst if burst is not None else max(1.0, rate_per_s)
        # A bucket of `capacity` that drains at `rate_per_s`: the first `capacity` calls go at once.
        self._limiter = AsyncLimiter(capacity, capacity / rate_per_s)
        self._slots = asyncio.Semaphore(concurrency)

    async def _take(self) -> None:
        await self._limiter.acquire()

    @property
    def exhausted(self) -> bool:
        """True when the next call would have to wait for its share of the rate."""
        return not self._limiter.has_capacity()

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one call's worth of budget for the duration of the block."""
        await self._take()
        async with self._slots:
            yield
