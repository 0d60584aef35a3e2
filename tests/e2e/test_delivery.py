"""Delivery under failure, with an in-process consumer on the stack's real Kafka, NetBox and Zabbix 7.0:
one key's failure never holds or loses another key's change, and nothing is committed past a record
that was neither applied nor stored as a dead letter (DESIGN §4 "Delivery")."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from nbzx.common.config import Config
from nbzx.common.kafka import Producer, create_topics
from nbzx.core.planner import SyncResult
from nbzx.core.webhook import normalise
from nbzx.delivery.consumer import EventConsumer
from nbzx.engine.netbox import NetBox
from nbzx.engine.sync import SyncEngine
from nbzx.engine.zabbix import Zabbix
from nbzx.schemas import ChangeEvent, DeadLetter, SyncRequest, decode, encode
from tests.conftest import TEST_MARK, ZabbixServer, consume_all, create_device, lab_ip
from tests.e2e.pipeline import wait_until


class FlakyEngine(SyncEngine):
    """The real engine, except that `flaky` keys fail transiently until `healed` is set: the one
    fault no real part here can cause for a single host (Zabbix's "database is locked")."""

    def __init__(self, *args: Any, flaky: Iterable[str] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.flaky = set(flaky)
        self.healed = asyncio.Event()
        self.failures = 0

    async def sync(self, host_keys: Iterable[str], dry_run: bool = False) -> list[SyncResult]:
        keys = set(host_keys)
        broken = set() if self.healed.is_set() else keys & self.flaky
        self.failures += len(broken)
        results = await super().sync(keys - broken, dry_run) if keys - broken else []
        fail = [
            SyncResult(host_key=k, action="read", result="error", error="database is locked", transient=True)
            for k in broken
        ]
        return [*results, *fail]


class Env:
    def __init__(self, cfg: Config, nb: Any, zapi: Any, base: dict[str, Any]) -> None:
        self.cfg, self.nb, self.zapi, self.base = cfg, nb, zapi, base
        self.netbox, self.zabbix = NetBox(cfg), Zabbix(cfg)
        self.producer = Producer(cfg)
        self.tasks: list[tuple[EventConsumer, asyncio.Task[None]]] = []

    def engine(self, **kwargs: Any) -> SyncEngine:
        if kwargs:
            return FlakyEngine(self.cfg, self.netbox, self.zabbix, **kwargs)
        return SyncEngine(self.cfg, self.netbox, self.zabbix)

    def start(self, engine: SyncEngine | None = None) -> EventConsumer:
        consumer = EventConsumer(self.cfg, engine or self.engine(), self.producer)
        self.tasks.append((consumer, asyncio.create_task(consumer.run())))
        return consumer

    async def stop(self) -> None:
        for consumer, _ in self.tasks:
            consumer.stopping.set()
        for _, task in self.tasks:
            await task
        self.tasks.clear()

    def device(self, name: str, ip: str | None = None, **fields: Any) -> Any:
        return create_device(self.nb, self.base, name, ip, **fields)

    async def queue(self, messages: Iterable[tuple[str, bytes | None]]) -> None:
        for key, value in messages:
            producer = await self.producer._ensure()
            await producer.send_and_wait(self.cfg.kafka.topics.events, key=key.encode(), value=value)

    def host(self, key: str) -> dict[str, Any] | None:
        rows = self.zapi.host.get(
            tags=[{"tag": "netbox:key", "value": key, "operator": 1}], output=["hostid", "host", "description"]
        )
        return rows[0] if rows else None

    async def wait(self, check: Any, what: str, timeout_s: float = 60) -> None:
        await wait_until(check, timeout_s, what, interval_s=0.3)

    async def letters(self) -> list[DeadLetter]:
        out = []
        for r in await consume_all(self.cfg, self.cfg.kafka.topics.dlq, 10_000, timeout_s=2):
            msg = decode(r.value)
            assert isinstance(msg, DeadLetter)
            out.append(msg)
        return out

    async def committed(self) -> dict[int, int]:
        c = AIOKafkaConsumer(bootstrap_servers=self.cfg.kafka.bootstrap, group_id=self.cfg.kafka.group)
        await c.start()
        try:
            tps = [TopicPartition(self.cfg.kafka.topics.events, p) for p in range(self.cfg.kafka.partitions)]
            return {tp.partition: (await c.committed(tp)) or 0 for tp in tps}
        finally:
            await c.stop()


def sync_request(key: str) -> tuple[str, bytes]:
    return key, encode(SyncRequest(host_key=key, reason="cli"))


@pytest.fixture
async def env(netbox_api: Any, zabbix7: ZabbixServer, netbox_objects: Any) -> AsyncIterator[Env]:
    base = netbox_objects("dlv")
    cfg = zabbix7.config(
        host={"groups": ["NetBox/{site.name}"], "description": "{description}"},
        delete={"mode": "hard"},
        consumer={
            "session_timeout_ms": 1000,
            "heartbeat_interval_ms": 200,
            "rebalance_timeout_ms": 2000,
            "retry_base_s": 0.3,
            "retry_max_s": 1,
        },
    )
    await create_topics(cfg)
    e = Env(cfg, netbox_api, zabbix7.api, base)
    await e.zabbix.start()
    await e.producer.start()
    yield e
    await e.stop()
    await e.producer.stop()
    await e.zabbix.close()
    e.netbox.close()


async def test_deleting_an_unrelated_empty_site_loses_no_device_change(env: Env) -> None:
    devs = [await asyncio.to_thread(env.device, f"dlv-{uuid.uuid4().hex[:6]}", lab_ip(140 + i)) for i in range(3)]
    keys = [f"dcim.device:{d.id}" for d in devs]
    tag = uuid.uuid4().hex[:6]
    site = await asyncio.to_thread(
        env.nb.dcim.sites.create, name=f"empty-{tag}", slug=f"empty-{tag}", description=TEST_MARK
    )
    await asyncio.to_thread(env.nb.dcim.devices.update, [{"id": d.id, "description": f"patched {tag}"} for d in devs])
    site_body = {"id": site.id, "name": site.name, "slug": site.slug}
    await asyncio.to_thread(site.delete)
    deleted = normalise(
        {
            "event": "deleted",
            "object_type": "dcim.site",
            "data": site_body,
            "snapshots": {"prechange": site_body, "postchange": None},
        }
    )
    # The device changes and the site's deletion in one backlog, as when the consumer was stopped.
    await env.queue([*(sync_request(k) for k in keys), (deleted.host_key, encode(deleted))])
    env.start()
    await env.wait(lambda: all((env.host(k) or {}).get("description") == f"patched {tag}" for k in keys), "the patches")
    assert await env.letters() == [], "a dependency NetBox no longer knows is no error"


async def test_a_key_failing_transiently_holds_back_no_other_key_and_is_never_committed_past(env: Env) -> None:
    devs = [await asyncio.to_thread(env.device, f"dlv-{uuid.uuid4().hex[:6]}", lab_ip(150 + i)) for i in range(13)]
    keys = [f"dcim.device:{d.id}" for d in devs]
    flaky, others = keys[0], keys[1:]
    engine = env.engine(flaky=[flaky])
    assert isinstance(engine, FlakyEngine)
    await env.queue([sync_request(flaky)])  # first on its partition: the others behind it must not wait
    await env.queue(sync_request(k) for k in others)
    records = await consume_all(env.cfg, env.cfg.kafka.topics.events, 13)
    assert len(records) == 13
    [(partition, flaky_offset)] = [(r.partition, r.offset) for r in records if r.key.decode() == flaky]
    ends = {r.partition: r.offset + 1 for r in records}
    consumer = env.start(engine)
    t0 = time.monotonic()
    await env.wait(lambda: all(env.host(k) for k in others), "every other key", timeout_s=30)
    assert time.monotonic() - t0 < 15, "the others went on while one key kept failing"
    await env.wait(lambda: engine.failures >= 3, "the flaky key retried on its own", timeout_s=10)
    assert env.host(flaky) is None and flaky in consumer.parked

    assert (await env.committed())[partition] <= flaky_offset, "the parked key's record is not committed past"

    engine.healed.set()
    await env.wait(lambda: env.host(flaky) is not None, "the flaky key, once healed", timeout_s=30)
    await env.wait(lambda: flaky not in consumer.parked, "the key unparked", timeout_s=10)

    async def all_committed() -> bool:
        committed = await env.committed()
        return all(committed[p] >= end for p, end in ends.items())

    deadline = time.monotonic() + 10
    while not await all_committed():
        assert time.monotonic() < deadline, "every partition committed to its end"
        await asyncio.sleep(0.3)
    assert await env.letters() == [], "a transient failure is not dead-lettered"


async def test_unreadable_records_and_bad_data_are_dead_lettered_once_and_the_rest_applied(env: Env) -> None:
    bad_snmp = await asyncio.to_thread(
        env.device,
        f"dlv-snmp-{uuid.uuid4().hex[:6]}",
        lab_ip(170),
        local_context_data={"zabbix": {"interfaces": [{"type": "snmp", "snmp": "v2c please"}]}},
    )
    good = [await asyncio.to_thread(env.device, f"dlv-{uuid.uuid4().hex[:6]}", lab_ip(171 + i)) for i in range(4)]
    bad_key = f"dcim.device:{bad_snmp.id}"
    malformed = encode(SyncRequest(host_key="dcim.device:../../etc", reason="retry"))
    await env.queue(
        [
            ("dcim.device:424242", None),  # a tombstone
            ("dcim.device:../../etc", malformed),
            sync_request(bad_key),
            *(sync_request(f"dcim.device:{d.id}") for d in good),
        ]
    )
    env.start()
    await env.wait(lambda: all(env.host(f"dcim.device:{d.id}") for d in good), "the good devices")
    await asyncio.sleep(1)
    letters = {d.host_key: d for d in await env.letters()}
    assert set(letters) == {"dcim.device:424242", "dcim.device:../../etc", bad_key}, letters
    assert "null record" in letters["dcim.device:424242"].error
    assert "host_key" in letters["dcim.device:../../etc"].error
    assert "cannot plan" in letters[bad_key].error and "TypeError" in letters[bad_key].error
    assert all(not task.done() for _, task in env.tasks), "nothing crashed the consumer"


async def test_a_dead_letter_that_cannot_be_stored_is_retried_and_never_committed_past(env: Env) -> None:
    from nbzx.common.kafka import topic_specs

    # The DLQ topic is gone (and the broker creates none by itself): the letter cannot be stored.
    dlq = [t for t in topic_specs(env.cfg) if t.name == env.cfg.kafka.topics.dlq]
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=env.cfg.kafka.bootstrap)
    await admin.start()
    try:
        await admin.delete_topics([env.cfg.kafka.topics.dlq])
        await asyncio.sleep(1)
        poison = await asyncio.to_thread(
            env.device,
            f"dlv-poison-{uuid.uuid4().hex[:6]}",
            lab_ip(180),
            local_context_data={"zabbix": {"templates": ["No Such Template"]}},
        )
        key = f"dcim.device:{poison.id}"
        await env.queue([sync_request(key)])
        consumer = env.start()
        await env.wait(lambda: key in consumer.parked, "the letter held for a retry", timeout_s=30)
        [rec] = [r for r in await consume_all(env.cfg, env.cfg.kafka.topics.events, 1)]
        assert (await env.committed())[rec.partition] <= rec.offset, "not committed past an unstored letter"

        await admin.create_topics(dlq)
        await env.wait(lambda: key not in consumer.parked, "the letter stored on a retry", timeout_s=30)
        [letter] = await env.letters()
        assert letter.host_key == key and "No Such Template" in letter.error
    finally:
        await admin.close()


async def test_a_change_event_for_a_device_still_goes_through(env: Env) -> None:
    """The webhook path (a ChangeEvent, not a SyncRequest) after the delivery rework."""
    dev = await asyncio.to_thread(env.device, f"dlv-{uuid.uuid4().hex[:6]}", lab_ip(190))
    body = {"event": "updated", "object_type": "dcim.device", "data": {"id": dev.id, "name": dev.name}, "snapshots": {}}
    ev = normalise(json.loads(json.dumps(body)))
    assert isinstance(ev, ChangeEvent)
    await env.queue([(ev.host_key, encode(ev))])
    env.start()
    await env.wait(lambda: env.host(ev.host_key) is not None, "the device's host")


async def test_a_rebalance_while_keys_are_parked_raises_nothing_and_loses_nothing(env: Env) -> None:
    devs = [await asyncio.to_thread(env.device, f"dlv-{uuid.uuid4().hex[:6]}", lab_ip(200 + i)) for i in range(8)]
    keys = [f"dcim.device:{d.id}" for d in devs]
    engine = env.engine(flaky=keys)  # every key fails: an outage, and the partitions are paused
    assert isinstance(engine, FlakyEngine)
    await env.queue(sync_request(k) for k in keys)
    a = env.start(engine)
    await env.wait(lambda: a.outage and len(a.parked) == len(keys), "every key parked, reading paused")
    b = env.start()  # joins the group: partitions move away from `a` while its keys are parked
    await env.wait(lambda: b.consumer is not None and bool(b.consumer.assignment()), "the rebalance")
    engine.healed.set()
    await env.wait(lambda: all(env.host(k) for k in keys), "every key, from whichever consumer owns it now")
    assert all(not task.done() for _, task in env.tasks), "no consumer fell over in the rebalance"
    assert await env.letters() == []
