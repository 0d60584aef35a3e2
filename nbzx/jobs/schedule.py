"""The reconcile schedule: a request every `reconcile.interval` minutes from `reconcile.start_at`.

The next run is always the previous scheduled time plus the interval, whether the previous run
succeeded or not (NetBox's job scheduling). The next run is published as a `scheduled` job.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta

import msgspec
from aiokafka.errors import KafkaError

from nbzx.common.config import Config
from nbzx.common.kafka import Producer, ProduceUnavailable
from nbzx.common.logging import get_logger
from nbzx.common.retry import Stopped, retry
from nbzx.common.wait import sleep_or_stop
from nbzx.jobs.records import publish_record, read_jobs, reconcile_request, request_record
from nbzx.schemas.messages import encode, utc_now

log = get_logger(component="scheduler")


def parse_time(text: str) -> datetime:
    """ISO 8601 (a trailing Z is UTC; no zone means UTC)."""
    t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def first_slot_after(start_at: datetime, interval_min: int, after: datetime) -> datetime:
    """The first time start_at + k * interval (k >= 0) that is later than `after`."""
    step = timedelta(minutes=interval_min)
    if start_at > after:
        return start_at
    k = int((after - start_at) / step) + 1
    return start_at + k * step


def next_run(previous: datetime | None, start_at: datetime, interval_min: int, now: datetime) -> datetime:
    """previous + interval; a run missed while nothing was scheduling happens now, once."""
    if previous is None:
        return first_slot_after(start_at, interval_min, now - timedelta(microseconds=1))
    nxt = previous + timedelta(minutes=interval_min)
    return nxt if nxt > now else now


async def last_scheduled(cfg: Config) -> datetime | None:
    """The latest scheduled time a scheduler already emitted (from the jobs topic)."""
    times = [
        parse_time(j.scheduled_for)
        for j in (await read_jobs(cfg)).values()
        if j.trigger == "schedule" and j.scheduled_for and j.status != "scheduled"
    ]
    return max(times, default=None)


async def run_scheduler(cfg: Config, producer: Producer, stopping: asyncio.Event) -> None:
    """Emit reconcile requests on schedule until `stopping` is set. A request Kafka does not take is
    recorded as an `errored` job (once Kafka is back) and the schedule goes on; nothing stops it."""
    interval = cfg.reconcile.interval
    start_at = (
        parse_time(cfg.reconcile.start_at)
        if cfg.reconcile.start_at
        else datetime.now(UTC).replace(second=0, microsecond=0)
    )
    try:
        previous = await retry(
            lambda: last_scheduled(cfg),
            retry_if=lambda e: isinstance(e, ProduceUnavailable | KafkaError | OSError),
            on_retry=lambda e, delay: log.error("scheduler_history_unavailable", error=str(e), retry_in_s=delay),
            stopping=stopping,
        )
    except Stopped:
        return
    while not stopping.is_set():
        due = next_run(previous, start_at, interval, datetime.now(UTC))
        # The request carries no interval (the control loop would chain it): the schedule is ours.
        req = reconcile_request("schedule", scheduled_for=due.isoformat())
        job_id = req.job_id
        record = request_record(req, "scheduled", interval=interval)
        await _quietly(publish_record(producer, cfg, record), "scheduled_record_not_stored")
        log.info("reconcile_scheduled", job_id=job_id, scheduled_for=due.isoformat())
        if await sleep_or_stop((due - datetime.now(UTC)).total_seconds(), stopping):
            return
        try:
            sent = msgspec.structs.replace(req, produced_at=utc_now())  # made at scheduling, sent now
            await producer.send(cfg.kafka.topics.control, "reconcile", encode(sent))
        except (ProduceUnavailable, KafkaError) as exc:
            log.error("reconcile_request_not_sent", job_id=job_id, error=str(exc))
            errored = msgspec.structs.replace(
                record, status="errored", completed=utc_now(), error=f"the reconcile request was not stored: {exc}"
            )
            await _quietly(publish_record(producer, cfg, errored), "errored_record_not_stored")
        previous = due


async def _quietly(step: Awaitable[object], event: str) -> None:
    """A job record is worth a try, not the schedule: log when Kafka does not take it."""
    try:
        await step
    except (ProduceUnavailable, KafkaError) as exc:
        log.error(event, error=str(exc))
