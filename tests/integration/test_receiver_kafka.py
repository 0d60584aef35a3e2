"""The receiver against the real Kafka broker of the stack."""

from __future__ import annotations

import asyncio
import copy
import json
import subprocess
import time
from typing import Any

import pytest
from aiokafka.partitioner import murmur2

from nbzx.common.config import Config
from nbzx.core.webhook import sign
from nbzx.receiver.app import make_app
from nbzx.schemas import ChangeEvent, decode
from tests.conftest import HOOK_SECRET, ROOT, captures, consume_all, end_offsets


def _signed(body: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(body).encode()
    return raw, {"Content-Type": "application/json", "X-Hook-Signature": sign(HOOK_SECRET, raw)}


def _device_update(device_id: int, seq: int) -> dict[str, Any]:
    body = copy.deepcopy(captures()[5]["body"])  # 06-updated-dcim_device
    body["data"]["id"] = device_id
    body["data"]["comments"] = f"seq {seq}"
    body["snapshots"]["postchange"]["comments"] = f"seq {seq}"
    return body


@pytest.fixture
async def receiver(aiohttp_client: Any, kafka_config: Config) -> Any:
    client = await aiohttp_client(make_app(kafka_config))
    client.cfg = kafka_config
    return client


async def test_each_accepted_webhook_lands_once_on_its_host_partition(receiver: Any) -> None:
    cfg = receiver.cfg
    sent: list[tuple[str, int]] = []
    for cap in captures():  # the real captures, raw bytes and signature as NetBox sent them
        resp = await receiver.post("/webhook", data=cap["raw_body"].encode(), headers=cap["headers"])
        assert resp.status == 202
        body = await resp.json()
        sent.append((body["host_key"], body["partition"]))
    for seq in range(30):  # interleaved updates of three devices
        raw, headers = _signed(_device_update(9100 + seq % 3, seq))
        resp = await receiver.post("/webhook", data=raw, headers=headers)
        assert resp.status == 202
        body = await resp.json()
        sent.append((body["host_key"], body["partition"]))

    records = await consume_all(cfg, cfg.kafka.topics.events, len(sent))
    await asyncio.sleep(1)  # anything extra (a duplicate) would show up now
    records = await consume_all(cfg, cfg.kafka.topics.events, len(sent) + 1, timeout_s=3)
    assert len(records) == len(sent), "every accepted webhook is stored exactly once"
    partitions = cfg.kafka.partitions
    by_key: dict[str, list[int]] = {}
    for r in records:
        ev = decode(r.value)
        assert isinstance(ev, ChangeEvent)
        assert r.key.decode() == ev.host_key
        assert r.partition == (murmur2(r.key) & 0x7FFFFFFF) % partitions, "the partition is the host key's"
        data = ev.body_json()["data"]
        if str(data.get("comments", "")).startswith("seq "):
            by_key.setdefault(ev.host_key, []).append(int(data["comments"].split()[1]))
    assert {k for k, _ in sent} >= {"dcim.device:1", "virtualization.virtualmachine:1", "dcim.device:802"}
    for seqs in by_key.values():
        assert seqs == sorted(seqs), "one host's events stay in order"
    assert len(by_key) == 3


async def test_refused_requests_store_nothing(receiver: Any) -> None:
    cfg = receiver.cfg
    before = await end_offsets(cfg, cfg.kafka.topics.events)
    cap = captures()[0]
    raw = cap["raw_body"].encode()
    bad = [
        (raw, {**cap["headers"], "X-Hook-Signature": "00" * 64}),
        (raw[:-1] + b" ", cap["headers"]),
        (raw, {**cap["headers"], "Content-Type": "text/plain"}),
        (b"[]", {"Content-Type": "application/json", "X-Hook-Signature": sign(HOOK_SECRET, b"[]")}),
    ]
    statuses = [(await receiver.post("/webhook", data=d, headers=h)).status for d, h in bad]
    assert statuses == [401, 401, 415, 400]
    assert await end_offsets(cfg, cfg.kafka.topics.events) == before


def _stack(*args: str) -> None:
    subprocess.run([str(ROOT / "scripts" / "stack"), *args], check=True, capture_output=True)


async def test_broker_down_is_503_then_recovers_without_restart(receiver: Any) -> None:
    cfg = receiver.cfg
    raw, headers = _signed(_device_update(7, 1))
    assert (await receiver.post("/webhook", data=raw, headers=headers)).status == 202
    assert (await receiver.get("/readyz")).status == 200
    await asyncio.to_thread(_stack, "down", "kafka")
    try:
        raw, headers = _signed(_device_update(7, 2))
        t0 = time.monotonic()
        resp = await receiver.post("/webhook", data=raw, headers=headers)
        took = time.monotonic() - t0
        assert resp.status == 503
        assert took < cfg.kafka.produce_timeout_s + 1.5, f"503 must come within the produce timeout ({took:.1f}s)"
        assert (await receiver.get("/readyz")).status == 503
    finally:
        await asyncio.to_thread(_stack, "up", "kafka")
    raw, headers = _signed(_device_update(7, 3))
    deadline = time.monotonic() + 30
    status = 0
    while time.monotonic() < deadline:  # the client reconnects by itself; no receiver restart
        status = (await receiver.post("/webhook", data=raw, headers=headers)).status
        if status == 202:
            break
        await asyncio.sleep(0.5)
    assert status == 202
    assert (await receiver.get("/readyz")).status == 200
    records = await consume_all(cfg, cfg.kafka.topics.events, 2)
    seqs = sorted({int(decode(r.value).body_json()["data"]["comments"].split()[1]) for r in records})  # type: ignore[union-attr]
    assert 1 in seqs and 3 in seqs


async def test_a_body_at_the_size_limit_is_stored_and_so_is_its_dead_letter(receiver: Any) -> None:
    """Record sizes agree end to end: the largest body the receiver accepts fits its event on the
    topic, and that event fits, JSON-escaped, in a dead letter (Kafka's default 1 MiB would refuse both)."""
    from nbzx.common.kafka import Producer
    from nbzx.schemas import DeadLetter, encode

    cfg = receiver.cfg
    body = _device_update(9200, 0)
    body["data"]["comments"] = ""
    filler = cfg.receiver.max_body_bytes - len(json.dumps(body).encode())
    body["data"]["comments"] = '"' * (filler // 2)  # escaped in the body, and escaped again in the letter
    raw, headers = _signed(body)
    assert cfg.receiver.max_body_bytes - 2 <= len(raw) <= cfg.receiver.max_body_bytes
    resp = await receiver.post("/webhook", data=raw, headers=headers)
    assert resp.status == 202, await resp.text()
    [rec] = await consume_all(cfg, cfg.kafka.topics.events, 1)
    assert len(rec.value) > cfg.receiver.max_body_bytes

    producer = Producer(cfg, client_id="test-big-letter")
    try:
        letter = DeadLetter(
            host_key="dcim.device:9200",
            error="x",
            attempts=1,
            topic=rec.topic,
            partition=rec.partition,
            offset=rec.offset,
            original=rec.value.decode(),
        )
        await producer.send(cfg.kafka.topics.dlq, "dcim.device:9200", encode(letter))
    finally:
        await producer.stop()
    [stored] = await consume_all(cfg, cfg.kafka.topics.dlq, 1)
    assert decode(stored.value).original == rec.value.decode()  # type: ignore[union-attr]
