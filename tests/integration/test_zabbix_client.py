"""The Zabbix client against each real Zabbix of the stack (6.0 LTS, 7.0 LTS): connecting picks the
server's capability row, and an expired session is renewed once under concurrent calls."""

from __future__ import annotations

import asyncio
import json
import urllib.request
import uuid

import pytest

from nbzx.core.model import OWNER_TAG
from nbzx.core.zabbix_payloads import host_get_params
from nbzx.engine import zabbix as zabbix_module
from nbzx.engine.zabbix import Zabbix
from tests.conftest import ZabbixServer


def _kill_session(server: ZabbixServer, session_id: str) -> None:
    """End a session server-side, as a Zabbix restart, a DB reset or an admin would."""
    doc = {"jsonrpc": "2.0", "method": "user.logout", "params": [], "id": 1}
    headers = {"Content-Type": "application/json-rpc"}
    if server.caps.token_transport == "header":
        headers["Authorization"] = f"Bearer {session_id}"
    else:
        doc["auth"] = session_id
    req = urllib.request.Request(f"{server.url}/api_jsonrpc.php", data=json.dumps(doc).encode(), headers=headers)
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert json.load(resp).get("result") is True


async def test_connecting_picks_the_servers_capability_row(zabbix_server: ZabbixServer) -> None:
    zabbix = Zabbix(zabbix_server.config())
    await zabbix.start()
    try:
        assert zabbix.caps.row == zabbix_server.row
        assert zabbix.caps.version.startswith(f"{zabbix_server.row}.")
        await zabbix.refresh_settings(force=True)
        assert "ICMP Ping" in zabbix.templates and "Linux servers" in zabbix.groups
    finally:
        await zabbix.close()


async def test_concurrent_calls_on_an_expired_session_log_in_once_and_all_succeed(
    zabbix_server: ZabbixServer,
) -> None:
    zabbix = Zabbix(zabbix_server.config())
    await zabbix.start()
    try:
        logins = zabbix._logins
        stale = zabbix._api._AsyncZabbixAPI__session_id
        await asyncio.to_thread(_kill_session, zabbix_server, stale)

        results = await asyncio.gather(
            *(zabbix.call("hostgroup.get", {"output": ["name"], "limit": 1}) for _ in range(8))
        )

        assert all(isinstance(r, list) and r for r in results), results
        assert zabbix._api._AsyncZabbixAPI__session_id != stale, "a new session replaced the dead one"
        assert zabbix._logins == logins + 1, "eight callers on one dead session log in once"
    finally:
        await zabbix.close()


async def test_every_owned_host_is_read_by_id_in_pages_with_all_its_fields(
    zabbix_server: ZabbixServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hosts read in pages of ids (3 pages of 2 here) are the same, with the same fields, as one host.get
    gives; a host without our tag is not among them. (One host.get of 20,000 hosts exhausts a stock
    frontend's 128M memory_limit, as the stack's.)"""
    zabbix = Zabbix(zabbix_server.config())
    await zabbix.start()
    mark = uuid.uuid4().hex[:6]
    group = (await zabbix.call("hostgroup.create", {"name": f"paging-{mark}"}))["groupids"][0]
    hostids: list[str] = []
    try:
        for i in range(7):
            tags = [{"tag": OWNER_TAG, "value": f"dcim.device:{990000 + i}"}] if i < 6 else []
            made = await zabbix.call(
                "host.create", {"host": f"paging-{mark}-{i}", "groups": [{"groupid": group}], "tags": tags}
            )
            hostids.extend(made["hostids"])
        params = {**host_get_params(zabbix.caps), "groupids": [group]}
        one = zabbix._by_key(await zabbix.call("host.get", params))
        assert len(one) == 6
        monkeypatch.setattr(zabbix_module, "HOST_PAGE", 2)
        calls = zabbix_module.CALLS.labels(zabbix.server, "host.get", "ok")._value.get()
        paged = {h.host_key: h for h in await zabbix._every(params)}
        assert paged == one
        assert zabbix_module.CALLS.labels(zabbix.server, "host.get", "ok")._value.get() - calls == 1 + 3
        monkeypatch.undo()
        every = await zabbix.all_owned_hosts()
        assert {k: h for k, h in every.items() if k in one} == one
    finally:
        await zabbix.call("host.delete", hostids)
        await zabbix.call("hostgroup.delete", [group])
        await zabbix.close()


async def test_a_stale_settings_cache_is_reloaded_in_the_background_not_on_the_callers_time(
    zabbix_server: ZabbixServer,
) -> None:
    zabbix = Zabbix(zabbix_server.config(), cache_ttl_s=0.05)
    await zabbix.start()
    try:
        await zabbix.refresh_settings()  # never loaded: loaded now
        loaded_at = zabbix._cache_at
        assert loaded_at > 0 and "Linux servers" in zabbix.groups
        await asyncio.sleep(0.1)  # past the TTL
        await zabbix.refresh_settings()
        reload = zabbix._reloading
        assert reload is not None and not reload.done(), "the caller did not wait for the reload"
        assert zabbix._cache_at == loaded_at and "Linux servers" in zabbix.groups  # the cache serves on
        await reload
        assert zabbix._cache_at > loaded_at
    finally:
        await zabbix.close()


async def test_settings_load_on_a_client_that_has_not_logged_in_yet(zabbix_server: ZabbixServer) -> None:
    """The first reload logs in before it names fields: proxy.get's name field differs by version (a
    7.0 server refuses 6.0's `host`), and the row is only known once connected."""
    zabbix = Zabbix(zabbix_server.config())
    try:
        await zabbix.refresh_settings()
        assert zabbix.caps.row == zabbix_server.row and "Linux servers" in zabbix.groups
    finally:
        await zabbix.close()
