"""The control loop and the scheduler against the real Kafka of the stack: a failure is an `errored`
job, and neither stops."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient

from nbzx.common.config import Config
from nbzx.common.kafka import Producer
from nbzx.engine.netbox import NetBox
from nbzx.engine.sync import SyncEngine
from nbzx.engine.zabbix import Zabbix
from nbzx.jobs.control import ControlLoop
from nbzx.jobs.reconcile import Reconciler
from nbzx.jobs.records import read_jobs
from nbzx.jobs.schedule import run_scheduler
from nbzx.schemas import JobRecord, ReconcileRequest, encode


class CrashingReconciler(Reconciler):
    """A reconcile that raises outside its own error handling (the fault under test)."""

    def __init__(self, cfg: Config, producer: Producer) -> None:
        # A real engine: the control loop's system jobs (settings import, maintenance clean-up) use it.
        super().__init__(cfg, SyncEngine(cfg, NetBox(cfg), Zabbix(cfg)), producer)
        self.runs = 0

    async def run(self, req: ReconcileRequest) -> JobRecord:
        self.runs += 1
        raise RuntimeError("the emit step fell over")


async def _jobs_until(cfg: Config, check: Any, timeout_s: float = 20) -> dict[str, JobRecord]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        jobs = await read_jobs(cfg)
        if check(jobs):
            return jobs
        await asyncio.sleep(0.5)
    raise AssertionError(f"job records never matched; last: {jobs}")


async def test_a_reconcile_that_raises_is_an_errored_job_and_the_loop_goes_on(kafka_config: Config) -> None:
    cfg = kafka_config
    producer = Producer(cfg)
    await producer.start()
    stopping = asyncio.Event()
    reconciler = CrashingReconciler(cfg, producer)
    loop = ControlLoop(cfg, reconciler, producer, stopping, session_timeout_ms=1000, heartbeat_interval_ms=200)
    # Sent before the loop's group exists: a new control group reads from the earliest request.
    first, second = ReconcileRequest(trigger="cli"), ReconcileRequest(trigger="cli")
    await producer.send(cfg.kafka.topics.control, "reconcile", encode(first))
    task = asyncio.create_task(loop.run())
    try:
        jobs = await _jobs_until(cfg, lambda j: first.job_id in j)
        assert jobs[first.job_id].status == "errored"
        assert "RuntimeError: the emit step fell over" in (jobs[first.job_id].error or "")
        await producer.send(cfg.kafka.topics.control, "reconcile", encode(second))
        jobs = await _jobs_until(cfg, lambda j: second.job_id in j)
        assert jobs[second.job_id].status == "errored" and reconciler.runs == 2
        assert not task.done(), "the control loop keeps running"
    finally:
        stopping.set()
        await task
        await producer.stop()
        await reconciler.engine.zabbix.close()
        reconciler.engine.netbox.close()


async def test_a_scheduled_request_kafka_refuses_is_an_errored_job_and_the_schedule_goes_on(
    kafka_config: Config,
) -> None:
    cfg = kafka_config
    admin = AIOKafkaAdminClient(bootstrap_servers=cfg.kafka.bootstrap)
    await admin.start()
    try:
        await admin.delete_topics([cfg.kafka.topics.control])  # where the request should go: gone
    finally:
        await admin.close()
    cfg.reconcile.interval = 1
    cfg.reconcile.start_at = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
    producer = Producer(cfg)
    await producer.start()
    stopping = asyncio.Event()
    task = asyncio.create_task(run_scheduler(cfg, producer, stopping))
    try:
        jobs = await _jobs_until(cfg, lambda j: any(r.status == "errored" for r in j.values()), timeout_s=30)
        [errored] = [r for r in jobs.values() if r.status == "errored"]
        assert errored.trigger == "schedule" and "not stored" in (errored.error or "")
        await _jobs_until(
            cfg, lambda j: any(r.status == "scheduled" and r.job_id != errored.job_id for r in j.values())
        )
        assert not task.done(), "the schedule goes on to its next run"
    finally:
        stopping.set()
        await task
        await producer.stop()
