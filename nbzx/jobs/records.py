"""Job records (reconcile, backfill, ...) on the compacted jobs topic, keyed by job id, and the
requests that start jobs.

Writers publish the latest state of a job; readers materialise "latest record per id" by reading
the topic from the beginning. The receiver keeps such a view live for `GET /jobs`. Every record and
every reconcile request is made here (`record`, `request_record`, `reconcile_request`, `Job`), so the
CLI, the receiver, the console, the scheduler and the control loop describe a job the same way.
"""

from __future__ import annotations

import time
from collections import deque
from datetime import UTC, datetime
from typing import Any

import msgspec

from nbzx.common.config import Config
from nbzx.common.follow import Follower
from nbzx.common.kafka import Producer, new_consumer, read_to_end
from nbzx.common.logging import get_logger
from nbzx.schemas.messages import (
    AdoptRequest,
    JobKind,
    JobRecord,
    JobStatus,
    ReconcileRequest,
    ReconcileScope,
    Trigger,
    decode_records,
    encode,
    new_id,
    utc_now,
)

log = get_logger(component="jobs")
LOG_LINES = 50  # last N log lines kept on a record
ENDED: frozenset[JobStatus] = frozenset({"completed", "errored", "failed", "skipped"})


def reconcile_request(
    trigger: Trigger,
    *,
    user: str | None = None,
    dry_run: bool = False,
    object_types: list[str] | None = None,
    filter: dict[str, Any] | None = None,
    servers: list[str] | None = None,
    **fields: Any,
) -> ReconcileRequest:
    """A reconcile request (`fields`: job_id, scheduled_for, interval, retry_of)."""
    scope = ReconcileScope(
        object_types=list(object_types or []), filter=dict(filter or {}), servers=list(servers or [])
    )
    return ReconcileRequest(trigger=trigger, user=user, dry_run=dry_run, scope=scope, **fields)


def job_kind(req: ReconcileRequest) -> JobKind:
    """A dry run is its own kind of job (it plans, and writes nothing)."""
    return "dry_run" if req.dry_run else "reconcile"


def job_params(req: ReconcileRequest | AdoptRequest) -> dict[str, Any]:
    """What the request asked for: enough to run it again (and which job it retries, if one)."""
    if isinstance(req, AdoptRequest):
        return {"host_keys": req.host_keys or "all valid"}
    params: dict[str, Any] = {
        "dry_run": req.dry_run,
        "object_types": list(req.scope.object_types),
        "filter": dict(req.scope.filter),
    }
    if req.scope.servers:
        params["servers"] = list(req.scope.servers)
    if req.retry_of:
        params["retry_of"] = req.retry_of
    return params


def record(
    kind: JobKind, status: JobStatus, trigger: Trigger, *, job_id: str | None = None, **fields: Any
) -> JobRecord:
    """A job record as an action or request first writes it; an ended one is stamped `completed` now."""
    if status in ENDED:
        fields.setdefault("completed", utc_now())
    return JobRecord(job_id=job_id or new_id(), job_kind=kind, status=status, trigger=trigger, **fields)


def request_record(req: ReconcileRequest | AdoptRequest, status: JobStatus, **fields: Any) -> JobRecord:
    """The record of a request that waits (pending, scheduled) or ended without running (skipped,
    errored); `fields` add to it (error, results, ...)."""
    if isinstance(req, AdoptRequest):
        kind: JobKind = "adopt"
    else:
        kind = job_kind(req)
        fields = {"scheduled_for": req.scheduled_for, "interval": req.interval, **fields}
    return record(kind, status, req.trigger, job_id=req.job_id, user=req.user, params=job_params(req), **fields)


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
    consumer = new_consumer(cfg)
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
