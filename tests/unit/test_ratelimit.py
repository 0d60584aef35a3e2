"""The Zabbix budget (nbzx/engine/ratelimit.py): calls per second and calls in flight are capped.

Only lower bounds on time are asserted (a sleep is never shorter than asked), so a slow machine
cannot make these fail, and a budget that lets calls through too fast always does.
"""

from __future__ import annotations

import asyncio
import time

from nbzx.engine.ratelimit import Budget


async def _starts(budget: Budget, n: int, hold_s: float = 0.0) -> list[float]:
    """Start `n` calls at once through `budget`; the moment each got its slot."""
    started: list[float] = []

    async def call() -> None:
        async with budget.slot():
            started.append(time.monotonic())
            await asyncio.sleep(hold_s)

    await asyncio.gather(*(call() for _ in range(n)))
    return sorted(started)


async def test_calls_per_second_are_capped_after_the_burst() -> None:
    rate, n = 20.0, 50
    starts = await _starts(Budget(rate, concurrency=100), n)
    t0 = starts[0]
    # A bucket of `rate` tokens refilled at `rate`/s: call i (0-based) starts no earlier than (i - rate) / rate.
    for i, t in enumerate(starts):
        assert t - t0 >= (i + 1 - rate) / rate - 0.01, f"call {i} started {t - t0:.3f}s in, too early"
    assert starts[-1] - t0 >= (n - rate) / rate - 0.01


async def test_no_more_calls_in_flight_than_the_concurrency() -> None:
    in_flight = peak = 0
    budget = Budget(1000, concurrency=3)

    async def call() -> None:
        nonlocal in_flight, peak
        async with budget.slot():
            in_flight += 1
            peak = max(peak, in_flight)
            await asyncio.sleep(0.02)
            in_flight -= 1

    await asyncio.gather(*(call() for _ in range(20)))
    assert peak == 3


async def test_a_burst_within_the_bucket_does_not_wait() -> None:
    budget = Budget(5, concurrency=10)
    await _starts(budget, 4)
    assert not budget.exhausted, "the fifth call fits the bucket of five"
    await _starts(budget, 1)
    assert budget.exhausted, "and the sixth would wait"
