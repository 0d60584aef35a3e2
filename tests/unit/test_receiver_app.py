"""HTTP semantics of the receiver app, with an in-memory stand-in for the Kafka producer.

What Kafka really stores is checked against the real broker in tests/integration/test_receiver_kafka.py.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from nbzx.common.kafka import ProduceUnavailable
from nbzx.core.webhook import sign
from nbzx.jobs.records import JobView
from nbzx.receiver.app import make_app
from nbzx.schemas import ChangeEvent, JobRecord, ReconcileRequest, decode
from tests.conftest import HOOK_SECRET, captures, make_config
from tests.metrics import metric_value


class RecordingProducer:
    """Keeps what it was asked to produce; `down=True` behaves like an unreachable cluster."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, bytes]] = []
        self.down = False

    async def start(self) -> None: ...
    async def stop(self) -> None: ...

    async def ready(self) -> bool:
        return not self.down

    async def send(self, topic: str, key: str, value: bytes) -> tuple[int, int]:
        if self.down:
            raise ProduceUnavailable("down")
        self.sent.append((topic, key, value))
        return 3, len(self.sent) - 1


class StaticJobs(JobView):
    """The jobs view without a Kafka connection: records are put in by the test."""

    def start(self) -> None: ...
    async def stop(self) -> None: ...


@pytest.fixture
async def client(aiohttp_client: Any) -> Any:
    producer = RecordingProducer()
    cfg = make_config(receiver={"max_body_bytes": 64 * 1024})
    c = await aiohttp_client(make_app(cfg, producer, StaticJobs(cfg)))  # type: ignore[arg-type]
    c.producer, c.cfg = producer, cfg
    return c


CAP = captures()[4]  # 05-updated-dcim_device: rename + status + tag


def _headers(raw: bytes, **extra: str) -> dict[str, str]:
    return {"Content-Type": "application/json", "X-Hook-Signature": sign(HOOK_SECRET, raw), **extra}


async def test_accepted_webhook_is_produced_keyed_by_host(client: Any) -> None:
    raw = CAP["raw_body"].encode()
    resp = await client.post("/webhook", data=raw, headers=_headers(raw))
    assert resp.status == 202
    body = await resp.json()
    assert body["host_key"] == "dcim.device:1" and body["partition"] == 3
    [(topic, key, value)] = client.producer.sent
    assert topic == client.cfg.kafka.topics.events and key == "dcim.device:1"
    ev = decode(value)
    assert isinstance(ev, ChangeEvent) and ev.changed == ["name", "status", "tags"] and ev.received_at


@pytest.mark.parametrize(
    ("mutate", "status"),
    [
        (lambda raw, h: (raw, {**h, "X-Hook-Signature": "0" * 128}), 401),
        (lambda raw, h: (raw, {k: v for k, v in h.items() if k != "X-Hook-Signature"}), 401),
        (lambda raw, h: (raw, {**h, "X-Hook-Signature": "é" + "0" * 127}), 401),
        (lambda raw, h: (raw + b" ", h), 401),
        (lambda raw, h: (raw, {**h, "Content-Type": "text/plain"}), 415),
        (lambda raw, h: (b"[1]", _headers(b"[1]")), 400),
        (lambda raw, h: (b"{oops", _headers(b"{oops")), 400),
        (lambda raw, h: (b"{" + b" " * 70000 + b"}", _headers(b"{" + b" " * 70000 + b"}")), 413),
    ],
    ids=[
        "bad-signature",
        "no-signature",
        "non-ascii-signature",
        "changed-body",
        "text-plain",
        "json-array",
        "bad-json",
        "too-large",
    ],
)
async def test_refused_deliveries_produce_nothing(client: Any, mutate: Any, status: int) -> None:
    raw = CAP["raw_body"].encode()
    data, headers = mutate(raw, _headers(raw))
    resp = await client.post("/webhook", data=data, headers=headers)
    assert resp.status == status
    assert "error" in await resp.json()
    assert client.producer.sent == []


async def test_chunked_oversized_body_is_413(client: Any) -> None:
    async def chunks() -> Any:
        for _ in range(20):
            yield b"x" * 8192

    resp = await client.post("/webhook", data=chunks(), headers={"Content-Type": "application/json"})
    assert resp.status == 413 and client.producer.sent == []


async def test_kafka_down_is_503_and_not_ready(client: Any) -> None:
    client.producer.down = True
    raw = CAP["raw_body"].encode()
    resp = await client.post("/webhook", data=raw, headers=_headers(raw))
    assert resp.status == 503
    assert (await client.get("/readyz")).status == 503
    assert (await client.get("/healthz")).status == 200
    client.producer.down = False
    assert (await client.post("/webhook", data=raw, headers=_headers(raw))).status == 202
    assert (await client.get("/readyz")).status == 200


async def test_out_of_scope_type_is_202_ignored(client: Any) -> None:
    raw = json.dumps({"event": "created", "object_type": "circuits.circuit", "data": {"id": 1}}).encode()
    resp = await client.post("/webhook", data=raw, headers=_headers(raw))
    assert resp.status == 202 and (await resp.json())["ignored"] == "circuits.circuit"
    assert client.producer.sent == []


async def test_reconcile_needs_the_bearer_token(client: Any) -> None:
    assert (await client.post("/reconcile")).status == 401
    assert (await client.post("/reconcile", headers={"Authorization": f"Bearer {HOOK_SECRET}"})).status == 401
    resp = await client.post(
        "/reconcile",
        json={"object_types": ["dcim.device"], "filter": {"site": "a"}, "dry_run": True},
        headers={"Authorization": "Bearer test-api-token"},
    )
    assert resp.status == 202
    job_id = (await resp.json())["job_id"]
    [(topic, key, value)] = client.producer.sent
    req = decode(value)
    assert (topic, key) == (client.cfg.kafka.topics.control, "reconcile")
    assert isinstance(req, ReconcileRequest) and req.job_id == job_id and req.dry_run
    assert req.scope.filter == {"site": "a"}


async def test_reconcile_rejects_unknown_fields(client: Any) -> None:
    resp = await client.post(
        "/reconcile", json={"drop_everything": True}, headers={"Authorization": "Bearer test-api-token"}
    )
    assert resp.status == 400 and client.producer.sent == []


async def test_reconcile_of_one_server_and_an_unknown_server_refused(client: Any) -> None:
    auth = {"Authorization": "Bearer test-api-token"}
    resp = await client.post("/reconcile", json={"servers": ["default"]}, headers=auth)
    assert resp.status == 202
    [(_, _, value)] = client.producer.sent
    req = decode(value)
    assert isinstance(req, ReconcileRequest) and req.scope.servers == ["default"]
    resp = await client.post("/reconcile", json={"servers": ["moon"]}, headers=auth)
    assert resp.status == 400 and "no Zabbix server named moon" in (await resp.json())["error"]
    assert len(client.producer.sent) == 1


async def test_metrics_count_results(client: Any) -> None:
    def count(text: str, result: str) -> float:
        return metric_value(text, "nbzx_webhooks_total", result=result)

    raw = CAP["raw_body"].encode()
    before = await (await client.get("/metrics")).text()
    for _ in range(2):
        await client.post("/webhook", data=raw, headers={"Content-Type": "application/json"})  # unsigned
    await client.post("/webhook", data=raw, headers=_headers(raw))
    after = await (await client.get("/metrics")).text()
    assert count(after, "unauthorized") - count(before, "unauthorized") == 2
    assert count(after, "accepted") - count(before, "accepted") == 1


async def test_jobs_routes(client: Any) -> None:
    from nbzx.receiver.app import JOBS

    jobs = client.server.app[JOBS].jobs
    jobs["a"] = JobRecord(job_id="a", job_kind="reconcile", status="completed", created="2026-11-23T10:00:00")
    jobs["b"] = JobRecord(job_id="b", job_kind="backfill", status="running", created="2026-11-23T11:00:00")
    auth = {"Authorization": "Bearer test-api-token"}
    assert (await client.get("/jobs")).status == 401
    body = await (await client.get("/jobs", headers=auth)).json()
    assert [j["job_id"] for j in body["jobs"]] == ["b", "a"]
    body = await (await client.get("/jobs?kind=reconcile", headers=auth)).json()
    assert [j["job_id"] for j in body["jobs"]] == ["a"]
    assert (await (await client.get("/jobs/a", headers=auth)).json())["status"] == "completed"
    assert (await client.get("/jobs/zzz", headers=auth)).status == 404


async def _refused(client: Any, reason: str) -> float:
    text = await (await client.get("/metrics")).text()
    return metric_value(text, "nbzx_http_refused_total", component="receiver", reason=reason)


async def _receiver(aiohttp_client: Any, **access: Any) -> Any:
    producer = RecordingProducer()
    cfg = make_config(receiver={"access": access})
    c = await aiohttp_client(make_app(cfg, producer, StaticJobs(cfg)))  # type: ignore[arg-type]
    c.producer = producer
    return c


async def test_a_source_outside_the_allow_list_is_403_and_produces_nothing(aiohttp_client: Any) -> None:
    client = await _receiver(aiohttp_client, allow_from=["10.0.0.0/8"])
    raw = CAP["raw_body"].encode()
    before = await _refused(client, "forbidden")
    resp = await client.post("/webhook", data=raw, headers=_headers(raw))
    assert resp.status == 403
    assert (await resp.json())["error"] == "source 127.0.0.1 is not in receiver.access.allow_from"
    assert client.producer.sent == []
    assert await _refused(client, "forbidden") == before + 1
    assert (await client.post("/reconcile", headers={"Authorization": "Bearer x"})).status == 403
    assert (await client.get("/healthz")).status == 200  # probes and scrapes come from elsewhere


async def test_behind_a_trusted_proxy_the_forwarded_source_is_the_one_checked(aiohttp_client: Any) -> None:
    client = await _receiver(aiohttp_client, allow_from=["203.0.113.0/24"], trusted_proxies=["127.0.0.1"])
    raw = CAP["raw_body"].encode()
    ok = await client.post("/webhook", data=raw, headers=_headers(raw, **{"X-Forwarded-For": "203.0.113.9"}))
    assert ok.status == 202
    spoof = await client.post(
        "/webhook", data=raw, headers=_headers(raw, **{"X-Forwarded-For": "203.0.113.9, 198.51.100.1"})
    )
    assert spoof.status == 403 and "198.51.100.1" in (await spoof.json())["error"]
    assert len(client.producer.sent) == 1


async def test_over_its_rate_a_source_gets_429_with_retry_after_and_others_do_not(aiohttp_client: Any) -> None:
    client = await _receiver(aiohttp_client, rate_limit="3/minute", trusted_proxies=["127.0.0.1"])
    raw = CAP["raw_body"].encode()
    a, b = {"X-Forwarded-For": "192.0.2.1"}, {"X-Forwarded-For": "192.0.2.2"}
    statuses = [(await client.post("/webhook", data=raw, headers=_headers(raw, **a))).status for _ in range(3)]
    assert statuses == [202, 202, 202]
    over = await client.post("/webhook", data=raw, headers=_headers(raw, **a))
    assert over.status == 429
    assert 1 <= int(over.headers["Retry-After"]) <= 60
    assert "receiver.access.rate_limit is 3/minute" in (await over.json())["error"]
    assert len(client.producer.sent) == 3  # the refused one was not stored
    assert await _refused(client, "rate_limited") >= 1
    assert (await client.post("/webhook", data=raw, headers=_headers(raw, **b))).status == 202
