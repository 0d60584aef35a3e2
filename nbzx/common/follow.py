"""Follow a topic from its beginning, forever: the in-memory views (jobs, host statuses, dead letters)
are built this way, so every replica serves the same state and a restart rebuilds it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from nbzx.common.config import Config
from nbzx.common.kafka import new_consumer, refusal
from nbzx.common.logging import get_logger

log = get_logger(component="follow")


class Follower:
    """Feeds every record of `topic` (from the beginning, then live) to `apply`; `caught_up` is set
    once the records that existed at start have been applied. Survives Kafka going away; a topic it
    may not read is one `kafka_not_authorized` line, then quiet retries."""

    def __init__(self, cfg: Config, topic: str, apply: Callable[[list[Any]], None]) -> None:
        self.cfg, self.topic, self.apply = cfg, topic, apply
        self.caught_up = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        refused_before = False
        while True:
            # read_committed: the changelog cursor of a leader killed mid-transaction never shows.
            consumer = new_consumer(self.cfg, self.topic, fetch_max_wait_ms=200, isolation_level="read_committed")
            try:
                await consumer.start()
                ends: dict[Any, int] | None = None
                while True:
                    for recs in (await consumer.getmany(timeout_ms=500, max_records=5000)).values():
                        self.apply(recs)
                    if not self.caught_up.is_set() and consumer.assignment():
                        ends = ends or await consumer.end_offsets(list(consumer.assignment()))
                        behind = [tp for tp, off in ends.items() if await consumer.position(tp) < off]
                        if not behind:
                            self.caught_up.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Kafka down: keep what we have, try again
                refused = refusal(self.cfg, exc)
                if refused is None:
                    log.warning("follow_reconnect", topic=self.topic, error=repr(exc))
                elif not refused_before:  # said once; the rights may be granted while we wait
                    log.error("kafka_not_authorized", topic=self.topic, error=str(refused))
                refused_before = refused is not None
                await asyncio.sleep(10 if refused_before else 2)  # cancelled like every follower task
            finally:
                with contextlib.suppress(Exception):
                    await consumer.stop()
