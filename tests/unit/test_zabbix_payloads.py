"""Request payloads per Zabbix API version: 6.0 LTS (the stack) and 7.x, which renamed proxy fields."""

from __future__ import annotations

from consumer.zabbix_payloads import ZabbixVersion, host_get_params, normalise_host, write_params

IDS = {
    "groups": {"NetBox/A": "5"},
    "templates": {"ICMP Ping": "10186"},
    "proxies": {"px1": "7"},
    "proxy_groups": {"pg1": "3"},
}


def test_host_get_names_per_version() -> None:
    v6, v62, v7 = ZabbixVersion("6.0.14"), ZabbixVersion("6.2.0"), ZabbixVersion("7.0.5")
    p6 = host_get_params(v6, host_keys=["dcim.device:1"])
    assert "selectGroups" in p6 and "proxy_hostid" in p6["output"] and "proxyid" not in p6["output"]
    assert "selectHostGroups" in host_get_params(v62, host_keys=["x"])
    p7 = host_get_params(v7, host_keys=["dcim.device:1", "dcim.device:2"])
    assert "selectHostGroups" in p7 and {"proxyid", "proxy_groupid", "monitored_by"} <= set(p7["output"])
    assert p7["tags"] == [
        {"tag": "netbox:key", "value": "dcim.device:1", "operator": 1},
        {"tag": "netbox:key", "value": "dcim.device:2", "operator": 1},
    ]
    assert host_get_params(v7)["tags"] == [{"tag": "netbox:key", "operator": 4}]


def test_write_params_proxy_per_version() -> None:
    v6, v7 = ZabbixVersion("6.0.14"), ZabbixVersion("7.0.5")
    changes = {"groups": ["NetBox/A"], "templates": ["ICMP Ping"], "proxy": "px1", "status": 0}
    assert write_params(v6, changes, IDS) == {
        "groups": [{"groupid": "5"}],
        "templates": [{"templateid": "10186"}],
        "proxy_hostid": "7",
        "status": 0,
    }
    assert write_params(v7, changes, IDS) == {
        "groups": [{"groupid": "5"}],
        "templates": [{"templateid": "10186"}],
        "monitored_by": 1,
        "proxyid": "7",
        "status": 0,
    }
    assert write_params(v7, {"proxy_group": "pg1"}, IDS) == {"monitored_by": 2, "proxy_groupid": "3"}
    assert write_params(v6, {"proxy_group": "pg1"}, IDS) == {}, "6.0 has no proxy groups"
    assert write_params(v7, {"proxy": None}, IDS) == {"monitored_by": 0, "proxyid": "0"}


def test_normalise_reads_each_versions_group_and_proxy_fields() -> None:
    row6 = {"hostid": "1", "host": "h", "status": "0", "proxy_hostid": "7", "groups": [{"name": "NetBox/A"}]}
    row7 = {"hostid": "1", "host": "h", "status": "0", "proxyid": "7", "hostgroups": [{"name": "NetBox/A"}]}
    for v, row in ((ZabbixVersion("6.0.14"), row6), (ZabbixVersion("7.0.5"), row7)):
        h = normalise_host(v, row, {"7": "px1"})
        assert (h.groups, h.proxy) == (("NetBox/A",), "px1")
