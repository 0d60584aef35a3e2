"""The one retry policy: exponential backoff with jitter (`backoff_s`), and `retry` on tenacity.

Every retry in the service uses `backoff_s`: logging in to Zabbix, a busy Zabbix database, the
scheduler's history read, and (through the delivery policy) a parked host key's next attempt.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, stop_never

from nbzx.common.wait import sleep_or_stop

T = TypeVar("T")


class Stopped(Exception):
    """Raised by `retry` when asked to stop before the step succeeded."""


def backoff_s(attempt: int, base_s: float, max_s: float, jitter: float = 1.0) -> float:
    """Delay after failed attempt `attempt` (1, 2, ...): base * 2**(attempt - 1), capped at `max_s`, times
    `jitter` (0.5 to 1.0, so that processes that failed together do not retry together)."""
    return float(min(max_s, base_s * 2.0 ** max(0, attempt - 1)) * jitter)


def jitter() -> float:
    """A random jitter factor for `backoff_s`."""
    return random.uniform(0.5, 1.0)


async def retry(
    step: Callable[[], Awaitable[T]],
    *,
    retry_if: Callable[[BaseException], bool],
    on_retry: Callable[[BaseException, float], None],
    base_s: float = 1.0,
    max_s: float = 30.0,
    attempts: int | None = None,
    stopping: asyncio.Event | None = None,
) -> T:
    """`await step()` until it returns. A failure `retry_if` accepts is passed to `on_retry` with the
    delay (to log it) and tried again after `backoff_s`; any other failure, or the last of `attempts`,
    is raised. `Stopped` is raised when `stopping` is set before a try succeeds."""

    async def sleep(seconds: float) -> None:
        if await sleep_or_stop(seconds, stopping):
            raise Stopped

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        if exc is not None:
            on_retry(exc, round(state.upcoming_sleep, 2))

    retrying = AsyncRetrying(
        retry=retry_if_exception(retry_if),
        wait=lambda state: backoff_s(state.attempt_number, base_s, max_s, jitter()),
        stop=stop_never if attempts is None else stop_after_attempt(attempts),
        sleep=sleep,
        before_sleep=before_sleep,
        reraise=True,
    )

    async def attempt() -> T:  # tenacity calls a plain callable (a lambda) without awaiting what it returns
        return await step()

    if stopping is not None and stopping.is_set():
        raise Stopped
    return await retrying(attempt)
