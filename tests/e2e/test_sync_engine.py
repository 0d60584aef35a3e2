"""sync() against the real NetBox and each real Zabbix of the stack (6.0 LTS and 7.0 LTS): the Zabbix
host is checked field by field."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from nbzx.common.config import Config, parse_config
from nbzx.engine.netbox import NetBox
from nbzx.engine.ratelimit import Budget
from nbzx.engine.sync import SyncEngine
from nbzx.engine.zabbix import Zabbix
from tests.conftest import TEST_MARK, ZabbixServer, create_device, lab_ip


class Env:
    """A sync engine plus the raw clients the assertions read with."""

    def __init__(self, cfg: Config, engine: SyncEngine, nb: Any, server: ZabbixServer, base: dict[str, Any]) -> None:
        self.cfg, self.engine, self.nb, self.server, self.base = cfg, engine, nb, server, base
        self.zapi = server.api

    async def sync(self, *keys: str) -> list[Any]:
        return await self.engine.sync(keys)

    def zhost(self, host_key: str) -> dict[str, Any] | None:
        rows = self.zapi.host.get(
            tags=[{"tag": "netbox:key", "value": host_key, "operator": 1}],
            output=["hostid", "host", "name", "status", "inventory_mode", "description"],
            selectParentTemplates=["name"],
            selectTags=["tag", "value"],
            selectInterfaces=["type", "ip", "port", "main", "useip"],
            selectInventory=["serialno_a"],
            selectMacros=["macro", "value", "type"],
            **{self.server.caps.host_groups_select: ["name"]},
        )
        assert len(rows) <= 1, f"more than one host owns {host_key}"
        if not rows:
            return None
        rows[0]["groups"] = rows[0].pop(self.server.caps.host_groups_key)
        return rows[0]

    def device(self, name: str, ip: str | None = lab_ip(50), **fields: Any) -> Any:
        return create_device(self.nb, self.base, name, ip, **fields)


@pytest.fixture
async def env(netbox_api: Any, zabbix_server: ZabbixServer, netbox_objects: Any) -> AsyncIterator[Env]:
    base = netbox_objects("sync")
    cfg = zabbix_server.config(
        host={
            "groups": ["NetBox/{site.name}", "NetBox/{role.name}"],
            "templates": [{"match": {"role": base["role"].slug}, "templates": ["ICMP Ping"]}],
            "tags": {"from_netbox_tags": True, "extra": {"site": "{site.slug}"}},
            "inventory": {"mode": "automatic", "fields": {"serialno_a": "{serial}"}},
            "macros": {"{$NBZX_ROLE}": {"value": "{role.slug}"}},
        },
        delete={"mode": "soft"},
    )
    zabbix = Zabbix(cfg)
    await zabbix.start()
    netbox = NetBox(cfg)
    yield Env(cfg, SyncEngine(cfg, netbox, zabbix), netbox_api, zabbix_server, base)
    await zabbix.close()
    netbox.close()


class CountingBudget(Budget):
    """The real budget, counting the tokens it hands out."""

    taken = 0

    async def _take(self) -> None:
        await super()._take()
        self.taken += 1


def _names(items: list[dict[str, Any]]) -> set[str]:
    return {i["name"] for i in items}


async def test_create_then_noop_then_rename_keeps_the_host(env: Env) -> None:
    name = f"sync-{uuid.uuid4().hex[:6]}"
    dev = await asyncio.to_thread(env.device, name, serial="SN-42")
    key = f"dcim.device:{dev.id}"
    [res] = await env.sync(key)
    assert (res.action, res.result) == ("create", "ok")
    h = env.zhost(key)
    assert h is not None
    b = env.base
    assert (h["host"], h["name"], h["status"]) == (name, name, "0")
    assert _names(h["groups"]) == {f"NetBox/{b['site'].name}", f"NetBox/{b['role'].name}"}
    assert _names(h["parentTemplates"]) == {"ICMP Ping"}
    assert [(i["type"], i["ip"], i["port"], i["main"], i["useip"]) for i in h["interfaces"]] == [
        ("1", lab_ip(50), "10050", "1", "1")
    ]
    tags = {(t["tag"], t["value"]) for t in h["tags"]}
    assert {("netbox:key", key), ("site", b["site"].slug)} <= tags
    assert ("netbox:url", f"{env.cfg.netbox.url}/dcim/devices/{dev.id}/") in tags
    assert h["inventory_mode"] == "1" and h["inventory"]["serialno_a"] == "SN-42"
    assert [(m["macro"], m["value"], m["type"]) for m in h["macros"]] == [("{$NBZX_ROLE}", b["role"].slug, "0")]

    writes = env.engine.zabbix.write_calls
    [again] = await env.sync(key)
    assert again.action == "noop"
    assert env.engine.zabbix.write_calls == writes, "an unchanged host costs zero Zabbix writes"

    await asyncio.to_thread(dev.update, {"name": f"{name}-renamed"})
    [ren] = await env.sync(key)
    assert ren.action == "update" and ren.changed == ["host", "name"]
    h2 = env.zhost(key)
    assert h2 is not None and h2["hostid"] == h["hostid"] and h2["host"] == f"{name}-renamed"


async def test_resite_retag_status_and_ip_changes(env: Env) -> None:
    dev = await asyncio.to_thread(env.device, f"sync-{uuid.uuid4().hex[:6]}")
    key = f"dcim.device:{dev.id}"
    await env.sync(key)
    other = await asyncio.to_thread(
        env.nb.dcim.sites.create, name=f"{env.base['tag']}-b", slug=f"{env.base['tag']}-b", description=TEST_MARK
    )
    try:
        tag = await asyncio.to_thread(env.nb.extras.tags.get, slug="monitored") or await asyncio.to_thread(
            env.nb.extras.tags.create, name="monitored", slug="monitored"
        )
        await asyncio.to_thread(dev.update, {"site": other.id, "tags": [tag.id], "status": "offline"})
        [res] = await env.sync(key)
        assert res.action == "update" and set(res.changed) == {"groups", "tags", "status"}
        h = env.zhost(key)
        assert h is not None
        assert _names(h["groups"]) == {f"NetBox/{other.name}", f"NetBox/{env.base['role'].name}"}
        tags = {(t["tag"], t["value"]) for t in h["tags"]}
        assert ("netbox:tag", "monitored") in tags and ("site", other.slug) in tags
        assert h["status"] == "1"

        ip = await asyncio.to_thread(env.nb.ipam.ip_addresses.get, dev.primary_ip4.id)
        await asyncio.to_thread(ip.update, {"address": f"{lab_ip(77)}/24"})
        [res] = await env.sync(key)
        assert res.changed == ["interfaces"]
        h2 = env.zhost(key)
        assert h2 is not None and h2["interfaces"][0]["ip"] == lab_ip(77)
    finally:
        await asyncio.to_thread(dev.delete)
        await asyncio.to_thread(other.delete)


async def test_soft_delete_then_return_resurrects_the_same_host(env: Env) -> None:
    dev = await asyncio.to_thread(env.device, f"sync-{uuid.uuid4().hex[:6]}")
    key = f"dcim.device:{dev.id}"
    await env.sync(key)
    hostid = env.zhost(key)["hostid"]  # type: ignore[index]
    await asyncio.to_thread(dev.update, {"status": "decommissioning"})
    [res] = await env.sync(key)
    assert res.action == "update" and res.reason == "status 'decommissioning' maps to delete"
    h = env.zhost(key)
    assert h is not None and h["status"] == "1" and "(archived " in h["name"]
    assert _names(h["groups"]) == {"NetBox/Archived"}
    assert any(t["tag"] == "netbox:deleted" for t in h["tags"])
    [again] = await env.sync(key)
    assert again.action == "noop"

    await asyncio.to_thread(dev.update, {"status": "active"})
    [back] = await env.sync(key)
    assert back.action == "update"
    h2 = env.zhost(key)
    assert h2 is not None and h2["hostid"] == hostid and h2["status"] == "0" and h2["name"] == dev.name
    assert not any(t["tag"] == "netbox:deleted" for t in h2["tags"])

    await asyncio.to_thread(dev.delete)
    [gone] = await env.sync(key)
    assert gone.action == "update" and gone.reason == "deleted in NetBox"
    assert "(archived " in env.zhost(key)["name"]  # type: ignore[index]


async def test_foreign_host_with_the_same_name_is_reported_and_untouched(env: Env) -> None:
    name = f"sync-{uuid.uuid4().hex[:6]}"
    gid = env.zapi.hostgroup.get(filter={"name": "Linux servers"})[0]["groupid"]
    foreign = env.zapi.host.create(host=name, groups=[{"groupid": gid}], description="hand made")["hostids"][0]
    try:
        dev = await asyncio.to_thread(env.device, name)
        key = f"dcim.device:{dev.id}"
        writes = env.engine.zabbix.write_calls
        [res] = await env.sync(key)
        assert res.result == "conflict" and res.hostid == foreign and "not managed" in res.reason
        assert env.engine.zabbix.write_calls == writes
        [row] = env.zapi.host.get(hostids=[foreign], output=["description"], selectTags=["tag"])
        assert row["description"] == "hand made" and row["tags"] == []
        assert env.zhost(key) is None
    finally:
        env.zapi.host.delete(foreign)


async def test_virtual_machine_and_hard_delete(env: Env, netbox_api: Any) -> None:
    env.cfg.delete.mode = "hard"
    ctype = await asyncio.to_thread(
        netbox_api.virtualization.cluster_types.create, name=env.base["tag"], slug=env.base["tag"]
    )
    cluster = await asyncio.to_thread(netbox_api.virtualization.clusters.create, name=env.base["tag"], type=ctype.id)
    vm = await asyncio.to_thread(
        netbox_api.virtualization.virtual_machines.create,
        name=f"vm-{uuid.uuid4().hex[:6]}",
        cluster=cluster.id,
        status="active",
    )
    try:
        key = f"virtualization.virtualmachine:{vm.id}"
        [res] = await env.sync(key)
        assert res.action == "create"
        h = env.zhost(key)
        assert h is not None and h["host"] == vm.name and h["interfaces"] == []
        assert _names(h["groups"]) == {"NetBox/Unassigned"}  # no site, no role: the fallback group
        await asyncio.to_thread(vm.delete)
        [gone] = await env.sync(key)
        assert gone.action == "delete" and env.zhost(key) is None
        [again] = await env.sync(key)
        assert again.action == "noop"
    finally:
        if await asyncio.to_thread(netbox_api.virtualization.virtual_machines.get, vm.id):
            await asyncio.to_thread(vm.delete)
        await asyncio.to_thread(cluster.delete)
        await asyncio.to_thread(ctype.delete)


async def test_maintenance_window_follows_netbox_and_expired_ones_are_cleaned(env: Env) -> None:
    env.cfg.host.status["planned"] = "maintenance"
    dev = await asyncio.to_thread(env.device, f"sync-{uuid.uuid4().hex[:6]}")
    key = f"dcim.device:{dev.id}"
    await env.sync(key)

    def windows() -> list[dict[str, Any]]:
        return env.zapi.maintenance.get(
            output=["maintenanceid", "active_till"], selectHosts=["hostid"], filter={"name": f"nbzx:{key}"}
        )

    assert windows() == []
    await asyncio.to_thread(dev.update, {"status": "planned"})
    [res] = await env.sync(key)
    assert res.result == "ok" and "maintenance:start" in res.changed
    [w] = windows()
    assert w["hosts"] == [{"hostid": env.zhost(key)["hostid"]}]  # type: ignore[index]
    writes = env.engine.zabbix.write_calls
    [again] = await env.sync(key)
    assert again.action == "noop" and env.engine.zabbix.write_calls == writes, "an open window is left alone"
    await asyncio.to_thread(dev.update, {"status": "active"})
    [back] = await env.sync(key)
    assert "maintenance:end" in back.changed and windows() == []

    now = int(time.time())
    hostid = env.zhost(key)["hostid"]  # type: ignore[index]
    env.zapi.maintenance.create(
        name="nbzx:dcim.device:987654321",
        active_since=now - 7200,
        active_till=now - 3600,
        hosts=[{"hostid": hostid}],
        timeperiods=[{"timeperiod_type": 0, "start_date": now - 7200, "period": 3600}],
    )
    foreign = env.zapi.maintenance.create(
        name=f"hand-{uuid.uuid4().hex[:5]}",
        active_since=now - 7200,
        active_till=now - 3600,
        hosts=[{"hostid": hostid}],
        timeperiods=[{"timeperiod_type": 0, "start_date": now - 7200, "period": 3600}],
    )["maintenanceids"][0]
    assert await env.engine.zabbix.cleanup_maintenance() == 1
    assert env.zapi.maintenance.get(filter={"name": "nbzx:dcim.device:987654321"}) == []
    assert env.zapi.maintenance.get(maintenanceids=[foreign], output=["maintenanceid"]), "not ours: kept"
    env.zapi.maintenance.delete(foreign)


async def test_many_hosts_are_written_with_one_call_per_kind_of_change(env: Env) -> None:
    tag = uuid.uuid4().hex[:6]
    devs = [await asyncio.to_thread(env.device, f"batch-{tag}-{i}", lab_ip(110 + i)) for i in range(5)]
    keys = [f"dcim.device:{d.id}" for d in devs]
    calls = dict(env.engine.zabbix.calls)
    budget = env.engine.zabbix.budget = CountingBudget(env.cfg.zabbix.rate_per_s, env.cfg.zabbix.concurrency)

    def made(method: str) -> int:
        return env.engine.zabbix.calls.get(method, 0) - calls.get(method, 0)

    results = await env.sync(*keys)
    assert [(r.action, r.result) for r in results] == [("create", "ok")] * 5
    assert made("host.create") == 1, "five new hosts, one host.create"
    all_calls = sum(env.engine.zabbix.calls.values()) - sum(calls.values())
    assert budget.taken == all_calls, "each call takes one token from the budget: a batch of five counts once"
    hostids = {k: env.zhost(k)["hostid"] for k in keys}  # type: ignore[index]
    assert [r.hostid for r in results] == [hostids[r.host_key] for r in results]

    await asyncio.to_thread(env.nb.dcim.devices.update, [{"id": d.id, "status": "offline"} for d in devs])
    results = await env.sync(*keys)
    assert {(r.action, tuple(r.changed)) for r in results} == {("update", ("status",))}
    assert made("host.massupdate") == 1 and made("host.update") == 0, "one status for five hosts, one massupdate"
    assert {env.zhost(k)["status"] for k in keys} == {"1"}  # type: ignore[index]

    await asyncio.to_thread(
        env.nb.dcim.devices.update, [{"id": d.id, "name": f"batch-{tag}-{i}-x"} for i, d in enumerate(devs)]
    )
    await env.sync(*keys)
    assert made("host.update") == 1, "five different renames, one array host.update"
    assert [env.zhost(k)["host"] for k in keys] == [f"batch-{tag}-{i}-x" for i in range(5)]  # type: ignore[index]
    assert {k: env.zhost(k)["hostid"] for k in keys} == hostids  # type: ignore[index]


async def test_one_bad_host_in_a_batch_does_not_hold_back_the_others(env: Env) -> None:
    tag = uuid.uuid4().hex[:6]
    devs = [await asyncio.to_thread(env.device, f"split-{tag}-{i}", lab_ip(120 + i)) for i in range(3)]
    await asyncio.to_thread(devs[1].update, {"local_context_data": {"zabbix": {"templates": ["No Such Template"]}}})
    results = {r.host_key: r for r in await env.sync(*(f"dcim.device:{d.id}" for d in devs))}
    bad = results.pop(f"dcim.device:{devs[1].id}")
    assert (bad.result, bad.transient) == ("error", False) and "No Such Template" in (bad.error or "")
    assert {(r.action, r.result) for r in results.values()} == {("create", "ok")}
    assert all(env.zhost(k) is not None for k in results)


async def test_a_scope_filter_netbox_rejects_is_a_retried_configuration_error(env: Env) -> None:
    dev = await asyncio.to_thread(env.device, f"scope-{uuid.uuid4().hex[:6]}", None)
    cfg = env.server.config(scope={"devices": {"filter": {"site": f"gone-{uuid.uuid4().hex[:6]}"}}})
    netbox = NetBox(cfg)
    try:
        [res] = await SyncEngine(cfg, netbox, env.engine.zabbix).sync([f"dcim.device:{dev.id}"])
    finally:
        netbox.close()
    assert (res.result, res.transient) == ("error", True), "kept and retried, not dead-lettered"
    assert "scope.devices.filter" in (res.error or "") and "400" in (res.error or "")


def _proxy_and_group(env: Env) -> tuple[str, str, str | None, str | None]:
    """A proxy (and on 7.0+ a proxy group) made in this Zabbix: (proxy name, proxyid, group name, groupid)."""
    tag = uuid.uuid4().hex[:6]
    name = f"nbzx-px-{tag}"
    if env.server.caps.proxy_fields == "monitored_by":
        proxyid = env.zapi.proxy.create(name=name, operating_mode=0)["proxyids"][0]
    else:
        proxyid = env.zapi.proxy.create(host=name, status=5)["proxyids"][0]
    if not env.server.caps.proxy_groups:
        return name, proxyid, None, None
    group = f"nbzx-pg-{tag}"
    groupid = env.zapi.proxygroup.create(name=group, failover_delay="1m", min_online="1")["proxy_groupids"][0]
    return name, proxyid, group, groupid


def _monitored_by(env: Env, key: str) -> dict[str, str]:
    """Who monitors the host, as this Zabbix stores it."""
    v7 = env.server.caps.proxy_fields == "monitored_by"
    fields = ["monitored_by", "proxyid", "proxy_groupid"] if v7 else ["proxy_hostid"]
    [row] = env.zapi.host.get(tags=[{"tag": "netbox:key", "value": key, "operator": 1}], output=fields)
    return {f: row[f] for f in fields}


async def test_proxy_and_proxy_group_are_written_read_back_and_then_a_noop(env: Env) -> None:
    proxy, proxyid, group, groupid = _proxy_and_group(env)
    v7 = env.server.caps.proxy_fields == "monitored_by"
    dev = await asyncio.to_thread(env.device, f"px-{uuid.uuid4().hex[:6]}", lab_ip(60))
    key = f"dcim.device:{dev.id}"
    try:
        await asyncio.to_thread(dev.update, {"local_context_data": {"zabbix": {"proxy": proxy}}})
        [res] = await env.sync(key)
        assert (res.action, res.result) == ("create", "ok")
        want = {"monitored_by": "1", "proxyid": proxyid, "proxy_groupid": "0"} if v7 else {"proxy_hostid": proxyid}
        assert _monitored_by(env, key) == want
        writes = env.engine.zabbix.write_calls
        [again] = await env.sync(key)
        assert again.action == "noop" and env.engine.zabbix.write_calls == writes, "a proxy is read back"

        if group is not None:
            await asyncio.to_thread(dev.update, {"local_context_data": {"zabbix": {"proxy_group": group}}})
            [moved] = await env.sync(key)
            assert moved.action == "update" and moved.changed == ["proxy", "proxy_group"]
            assert _monitored_by(env, key)["monitored_by"] == "2"
            assert _monitored_by(env, key)["proxy_groupid"] == groupid
            writes = env.engine.zabbix.write_calls
            [again] = await env.sync(key)
            assert again.action == "noop" and env.engine.zabbix.write_calls == writes, "a proxy group is read back"

        await asyncio.to_thread(dev.update, {"local_context_data": {}})
        [cleared] = await env.sync(key)
        assert cleared.action == "update"
        assert _monitored_by(env, key) == (
            {"monitored_by": "0", "proxyid": "0", "proxy_groupid": "0"} if v7 else {"proxy_hostid": "0"}
        )
    finally:
        hosts = env.zapi.host.get(tags=[{"tag": "netbox:key", "value": key, "operator": 1}], output=["hostid"])
        if hosts:
            env.zapi.host.delete(*[h["hostid"] for h in hosts])
        env.zapi.proxy.delete(proxyid)
        if groupid is not None:
            env.zapi.proxygroup.delete(groupid)


@pytest.mark.parametrize("zabbix_server", ["7.0"], indirect=True)
async def test_the_80_write_path_on_a_real_server_batches_shared_changes_as_one_array_update(env: Env) -> None:
    """Zabbix 8.0 has no host.massupdate: its capability row, forced on the real 7.0 server."""
    zabbix = Zabbix(env.cfg, force_row="8.0")
    await zabbix.start()
    try:
        assert (zabbix.caps.row, zabbix.caps.host_massupdate) == ("8.0", False)
        engine = SyncEngine(env.cfg, env.engine.netbox, zabbix)
        tag = uuid.uuid4().hex[:6]
        devs = [await asyncio.to_thread(env.device, f"v8-{tag}-{i}", lab_ip(130 + i)) for i in range(5)]
        keys = [f"dcim.device:{d.id}" for d in devs]
        assert {(r.action, r.result) for r in await engine.sync(keys)} == {("create", "ok")}
        assert zabbix.calls.get("host.create") == 1

        await asyncio.to_thread(env.nb.dcim.devices.update, [{"id": d.id, "status": "offline"} for d in devs])
        results = await engine.sync(keys)
        assert {(r.action, tuple(r.changed), r.result) for r in results} == {("update", ("status",), "ok")}
        assert zabbix.calls.get("host.massupdate", 0) == 0 and zabbix.calls.get("host.update") == 1
        assert {env.zhost(k)["status"] for k in keys} == {"1"}  # type: ignore[index]

        writes = zabbix.write_calls
        assert {r.action for r in await engine.sync(keys)} == {"noop"} and zabbix.write_calls == writes
    finally:
        await zabbix.close()


async def test_a_create_that_lost_a_race_is_retried_and_then_a_noop(env: Env) -> None:
    """Two consumers may plan the same create (a rebalance mid-round): the loser's 'already exists'
    is transient, and its retry plans again and finds the host."""
    from nbzx.core.batch import Write

    dev = await asyncio.to_thread(env.device, f"race-{uuid.uuid4().hex[:6]}", lab_ip(61))
    key = f"dcim.device:{dev.id}"
    [stale] = (await env.engine.plans([key]))[key].values()
    assert stale.action == "create"
    [won] = await env.sync(key)
    assert (won.action, won.result) == ("create", "ok")
    [lost] = await env.engine._write(env.engine.zabbix, Write(kind="single", plans=(stale,)), dry_run=False)
    assert (lost.result, lost.transient) == ("error", True) and "already exists" in (lost.error or "")
    [again] = await env.sync(key)
    assert again.action == "noop"


async def test_ipmi_jmx_and_out_of_band_interfaces_and_ipmi_access_are_written_then_a_zero_write_noop(env: Env) -> None:
    name = f"sync-{uuid.uuid4().hex[:6]}"
    dev = await asyncio.to_thread(env.device, name, lab_ip(90))

    def add_oob() -> None:
        iface = env.nb.dcim.interfaces.create(device=dev.id, name="bmc", type="1000base-t", mgmt_only=True)
        oob = env.nb.ipam.ip_addresses.create(
            address=f"{lab_ip(91)}/24", assigned_object_type="dcim.interface", assigned_object_id=iface.id,
            dns_name=f"{name}-bmc.example.net",
        )  # fmt: skip
        context = {
            "zabbix": {
                "interfaces": [
                    {"type": "agent"},
                    {"type": "ipmi", "address": "oob", "use_dns": True},
                    {"type": "jmx", "port": 9010},
                    {"type": "jmx", "port": 9011},
                ],
                "ipmi": {"authtype": "md5", "privilege": "operator", "username": "bmc-{name}"},
            }
        }
        dev.update({"oob_ip": oob.id, "local_context_data": context})

    await asyncio.to_thread(add_oob)
    env.cfg.host.interfaces.ipmi.password = "bmc-pass"  # from password_env in a real config
    key = f"dcim.device:{dev.id}"
    [res] = await env.sync(key)
    assert (res.action, res.result) == ("create", "ok"), res
    [access] = env.zapi.host.get(
        hostids=[res.hostid], output=["ipmi_authtype", "ipmi_privilege", "ipmi_username", "ipmi_password"]
    )
    assert access == {
        "hostid": res.hostid,
        "ipmi_authtype": "2",
        "ipmi_privilege": "3",
        "ipmi_username": f"bmc-{name}",
        "ipmi_password": "bmc-pass",
    }
    rows = env.zapi.hostinterface.get(
        hostids=[res.hostid], output=["type", "ip", "dns", "useip", "port", "main"], sortfield="interfaceid"
    )
    got = sorted((r["type"], r["ip"], r["dns"], r["useip"], r["port"], r["main"]) for r in rows)
    assert got == [
        ("1", lab_ip(90), "", "1", "10050", "1"),
        ("3", lab_ip(91), f"{name}-bmc.example.net", "0", "623", "1"),
        ("4", lab_ip(90), "", "1", "9010", "1"),
        ("4", lab_ip(90), "", "1", "9011", "0"),
    ]
    writes = env.engine.zabbix.write_calls
    [again] = await env.sync(key)
    assert again.action == "noop", again
    assert env.engine.zabbix.write_calls == writes, "the second pass writes nothing"

    # The out-of-band address changes in NetBox: only the IPMI interface changes, in place.
    ids = sorted(r["interfaceid"] for r in rows)
    ip = await asyncio.to_thread(env.nb.ipam.ip_addresses.get, address=f"{lab_ip(91)}/24")
    await asyncio.to_thread(ip.update, {"address": f"{lab_ip(92)}/24"})
    [moved] = await env.sync(key)
    assert (moved.action, moved.changed) == ("update", ["interfaces"]), moved
    after = env.zapi.hostinterface.get(hostids=[res.hostid], output=["interfaceid", "type", "ip"])
    assert sorted(r["interfaceid"] for r in after) == ids, "the interfaces are updated, not replaced"
    assert {r["ip"] for r in after if r["type"] == "3"} == {lab_ip(92)}
    assert {r["ip"] for r in after if r["type"] != "3"} == {lab_ip(90)}


async def test_a_key_that_is_not_a_hosts_is_skipped_and_holds_back_no_other_key(env: Env) -> None:
    """The change-log follower keys a deleted IP to itself once its interface is gone (CI: the engine
    crashed on such a key with a KeyError, and the round stood still as if Zabbix were down)."""
    dev = await asyncio.to_thread(env.device, f"notahost-{uuid.uuid4().hex[:6]}", lab_ip(98))
    key = f"dcim.device:{dev.id}"
    results = {r.host_key: r for r in await env.sync("ipam.ipaddress:999999", key)}
    ip = results["ipam.ipaddress:999999"]
    assert (ip.action, ip.result) == ("noop", "skipped") and "not a host" in ip.reason, ip
    assert (results[key].action, results[key].result) == ("create", "ok"), results[key]


def _stored_psk(server: ZabbixServer, hostid: str) -> tuple[str, str]:
    """The PSK identity and key Zabbix stored for a host, from its database (its API never returns them)."""
    query = f"select tls_psk_identity, tls_psk from hosts where hostid = {int(hostid)}"
    cmd = ["runuser", "-u", "postgres", "--", "psql", "-X", "-tA", "-F", "|", "-d", server.service, "-c", query]
    out = subprocess.run(cmd, cwd="/", capture_output=True, text=True, check=True).stdout.strip()
    identity, _, key = out.partition("|")
    return identity, key


async def test_psk_encryption_from_the_environment_then_a_zero_write_noop_and_one_update_on_rotation(
    env: Env,
) -> None:
    """PSK agent encryption, the key from the environment: written to the real Zabbix, which never
    returns the identity or key, yet a second pass writes nothing; a key rotated in the environment is
    exactly one write, and Zabbix then holds the new key."""
    keys = ("0f" * 16, "e1" * 32)

    def use(key: str) -> None:
        doc = {"host": {"tls": {"connect": "psk", "accept": ["psk"], "psk_identity": "nbzx-{name}", "psk_env": "K"}}}
        env.cfg.host.tls = parse_config(json.dumps(doc), {"K": key}).host.tls

    use(keys[0])
    name = f"psk-{uuid.uuid4().hex[:6]}"
    dev = await asyncio.to_thread(env.device, name, lab_ip(96))
    key = f"dcim.device:{dev.id}"
    [res] = await env.sync(key)
    assert (res.action, res.result) == ("create", "ok"), res
    [row] = env.zapi.host.get(hostids=[res.hostid], output=["tls_connect", "tls_accept", "tls_psk_identity", "tls_psk"])
    assert (row["tls_connect"], row["tls_accept"]) == ("2", "2")
    assert "tls_psk" not in row and "tls_psk_identity" not in row, "write-only in Zabbix: nothing to compare with"
    assert _stored_psk(env.server, res.hostid) == (f"nbzx-{name}", keys[0])

    writes = env.engine.zabbix.write_calls
    [again] = await env.sync(key)
    assert again.action == "noop", again
    assert env.engine.zabbix.write_calls == writes, "the second pass writes nothing"

    use(keys[1])
    [rotated] = await env.sync(key)
    assert (rotated.action, sorted(rotated.changed)) == ("update", ["macros", "tls_psk", "tls_psk_identity"])
    assert env.engine.zabbix.write_calls == writes + 1, "one write for the rotation"
    assert _stored_psk(env.server, res.hostid) == (f"nbzx-{name}", keys[1])
    [settled] = await env.sync(key)
    assert settled.action == "noop", settled


async def test_snmpv3_interface_and_secret_macro_from_the_environment_then_a_zero_write_noop(env: Env) -> None:
    """SNMPv3 passphrases and a secret macro come from environment variables (`*_env`), are written
    to the real Zabbix, and a second pass writes nothing although Zabbix never returns a secret
    macro's value; a rotated secret is one update."""

    def secrets(auth: str, priv: str, db: str) -> Config:
        doc = {
            "host": {
                "interfaces": {
                    "default": "snmp",
                    "snmp": {
                        "version": 3, "securityname": "mon-{name}", "securitylevel": "authPriv",
                        "authprotocol": "SHA256", "authpassphrase_env": "NBZX_T_AUTH",
                        "privprotocol": "AES256", "privpassphrase_env": "NBZX_T_PRIV", "contextname": "ctx",
                    },
                },
                "macros": {"{$NBZX_DB_PASS}": {"secret": True, "value_env": "NBZX_T_DB"}},
            }
        }  # fmt: skip
        return parse_config(json.dumps(doc), {"NBZX_T_AUTH": auth, "NBZX_T_PRIV": priv, "NBZX_T_DB": db})

    def use(parsed: Config) -> None:
        env.cfg.host.interfaces = parsed.host.interfaces
        env.cfg.host.macros = {**env.cfg.host.macros, **parsed.host.macros}

    use(secrets("auth-pass-1", "priv-pass-1", "db-pass-1"))
    name = f"snmp-{uuid.uuid4().hex[:6]}"
    dev = await asyncio.to_thread(env.device, name, lab_ip(95))
    key = f"dcim.device:{dev.id}"
    [res] = await env.sync(key)
    assert (res.action, res.result) == ("create", "ok"), res
    [iface] = env.zapi.hostinterface.get(hostids=[res.hostid], output=["type", "ip", "port", "details"])
    assert (iface["type"], iface["ip"], iface["port"]) == ("2", lab_ip(95), "161")
    details = iface["details"]
    assert (details["version"], details["securityname"], details["securitylevel"]) == ("3", f"mon-{name}", "2")
    assert (details["authprotocol"], details["privprotocol"], details["contextname"]) == ("3", "3", "ctx")
    assert (details["authpassphrase"], details["privpassphrase"]) == ("auth-pass-1", "priv-pass-1")
    [macro] = [m for m in env.zhost(key)["macros"] if m["macro"] == "{$NBZX_DB_PASS}"]  # type: ignore[index]
    assert macro["type"] == "1" and macro.get("value", "") == "", "a secret macro, its value never read back"

    writes = env.engine.zabbix.write_calls
    [again] = await env.sync(key)
    assert again.action == "noop", again
    assert env.engine.zabbix.write_calls == writes, "the second pass writes nothing"

    use(secrets("auth-pass-1", "priv-pass-2", "db-pass-2"))  # both secrets rotated
    [rotated] = await env.sync(key)
    assert (rotated.action, sorted(rotated.changed)) == ("update", ["interfaces", "macros"]), rotated
    [iface] = env.zapi.hostinterface.get(hostids=[res.hostid], output=["details"])
    assert iface["details"]["privpassphrase"] == "priv-pass-2"
    [settled] = await env.sync(key)
    assert settled.action == "noop", settled
