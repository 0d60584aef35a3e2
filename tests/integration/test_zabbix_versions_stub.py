"""Connecting to the Zabbix versions no package here has, through `tests.zabbix_stub` (a stub, not
Zabbix: the real 6.0 and 7.0 servers carry every other client test)."""

from __future__ import annotations

from typing import Any

import pytest
import structlog

from nbzx.core.batch import group_writes
from nbzx.core.model import Plan
from nbzx.engine.zabbix import Zabbix, ZabbixError
from tests.conftest import make_config
from tests.zabbix_stub import ZabbixStub


async def _client(aiohttp_listener: Any, version: str) -> tuple[Zabbix, ZabbixStub]:
    stub = ZabbixStub(version)
    url = await aiohttp_listener(stub.app())
    return Zabbix(make_config(zabbix={"url": url})), stub


@pytest.mark.parametrize(("version", "transport"), [("6.0.14", "auth_field"), ("7.4.0", "header"), ("8.0.1", "header")])
async def test_the_token_travels_where_the_servers_row_says(
    aiohttp_listener: Any, version: str, transport: str
) -> None:
    zabbix, stub = await _client(aiohttp_listener, version)
    await zabbix.start()
    try:
        assert zabbix.caps.token_transport == transport
        await zabbix.call("hostgroup.get", {"output": ["name"]})
        assert stub.calls[-1] == ("hostgroup.get", transport)
    finally:
        await zabbix.close()


async def test_zabbix_80_is_connected_to_and_batches_without_massupdate(aiohttp_listener: Any) -> None:
    zabbix, stub = await _client(aiohttp_listener, "8.0.1")
    await zabbix.start()
    try:
        assert (zabbix.caps.row, zabbix.caps.version) == ("8.0", "8.0.1")
        plans = [
            Plan(host_key=f"dcim.device:{i}", action="update", hostid=str(100 + i), changes={"status": 1})
            for i in range(5)
        ]
        [write] = group_writes(plans, massupdate=zabbix.caps.host_massupdate)
        assert await zabbix.apply_batch(write.kind, write.plans) == [str(100 + i) for i in range(5)]
        # Even a caller that asks for a massupdate gets the array update on this row.
        assert await zabbix.apply_batch("massupdate", write.plans) == [str(100 + i) for i in range(5)]
        assert "host.massupdate" not in stub.methods()
        assert stub.methods().count("host.update") == 2
        assert {h["status"] for h in stub.hosts.values()} == {1} and len(stub.hosts) == 5
    finally:
        await zabbix.close()


async def test_the_stub_refuses_massupdate_as_80_does(aiohttp_listener: Any) -> None:
    """The stub is only worth the previous test if it refuses what 8.0 refuses."""
    zabbix, _ = await _client(aiohttp_listener, "8.0.1")
    await zabbix.start()
    try:
        with pytest.raises(ZabbixError, match=r'Incorrect method "host\.massupdate"') as err:
            await zabbix.call("host.massupdate", {"hosts": [{"hostid": "1"}], "status": 1})
        assert not err.value.transient
    finally:
        await zabbix.close()


async def test_a_major_newer_than_any_known_connects_with_a_warning(aiohttp_listener: Any) -> None:
    zabbix, _ = await _client(aiohttp_listener, "9.0.0")
    with structlog.testing.capture_logs() as logs:
        await zabbix.start()
    try:
        assert zabbix.caps.newer_than_known and zabbix.caps.row == "8.0"
        [warning] = [e for e in logs if e["event"] == "zabbix_newer_than_known"]
        assert warning["log_level"] == "warning" and warning["version"] == "9.0.0" and warning["assumed"] == "8.0"
    finally:
        await zabbix.close()


async def test_a_zabbix_older_than_60_is_a_clear_permanent_error(aiohttp_listener: Any) -> None:
    zabbix, stub = await _client(aiohttp_listener, "5.4.9")
    with pytest.raises(ZabbixError, match=r"Zabbix 5\.4\.9 is not supported.*6\.0 or newer") as err:
        await zabbix.start()
    assert not err.value.transient, "retrying will not make it newer"
    assert "user.login" not in stub.methods()
