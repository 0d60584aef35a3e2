"""The pipeline on the stack's secure Kafka cluster (three KRaft brokers, SASL_SSL SCRAM-SHA-512 with
a private CA, ACLs enforced): each component with its own user and only the ACLs `nbzx kafka acls`
gives it; credentials or rights that are wrong are said in one clear line, not retried in silence."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from structlog.testing import capture_logs

from nbzx.common.config import Config
from nbzx.common.kafka import client_kwargs, create_topics
from nbzx.console.state import ConsoleState
from nbzx.core.webhook import sign
from nbzx.receiver.app import make_app
from tests import kafka3
from tests.conftest import HOOK_SECRET, ZabbixServer, captures, ensure_stack, make_config, zabbix_server_for
from tests.e2e.pipeline import Pipeline, wait_until

pytestmark = pytest.mark.e2e
TYPES = ["dcim.device", "dcim.interface", "ipam.ipaddress"]


@pytest.fixture(scope="module")
def cluster() -> None:
    ensure_stack("kafka3", "zabbix7", "netbox")


async def _secured(cfg: Config) -> Config:
    """ACLs granted for this config's topics; the topics made by the hook's user (replication 3)."""
    assert kafka3.grant(cfg) > 0
    made = await create_topics(kafka3.on_cluster(cfg, "nbzx-hook"))
    assert set(made.values()) == {"created"}, made
    return cfg


async def _replicas(cfg: Config, topic: str) -> set[int]:
    """The replica counts of `topic`'s partitions (their in-sync replicas, all of them)."""
    admin = AIOKafkaAdminClient(**client_kwargs(kafka3.on_cluster(cfg, "admin")))
    await admin.start()
    try:
        [desc] = await admin.describe_topics([topic])
        return {len(p["isr"]) for p in desc["partitions"]}
    finally:
        await admin.close()


async def test_the_pipeline_with_each_components_own_rights(
    cluster: None, netbox_api: Any, netbox_objects: Any, netbox_webhook: Any, aiohttp_listener: Any, tmp_path: Path
) -> None:
    """NetBox's webhooks through a receiver and a consumer each holding only its own ACLs. (Broker
    faults, a partition leader's kill -9 first, are the chaos soak's: tests/e2e/test_chaos.py.)"""
    server: ZabbixServer = zabbix_server_for("7.0")
    cfg = await _secured(make_config(zabbix={"url": server.url}))
    url = await aiohttp_listener(make_app(kafka3.on_cluster(cfg, "nbzx-receiver")))
    netbox_webhook(f"{url}/webhook", object_types=TYPES)
    base = netbox_objects("sec")
    p = Pipeline(kafka3.on_cluster(cfg, "nbzx-receiver"), netbox_api, server.api, base, tmp_path, "zabbix7")
    p.kafka_overrides, p.consumer_env = kafka3.kafka_doc(), kafka3.credentials("nbzx-consumer")
    consumer = p.consumer()
    try:
        devices = p.devices([f"sec-{uuid.uuid4().hex[:5]}-{i}" for i in range(6)])
        await p.converged([f"dcim.device:{d.id}" for d in devices], timeout_s=90)
        assert await _replicas(cfg, cfg.kafka.topics.events) == {3}, "the hook made the topics with replication 3"
        log = consumer.log_path.read_text()
        assert "kafka_refused" not in log and "kafka_not_authorized" not in log
    finally:
        for c in p.consumers:
            c.stop()
        if p.made:
            netbox_api.dcim.devices.delete([d.id for d in p.made])


async def _consumer_exit(p: Pipeline, env: dict[str, str]) -> tuple[int, list[dict[str, Any]]]:
    p.consumer_env = env
    c = p.consumer()
    rc = await wait_until(lambda: c.proc.poll() is not None and c.proc.returncode, 60, "the consumer to exit")
    lines = [json.loads(ln) for ln in c.log_path.read_text().splitlines() if ln.startswith("{")]
    return int(rc), lines


async def test_wrong_credentials_or_another_components_rights_are_one_clear_line(
    cluster: None, netbox_api: Any, netbox_objects: Any, tmp_path: Path, aiohttp_client: Any
) -> None:
    server = zabbix_server_for("7.0")
    cfg = await _secured(make_config(zabbix={"url": server.url}))
    p = Pipeline(cfg, netbox_api, server.api, netbox_objects("sec"), tmp_path, "zabbix7")
    p.kafka_overrides = kafka3.kafka_doc()

    rc, lines = await _consumer_exit(p, kafka3.credentials("nbzx-consumer", "not-the-password"))
    refused = [ln for ln in lines if ln.get("event") == "kafka_refused"]
    assert rc == 3 and len(refused) == 1, lines[-5:]
    assert "refused the credentials of nbzx-consumer (SCRAM-SHA-512)" in refused[0]["error"]
    assert "not-the-password" not in json.dumps(lines)

    rc, lines = await _consumer_exit(p, kafka3.credentials("nbzx-receiver"))  # the receiver's rights
    refused = [ln for ln in lines if ln.get("event") == "kafka_refused"]
    assert rc == 3 and len(refused) == 1, lines[-5:]
    assert "does not let nbzx-receiver do this" in refused[0]["error"] and "nbzx kafka acls" in refused[0]["error"]

    # A receiver with the hook's rights (create topics, nothing else): 503s, and one line for them.
    raw = captures()[4]["raw_body"].encode()
    headers = {"Content-Type": "application/json", "X-Hook-Signature": sign(HOOK_SECRET, raw)}
    with capture_logs() as logs:
        client = await aiohttp_client(make_app(kafka3.on_cluster(cfg, "nbzx-hook")))
        statuses = [(await client.post("/webhook", data=raw, headers=headers)).status for _ in range(2)]
    assert statuses == [503, 503]
    lines = [e for e in logs if e["event"] == "kafka_not_authorized"]
    # Once each, however many requests: its producer (no WRITE anywhere), and its jobs view (no READ)
    # when its follower has tried by then.
    topics = [e["topic"] for e in lines]
    assert topics.count("(any: the idempotent producer)") == 1, topics
    assert set(topics) <= {"(any: the idempotent producer)", cfg.kafka.topics.jobs} and len(set(topics)) == len(topics)
    assert all("does not let nbzx-hook do this" in e["error"] for e in lines), lines


async def test_a_console_without_the_rights_to_read_says_so_once_per_topic_and_is_not_ready(cluster: None) -> None:
    cfg = await _secured(make_config())
    state = ConsoleState(kafka3.on_cluster(cfg, "nbzx-receiver"))  # the receiver may read jobs only
    t = cfg.kafka.topics
    with capture_logs() as logs:
        state.start()
        try:
            await wait_until(lambda: state.followers[0].caught_up.is_set(), 30, "the jobs topic read")
            await asyncio.sleep(12)  # past a retry of the refused followers
            ready = state.caught_up
        finally:
            await state.stop()
    refused = sorted(e["topic"] for e in logs if e["event"] == "kafka_not_authorized")
    assert refused == sorted([t.host_status, t.dlq, t.changelog]), refused  # once each, not per retry
    assert not ready, "a console that cannot read the statuses is not ready"
