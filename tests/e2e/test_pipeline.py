"""End to end: NetBox API changes -> webhook -> receiver -> Kafka -> consumer processes -> Zabbix.

Also the faults the design promises to survive: kill -9 of a consumer mid-batch, a rebalance,
the broker stopped mid-stream, Zabbix or NetBox unreachable for 30 s, and a poison message. The
pipeline runs into Zabbix 7.0; the plain change path runs into 6.0 as well (the chaos soak is on 6.0).
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from typing import Any

import pytest

from nbzx.common.config import Config
from nbzx.common.kafka import Producer
from nbzx.schemas import DeadLetter, SyncRequest, decode, encode
from tests.conftest import ROOT, consume_all, end_offsets, lab_ip
from tests.e2e.pipeline import ConsumerProcess, Pipeline, new_name, wait_until


def _stack(*args: str) -> None:
    subprocess.run([str(ROOT / "scripts" / "stack"), *args], check=True, capture_output=True)


def _tags(h: dict[str, Any]) -> set[tuple[str, str]]:
    return {(t["tag"], t["value"]) for t in h["tags"]}


@pytest.mark.parametrize("pipeline", ["6.0", "7.0"], indirect=True, ids=["zabbix6.0", "zabbix7.0"])
async def test_netbox_changes_reach_zabbix(pipeline: Pipeline) -> None:
    pipeline.consumer()
    name = new_name()
    [dev] = await asyncio.to_thread(pipeline.devices, [name], with_ip=True)
    key = f"dcim.device:{dev.id}"
    hosts = await pipeline.converged([key], lambda k, h: h["interfaces"] and h["interfaces"][0]["ip"] == lab_ip(10))
    hostid = hosts[key]["hostid"]

    tag = await asyncio.to_thread(pipeline.nb.extras.tags.get, slug="monitored") or await asyncio.to_thread(
        pipeline.nb.extras.tags.create, name="monitored", slug="monitored"
    )
    await asyncio.to_thread(dev.update, {"name": f"{name}-x", "tags": [tag.id], "status": "offline"})
    hosts = await pipeline.converged(
        [key], lambda k, h: h["host"] == f"{name}-x" and h["status"] == "1" and ("netbox:tag", "monitored") in _tags(h)
    )
    assert hosts[key]["hostid"] == hostid, "a rename keeps the host"

    ip = await asyncio.to_thread(pipeline.nb.ipam.ip_addresses.get, dev.primary_ip4.id)
    await asyncio.to_thread(ip.update, {"address": f"{lab_ip(99)}/24"})  # an IP change is an ipam.ipaddress event
    await pipeline.converged([key], lambda k, h: h["interfaces"][0]["ip"] == lab_ip(99))

    await asyncio.to_thread(dev.delete)
    hosts = await pipeline.converged([key], lambda k, h: "(archived " in h["name"])
    assert hosts[key]["hostid"] == hostid and hosts[key]["status"] == "1"


async def test_bulk_patch_of_200_devices_is_a_handful_of_batched_writes(pipeline: Pipeline) -> None:
    first = pipeline.consumer()
    names = [new_name("bulk") for _ in range(200)]
    devs = await asyncio.to_thread(pipeline.devices, names)
    keys = [f"dcim.device:{d.id}" for d in devs]
    await pipeline.converged(keys, timeout_s=120)
    await asyncio.to_thread(first.stop)
    # The 200 changes wait in Kafka while no consumer runs: the next one reads them as one backlog.
    before = sum((await end_offsets(pipeline.cfg, pipeline.cfg.kafka.topics.events)).values())
    await asyncio.to_thread(pipeline.nb.dcim.devices.update, [{"id": d.id, "status": "offline"} for d in devs])

    async def queued() -> bool:
        return sum((await end_offsets(pipeline.cfg, pipeline.cfg.kafka.topics.events)).values()) >= before + 200

    deadline = time.monotonic() + 120
    while not await queued():
        assert time.monotonic() < deadline, "NetBox's 200 webhooks reached Kafka"
        await asyncio.sleep(0.5)
    consumer = pipeline.consumer()
    await pipeline.converged(keys, lambda k, h: h["status"] == "1", timeout_s=120)
    await asyncio.sleep(2)  # let any extra write show up
    writes = await asyncio.to_thread(consumer.zabbix_writes)
    mass = await asyncio.to_thread(consumer.metric, "nbzx_zabbix_calls_total", method="host.massupdate", result="ok")
    # One shared change on 200 hosts: one host.massupdate per round (a round may not hold them all).
    assert mass >= 1 and writes <= 12, f"{writes} Zabbix writes ({mass} massupdates) for one change on 200 hosts"


async def _queue_sync_requests(cfg: Config, keys: list[str]) -> None:
    producer = Producer(cfg)
    await producer.start()
    try:
        for k in keys:
            await producer.send(cfg.kafka.topics.events, k, encode(SyncRequest(host_key=k, reason="cli")))
    finally:
        await producer.stop()


async def _backlog(p: Pipeline, n: int, prefix: str) -> list[str]:
    """n devices created in NetBox with their events queued in Kafka (no consumer running yet)."""
    devs = await asyncio.to_thread(p.devices, [new_name(prefix) for _ in range(n)])
    keys = [f"dcim.device:{d.id}" for d in devs]
    await _queue_sync_requests(p.cfg, keys)
    return keys


async def test_kill_9_mid_batch_then_restart_converges(pipeline: Pipeline) -> None:
    keys = await _backlog(pipeline, 150, "k9")
    # Two calls a second: the batch's two array host.create calls (100, 50) land apart.
    first = pipeline.consumer(rate_per_s=2, concurrency=1)
    made = await wait_until(lambda: len(pipeline.hosts(keys)), 90, "the first array create", interval_s=0.05)
    first.kill9()
    assert 0 < made < len(keys), f"killed mid-batch: {made} of {len(keys)} hosts were written"
    pipeline.consumer()
    await pipeline.converged(keys, timeout_s=180)


async def test_two_consumers_one_killed_rebalances(pipeline: Pipeline) -> None:
    a, b = pipeline.consumer(), pipeline.consumer()

    def assignments(c: ConsumerProcess) -> list[str]:
        return [line for line in c.log_path.read_text().splitlines() if "partitions_assigned" in line]

    await wait_until(lambda: assignments(a) and assignments(b), 30, "both consumers in the group")
    keys = await _backlog(pipeline, 60, "rb")
    await wait_until(lambda: len(pipeline.hosts(keys)) >= 5, 60, "first hosts", interval_s=0.1)
    seen = len(assignments(a))
    b.kill9()
    await wait_until(lambda: len(assignments(a)) > seen, 30, "a rebalance that gives b's partitions to a")
    assert '"partitions": [0, 1, 2, 3, 4, 5]' in assignments(a)[-1], assignments(a)[-1]
    await pipeline.converged(keys, timeout_s=120)
    assert a.proc.poll() is None


async def test_broker_stopped_and_restarted_mid_stream(pipeline: Pipeline) -> None:
    pipeline.consumer()
    first = await asyncio.to_thread(pipeline.devices, [new_name("kb") for _ in range(3)])
    await pipeline.converged([f"dcim.device:{d.id}" for d in first])
    refused_before = _unavailable()
    await asyncio.to_thread(_stack, "down", "kafka")
    try:
        # The receiver answers 503 now; NetBox keeps the deliveries and retries them (RQ_RETRY_MAX).
        second = await asyncio.to_thread(pipeline.devices, [new_name("kb") for _ in range(3)])
        second_keys = [f"dcim.device:{d.id}" for d in second]
        # The outage was hit: NetBox's deliveries of the three creations were refused with 503.
        await wait_until(lambda: _unavailable() - refused_before >= 3, 30, "three deliveries answered 503")
        assert pipeline.hosts(second_keys) == {}, "nothing reached Zabbix while the broker was down"
    finally:
        await asyncio.to_thread(_stack, "up", "kafka")
    keys = [f"dcim.device:{d.id}" for d in [*first, *second]]
    await pipeline.converged(keys, timeout_s=150)


def _unavailable() -> float:
    """Webhooks the test's in-process receiver answered with 503 (Kafka unavailable)."""
    from nbzx.receiver.metrics import WEBHOOKS

    return float(WEBHOOKS.labels("unavailable")._value.get())


@pytest.mark.parametrize("service", ["zabbix", "netbox"])
async def test_service_unreachable_for_30s_then_back(pipeline: Pipeline, service: str) -> None:
    keys = await _backlog(pipeline, 10, f"down-{service}")
    service = pipeline.zabbix_service if service == "zabbix" else service
    await asyncio.to_thread(_stack, "down", service)
    try:
        consumer = pipeline.consumer()
        await asyncio.sleep(30)
        assert consumer.proc.poll() is None, "the consumer keeps running while a dependency is down"
        if service == "netbox":  # Zabbix is up: nothing may have been written while NetBox was away
            assert pipeline.hosts(keys) == {}
    finally:
        await asyncio.to_thread(_stack, "up", service)
    await pipeline.converged(keys, timeout_s=120)
    retries = await asyncio.to_thread(consumer.metric, "nbzx_dlq_total")
    assert retries == 0, "a transient outage sends nothing to the DLQ"


async def test_poison_message_goes_to_dlq_and_does_not_block(pipeline: Pipeline) -> None:
    poison_tag = await asyncio.to_thread(
        pipeline.nb.extras.tags.create, name=new_name("poison"), slug=new_name("poison")
    )
    pipeline.host_overrides = {"templates": [{"match": {"tag": poison_tag.slug}, "templates": ["No Such Template"]}]}
    [bad] = await asyncio.to_thread(pipeline.devices, [new_name("poison")], tags=[poison_tag.id])
    good = await asyncio.to_thread(pipeline.devices, [new_name("fine") for _ in range(12)])
    bad_key = f"dcim.device:{bad.id}"
    keys = [f"dcim.device:{d.id}" for d in good]
    # The poison first, then the good ones: several share its partition.
    await _queue_sync_requests(pipeline.cfg, [bad_key, *keys])
    pipeline.consumer()
    await pipeline.converged(keys, timeout_s=90)
    letters = [decode(r.value) for r in await consume_all(pipeline.cfg, pipeline.cfg.kafka.topics.dlq, 1)]
    mine = [d for d in letters if isinstance(d, DeadLetter) and d.host_key == bad_key]
    assert mine and "No Such Template" in mine[0].error
    assert pipeline.hosts([bad_key]) == {}
    await asyncio.to_thread(bad.delete)
    pipeline.made.remove(bad)
    await asyncio.to_thread(poison_tag.delete)
    assert sum((await end_offsets(pipeline.cfg, pipeline.cfg.kafka.topics.dlq)).values()) >= 1
