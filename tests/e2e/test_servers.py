"""Several Zabbix servers from one NetBox, on the stack's two real ones (6.0 as "old", 7.0 as "new"):
routing by site, moves, a migration window, and a server that is down holding back only its hosts."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from nbzx.common.config import Config
from nbzx.engine.netbox import NetBox
from nbzx.engine.sync import SyncEngine
from nbzx.engine.zabbix import Zabbix
from tests.conftest import ZabbixServer, create_device, lab_ip, make_config, zabbix_server_for
from tests.e2e.pipeline import owned_hosts, pipeline_config_doc, wait_until, write_config
from tests.e2e.test_pipeline import _queue_sync_requests, _stack

CREDENTIALS = {"user_env": "ZABBIX_USER", "password_env": "ZABBIX_PASSWORD"}


def two_servers(routes: list[dict[str, Any]], **overrides: Any) -> Config:
    """A config with the stack's 6.0 as "old" and 7.0 as "new", and these routes."""
    old, new = zabbix_server_for("6.0"), zabbix_server_for("7.0")
    servers = {"old": {"url": old.url, **CREDENTIALS}, "new": {"url": new.url, **CREDENTIALS}}
    return make_config(zabbix={"servers": servers}, routes=routes, **overrides)


class Two:
    """Sites A and B, the two servers' sync clients, and an engine per config."""

    def __init__(self, nb: Any, a: dict[str, Any], b: dict[str, Any]) -> None:
        self.nb, self.a, self.b = nb, a, b
        self.old, self.new = zabbix_server_for("6.0"), zabbix_server_for("7.0")
        self.engines: list[SyncEngine] = []
        self.made: list[Any] = []

    def config(self, a_to: list[str], b_to: list[str], **overrides: Any) -> Config:
        routes: list[dict[str, Any]] = [
            {"name": "site-a", "match": {"site": self.a["site"].slug}, "servers": a_to},
            {"name": "site-b", "match": {"site": self.b["site"].slug}, "servers": b_to},
            {"name": "rest", "servers": []},
        ]
        return two_servers(routes, **overrides)

    async def engine(self, cfg: Config, connect: bool = True) -> SyncEngine:
        """An engine on both servers, logged in now (or at each one's first call)."""
        engine = SyncEngine(cfg, NetBox(cfg), {s: Zabbix(cfg, server=s) for s in ("old", "new")})
        if connect:
            await asyncio.gather(*(z.start() for z in engine.servers.values()))
        self.engines.append(engine)
        return engine

    def on(self, server: ZabbixServer, key: str) -> list[dict[str, Any]]:
        """The hosts a server has for `key`."""
        return owned_hosts(server.api, [key]).get(key, [])

    def where(self, key: str) -> dict[str, list[tuple[str, str]]]:
        """server -> (host, status) of each host it has for `key`."""
        return {
            name: [(h["host"], h["status"]) for h in self.on(server, key)]
            for name, server in (("old", self.old), ("new", self.new))
        }

    def device(self, base: dict[str, Any], ip: int) -> tuple[Any, str]:
        dev = create_device(self.nb, base, f"srv-{uuid.uuid4().hex[:6]}", lab_ip(ip))
        self.made.append(dev)
        return dev, f"dcim.device:{dev.id}"


@pytest.fixture
async def two(netbox_api: Any, netbox_objects: Callable[[str], dict[str, Any]]) -> AsyncIterator[Two]:
    t = Two(netbox_api, netbox_objects("srv-a"), netbox_objects("srv-b"))
    yield t
    # Devices moved between the two sites would keep the other site's device type from being deleted.
    await asyncio.to_thread(lambda: netbox_api.dcim.devices.delete([d.id for d in t.made]) if t.made else None)
    for engine in t.engines:
        await asyncio.gather(*(z.close() for z in engine.servers.values()))
        engine.netbox.close()


async def test_devices_in_two_sites_go_one_to_each_server_then_a_zero_write_noop_then_a_rename(two: Two) -> None:
    engine = await two.engine(two.config(["old"], ["new"], delete={"mode": "hard"}))
    (da, ka), (db, kb) = await asyncio.to_thread(two.device, two.a, 71), await asyncio.to_thread(two.device, two.b, 72)
    results = {r.host_key: r for r in await engine.sync([ka, kb])}
    assert (results[ka].action, results[ka].result, results[kb].action, results[kb].result) == ("create", "ok") * 2
    assert two.where(ka) == {"old": [(da.name, "0")], "new": []}
    assert two.where(kb) == {"old": [], "new": [(db.name, "0")]}
    assert results[ka].servers == {"old": two.on(two.old, ka)[0]["hostid"]}
    assert results[kb].servers == {"new": two.on(two.new, kb)[0]["hostid"]}

    writes = {s: z.write_calls for s, z in engine.servers.items()}
    again = await engine.sync([ka, kb])
    assert [r.action for r in again] == ["noop", "noop"]
    assert {s: z.write_calls for s, z in engine.servers.items()} == writes, "a no-op writes to neither server"

    new_name = f"{da.name}-renamed"
    await asyncio.to_thread(da.update, {"name": new_name})
    [renamed] = await engine.sync([ka])
    assert (renamed.action, renamed.changed) == ("update", ["old:host", "old:name"])
    assert two.where(ka) == {"old": [(new_name, "0")], "new": []}
    assert engine.servers["new"].write_calls == writes["new"], "the rename touched only the server it is on"


async def test_a_device_moved_to_a_site_on_the_other_server_moves_and_a_crash_in_between_still_ends_right(
    two: Two,
) -> None:
    engine = await two.engine(two.config(["old"], ["new"], delete={"mode": "hard"}))
    (dev, key), (dev2, key2) = (
        await asyncio.to_thread(two.device, two.a, 73),
        await asyncio.to_thread(two.device, two.a, 74),
    )
    await engine.sync([key, key2])
    assert two.where(key) == {"old": [(dev.name, "0")], "new": []}

    await asyncio.to_thread(dev.update, {"site": two.b["site"].id})
    [moved] = await engine.sync([key])
    assert (moved.result, moved.action, list(moved.servers)) == ("ok", "create", ["new"])
    assert two.where(key) == {"old": [], "new": [(dev.name, "0")]}, "on the new one with its name, gone from the old"

    # A kill -9 between the two steps leaves the host placed on the new server and still on the old:
    # the first step alone, as `sync` runs it, and nothing after it.
    await asyncio.to_thread(dev2.update, {"site": two.b["site"].id})
    batch = await engine._read([key2])
    await engine._apply_all("new", {key2: batch.plans["new"][key2]}, dry_run=False)
    assert two.where(key2) == {"old": [(dev2.name, "0")], "new": [(dev2.name, "0")]}
    [finished] = await engine.sync([key2])  # the next sync (a restarted consumer's, or the reconcile's)
    assert finished.result == "ok" and "old:" in finished.reason
    assert two.where(key2) == {"old": [], "new": [(dev2.name, "0")]}


async def test_a_migration_window_keeps_a_site_on_both_then_narrowing_it_takes_the_hosts_off_the_old(two: Two) -> None:
    window = await two.engine(two.config(["old", "new"], ["new"], delete={"mode": "soft"}))
    dev, key = await asyncio.to_thread(two.device, two.a, 75)
    [both] = await window.sync([key])
    assert both.result == "ok" and set(both.servers) == {"old", "new"}
    assert two.where(key) == {"old": [(dev.name, "0")], "new": [(dev.name, "0")]}
    assert [r.action for r in await window.sync([key])] == ["noop"]

    narrowed = await two.engine(two.config(["new"], ["new"], delete={"mode": "soft"}))
    [left] = await narrowed.sync([key])
    assert left.result == "ok" and list(left.servers) == ["new"]
    old = two.where(key)["old"]
    assert len(old) == 1 and old[0][0].startswith(f"{dev.name}_archived_") and old[0][1] == "1", "soft delete: archived"
    assert two.where(key)["new"] == [(dev.name, "0")]
    assert [r.action for r in await narrowed.sync([key])] == ["noop"]


async def test_a_device_routed_to_no_server_is_on_none_and_leaves_the_one_it_was_on(two: Two) -> None:
    engine = await two.engine(two.config(["old"], [], delete={"mode": "hard"}))
    (_, kb), (da, ka) = await asyncio.to_thread(two.device, two.b, 92), await asyncio.to_thread(two.device, two.a, 93)
    [unmonitored] = await engine.sync([kb])
    assert (unmonitored.action, unmonitored.result) == ("skip", "skipped") and "not monitored" in unmonitored.reason
    assert two.where(kb) == {"old": [], "new": []}
    await engine.sync([ka])
    await asyncio.to_thread(da.update, {"site": two.b["site"].id})  # now in the site no server monitors
    [left] = await engine.sync([ka])
    assert (left.action, left.result, left.removes) == ("delete", "ok", True)
    assert two.where(ka) == {"old": [], "new": []}


async def test_routes_explain_says_which_rule_routed_a_device_where_and_why_not_elsewhere(
    two: Two, tmp_path: Path
) -> None:
    import json
    import os
    import subprocess
    import sys

    from tests.conftest import NETBOX_TOKEN, ROOT

    cfg = two.config(["old"], ["new"])
    engine = await two.engine(cfg)
    dev, key = await asyncio.to_thread(two.device, two.b, 76)
    doc = {"netbox": {"url": cfg.netbox.url}, "zabbix": {"servers": _servers_doc(cfg)}, "routes": _routes_doc(cfg)}
    path = write_config(doc, tmp_path / "routes.yaml")
    env = {**os.environ, "NETBOX_TOKEN": NETBOX_TOKEN, "ZABBIX_USER": "Admin", "ZABBIX_PASSWORD": "zabbix"}

    def explain(*extra: str) -> str:
        argv = [sys.executable, "-m", "nbzx.cli", "--config", str(path), "routes", "explain", key, *extra]
        proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=60)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    before = json.loads(await asyncio.to_thread(explain, "--json"))
    assert [(c["name"], c["matched"]) for c in before["checks"]] == [("site-a", False), ("site-b", True)]
    assert before["checks"][0]["why"] == f"site is {two.b['site'].slug}, not {two.a['site'].slug}"
    assert before["route"]["servers"] == ["new"] and before["hosts"] == {}
    await engine.sync([key])
    text = await asyncio.to_thread(explain)
    hostid = two.on(two.new, key)[0]["hostid"]
    assert f"{key} ({dev.name}): in scope in NetBox" in text
    assert f"no      site-a: site is {two.b['site'].slug}, not {two.a['site'].slug}" in text
    assert "routed to: new" in text and f"host on new: hostid {hostid}" in text and "host on old" not in text


def _servers_doc(cfg: Config) -> dict[str, Any]:
    return {n: {"url": s.url, **CREDENTIALS} for n, s in cfg.zabbix.servers.items()}


def _routes_doc(cfg: Config) -> list[dict[str, Any]]:
    return [{"name": r.name, "match": r.match, "servers": r.servers} for r in cfg.routes]


async def test_a_stopped_server_holds_back_only_its_hosts_and_catches_up_with_nothing_dead_lettered(
    two: Two, kafka_bootstrap: str, tmp_path: Path
) -> None:
    from nbzx.common.kafka import create_topics
    from tests.e2e.pipeline import ConsumerProcess

    cfg = two.config(["old"], ["new"])
    await create_topics(cfg)
    doc = pipeline_config_doc(cfg)
    doc["zabbix"], doc["routes"] = {"servers": _servers_doc(cfg)}, _routes_doc(cfg)
    consumer = ConsumerProcess(write_config(doc, tmp_path / "two.yaml"), tmp_path / "two.log")
    try:
        made = [await asyncio.to_thread(two.device, base, 80 + i) for i, base in enumerate([two.a, two.b] * 3)]
        a_keys, b_keys = [k for _, k in made[0::2]], [k for _, k in made[1::2]]
        await _queue_sync_requests(cfg, a_keys + b_keys)
        await wait_until(
            lambda: all(two.on(two.old, k) for k in a_keys) and all(two.on(two.new, k) for k in b_keys), 60, "both"
        )

        await asyncio.to_thread(_stack, "down", "zabbix")  # the 6.0 server's API
        try:
            names = {k: f"{d.name}-x" for d, k in made}
            for dev, k in made:
                await asyncio.to_thread(dev.update, {"name": names[k]})
            await _queue_sync_requests(cfg, a_keys + b_keys)
            b_names = {k: names[k] for k in b_keys}
            await wait_until(
                lambda: all(two.on(two.new, k)[0]["host"] == b_names[k] for k in b_keys),
                20,
                "server new's hosts in sync",
            )
            assert consumer.proc.poll() is None
        finally:
            await asyncio.to_thread(_stack, "up", "zabbix")
        a_names = {k: names[k] for k in a_keys}
        await wait_until(lambda: all(two.on(two.old, k)[0]["host"] == a_names[k] for k in a_keys), 120, "old caught up")
        assert await asyncio.to_thread(consumer.metric, "nbzx_dlq_total") == 0, "nothing dead-lettered"
        assert await asyncio.to_thread(consumer.metric, "nbzx_sync_total", server="new", result="ok") > 0
    finally:
        consumer.stop()
        print((await asyncio.to_thread((tmp_path / "two.log").read_text))[-3000:])


async def test_the_console_shows_servers_filters_by_server_and_explains_a_route(
    two: Two, aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]]
) -> None:
    from nbzx.console.app import make_app
    from nbzx.console.state import ConsoleState
    from nbzx.core.policy import Decision
    from nbzx.core.status import host_status
    from nbzx.schemas.messages import encode
    from tests.unit.test_receiver_app import RecordingProducer

    cfg = two.config(["old"], ["new"])
    cfg.secrets.console_viewer_tokens = "victor:view-tok"
    engine = await two.engine(cfg)
    (_, ka), (_, kb) = await asyncio.to_thread(two.device, two.a, 77), await asyncio.to_thread(two.device, two.b, 78)
    results = await engine.sync([ka, kb])
    state = ConsoleState(cfg, follow=False)

    class Rec:
        def __init__(self, msg: Any) -> None:
            self.value, self.partition, self.offset = encode(msg), 0, 0

    state.apply_statuses([Rec(host_status(r, Decision(host_key=r.host_key, outcome="done"))) for r in results])
    client = await aiohttp_client(make_app(cfg, RecordingProducer(), engine, state))  # type: ignore[arg-type]
    auth = {"Authorization": "Bearer view-tok"}

    page = await (await client.get("/hosts?server=new", headers=auth)).text()
    assert f'data-host-key="{kb}"' in page and f'data-host-key="{ka}"' not in page
    assert "<th>Server</th>" in page and '<select name="server"' in page
    assert f'data-server="new">{two.on(two.new, kb)[0]["hostid"]}</a>' in page

    r = await client.get(f"/api/v1/hosts/{kb}/route", headers=auth)
    body = await r.json()
    assert r.status == 200 and body["route"]["servers"] == ["new"]
    assert body["hosts"] == {"new": two.on(two.new, kb)[0]["hostid"]}

    diff = await (await client.get(f"/api/v1/hosts/{ka}/difference", headers=auth)).json()
    assert [(s["server"], s["routed"], s["action"]) for s in diff["servers"]] == [("old", True, "noop")]
    host_page = await (await client.get(f"/hosts/{ka}", headers=auth)).text()
    assert 'data-server="old"' in host_page and "On old" in host_page
    assert '<tr data-rule="site-a" class="differs">' in host_page and "Routed to: <strong>old</strong>" in host_page


async def test_adoption_is_per_server_and_takes_over_a_hand_made_host_on_the_server_the_device_is_routed_to(
    two: Two,
) -> None:
    from nbzx.jobs.adopt import adopt, adoption_report
    from tests.unit.test_receiver_app import RecordingProducer

    engine = await two.engine(two.config(["old"], ["new"]))
    dev, key = await asyncio.to_thread(two.device, two.b, 79)
    api = two.new.api
    gid = api.hostgroup.get(filter={"name": "Linux servers"})[0]["groupid"]
    iface = {"type": 1, "main": 1, "useip": 1, "ip": lab_ip(79), "dns": "", "port": "10050"}
    hostid = api.host.create(host=dev.name, groups=[{"groupid": gid}], interfaces=[iface])["hostids"][0]

    on_new = await adoption_report(engine, "new")
    assert [(a.host_key, a.hostid) for a in on_new.adoptable if a.host_key == key] == [(key, hostid)]
    on_old = await adoption_report(engine, "old")
    assert key not in [m.host_key for m in on_old.netbox_only], "a device routed to new is not old's to adopt"

    record = await adopt(engine, RecordingProducer(), [key], user="alice", server="new")  # type: ignore[arg-type]
    assert record.status == "completed" and record.params["server"] == "new"
    assert record.results["hosts"] == {key: {"hostid": hostid, "host": dev.name}}
    assert two.where(key) == {"old": [], "new": [(dev.name, "0")]} and two.on(two.new, key)[0]["hostid"] == hostid


async def test_a_reconcile_counts_per_server_and_reconciles_the_others_when_one_cannot_be_read(two: Two) -> None:
    from nbzx.jobs.reconcile import Reconciler
    from nbzx.jobs.records import reconcile_request
    from tests.unit.test_receiver_app import RecordingProducer

    cfg = two.config(["old"], ["new"])
    engine = await two.engine(cfg)
    (_, ka), (_, kb) = await asyncio.to_thread(two.device, two.a, 90), await asyncio.to_thread(two.device, two.b, 91)
    producer: Any = RecordingProducer()
    flt = {"site_id": [two.a["site"].id, two.b["site"].id]}
    dry = reconcile_request("cli", dry_run=True, object_types=["dcim.device"], filter=flt)
    record = await Reconciler(cfg, engine, producer).run(dry)
    assert record.status == "completed", record.error
    per_server = record.results["servers"]
    assert (per_server["old"]["create"], per_server["new"]["create"]) == (1, 1)
    assert record.results["plan"]["create"] == sorted([ka, kb])

    # The old server unreachable (its URL a closed port): the new one is still reconciled, and the job says so.
    cfg.zabbix.servers["old"].url = "http://127.0.0.1:9"
    engine = await two.engine(cfg, connect=False)
    record = await Reconciler(cfg, engine, producer).run(
        reconcile_request("cli", object_types=["dcim.device"], filter=flt)
    )
    assert record.status == "failed" and "not reconciled, they could not be read: old:" in (record.error or "")
    assert list(record.results["unreadable"]) == ["old"] and list(record.results["servers"]) == ["new"]
    assert record.results["emitted"] == 1, "the new server's create went out"


async def test_routes_by_region_match_parent_regions_read_from_netbox_and_follow_a_site_moved_to_another_region(
    two: Two, netbox_api: Any
) -> None:
    from nbzx.engine.fanout import dependent_host_keys
    from nbzx.schemas.messages import ChangeEvent

    tag = uuid.uuid4().hex[:6]
    europe = await asyncio.to_thread(netbox_api.dcim.regions.create, name=f"eu-{tag}", slug=f"eu-{tag}")
    benelux = await asyncio.to_thread(
        netbox_api.dcim.regions.create, name=f"bnl-{tag}", slug=f"bnl-{tag}", parent=europe.id
    )
    site = two.a["site"]
    try:
        await asyncio.to_thread(site.update, {"region": benelux.id})
        routes: list[dict[str, Any]] = [
            {"name": "europe", "match": {"region": europe.slug}, "servers": ["new"]},
            {"name": "rest", "servers": ["old"]},
        ]
        engine = await two.engine(two_servers(routes, delete={"mode": "hard"}))
        dev, key = await asyncio.to_thread(two.device, two.a, 94)
        [placed] = await engine.sync([key])
        assert list(placed.servers) == ["new"], "Benelux is in Europe: the parent region's rule matched"

        await asyncio.to_thread(site.update, {"region": None})  # the site leaves Europe
        ev = ChangeEvent(host_key=f"dcim.site:{site.id}", event="updated", object_type="dcim.site", object_id=site.id)
        assert key in await dependent_host_keys(engine.netbox, list(engine.servers.values()), ev)
        [moved] = await engine.sync([key])  # the fan-out dropped the cached regions: read again
        assert list(moved.servers) == ["old"]
        assert two.where(key) == {"old": [(dev.name, "0")], "new": []}
    finally:
        await asyncio.to_thread(site.update, {"region": None})
        await asyncio.to_thread(benelux.delete)
        await asyncio.to_thread(europe.delete)
