"""Request payloads and host.get normalisation per row of the capability table (6.0, 7.0, 8.0)."""

from __future__ import annotations

import pytest

from nbzx.core.zabbix_payloads import host_get_params, normalise_host, write_params
from nbzx.core.zabbix_versions import capabilities

IDS = {
    "groups": {"NetBox/A": "5"},
    "templates": {"ICMP Ping": "10186"},
    "proxies": {"px1": "7"},
    "proxy_groups": {"pg1": "3"},
}
V6, V7, V8 = capabilities("6.0.14"), capabilities("7.0.29"), capabilities("8.0.1")


def test_host_get_names_per_version() -> None:
    p6 = host_get_params(V6, host_keys=["dcim.device:1"])
    assert "selectGroups" in p6 and "proxy_hostid" in p6["output"] and "proxyid" not in p6["output"]
    for caps in (V7, capabilities("7.4.0"), V8):
        p7 = host_get_params(caps, host_keys=["dcim.device:1", "dcim.device:2"])
        assert "selectHostGroups" in p7 and "selectGroups" not in p7, "7.2+ silently ignores selectGroups"
        assert {"proxyid", "proxy_groupid", "monitored_by"} <= set(p7["output"]) and "proxy_hostid" not in p7["output"]
    assert p7["tags"] == [
        {"tag": "netbox:key", "value": "dcim.device:1", "operator": 1},
        {"tag": "netbox:key", "value": "dcim.device:2", "operator": 1},
    ]
    assert host_get_params(V7)["tags"] == [{"tag": "netbox:key", "operator": 4}]


def test_write_params_proxy_per_version() -> None:
    changes = {"groups": ["NetBox/A"], "templates": ["ICMP Ping"], "proxy": "px1", "status": 0}
    assert write_params(V6, changes, IDS) == {
        "groups": [{"groupid": "5"}],
        "templates": [{"templateid": "10186"}],
        "proxy_hostid": "7",
        "status": 0,
    }
    assert write_params(V7, changes, IDS) == {
        "groups": [{"groupid": "5"}],
        "templates": [{"templateid": "10186"}],
        "monitored_by": 1,
        "proxyid": "7",
        "status": 0,
    }
    assert write_params(V7, {"proxy_group": "pg1"}, IDS) == {"monitored_by": 2, "proxy_groupid": "3"}
    assert write_params(V7, {"proxy": None}, IDS) == {"monitored_by": 0}
    assert write_params(V6, {"proxy": None}, IDS) == {"proxy_hostid": "0"}


@pytest.mark.parametrize(
    "changes",
    [
        {"proxy_group": "pg1", "proxy": None},
        {"proxy": None, "proxy_group": "pg1"},
    ],
)
def test_a_move_to_a_proxy_group_sends_the_group_whatever_the_key_order(
    changes: dict[str, object],
) -> None:
    assert write_params(V7, changes, IDS) == {"monitored_by": 2, "proxy_groupid": "3"}
    assert write_params(V7, {"proxy": "px1", "proxy_group": None}, IDS) == {"monitored_by": 1, "proxyid": "7"}


def test_normalise_reads_each_versions_group_and_proxy_fields() -> None:
    row6 = {"hostid": "1", "host": "h", "status": "0", "proxy_hostid": "7", "groups": [{"name": "NetBox/A"}]}
    row7 = {"hostid": "1", "host": "h", "status": "0", "monitored_by": "1", "proxyid": "7", "proxy_groupid": "0"}
    row7["hostgroups"] = [{"name": "NetBox/A"}]
    for caps, row in ((V6, row6), (V7, row7), (V8, row7)):
        h = normalise_host(caps, row, {"7": "px1"}, {"3": "pg1"})
        assert (h.groups, h.proxy, h.proxy_group) == (("NetBox/A",), "px1", None)


def test_a_host_monitored_by_a_proxy_group_reads_back_the_group_not_the_proxy_it_was_given() -> None:
    # On 7.x, `proxyid` of a host in a proxy group holds the proxy the group assigned: not ours to compare.
    row = {"hostid": "1", "host": "h", "status": "0", "monitored_by": "2", "proxyid": "7", "proxy_groupid": "3"}
    h = normalise_host(V7, row, {"7": "px1"}, {"3": "pg1"})
    assert (h.proxy, h.proxy_group) == (None, "pg1")
    server = normalise_host(V7, {**row, "monitored_by": "0"}, {"7": "px1"}, {"3": "pg1"})
    assert (server.proxy, server.proxy_group) == (None, None)


def test_a_proxy_group_change_on_60_sends_nothing_rather_than_clearing_the_proxy() -> None:
    assert write_params(V6, {"proxy_group": "pg1"}, IDS) == {}
