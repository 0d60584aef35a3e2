"""Job records (reconcile, backfill, ...) on the compacted jobs topic, keyed by job id.

Writers publish the latest state of a job; readers materialise "latest record per id" by reading
the topic from the beginning. The receiver keeps such a view live for `GET /jobs`.
"""

from __future__ import annotations

import time
from collections import deque
from datetime import UTC, datetime
from typing import Any

import msgspec
from aiokafka import AIOKafkaConsumer

from nbzx.common.config import Config
from nbzx.common.follow import Follower
from nbzx.common.kafka import Producer, client_kwargs, read_to_end
from nbzx.common.logging import get_logger
from nbzx.schemas.messages import JobKind, JobRecord, JobStatus, Trigger, decode_records, encode, new_id, utc_now

log = get_logger(component="jobs")
LOG_LINES = 50  # last N log lines kept on a record
ENDED: frozenset[JobStatus] = frozenset({"completed", "errored", "failed", "skipped"})


class Job:
    """One job's record, published on every state change."""

    def __init__(
        self,
        producer: Producer,
        cfg: Config,
        kind: JobKind,
        *,
        job_id: str | None = None,
        trigger: Trigger = "api",
        user: str | None = None,
        interval: int | None = None,
        scheduled_for: str | None = None,
        params: dict[str, Any] | None = None,
    ) -> None:
        self._producer, self._cfg = producer, cfg
        self.record = JobRecord(
            job_id=job_id or new_id(),
            job_kind=kind,
            status="pending",
            trigger=trigger,
            user=user,
            interval=interval,
            scheduled_for=scheduled_for,
            params=params or {},
        )
        self._log: deque[str] = deque(maxlen=LOG_LINES)
        self._t0 = time.monotonic()

    @property
    def id(self) -> str:
        return self.record.job_id

    def note(self, message: str, **fields: Any) -> None:
        """A structured log line, kept on the record and written to the process log."""
        log.info(message, job_id=self.id, **fields)
        extra = " ".join(f"{k}={v}" for k, v in fields.items())
        self._log.append(f"{datetime.now(UTC).strftime('%H:%M:%S')} {message} {extra}".strip())

    async def publish(self, status: JobStatus, **changes: Any) -> JobRecord:
        """Write the new state (with a fresh message id) to the jobs topic."""
        if status == "running" and self.record.started is None:
            self._t0 = time.monotonic()
            changes.setdefault("started", utc_now())
        if status in ("completed", "errored", "failed", "skipped"):
            changes.setdefault("completed", utc_now())
            changes.setdefault("duration_s", round(time.monotonic() - self._t0, 3))
        self.record = msgspec.structs.replace(
            self.record, status=status, id=new_id(), produced_at=utc_now(), log=list(self._log), **changes
        )
        await self._producer.send(self._cfg.kafka.topics.jobs, self.id, encode(self.record))
        return self.record


async def publish_record(producer: Producer, cfg: Config, record: JobRecord) -> None:
    """Write a record as it is (e.g. a `scheduled` placeholder or a `skipped` request)."""
    await producer.send(cfg.kafka.topics.jobs, record.job_id, encode(record))


def materialise(records: list[JobRecord], into: dict[str, JobRecord] | None = None) -> dict[str, JobRecord]:
    """Latest record per job id (later records win, as compaction would keep them)."""
    out = into if into is not None else {}
    for r in records:
        out[r.job_id] = r
    return out


def newest_first(jobs: dict[str, JobRecord]) -> list[JobRecord]:
    """Jobs sorted by creation time, newest first."""
    return sorted(jobs.values(), key=lambda r: r.created, reverse=True)


async def read_jobs(cfg: Config, timeout_s: float = 10.0) -> dict[str, JobRecord]:
    """Read the whole jobs topic once, up to its current end."""
    consumer = AIOKafkaConsumer(**client_kwargs(cfg), enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        return materialise(_decode_jobs(await read_to_end(consumer, cfg.kafka.topics.jobs, timeout_s)))
    finally:
        await consumer.stop()


def _decode_jobs(recs: list[Any]) -> list[JobRecord]:
    return [m for m in decode_records(recs) if isinstance(m, JobRecord)]


class JobView:
    """A live, in-memory view of the jobs topic (for the receiver's `/jobs` and the console)."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.jobs: dict[str, JobRecord] = {}
        self.follower = Follower(cfg, cfg.kafka.topics.jobs, self.apply)

    def apply(self, records: list[Any]) -> None:
        materialise(_decode_jobs(records), self.jobs)

    def start(self) -> None:
        self.follower.start()

    async def stop(self) -> None:
        await self.follower.stop()
