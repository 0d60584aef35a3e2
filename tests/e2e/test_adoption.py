"""Brownfield adoption against the real NetBox and each real Zabbix of the stack: `adopt plan` lists a
hand-made host as adoptable with its changes and a name two devices carry as not adoptable with the
reason; `adopt apply` takes over the valid one as a job and keeps its hostid."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from nbzx.common.kafka import Producer, create_topics
from nbzx.engine.netbox import NetBox
from nbzx.engine.netbox_write import ensure_custom_fields
from nbzx.engine.sync import SyncEngine
from nbzx.engine.zabbix import Zabbix
from nbzx.jobs.adopt import adopt, adoption_report
from tests.conftest import ZabbixServer, create_device, lab_ip


@pytest.fixture
async def engine(zabbix_server: ZabbixServer, kafka_bootstrap: str) -> AsyncIterator[SyncEngine]:
    cfg = zabbix_server.config(host={"groups": ["NetBox/{site.name}"]})
    await create_topics(cfg)
    zabbix = Zabbix(cfg)
    await zabbix.start()
    netbox = NetBox(cfg)
    yield SyncEngine(cfg, netbox, zabbix)
    await zabbix.close()
    netbox.close()


def hand_made(zapi: Any, name: str, ip: str) -> str:
    """A Zabbix host as people make them: 'Linux servers', an agent interface, a tag of their own."""
    gid = zapi.hostgroup.get(filter={"name": "Linux servers"})[0]["groupid"]
    iface = {"type": 1, "main": 1, "useip": 1, "ip": ip, "dns": "", "port": "10050"}
    res = zapi.host.create(
        host=name, groups=[{"groupid": gid}], interfaces=[iface], tags=[{"tag": "team", "value": "ops"}]
    )
    return str(res["hostids"][0])


async def test_plan_lists_valid_and_invalid_matches_and_apply_keeps_the_hostid(
    engine: SyncEngine, zabbix_server: ZabbixServer, netbox_api: Any, netbox_objects: Any
) -> None:
    zapi = zabbix_server.api
    site_a, site_b = netbox_objects("adopt"), netbox_objects("adopt")
    name, dup = f"adopt-{uuid.uuid4().hex[:6]}", f"adopt-dup-{uuid.uuid4().hex[:6]}"
    dev = await asyncio.to_thread(create_device, netbox_api, site_a, name, lab_ip(70))
    dup_a = await asyncio.to_thread(create_device, netbox_api, site_a, dup, lab_ip(71))
    dup_b = await asyncio.to_thread(create_device, netbox_api, site_b, dup, lab_ip(72))
    key = f"dcim.device:{dev.id}"
    engine.cfg.netbox.write_back.journal = engine.cfg.netbox.write_back.custom_fields = True
    await ensure_custom_fields(engine.netbox, engine.cfg.netbox.write_back)
    hostid = hand_made(zapi, name, lab_ip(70))
    dup_hostid = hand_made(zapi, dup, "192.0.2.250")
    try:
        report = await adoption_report(engine)
        [a] = [a for a in report.adoptable if a.hostid == hostid]
        assert (a.host_key, a.matched_by, a.valid) == (key, "host", True)
        assert {"groups", "tags"} <= set(a.changes), a.changes
        [bad] = [a for a in report.not_adoptable if a.hostid == dup_hostid]
        assert bad.reason == f"host matches 2 NetBox objects: dcim.device:{dup_a.id}, dcim.device:{dup_b.id}"
        missing = {m.host_key: m.reason for m in report.netbox_only}
        assert missing[key] == f"adoptable: Zabbix host {name!r} (hostid {hostid})"
        assert missing[f"dcim.device:{dup_a.id}"] == "no host yet: the next sync creates it"

        producer = Producer(engine.cfg, client_id="test-adopt")
        try:
            refused = await adopt(engine, producer, [f"dcim.device:{dup_a.id}"], user="alice")
            assert refused.status == "completed" and refused.results["adopted"] == 0
            assert refused.results["refusals"] == {
                f"dcim.device:{dup_a.id}": "no Zabbix host we do not own matches it"
            }, "the duplicate name matched no single object, so nothing names it"
            record = await adopt(engine, producer, [key], user="alice")
        finally:
            await producer.stop()
        assert (record.job_kind, record.status, record.user) == ("adopt", "completed", "alice")
        assert (record.results["adopted"], record.results["failed"]) == (1, 0)
        assert record.results["hosts"][key]["hostid"] == hostid

        [row] = zapi.host.get(
            hostids=[hostid],
            output=["host"],
            selectTags=["tag", "value"],
            **{zabbix_server.caps.host_groups_select: ["name"]},
        )
        tags = {(t["tag"], t["value"]) for t in row["tags"]}
        assert ("netbox:key", key) in tags and ("team", "ops") in tags, "owner tag added, their own tag kept"
        assert zabbix_server.host_groups(row) == {f"NetBox/{site_a['site'].name}", "Linux servers"}
        # With write-back on, NetBox says so: an "adopted" journal entry, the hostid and the state.
        [entry] = netbox_api.extras.journal_entries.filter(
            assigned_object_type="dcim.device", assigned_object_id=dev.id
        )
        assert entry.kind.value == "info" and entry.comments.startswith("**netbox-zabbix-stream**: Adopted")
        fields = netbox_api.dcim.devices.get(dev.id).custom_fields
        assert (fields["nbzx_zabbix_hostid"], fields["nbzx_sync_state"]) == (int(hostid), "in_sync")
        writes = engine.zabbix.write_calls
        [again] = await engine.sync([key])
        assert again.action == "noop" and again.hostid == hostid
        assert engine.zabbix.write_calls == writes, "an adopted host is then a zero-write no-op"
        after = await adoption_report(engine)
        assert hostid not in {a.hostid for a in [*after.adoptable, *after.not_adoptable, *after.zabbix_only]}
    finally:
        zapi.host.delete(*[h["hostid"] for h in zapi.host.get(hostids=[hostid, dup_hostid], output=["hostid"])])


async def test_the_control_loop_runs_an_adopt_request_and_never_a_stale_one(engine: SyncEngine) -> None:
    """A new control group reads the control topic from its start: an adoption asked for days ago must not
    run then (the same rule as reconcile requests), a fresh one runs as a job naming its user."""
    from aiokafka import AIOKafkaProducer

    from nbzx.common.kafka import client_kwargs
    from nbzx.jobs.control import ControlLoop
    from nbzx.jobs.reconcile import Reconciler
    from nbzx.jobs.records import read_jobs
    from nbzx.schemas.messages import AdoptRequest, encode

    cfg = engine.cfg
    stale = AdoptRequest(user="mallory", host_keys=["dcim.device:999999998"])
    fresh = AdoptRequest(user="alice", host_keys=["dcim.device:999999999"])
    raw = AIOKafkaProducer(**client_kwargs(cfg))
    await raw.start()
    try:
        two_days_ago = int((time.time() - 2 * 86400) * 1000)
        await raw.send_and_wait(cfg.kafka.topics.control, encode(stale), key=b"adopt", timestamp_ms=two_days_ago)
        await raw.send_and_wait(cfg.kafka.topics.control, encode(fresh), key=b"adopt")
    finally:
        await raw.stop()
    producer = Producer(cfg, client_id="test-adopt-control")
    stopping = asyncio.Event()
    loop = ControlLoop(cfg, Reconciler(cfg, engine, producer), producer, stopping, session_timeout_ms=1000)
    task = asyncio.create_task(loop.run())
    try:
        deadline = time.monotonic() + 60
        jobs = await read_jobs(cfg)
        while not (fresh.job_id in jobs and jobs[fresh.job_id].status == "completed"):
            assert time.monotonic() < deadline, jobs.get(fresh.job_id)
            await asyncio.sleep(0.5)
            jobs = await read_jobs(cfg)
        record = jobs[fresh.job_id]
        assert (record.job_kind, record.user, record.trigger) == ("adopt", "alice", "console")
        assert record.results["refusals"] == {"dcim.device:999999999": "no Zabbix host we do not own matches it"}
        assert stale.job_id not in jobs, "a request from two days ago is not run"
    finally:
        stopping.set()
        await task
        await producer.stop()
