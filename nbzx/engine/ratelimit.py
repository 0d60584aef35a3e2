"""The Zabbix budget: a token bucket (calls per second) and a concurrency cap, per process."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class Budget:
    """At most `rate_per_s` calls per second (bursts up to `burst`) and `concurrency` in flight."""

    def __init__(self, rate_per_s: float, concurrency: int, burst: float | None = None) -> None:
        self.rate = rate_per_s
        self.capacity = burst if burst is not None else max(1.0, rate_per_s)
        self._tokens = self.capacity
        self._stamp = time.monotonic()
        self._lock = asyncio.Lock()
        self._slots = asyncio.Semaphore(concurrency)
        self.waited_s = 0.0  # total time callers spent waiting for a token (backpressure signal)

    async def _take(self) -> None:
        async with self._lock:  # one waiter at a time keeps the order fair
            while True:
                now = time.monotonic()
                self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
                self._stamp = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                delay = (1 - self._tokens) / self.rate
                self.waited_s += delay
                await asyncio.sleep(delay)

    @property
    def exhausted(self) -> bool:
        """True when the next call would have to wait for a token."""
        now = time.monotonic()
        return min(self.capacity, self._tokens + (now - self._stamp) * self.rate) < 1

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one call's worth of budget for the duration of the block."""
        await self._take()
        async with self._slots:
            yield
