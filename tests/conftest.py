"""Shared fixtures. Service fixtures use the running local stack and start it when it is down.

A service that cannot be started is an error with the reason, never a skip.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from nbzx.common.config import Config, parse_config

# Skips, uncollected files and missing tiers fail the run; the hypothesis seed is printed.
pytest_plugins = ["tests.run_guard"]

ROOT = Path(__file__).resolve().parent.parent
# Real NetBox 4.7.3 deliveries, byte-exact (secret hook-secret-123), copied into the repository.
WEBHOOK_DIR = ROOT / "tests" / "fixtures" / "netbox-webhooks"
HOOK_SECRET = "hook-secret-123"

KAFKA_BOOTSTRAP = os.environ.get("NBZX_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
ZABBIX_URL = os.environ.get("NBZX_ZABBIX_URL", "http://127.0.0.1:8081")
ZABBIX7_URL = os.environ.get("NBZX_ZABBIX7_URL", "http://127.0.0.1:8082")
# Every real Zabbix the stack runs: capability row -> (API base URL, scripts/stack service).
ZABBIX_SERVERS = {"6.0": (ZABBIX_URL, "zabbix"), "7.0": (ZABBIX7_URL, "zabbix7")}
NETBOX_URL = os.environ.get("NBZX_NETBOX_URL", "http://127.0.0.1:8000")
# The stack's deterministic local token (scripts/lib/netbox.sh); loopback only.
NETBOX_TOKEN = os.environ.get("NETBOX_TOKEN", "nbt_nbzxlocal001.NbzxLocalToken0123456789abcdefghijABCDEF")

# Test consumers join groups in ~1 s instead of 5-18 s with aiokafka's defaults.
FAST_GROUP = {"session_timeout_ms": 1000, "heartbeat_interval_ms": 200, "rebalance_timeout_ms": 1000}


def captures() -> list[dict[str, Any]]:
    """The real NetBox 4.7.3 deliveries in tests/fixtures/netbox-webhooks, with their file names."""
    out = []
    for f in sorted(WEBHOOK_DIR.glob("*.json")):
        doc = json.loads(f.read_text())
        doc["file"] = f.name
        out.append(doc)
    if not out:
        raise RuntimeError(f"no webhook captures found in {WEBHOOK_DIR}")
    return out


_started: set[str] = set()


def ensure_stack(*services: str) -> None:
    """Bring the named services up with scripts/stack (a no-op in seconds when they run)."""
    todo = [s for s in services if s not in _started]
    if not todo:
        return
    proc = subprocess.run([str(ROOT / "scripts" / "stack"), "up", *todo], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"scripts/stack up {' '.join(todo)} failed:\n{proc.stderr[-4000:]}")
    _started.update(todo)


def make_config(**overrides: Any) -> Config:
    """A config pointing at the local stack, with unique topic names so tests never share data."""
    suffix = uuid.uuid4().hex[:8]
    doc: dict[str, Any] = {
        "netbox": {"url": NETBOX_URL},
        "zabbix": {"url": ZABBIX_URL},
        "kafka": {
            "bootstrap": KAFKA_BOOTSTRAP,
            "partitions": 6,
            "produce_timeout_s": 3,
            "group": f"nbzx-test-{suffix}",
            "topics": {
                "events": f"test.events.{suffix}",
                "control": f"test.control.{suffix}",
                "jobs": f"test.jobs.{suffix}",
                "dlq": f"test.dlq.{suffix}",
                "host_status": f"test.host-status.{suffix}",
                "changelog": f"test.changelog.{suffix}",
            },
        },
        # Off unless a test is about it: a follower emits every NetBox change made meanwhile, any test's.
        "changelog": {"enabled": False},
    }
    for section, values in overrides.items():
        if isinstance(values, list):  # routes
            doc[section] = values
        else:
            doc.setdefault(section, {}).update(values)
    env = {
        "NBZX_WEBHOOK_SECRET": HOOK_SECRET,
        "NBZX_API_TOKEN": "test-api-token",
        "NETBOX_TOKEN": NETBOX_TOKEN,
        "ZABBIX_USER": "Admin",
        "ZABBIX_PASSWORD": "zabbix",
    }
    return parse_config(json.dumps(doc), env)


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """Bootstrap address of the stack's Kafka broker."""
    ensure_stack("kafka")
    return KAFKA_BOOTSTRAP


@pytest.fixture
async def kafka_config(kafka_bootstrap: str) -> Config:
    """A config with this test's own, freshly created topics."""
    from nbzx.common.kafka import create_topics

    cfg = make_config()
    await create_topics(cfg)
    return cfg


@pytest.fixture(scope="session")
def zabbix_api() -> Iterator[Any]:
    """A logged-in synchronous zabbix-utils client on the stack's Zabbix."""
    from zabbix_utils import ZabbixAPI

    ensure_stack("zabbix")
    api = ZabbixAPI(url=f"{ZABBIX_URL}/api_jsonrpc.php")
    api.login(user="Admin", password="zabbix")
    yield api
    api.logout()


class ZabbixServer:
    """One of the stack's real Zabbix servers: its URL, its capability row and a logged-in sync client."""

    def __init__(self, row: str, url: str, api: Any, service: str) -> None:
        from nbzx.core.zabbix_versions import capabilities

        self.row, self.url, self.api, self.service = row, url, api, service
        self.caps = capabilities(str(api.api_version()))

    def config(self, **overrides: Any) -> Config:
        """`make_config` pointing at this server."""
        zabbix = {"url": self.url, **overrides.pop("zabbix", {})}
        return make_config(zabbix=zabbix, **overrides)

    def host_groups(self, row: dict[str, Any]) -> set[str]:
        """Group names of a host.get row read with `self.caps.host_groups_select`."""
        return {g["name"] for g in row[self.caps.host_groups_key]}

    def reset(self) -> None:
        """Back to this server's pristine database (about a second), and log the client in again."""
        subprocess.run([str(ROOT / "scripts" / "stack"), "reset", self.service], check=True, capture_output=True)
        self.api.login(user="Admin", password="zabbix")


_servers: dict[str, ZabbixServer] = {}


def zabbix_server_for(row: str) -> ZabbixServer:
    """The stack's Zabbix of capability row `row` ("6.0", "7.0"), started when down; one per run."""
    from zabbix_utils import ZabbixAPI

    if row not in _servers:
        url, service = ZABBIX_SERVERS[row]
        ensure_stack(service)
        api = ZabbixAPI(url=f"{url}/api_jsonrpc.php")
        api.login(user="Admin", password="zabbix")
        server = ZabbixServer(row, url, api, service)
        assert server.caps.row == row, f"{url} answers Zabbix {server.caps.version}, not {row}"
        _servers[row] = server
    return _servers[row]


@pytest.fixture(scope="session", params=list(ZABBIX_SERVERS), ids=lambda row: f"zabbix{row}")
def zabbix_server(request: pytest.FixtureRequest) -> ZabbixServer:
    """Each real Zabbix of the stack in turn (6.0 LTS, 7.0 LTS): tests that take it run once per server."""
    return zabbix_server_for(str(request.param))


@pytest.fixture(scope="session")
def zabbix7() -> ZabbixServer:
    """The stack's Zabbix 7.0 LTS: where tests whose subject is not the Zabbix version run (delivery,
    the pipeline's faults, the console); what differs per version runs on both (`zabbix_server`)."""
    return zabbix_server_for("7.0")


@pytest.fixture(scope="session")
def netbox_api() -> Any:
    """A pynetbox client on the stack's NetBox, with its admin token."""
    import pynetbox

    ensure_stack("netbox")
    api = pynetbox.api(NETBOX_URL, token=NETBOX_TOKEN)
    sweep_leftovers(api)
    return api


TEST_MARK = "made by the nbzx test suite"  # the description of every site the tests create


def sweep_leftovers(nb: Any) -> None:
    """Remove the sites (and their devices and VMs) and the webhooks of earlier runs that were killed
    before their teardown ran: NetBox is not reset between runs, and their objects would pile up."""
    import pynetbox

    # Their webhooks too: NetBox would go on posting every change to a receiver that is long gone.
    for prefix in ("test-", "chaos-"):
        for obj in [*nb.extras.event_rules.filter(name__isw=prefix), *nb.extras.webhooks.filter(name__isw=prefix)]:
            obj.delete()
    # A chaos run's config context is tied to its site: once the site is swept it would apply to every
    # device in NetBox (an unassigned config context is global), so it goes first.
    for ctx in nb.extras.config_contexts.filter(name__isw="chaos-"):
        ctx.delete()
    for site in nb.dcim.sites.filter(description=TEST_MARK):
        try:
            for endpoint in (nb.dcim.devices, nb.virtualization.virtual_machines):
                ids = [o.id for o in endpoint.filter(site_id=site.id)]
                if ids:
                    endpoint.delete(ids)
            site.delete()
        except pynetbox.RequestError as exc:  # something else still uses it: leave it, say so
            print(f"[tests] could not sweep leftover site {site.name}: {exc}")


WEBHOOK_TYPES = ["dcim.device", "dcim.interface", "ipam.ipaddress", "virtualization.virtualmachine"]


def create_webhook(nb: Any, url: str, object_types: list[str], name: str, secret: str = HOOK_SECRET) -> list[Any]:
    """A NetBox webhook and the event rule that sends `object_types` changes to `url`: [webhook, rule]."""
    wh = nb.extras.webhooks.create(
        name=name,
        payload_url=url,
        http_method="POST",
        http_content_type="application/json",
        secret=secret,
        ssl_verification=False,
    )
    rule = nb.extras.event_rules.create(
        name=name,
        object_types=object_types,
        event_types=["object_created", "object_updated", "object_deleted"],
        action_type="webhook",
        action_object_type="extras.webhook",
        action_object_id=wh.id,
        enabled=True,
    )
    return [wh, rule]


@pytest.fixture
def netbox_webhook(netbox_api: Any) -> Iterator[Callable[..., Any]]:
    """Factory: a NetBox webhook + event rule that posts to `url`; both removed after the test."""
    made: list[Any] = []

    def create(url: str, object_types: list[str] | None = None, secret: str = HOOK_SECRET) -> Any:
        objs = create_webhook(netbox_api, url, object_types or WEBHOOK_TYPES, f"test-{uuid.uuid4().hex[:8]}", secret)
        made.extend(objs)
        return objs[1]

    yield create
    for obj in reversed(made):
        obj.delete()


@pytest.fixture
def netbox_objects(netbox_api: Any) -> Iterator[Callable[[str], dict[str, Any]]]:
    """Factory: a site, manufacturer, device type and role to hang test devices on (cleaned up)."""
    made: list[Any] = []

    def base(prefix: str) -> dict[str, Any]:
        tag = f"{prefix}-{uuid.uuid4().hex[:6]}"
        site = netbox_api.dcim.sites.create(name=tag, slug=tag, description=TEST_MARK)
        manu = netbox_api.dcim.manufacturers.create(name=tag, slug=tag)
        dtype = netbox_api.dcim.device_types.create(manufacturer=manu.id, model=tag, slug=tag)
        role = netbox_api.dcim.device_roles.create(name=f"{tag}-role", slug=f"{tag}-role", color="9e9e9e")
        made.extend([site, dtype, manu, role])
        return {"site": site, "manufacturer": manu, "device_type": dtype, "role": role, "tag": tag}

    yield base
    for obj in made:
        if obj.endpoint.name == "sites":
            ids = [d.id for d in netbox_api.dcim.devices.filter(site_id=obj.id)]
            if ids:
                netbox_api.dcim.devices.delete(ids)
        obj.delete()


# NetBox enforces globally unique IPs, and a run that was killed mid-test leaves its devices behind:
# every run draws its own /24 so leftovers of an earlier run can never collide with this one.
_LAB_NET = f"10.{random.randrange(256)}.{random.randrange(256)}"


def lab_ip(host: int) -> str:
    """Address `host` (1-254) in this test run's own /24."""
    return f"{_LAB_NET}.{host}"


def create_device(nb: Any, base: dict[str, Any], name: str, ip: str | None = None, **fields: Any) -> Any:
    """A device on the `netbox_objects` base, with a primary IPv4 on eth0 when `ip` is given."""
    dev = nb.dcim.devices.create(
        name=name,
        device_type=base["device_type"].id,
        role=base["role"].id,
        site=base["site"].id,
        status="active",
        **fields,
    )
    if ip:
        iface = nb.dcim.interfaces.create(device=dev.id, name="eth0", type="1000base-t")
        addr = nb.ipam.ip_addresses.create(
            address=f"{ip}/24", assigned_object_type="dcim.interface", assigned_object_id=iface.id
        )
        dev.update({"primary_ip4": addr.id})
    return dev


async def consume_all(cfg: Config, topic: str, min_count: int, timeout_s: float = 15.0) -> list[Any]:
    """Read `topic` from the beginning (no group) until at least `min_count` records or timeout."""
    import asyncio
    import time

    from aiokafka import AIOKafkaConsumer

    from nbzx.common.kafka import client_kwargs

    consumer = AIOKafkaConsumer(
        topic,
        **client_kwargs(cfg),  # the secure cluster's TLS and SASL too
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=100,
    )
    await consumer.start()
    records: list[Any] = []
    try:
        deadline = time.monotonic() + timeout_s
        while len(records) < min_count and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for msgs in batch.values():
                records.extend(msgs)
            await asyncio.sleep(0)
    finally:
        await consumer.stop()
    return records


async def end_offsets(cfg: Config, topic: str) -> dict[int, int]:
    """Partition -> end offset of `topic`."""
    from aiokafka import AIOKafkaConsumer

    from nbzx.common.kafka import topic_partitions

    consumer = AIOKafkaConsumer(bootstrap_servers=cfg.kafka.bootstrap)
    await consumer.start()
    try:
        tps = await topic_partitions(consumer, topic)
        ends = await consumer.end_offsets(tps)
        return {tp.partition: off for tp, off in ends.items()}
    finally:
        await consumer.stop()


@pytest.fixture
async def aiohttp_listener() -> AsyncIterator[Callable[..., Any]]:
    """Factory: an aiohttp app on a free loopback port; returns its base URL."""
    from aiohttp import web

    runners: list[web.AppRunner] = []

    async def start(app: web.Application) -> str:
        # NetBox's webhook worker leaves its connections open: without a short shutdown timeout the
        # cleanup waited aiohttp's default 60 s for them to close.
        runner = web.AppRunner(app, shutdown_timeout=2.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"http://127.0.0.1:{port}"

    yield start
    for r in runners:
        await r.cleanup()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with its tier from its folder: tests/unit, tests/integration, tests/e2e, tests/k8s."""
    for item in items:
        tier = Path(str(item.fspath)).parent.name
        if tier in ("unit", "integration", "e2e", "k8s"):
            item.add_marker(getattr(pytest.mark, tier))


@pytest.fixture
def receiver_for_netbox(netbox_webhook: Any, aiohttp_listener: Any) -> Callable[..., Any]:
    """Factory: fresh topics, an in-process receiver, and NetBox's webhook + rule pointing at it; returns the config."""

    async def start(object_types: list[str]) -> Config:
        from nbzx.common.kafka import create_topics
        from nbzx.receiver.app import make_app

        cfg = make_config()
        await create_topics(cfg)
        url = await aiohttp_listener(make_app(cfg))
        netbox_webhook(f"{url}/webhook", object_types=object_types)
        return cfg

    return start


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep each phase's report on the test item, so a fixture can tell that its test failed."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
