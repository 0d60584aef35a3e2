"""The control loop: reconcile requests from the control topic, one reconcile at a time, adoptions
(`AdoptRequest`, one at a time, beside a reconcile), and the system jobs (`maintenance_cleanup`,
`settings_import`) on their intervals.

The control topic has one partition and its own consumer group, so across all consumer replicas
exactly one process runs reconciles and system jobs. A request that arrives while a reconcile runs
is recorded as `skipped`, naming the running job. A reconcile that raises is recorded as `errored`;
the loop itself survives Kafka errors (logged, retried) and never takes the consumer down.
A new control group reads from the earliest request (none is skipped), and requests due more than
`STALE_AFTER_S` ago are ignored: they belong to runs long gone, whose job records must stay as they are.

A request with `scheduled_for` in the future is held (published as a `scheduled` job) until then;
one with an `interval` requests the next run of its chain when it starts. A `CancelRequest` drops a
held request (recorded as `skipped`, naming who cancelled it), which ends its chain. The partition is
committed only up to the oldest held request, so a restart re-arms them; requests whose job already
ended are recognised from the jobs topic and not run twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import msgspec
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from nbzx.common.config import Config
from nbzx.common.kafka import Producer, new_consumer
from nbzx.common.logging import get_logger
from nbzx.common.wait import sleep_or_stop
from nbzx.engine.sync import SyncEngine
from nbzx.jobs.adopt import adopt
from nbzx.jobs.reconcile import Reconciler
from nbzx.jobs.records import ENDED, publish_record, read_jobs, request_record
from nbzx.jobs.schedule import next_run, parse_time
from nbzx.jobs.system import maintenance_cleanup, settings_import
from nbzx.schemas.messages import (
    AdoptRequest,
    CancelRequest,
    JobRecord,
    ReconcileRequest,
    decode,
    encode,
    new_id,
)

log = get_logger(component="control")
STALE_AFTER_S = 24 * 3600


class _Periodic:
    """A system job started every `every_s` seconds (the first soon after start), never two at once."""

    def __init__(self, every_s: float, run: Callable[[SyncEngine, Producer], Awaitable[JobRecord]]) -> None:
        self.every_s, self.run = every_s, run
        self.last = time.monotonic() - every_s
        self.task: asyncio.Task[JobRecord] | None = None

    def maybe_start(self, engine: SyncEngine, producer: Producer) -> None:
        if time.monotonic() - self.last >= self.every_s and (self.task is None or self.task.done()):
            self.last = time.monotonic()
            self.task = asyncio.ensure_future(self.run(engine, producer))

    def cancel(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()


class ControlLoop:
    """Consumes `nbzx.control` and runs `Reconciler.run` for each request."""

    def __init__(
        self,
        cfg: Config,
        reconciler: Reconciler,
        producer: Producer,
        stopping: asyncio.Event,
        **consumer_overrides: Any,
    ) -> None:
        self.cfg, self.reconciler, self.producer, self.stopping = cfg, reconciler, producer, stopping
        self.running: tuple[ReconcileRequest, asyncio.Task[JobRecord]] | None = None
        self.adopting: tuple[AdoptRequest, asyncio.Task[JobRecord]] | None = None
        self.held: dict[str, tuple[datetime, ReconcileRequest, int]] = {}  # job id -> (due, request, offset)
        self.ended: set[str] = set()  # job ids that ran or were skipped or cancelled: never run again
        self.chained: set[str] = set()  # recurring job ids whose next run was already requested
        self._overrides = consumer_overrides

    async def run(self) -> None:
        consumer = new_consumer(
            self.cfg, self.cfg.kafka.topics.control, group=f"{self.cfg.kafka.group}-control", **self._overrides
        )
        await consumer.start()
        try:
            self.ended = {j.job_id for j in (await read_jobs(self.cfg)).values() if j.status in ENDED}
        except Exception as exc:  # without the history a re-read request may run twice: idempotent, go on
            log.warning("control_history_unavailable", error=repr(exc))
        pending_commit: dict[TopicPartition, int] = {}
        system_jobs = [
            _Periodic(self.cfg.host.maintenance.cleanup_interval * 60, maintenance_cleanup),
            _Periodic(self.cfg.zabbix.settings_import_interval * 60, settings_import),
        ]
        try:
            while not self.stopping.is_set():
                try:
                    await self._step(consumer, system_jobs, pending_commit)
                except Exception as exc:  # Kafka away, a job record not stored: say so, go on
                    log.error("control_loop_error", error=f"{type(exc).__name__}: {exc}")
                    await sleep_or_stop(2.0, self.stopping)
        finally:
            for job in system_jobs:
                job.cancel()
            for in_flight in (self.running, self.adopting):
                if in_flight is not None:
                    in_flight[1].cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await in_flight[1]
            await consumer.stop()

    async def _step(
        self, consumer: AIOKafkaConsumer, system_jobs: list[_Periodic], pending_commit: dict[TopicPartition, int]
    ) -> None:
        # Only the member that holds the control partition runs them: one job, not one per replica.
        if consumer.assignment():
            for job in system_jobs:
                job.maybe_start(self.reconciler.engine, self.producer)
        batch = await consumer.getmany(timeout_ms=500)
        for tp, recs in batch.items():
            for rec in recs:
                await self._handle(rec)
                pending_commit[tp] = rec.offset + 1
        now = datetime.now(UTC)
        for job_id, (due, req, _) in sorted(self.held.items(), key=lambda kv: kv[1][0]):
            if due <= now:
                await self._start(req)  # raises when Kafka refuses: the request stays held, tried next step
                del self.held[job_id]
        if self.adopting is not None and self.adopting[1].done():
            self.adopting = None
        if (self.running is None or self.running[1].done()) and self.adopting is None:
            self.running = None
            if pending_commit:  # committed only once no job is in flight, and not past a held request
                oldest_held = min((offset for _, _, offset in self.held.values()), default=None)
                offsets = {
                    tp: off if oldest_held is None else min(off, oldest_held) for tp, off in pending_commit.items()
                }
                with contextlib.suppress(KafkaError):
                    await consumer.commit(offsets)
                pending_commit.clear()

    async def _reconcile(self, req: ReconcileRequest) -> JobRecord:
        """One reconcile; an exception anywhere in it is recorded as the job's `errored` state."""
        try:
            return await self.reconciler.run(req)
        except Exception as exc:
            log.exception("reconcile_crashed", job_id=req.job_id)
            record = request_record(req, "errored", error=f"{type(exc).__name__}: {exc}")
            with contextlib.suppress(Exception):  # Kafka may be what failed: the log line stays
                await publish_record(self.producer, self.cfg, record)
            return record

    async def _handle(self, rec: Any) -> None:
        try:
            req = decode(rec.value)
        except Exception as exc:  # a bad control message must not stop reconciles
            log.error("control_message_undecodable", offset=rec.offset, error=str(exc))
            return
        if isinstance(req, CancelRequest):
            await self._cancel(req)
            return
        if not isinstance(req, ReconcileRequest | AdoptRequest):
            log.error("control_message_unexpected", kind=type(req).__name__, offset=rec.offset)
            return
        # The same two rules for every job request: a job that ended never runs again, and one asked
        # for (or due) long ago never runs now.
        if req.job_id in self.ended:
            log.info("control_message_done_before", job_id=req.job_id, offset=rec.offset)
            return
        scheduled_for = req.scheduled_for if isinstance(req, ReconcileRequest) else None
        due = parse_time(scheduled_for) if scheduled_for else None
        if time.time() - (due.timestamp() if due else rec.timestamp / 1000) > STALE_AFTER_S:
            log.info("control_message_stale", job_id=req.job_id, offset=rec.offset)
            return
        if isinstance(req, AdoptRequest):
            await self._adopt(req)
            return
        if due is not None and due > datetime.now(UTC):
            self.held[req.job_id] = (due, req, rec.offset)
            await publish_record(self.producer, self.cfg, request_record(req, "scheduled"))
            log.info("reconcile_held", job_id=req.job_id, scheduled_for=req.scheduled_for, interval=req.interval)
            return
        await self._start(req)

    async def _start(self, req: ReconcileRequest) -> None:
        """Run a due request now (or record it skipped when one runs); a recurring one first asks for its
        next run, once, even when this call is repeated after Kafka refused a write."""
        if req.interval and req.job_id not in self.chained:
            await self._request_next(req)
            self.chained.add(req.job_id)
        if self.running is not None and not self.running[1].done():
            running = self.running[0]
            record = request_record(
                req, "skipped", error=f"reconcile {running.job_id} is running", results={"running_job": running.job_id}
            )
            await publish_record(self.producer, self.cfg, record)
            log.info("reconcile_skipped", job_id=req.job_id, running_job=running.job_id)
        else:
            self.running = (req, asyncio.create_task(self._reconcile(req)))
        self.ended.add(req.job_id)

    async def _adopt(self, req: AdoptRequest) -> None:
        """Run an adoption (one at a time: a second one while it runs is recorded skipped)."""
        self.ended.add(req.job_id)
        if self.adopting is not None and not self.adopting[1].done():
            record = request_record(req, "skipped", error=f"adopt {self.adopting[0].job_id} is running")
            await publish_record(self.producer, self.cfg, record)
            return
        keys = req.host_keys or None
        engine, server = self.reconciler.engine, req.server or None
        run = adopt(engine, self.producer, keys, trigger=req.trigger, user=req.user, job_id=req.job_id, server=server)
        self.adopting = (req, asyncio.create_task(run))

    async def _request_next(self, req: ReconcileRequest) -> None:
        assert req.interval is not None
        previous = parse_time(req.scheduled_for) if req.scheduled_for else datetime.now(UTC)
        due = next_run(previous, previous, req.interval, datetime.now(UTC))
        nxt = msgspec.structs.replace(req, id=new_id(), job_id=new_id(), scheduled_for=due.isoformat(), retry_of=None)
        await self.producer.send(self.cfg.kafka.topics.control, "reconcile", encode(nxt))
        log.info("reconcile_chain_next", job_id=req.job_id, next_job=nxt.job_id, scheduled_for=nxt.scheduled_for)

    async def _cancel(self, cancel: CancelRequest) -> None:
        """Drop a held request: its job is recorded `skipped`, saying who cancelled it; its chain ends."""
        held = self.held.pop(cancel.job_id, None)
        self.ended.add(cancel.job_id)
        if held is None:
            log.info("cancel_not_held", job_id=cancel.job_id, user=cancel.user)
            return
        who = cancel.user or "someone"
        record = request_record(held[1], "skipped", error=f"cancelled by {who}", results={"cancelled_by": who})
        await publish_record(self.producer, self.cfg, record)
        log.info("reconcile_cancelled", job_id=cancel.job_id, user=cancel.user)
