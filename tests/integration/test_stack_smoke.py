"""Smoke tests: the stack's Kafka and Zabbix are the real thing, and behave as the design needs."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from nbzx.common.config import Config
from tests.conftest import FAST_GROUP, ZabbixServer


async def test_kafka_keyed_produce_and_group_consume(kafka_config: Config) -> None:
    topic = kafka_config.kafka.topics.events
    producer = AIOKafkaProducer(bootstrap_servers=kafka_config.kafka.bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        sent = {}
        for i in range(60):
            key = f"dcim.device:{i % 5}"
            md = await producer.send_and_wait(topic, key=key.encode(), value=f"{key}#{i}".encode())
            assert sent.setdefault(key, md.partition) == md.partition, "one key must always land on one partition"
    finally:
        await producer.stop()

    group = f"smoke-{uuid.uuid4().hex[:6]}"
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_config.kafka.bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **FAST_GROUP,
    )
    await consumer.start()
    got: list[Any] = []
    try:
        deadline = time.monotonic() + 20
        while len(got) < 60 and time.monotonic() < deadline:
            for msgs in (await consumer.getmany(timeout_ms=300)).values():
                got.extend(msgs)
        await consumer.commit()
        committed = {p: await consumer.committed(TopicPartition(topic, p)) for p in range(6)}
    finally:
        await consumer.stop()
    assert len(got) == 60
    per_key: dict[bytes, list[int]] = {}
    for r in got:
        per_key.setdefault(r.key, []).append(int(r.value.decode().split("#")[1]))
    assert all(seq == sorted(seq) for seq in per_key.values()), "order within a key is kept"
    assert sum(v or 0 for v in committed.values()) == 60


async def test_kafka_offsets_for_times_replays_from_a_timestamp(kafka_config: Config) -> None:
    topic = kafka_config.kafka.topics.control  # one partition
    producer = AIOKafkaProducer(bootstrap_servers=kafka_config.kafka.bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for i in range(20):
            await producer.send_and_wait(topic, key=b"k", value=f"A{i}".encode())
        await asyncio.sleep(0.05)
        since_ms = int(time.time() * 1000)
        await asyncio.sleep(0.05)
        for i in range(20):
            await producer.send_and_wait(topic, key=b"k", value=f"B{i}".encode())
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_config.kafka.bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        found = await consumer.offsets_for_times({tp: since_ms})
        consumer.seek(tp, found[tp].offset)
        values: list[str] = []
        deadline = time.monotonic() + 30
        while len(values) < 20 and time.monotonic() < deadline:
            for msgs in (await consumer.getmany(tp, timeout_ms=500)).values():
                values.extend(m.value.decode() for m in msgs)
    finally:
        await consumer.stop()
    assert values == [f"B{i}" for i in range(20)]


def _host_params(name: str, group_id: str) -> dict[str, Any]:
    return {
        "host": name,
        "groups": [{"groupid": group_id}],
        "interfaces": [{"type": 1, "main": 1, "useip": 1, "ip": "192.0.2.10", "dns": "", "port": "10050"}],
        "tags": [{"tag": "netbox:key", "value": f"dcim.device:{name}"}],
    }


def test_zabbix_sync_client_create_read_delete(zabbix_server: ZabbixServer) -> None:
    zabbix_api = zabbix_server.api
    assert zabbix_api.api_version() >= 6.0
    gid = zabbix_api.hostgroup.get(filter={"name": "Linux servers"})[0]["groupid"]
    name = f"smoke-{uuid.uuid4().hex[:8]}"
    hostid = zabbix_api.host.create(**_host_params(name, gid))["hostids"][0]
    got = zabbix_api.host.get(hostids=[hostid], output=["host"], selectTags=["tag", "value"])
    assert got[0]["host"] == name
    assert got[0]["tags"] == [{"tag": "netbox:key", "value": f"dcim.device:{name}"}]
    zabbix_api.host.delete(hostid)
    assert zabbix_api.host.get(hostids=[hostid]) == []


async def test_zabbix_async_client_create_read_delete(zabbix_server: ZabbixServer) -> None:
    import aiohttp
    from zabbix_utils import AsyncZabbixAPI

    zabbix_api = zabbix_server.api
    gid = zabbix_api.hostgroup.get(filter={"name": "Linux servers"})[0]["groupid"]
    async with aiohttp.ClientSession() as session:
        api = AsyncZabbixAPI(url=f"{zabbix_server.url}/api_jsonrpc.php", client_session=session)
        await api.login(user="Admin", password="zabbix")
        name = f"smoke-async-{uuid.uuid4().hex[:8]}"
        hostid = (await api.host.create(**_host_params(name, gid)))["hostids"][0]
        got = await api.host.get(filter={"host": name}, output=["hostid"])
        assert got == [{"hostid": hostid}]
        await api.host.delete(hostid)
        assert await api.host.get(filter={"host": name}) == []
        await api.logout()
