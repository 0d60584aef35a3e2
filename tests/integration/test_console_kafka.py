"""The console against the real Kafka of the stack, with the real control loop: a schedule made in the
console is held until its time, runs, requests the next run of its chain, and a cancel stops the chain;
held requests survive a control-loop restart; the console's view follows the topics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from nbzx.common.config import Config
from nbzx.common.kafka import Producer, ProduceUnavailable, create_topics
from nbzx.console.app import make_app
from nbzx.console.state import ConsoleState
from nbzx.engine.netbox import NetBox
from nbzx.engine.sync import SyncEngine
from nbzx.engine.zabbix import Zabbix
from nbzx.jobs.control import ControlLoop
from nbzx.jobs.reconcile import Reconciler
from nbzx.jobs.records import Job, job_kind
from nbzx.jobs.schedule import parse_time
from nbzx.schemas.messages import JobRecord, ReconcileRequest

pytestmark = pytest.mark.integration
OP = {"Authorization": "Bearer op-tok"}


class RecordingReconciler(Reconciler):
    """Runs nothing against NetBox: records which requests ran and completes their jobs."""

    def __init__(self, cfg: Config, producer: Producer) -> None:
        super().__init__(cfg, SyncEngine(cfg, NetBox(cfg), Zabbix(cfg)), producer)
        self.ran: list[ReconcileRequest] = []

    async def run(self, req: ReconcileRequest) -> JobRecord:
        self.ran.append(req)
        job = Job(self.producer, self.cfg, job_kind(req), job_id=req.job_id, trigger=req.trigger, user=req.user)
        await job.publish("running")
        return await job.publish("completed", results={"in_sync": 0})


class Stack:
    def __init__(self, cfg: Config, producer: Producer, client: TestClient[Any, Any], state: ConsoleState) -> None:
        self.cfg, self.producer, self.client, self.state = cfg, producer, client, state
        self.reconciler = RecordingReconciler(cfg, producer)
        self.stopping = asyncio.Event()
        self.loop: ControlLoop | None = None
        self.task: asyncio.Task[None] | None = None

    def start_control(self) -> None:
        self.stopping = asyncio.Event()
        self.loop = ControlLoop(
            self.cfg, self.reconciler, self.producer, self.stopping, session_timeout_ms=1000, heartbeat_interval_ms=200
        )
        self.task = asyncio.create_task(self.loop.run())

    async def stop_control(self) -> None:
        self.stopping.set()
        if self.task is not None:
            await self.task

    async def until(self, check: Callable[[], Any], what: str, timeout_s: float = 30) -> Any:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            got = check()
            if got:
                return got
            await asyncio.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}; jobs: {self.state.jobs}")


@pytest.fixture
async def stack(
    kafka_config: Config, aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]]
) -> AsyncIterator[Stack]:
    cfg = kafka_config
    cfg.secrets.console_operator_tokens = "alice:op-tok"
    cfg.secrets.console_viewer_tokens = "victor:view-tok"
    await create_topics(cfg)
    producer = Producer(cfg)
    state = ConsoleState(cfg)
    client = await aiohttp_client(make_app(cfg, producer, None, state))
    s = Stack(cfg, producer, client, state)
    s.start_control()
    try:
        yield s
    finally:
        try:
            await s.stop_control()  # a control loop that fell over fails the test here
        finally:
            await s.reconciler.engine.zabbix.close()
            s.reconciler.engine.netbox.close()


async def test_reconcile_now_from_the_console_runs_and_completes_with_the_user(stack: Stack) -> None:
    r = await stack.client.post("/api/v1/reconcile", json={"dry_run": True}, headers=OP)
    assert r.status == 202
    job_id = (await r.json())["job_id"]
    done = await stack.until(
        lambda: (j := stack.state.jobs.get(job_id)) is not None and j.status == "completed" and j, "the job completed"
    )
    assert (done.user, done.job_kind, done.trigger) == ("alice", "dry_run", "console")
    body = await (await stack.client.get(f"/api/v1/jobs/{job_id}", headers=OP)).json()
    assert body["status"] == "completed" and body["user"] == "alice"


async def test_a_recurring_schedule_runs_chains_and_stops_when_cancelled(stack: Stack) -> None:
    first_at = datetime.now(UTC) + timedelta(seconds=3)
    r = await stack.client.post(
        "/api/v1/reconcile", json={"scheduled_for": first_at.isoformat(), "interval": 1}, headers=OP
    )
    assert r.status == 202
    first = (await r.json())["job_id"]
    held = await stack.until(
        lambda: (j := stack.state.jobs.get(first)) is not None and j.status == "scheduled" and j, "held as scheduled"
    )
    assert held.interval == 1 and held.user == "alice"
    assert first not in [q.job_id for q in stack.reconciler.ran], "not run before its time"
    await stack.until(lambda: first in [q.job_id for q in stack.reconciler.ran], "the first run")
    ran_at = datetime.now(UTC)
    assert ran_at >= first_at
    nxt = await stack.until(
        lambda: next((j for j in stack.state.jobs.values() if j.status == "scheduled" and j.job_id != first), None),
        "the next run of the chain",
    )
    assert parse_time(nxt.scheduled_for or "") == parse_time(first_at.isoformat()) + timedelta(minutes=1)
    assert (nxt.user, nxt.interval) == ("alice", 1)
    r = await stack.client.post(f"/api/v1/jobs/{nxt.job_id}/cancel", headers=OP)
    assert r.status == 202
    cancelled = await stack.until(
        lambda: (j := stack.state.jobs.get(nxt.job_id)) is not None and j.status == "skipped" and j, "cancelled"
    )
    assert cancelled.error == "cancelled by alice" and cancelled.results["cancelled_by"] == "alice"
    assert stack.loop is not None and nxt.job_id not in stack.loop.held
    # The chain stopped: no other scheduled job appears and the cancelled one never runs.
    await asyncio.sleep(2)
    assert [j for j in stack.state.jobs.values() if j.status == "scheduled"] == []
    assert nxt.job_id not in [q.job_id for q in stack.reconciler.ran]


async def test_held_requests_survive_a_control_loop_restart_and_cancelled_ones_do_not(stack: Stack) -> None:
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    keep = (await (await stack.client.post("/api/v1/reconcile", json={"scheduled_for": later}, headers=OP)).json())[
        "job_id"
    ]
    drop = (await (await stack.client.post("/api/v1/reconcile", json={"scheduled_for": later}, headers=OP)).json())[
        "job_id"
    ]
    now_id = (await (await stack.client.post("/api/v1/reconcile", json={}, headers=OP)).json())["job_id"]
    assert stack.loop is not None
    await stack.until(lambda: stack.loop and {keep, drop} <= set(stack.loop.held), "both held")
    await stack.until(lambda: now_id in [q.job_id for q in stack.reconciler.ran], "the immediate one ran")
    assert (await stack.client.post(f"/api/v1/jobs/{drop}/cancel", headers=OP)).status == 202
    await stack.until(lambda: (j := stack.state.jobs.get(drop)) is not None and j.status == "skipped", "cancelled")
    await asyncio.sleep(1.5)  # a step of the loop commits what it read
    await stack.stop_control()
    runs_before = len(stack.reconciler.ran)
    stack.start_control()
    await stack.until(lambda: stack.loop and keep in stack.loop.held, "re-armed after the restart")
    await asyncio.sleep(2)
    assert drop not in stack.loop.held
    assert len(stack.reconciler.ran) == runs_before, "nothing that ran before runs again"


class RefusingProducer:
    """The stack's producer, except that the next `refusals` writes to the control topic fail as when
    Kafka does not acknowledge."""

    def __init__(self, inner: Producer, control_topic: str, refusals: int) -> None:
        self.inner, self.topic, self.refusals = inner, control_topic, refusals

    async def send(self, topic: str, key: str, value: bytes) -> tuple[int, int]:
        if topic == self.topic and self.refusals > 0:
            self.refusals -= 1
            raise ProduceUnavailable("Kafka did not acknowledge (refused by the test)")
        return await self.inner.send(topic, key, value)


async def test_a_due_recurring_request_kafka_refuses_to_chain_runs_once_and_chains_once(stack: Stack) -> None:
    await stack.stop_control()
    refusing = RefusingProducer(stack.producer, stack.cfg.kafka.topics.control, refusals=0)
    stopping = asyncio.Event()
    loop = ControlLoop(
        stack.cfg, stack.reconciler, refusing, stopping, session_timeout_ms=1000, heartbeat_interval_ms=200
    )  # type: ignore[arg-type]
    task = asyncio.create_task(loop.run())
    try:
        due = datetime.now(UTC) + timedelta(seconds=3)
        r = await stack.client.post(
            "/api/v1/reconcile", json={"scheduled_for": due.isoformat(), "interval": 60}, headers=OP
        )
        first = (await r.json())["job_id"]
        await stack.until(lambda: first in loop.held, "held")
        refusing.refusals = 2  # the next run's request is refused twice when the first one comes due
        await stack.until(lambda: first in [q.job_id for q in stack.reconciler.ran], "the run, once Kafka takes it")
        await asyncio.sleep(2)
        assert [q.job_id for q in stack.reconciler.ran].count(first) == 1, "run once"
        nexts = [j for j in stack.state.jobs.values() if j.status == "scheduled" and j.job_id != first]
        assert len(nexts) == 1, f"the chain goes on with one next run, not more: {nexts}"
        assert first not in loop.held
    finally:
        stopping.set()
        await task
