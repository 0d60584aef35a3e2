"""The one retry policy (nbzx/common/retry.py) and wait-or-stop (nbzx/common/wait.py)."""

from __future__ import annotations

import asyncio
import time

import pytest

from nbzx.common.retry import Stopped, backoff_s, retry
from nbzx.common.wait import sleep_or_stop


class Flaky(Exception):
    pass


def test_backoff_doubles_from_the_base_up_to_the_cap_scaled_by_jitter() -> None:
    assert [backoff_s(n, 0.2, 2.0) for n in (1, 2, 3, 4, 5, 9)] == [0.2, 0.4, 0.8, 1.6, 2.0, 2.0]
    assert backoff_s(3, 1.0, 30.0, jitter=0.5) == 2.0


async def test_retry_tries_again_what_it_may_and_reports_each_retry() -> None:
    calls, retries = 0, []

    async def step() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise Flaky(f"try {calls}")
        return "done"

    got = await retry(
        step,
        retry_if=lambda e: isinstance(e, Flaky),
        on_retry=lambda e, d: retries.append((str(e), d)),
        base_s=0.01,
        max_s=0.02,
    )
    assert (got, calls) == ("done", 3)
    assert [e for e, _ in retries] == ["try 1", "try 2"]
    assert all(0.005 <= d <= 0.02 for _, d in retries), retries


async def test_retry_raises_at_once_what_it_may_not_retry() -> None:
    calls = 0

    async def step() -> None:
        nonlocal calls
        calls += 1
        raise ValueError("permanent")

    with pytest.raises(ValueError, match="permanent"):
        await retry(step, retry_if=lambda e: isinstance(e, Flaky), on_retry=lambda e, d: None, base_s=0.01)
    assert calls == 1


async def test_retry_gives_up_after_its_attempts_with_the_last_error() -> None:
    calls = 0

    async def step() -> None:
        nonlocal calls
        calls += 1
        raise Flaky(f"try {calls}")

    with pytest.raises(Flaky, match="try 3"):
        await retry(step, retry_if=lambda e: True, on_retry=lambda e, d: None, base_s=0.001, attempts=3)
    assert calls == 3


async def test_retry_stops_when_asked_during_its_wait() -> None:
    stopping = asyncio.Event()
    calls = 0

    async def step() -> None:
        nonlocal calls
        calls += 1
        raise Flaky

    asyncio.get_running_loop().call_later(0.05, stopping.set)
    t0 = time.monotonic()
    with pytest.raises(Stopped):
        await retry(step, retry_if=lambda e: True, on_retry=lambda e, d: None, base_s=30.0, stopping=stopping)
    assert calls == 1, "no further try once stopping is set"
    assert time.monotonic() - t0 < 29, "the 30 s backoff was cut short"


async def test_sleep_or_stop_says_whether_it_was_stopped() -> None:
    stopping = asyncio.Event()
    assert await sleep_or_stop(0.01, stopping) is False
    asyncio.get_running_loop().call_later(0.01, stopping.set)
    assert await sleep_or_stop(30, stopping) is True
    assert await sleep_or_stop(30, stopping) is True, "already set: no wait at all"
    assert await sleep_or_stop(0.0, None) is False


async def test_retry_awaits_a_step_given_as_a_lambda() -> None:
    # A lambda returning a coroutine is not a coroutine function: the result must still be awaited
    # (the scheduler got an un-awaited coroutine as its last run once).
    calls = 0

    async def read() -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise Flaky
        return 42

    got = await retry(lambda: read(), retry_if=lambda e: True, on_retry=lambda e, d: None, base_s=0.001)
    assert got == 42 and calls == 2
