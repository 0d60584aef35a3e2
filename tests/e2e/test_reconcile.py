"""Reconcile, jobs, schedule and replay against the real stack, on each real Zabbix (6.0 and 7.0);
the scheduler and the replay command, whose subject is not the Zabbix version, on 7.0.

Each test starts from a pristine Zabbix (about a second) and scopes NetBox to its own site, so the
fleet a reconcile sees is exactly the test's.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from nbzx.common.config import Config, TemplateRule
from nbzx.common.kafka import Producer, create_topics
from nbzx.delivery.consumer import EventConsumer
from nbzx.engine.netbox import NetBox
from nbzx.engine.sync import SyncEngine
from nbzx.engine.zabbix import Zabbix
from nbzx.jobs.control import ControlLoop
from nbzx.jobs.reconcile import Reconciler
from nbzx.jobs.records import read_jobs
from nbzx.jobs.replay import replay
from nbzx.jobs.schedule import parse_time, run_scheduler
from nbzx.receiver.app import make_app
from nbzx.schemas import ReconcileRequest, SyncRequest, encode
from tests.conftest import HOOK_SECRET, NETBOX_TOKEN, ROOT, ZabbixServer, create_device, end_offsets, lab_ip
from tests.e2e.pipeline import pipeline_config_doc, write_config

# What a CLI process of the service reads from its environment on the local stack.
CLI_ENV = {"NETBOX_TOKEN": NETBOX_TOKEN, "ZABBIX_USER": "Admin", "ZABBIX_PASSWORD": "zabbix",
           "NBZX_WEBHOOK_SECRET": HOOK_SECRET, "NBZX_API_TOKEN": "test-api-token"}  # fmt: skip


class Env:
    def __init__(
        self, cfg: Config, engine: SyncEngine, producer: Producer, nb: Any, server: ZabbixServer, base: dict[str, Any]
    ) -> None:
        self.cfg, self.engine, self.producer, self.nb, self.base = cfg, engine, producer, nb, base
        self.server, self.zapi = server, server.api
        self.reconciler = Reconciler(cfg, engine, producer)
        self.consumer_task: asyncio.Task[None] | None = None
        self.consumer: EventConsumer | None = None

    def device(self, name: str, ip: str | None = None) -> Any:
        return create_device(self.nb, self.base, name, ip)

    def start_consumer(self) -> None:
        self.consumer = EventConsumer(self.cfg, self.engine, self.producer)
        self.consumer_task = asyncio.create_task(self.consumer.run())

    async def stop_consumer(self) -> None:
        if self.consumer and self.consumer_task:
            self.consumer.stopping.set()
            await self.consumer_task
            self.consumer = self.consumer_task = None

    async def reconcile(self, **kw: Any) -> Any:
        return await self.reconciler.run(ReconcileRequest(trigger="cli", **kw))

    def host(self, key: str) -> dict[str, Any] | None:
        rows = self.zapi.host.get(
            tags=[{"tag": "netbox:key", "value": key, "operator": 1}],
            output=["hostid", "host", "name", "status"],
            selectParentTemplates=["name"],
            selectTags=["tag", "value"],
            selectInterfaces=["interfaceid", "ip"],
            **{self.server.caps.host_groups_select: ["name"]},
        )
        assert len(rows) <= 1
        if not rows:
            return None
        rows[0]["groups"] = rows[0].pop(self.server.caps.host_groups_key)
        return rows[0]

    async def wait_hosts(self, check: Any, what: str, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if await asyncio.to_thread(check):
                return
            await asyncio.sleep(0.5)
        raise AssertionError(f"timed out waiting for {what}; hosts now: {self.zapi.host.get(output=['host', 'name'])}")


@pytest.fixture
async def env(netbox_api: Any, zabbix_server: ZabbixServer, netbox_objects: Any) -> AsyncIterator[Env]:
    await asyncio.to_thread(zabbix_server.reset)
    base = netbox_objects("rec")
    site_filter = {"site_id": [base["site"].id]}
    cfg = zabbix_server.config(
        scope={"devices": {"filter": site_filter}, "virtual_machines": {"filter": site_filter}},
        host={
            "groups": ["NetBox/{site.name}"],
            "tags": {"extra": {"site": "{site.slug}"}},
            "templates": [{"match": {"role": base["role"].slug}, "templates": ["ICMP Ping"]}],
        },
        delete={"mode": "soft"},
        reconcile={"max_delete": 1},
        consumer={
            "session_timeout_ms": 1000,
            "heartbeat_interval_ms": 200,
            "rebalance_timeout_ms": 2000,
            "retry_base_s": 0.5,
            "retry_max_s": 2,
        },
    )
    await create_topics(cfg)
    zabbix = Zabbix(cfg)
    await zabbix.start()
    netbox = NetBox(cfg)
    producer = Producer(cfg)
    await producer.start()
    e = Env(cfg, SyncEngine(cfg, netbox, zabbix), producer, netbox_api, zabbix_server, base)
    yield e
    await e.stop_consumer()
    await producer.stop()
    await zabbix.close()
    netbox.close()


async def test_lost_events_are_fixed_by_one_reconcile_and_the_next_is_a_noop(env: Env) -> None:
    a = await asyncio.to_thread(env.device, f"rec-a-{uuid.uuid4().hex[:5]}", lab_ip(31))
    b = await asyncio.to_thread(env.device, f"rec-b-{uuid.uuid4().hex[:5]}", lab_ip(32))
    ka, kb = f"dcim.device:{a.id}", f"dcim.device:{b.id}"
    assert [r.result for r in await env.engine.sync([ka, kb])] == ["ok", "ok"]
    # The receiver is "down": these changes send no event anyone sees.
    renamed = f"{a.name}-renamed"
    await asyncio.to_thread(a.update, {"name": renamed})
    await asyncio.to_thread(b.delete)
    c = await asyncio.to_thread(env.device, f"rec-c-{uuid.uuid4().hex[:5]}", lab_ip(30))
    kc = f"dcim.device:{c.id}"

    job = await env.reconcile()
    assert job.status == "completed", job.error
    r = job.results
    assert (r["in_sync"], r["create"], r["update"], r["delete"], r["emitted"]) == (0, 1, 1, 1, 3)
    env.start_consumer()
    await env.wait_hosts(
        lambda: (
            (env.host(ka) or {}).get("host") == renamed
            and "(archived " in (env.host(kb) or {}).get("name", "")
            and env.host(kc) is not None
        ),
        "reconcile's sync requests applied",
    )

    writes, end_before = env.engine.zabbix.write_calls, await end_offsets(env.cfg, env.cfg.kafka.topics.events)
    again = await env.reconcile()
    assert again.status == "completed"
    assert (again.results["in_sync"], again.results["emitted"]) == (3, 0)
    assert env.engine.zabbix.write_calls == writes, "a no-op reconcile writes nothing to Zabbix"
    assert await end_offsets(env.cfg, env.cfg.kafka.topics.events) == end_before, "and emits nothing"
    jobs = await read_jobs(env.cfg)
    assert jobs[job.job_id].status == "completed" and jobs[again.job_id].results["in_sync"] == 3


async def test_drift_in_zabbix_is_restored_and_foreign_hosts_are_untouched(env: Env) -> None:
    devs = [await asyncio.to_thread(env.device, f"rec-d{i}-{uuid.uuid4().hex[:5]}", lab_ip(40 + i)) for i in range(2)]
    keys = [f"dcim.device:{d.id}" for d in devs]
    assert [r.result for r in await env.engine.sync(keys)] == ["ok", "ok"]
    h = env.host(keys[0])
    assert h is not None
    other_gid = env.zapi.hostgroup.get(filter={"name": "Discovered hosts"})[0]["groupid"]
    env.zapi.host.update(
        hostid=h["hostid"],
        status=1,
        groups=[{"groupid": other_gid}],
        templates_clear=[{"templateid": t["templateid"]} for t in env.zapi.template.get(filter={"name": "ICMP Ping"})],
        tags=[{"tag": "netbox:key", "value": keys[0]}, {"tag": "site", "value": "hand-edited"}],
        interfaces=[{"interfaceid": h["interfaces"][0]["interfaceid"], "ip": "203.0.113.9"}],
    )
    env.zapi.host.delete(env.host(keys[1])["hostid"])  # type: ignore[index]
    foreign = env.zapi.host.create(
        host=f"foreign-{uuid.uuid4().hex[:5]}", groups=[{"groupid": other_gid}], description="not ours"
    )["hostids"][0]

    job = await env.reconcile()
    assert job.status == "completed" and (job.results["update"], job.results["create"]) == (1, 1)
    env.start_consumer()

    def restored() -> bool:
        h0, h1 = env.host(keys[0]), env.host(keys[1])
        if h0 is None or h1 is None:
            return False
        tags = {(t["tag"], t["value"]) for t in h0["tags"]}
        return (
            h0["status"] == "0"
            and f"NetBox/{env.base['site'].name}" in {g["name"] for g in h0["groups"]}
            and {t["name"] for t in h0["parentTemplates"]} == {"ICMP Ping"}
            and ("site", env.base["site"].slug) in tags
            and ("site", "hand-edited") not in tags
            and h0["interfaces"][0]["ip"] == lab_ip(40)
        )

    await env.wait_hosts(restored, "drift restored")
    assert "Discovered hosts" in {g["name"] for g in env.host(keys[0])["groups"]}, "hand-added groups stay"  # type: ignore[index]
    [row] = env.zapi.host.get(hostids=[foreign], output=["description", "status"], selectTags=["tag"])
    assert row == {"hostid": foreign, "description": "not ours", "status": "0", "tags": []}


async def test_deletes_beyond_the_cap_are_held_back_while_creates_and_updates_go_out(env: Env) -> None:
    devs = [await asyncio.to_thread(env.device, f"rec-o{i}-{uuid.uuid4().hex[:5]}", lab_ip(50 + i)) for i in range(4)]
    keys = [f"dcim.device:{d.id}" for d in devs]
    await env.engine.sync(keys)
    gone, kept = devs[:3], devs[3]
    await asyncio.to_thread(env.nb.dcim.devices.delete, [d.id for d in gone])
    renamed = f"{kept.name}-renamed"
    await asyncio.to_thread(kept.update, {"name": renamed})  # an update in the same reconcile
    new = await asyncio.to_thread(env.device, f"rec-n-{uuid.uuid4().hex[:5]}", lab_ip(49))  # and a create
    new_key, kept_key, gone_keys = f"dcim.device:{new.id}", f"dcim.device:{kept.id}", keys[:3]
    before = await end_offsets(env.cfg, env.cfg.kafka.topics.events)

    dry = await env.reconcile(dry_run=True)
    assert dry.status == "failed" and sorted(dry.results["plan"]["delete"]) == sorted(gone_keys)
    assert await end_offsets(env.cfg, env.cfg.kafka.topics.events) == before, "a dry run emits nothing"

    job = await env.reconcile()
    assert job.status == "failed"
    assert "3 hosts would be deleted" in (job.error or "") and "max_delete" in (job.error or "")
    assert "held back" in (job.error or "") and "creates and updates were sent" in (job.error or "")
    r = job.results
    assert (r["create"], r["update"], r["delete"], r["held_deletes"], r["emitted"]) == (1, 1, 3, 3, 2)
    assert sorted(r["plan"]["delete"]) == sorted(gone_keys)
    emitted = sum((await end_offsets(env.cfg, env.cfg.kafka.topics.events)).values()) - sum(before.values())
    assert emitted == 2, "only the create and the update were emitted"
    env.start_consumer()
    await env.wait_hosts(
        lambda: env.host(new_key) is not None and (env.host(kept_key) or {}).get("host") == renamed,
        "the create and the update applied",
    )
    assert all(env.host(k) is not None and "(archived" not in env.host(k)["name"] for k in gone_keys)  # type: ignore[index]


async def test_replay_from_a_time_converges_and_a_second_replay_writes_nothing(env: Env) -> None:
    since = datetime.now(UTC) - timedelta(seconds=1)
    devs = [await asyncio.to_thread(env.device, f"rec-r{i}-{uuid.uuid4().hex[:5]}", lab_ip(60 + i)) for i in range(5)]
    keys = [f"dcim.device:{d.id}" for d in devs]
    for k in keys:  # consumers are stopped: these wait in Kafka
        await env.producer.send(env.cfg.kafka.topics.events, k, encode(SyncRequest(host_key=k, reason="cli")))
    fast = {"session_timeout_ms": 1000, "heartbeat_interval_ms": 200}
    first = await replay(env.cfg, env.engine, env.producer, since, None, f"bf-{uuid.uuid4().hex[:6]}", **fast)
    assert first.status == "completed" and first.results["messages"] == 5
    assert all(env.host(k) is not None for k in keys)
    writes = env.engine.zabbix.write_calls
    second = await replay(env.cfg, env.engine, env.producer, since, None, f"bf-{uuid.uuid4().hex[:6]}", **fast)
    assert second.status == "completed" and second.results["messages"] == 5
    assert env.engine.zabbix.write_calls == writes, "replaying the same events again changes nothing"
    assert (await read_jobs(env.cfg))[second.job_id].job_kind == "backfill"


@pytest.mark.parametrize("zabbix_server", ["7.0"], indirect=True)
async def test_the_replay_command_applies_the_window_between_since_and_until(env: Env, tmp_path: Path) -> None:
    """`nbzx replay --since --until` as an operator runs it: a process, its progress on stderr, the
    job as JSON on stdout; messages before --since and after --until are not applied."""
    made = [await asyncio.to_thread(env.device, f"rec-w{i}-{uuid.uuid4().hex[:5]}", lab_ip(70 + i)) for i in range(7)]
    keys = [f"dcim.device:{d.id}" for d in made]
    before, inside, after = keys[:2], keys[2:5], keys[5:]

    async def queue(batch: list[str]) -> None:
        for k in batch:
            await env.producer.send(env.cfg.kafka.topics.events, k, encode(SyncRequest(host_key=k, reason="cli")))

    await queue(before)
    await asyncio.sleep(1.2)  # record timestamps are in milliseconds: keep the three windows apart
    since = datetime.now(UTC)
    await queue(inside)
    await asyncio.sleep(1.2)
    until = datetime.now(UTC)
    await asyncio.sleep(1.2)
    await queue(after)

    doc = pipeline_config_doc(env.cfg)
    config = write_config(doc, tmp_path / "replay.yaml")
    proc = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "nbzx.cli", "--config", str(config), "replay", "--since", since.isoformat(),
         "--until", until.isoformat(), "--group", f"bf-{uuid.uuid4().hex[:6]}"],
        cwd=ROOT, env={**os.environ, **CLI_ENV}, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads(proc.stdout)
    assert (record["job_kind"], record["status"]) == ("backfill", "completed")
    assert record["results"]["messages"] == 3 and record["results"]["applied"] == 3, record["results"]
    assert "3/3 messages" in proc.stderr, "progress is shown"
    assert all(env.host(k) is not None for k in inside)
    assert all(env.host(k) is None for k in [*before, *after]), "nothing outside the window was applied"


@pytest.mark.parametrize("zabbix_server", ["7.0"], indirect=True)
async def test_scheduler_runs_on_schedule_after_failures_and_jobs_are_served(env: Env, aiohttp_client: Any) -> None:
    # An orphan and max_delete 0: every run fails, and the chain must go on anyway.
    gid = env.zapi.hostgroup.get(filter={"name": "Discovered hosts"})[0]["groupid"]
    env.zapi.host.create(
        host=f"orphan-{uuid.uuid4().hex[:5]}",
        groups=[{"groupid": gid}],
        tags=[{"tag": "netbox:key", "value": "dcim.device:987654321"}],
    )
    env.cfg.reconcile.max_delete = 0
    env.cfg.reconcile.interval = 1
    # A rule that matches no host but names a template Zabbix lacks: settings_import must say so.
    env.cfg.host.templates.append(TemplateRule(match={"role": "no-such-role"}, templates=["No Such Template 42"]))
    env.cfg.reconcile.start_at = (datetime.now(UTC) + timedelta(seconds=3)).isoformat()
    stopping = asyncio.Event()
    control = ControlLoop(
        env.cfg,
        env.reconciler,
        env.producer,
        stopping,
        session_timeout_ms=1000,
        heartbeat_interval_ms=200,
        auto_offset_reset="earliest",
    )
    tasks = [asyncio.create_task(control.run()), asyncio.create_task(run_scheduler(env.cfg, env.producer, stopping))]
    client = await aiohttp_client(make_app(env.cfg))
    auth = {"Authorization": "Bearer test-api-token"}
    try:
        deadline = time.monotonic() + 100
        runs: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            body = await (await client.get("/jobs?kind=reconcile&trigger=schedule", headers=auth)).json()
            runs = [j for j in body["jobs"] if j["status"] == "failed"]
            if len(runs) >= 2:
                break
            await asyncio.sleep(1)
        assert len(runs) >= 2, f"two scheduled runs expected, got {body}"
        times = sorted(parse_time(j["scheduled_for"]) for j in runs)
        assert times[1] - times[0] == timedelta(minutes=1), "next = previous scheduled time + interval"
        assert all("max_delete" in j["error"] for j in runs)
        assert any(j["status"] == "scheduled" for j in body["jobs"]), "the next run is visible as scheduled"
        one = await client.get(f"/jobs/{runs[0]['job_id']}", headers=auth)
        assert one.status == 200 and (await one.json())["job_id"] == runs[0]["job_id"]
        assert (await client.get("/jobs")).status == 401
        cleanups = (await (await client.get("/jobs?kind=maintenance_cleanup", headers=auth)).json())["jobs"]
        assert cleanups and cleanups[0]["status"] == "completed", "the control loop runs maintenance_cleanup too"
        imports = (await (await client.get("/jobs?kind=settings_import", headers=auth)).json())["jobs"]
        assert imports and imports[0]["status"] == "failed", "and settings_import, which checks the config"
        assert "No Such Template 42" in imports[0]["error"] and imports[0]["results"]["templates"] > 0
    finally:
        stopping.set()
        for t in tasks:  # each stops by itself; one that raised or hangs fails the test
            await asyncio.wait_for(t, 15)
