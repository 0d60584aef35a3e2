"""Brownfield adoption decisions: matching by name, visible name and IP, and every reason a match is
not adoptable; the Zabbix-only list and the reverse list of NetBox objects without a host."""

from __future__ import annotations

from typing import Any

from nbzx.core.adoption import NetBoxSide, plan_adoption, template_conflict
from nbzx.core.model import AGENT, SNMP, ActualHost, ActualInterface, DesiredHost, Interface

ALL = ["host", "name", "ip"]


def desired(key: str, host: str, ip: str, **kw: Any) -> DesiredHost:
    base: dict[str, Any] = {
        "host_key": key,
        "host": host,
        "name": kw.pop("name", host),
        "status": 0,
        "groups": ("NetBox/Lab",),
        "templates": (),
        "interfaces": (Interface(type=kw.pop("itype", AGENT), ip=ip),),
        "tags": (("netbox:key", key),),
        "managed_tag_names": frozenset({"netbox:key"}),
    }
    base.update(kw)
    return DesiredHost(**base)


def side(key: str, host: str, ip: str, **kw: Any) -> NetBoxSide:
    in_scope = kw.pop("in_scope", True)
    return NetBoxSide(host_key=key, name=host, ips=(ip,), desired=desired(key, host, ip, **kw), in_scope=in_scope)


def zhost(hostid: str, host: str, ip: str = "", name: str | None = None, **kw: Any) -> ActualHost:
    itype = kw.pop("itype", AGENT)
    return ActualHost(
        hostid=hostid,
        host=host,
        name=name or host,
        status=0,
        groups=("Linux servers",),
        templates=tuple(kw.pop("templates", ())),
        interfaces=(ActualInterface(interfaceid="1", iface=Interface(type=itype, ip=ip)),) if ip else (),
        tags=tuple(kw.pop("tags", ())),
    )


def test_a_hand_made_host_matching_one_device_is_adoptable_with_its_changes() -> None:
    report = plan_adoption(
        [side("dcim.device:1", "srv-1", "192.0.2.1")], {}, [zhost("10501", "srv-1", "192.0.2.1")], ALL, {}
    )
    [a] = report.adoptable
    assert (a.host_key, a.hostid, a.matched_by, a.valid, a.reason) == ("dcim.device:1", "10501", "host", True, "")
    assert "groups" in a.changes and "tags" in a.changes, "our group and owner tag would be written"
    assert report.not_adoptable == [] and report.zabbix_only == []
    assert [m.reason for m in report.netbox_only] == ["adoptable: Zabbix host 'srv-1' (hostid 10501)"]


def test_match_order_visible_name_and_ip() -> None:
    sides = [side("dcim.device:1", "srv-1", "192.0.2.1", name="Server One")]
    by_name = plan_adoption(sides, {}, [zhost("1", "legacy-1", "198.51.100.9", name="Server One")], ALL, {})
    assert by_name.adoptable[0].matched_by == "name"
    by_ip = plan_adoption(sides, {}, [zhost("1", "legacy-1", "192.0.2.1")], ALL, {})
    assert by_ip.adoptable[0].matched_by == "ip"
    assert "host" in by_ip.adoptable[0].changes, "adopting renames it to NetBox's name"
    only_names = plan_adoption(sides, {}, [zhost("1", "legacy-1", "192.0.2.1")], ["host", "name"], {})
    assert only_names.adoptable == [] and [a.host for a in only_names.zabbix_only] == ["legacy-1"]


def test_a_name_two_netbox_objects_carry_is_not_adoptable() -> None:
    sides = [side("dcim.device:1", "dup", "192.0.2.1"), side("dcim.device:2", "dup", "192.0.2.2")]
    report = plan_adoption(sides, {}, [zhost("10600", "dup", "192.0.2.1")], ALL, {})
    [a] = report.not_adoptable
    assert a.reason == "host matches 2 NetBox objects: dcim.device:1, dcim.device:2"
    assert a.host_key is None and not a.valid
    assert {m.host_key: m.reason for m in report.netbox_only} == {
        "dcim.device:1": "no host yet: the next sync creates it",
        "dcim.device:2": "no host yet: the next sync creates it",
    }


def test_two_zabbix_hosts_for_one_object_neither_is_adoptable() -> None:
    sides = [side("dcim.device:1", "srv-1", "192.0.2.1")]
    report = plan_adoption(sides, {}, [zhost("1", "srv-1"), zhost("2", "other", "192.0.2.1")], ["host", "ip"], {})
    assert [a.reason for a in report.not_adoptable] == ["2 Zabbix hosts match dcim.device:1 (hostids 1, 2)"] * 2
    assert {a.host_key for a in report.not_adoptable} == {"dcim.device:1"}
    assert report.adoptable == []


def test_reasons_out_of_scope_not_synced_owned_name_taken() -> None:
    out = plan_adoption([side("dcim.device:1", "s1", "", in_scope=False)], {}, [zhost("1", "s1")], ALL, {})
    assert out.not_adoptable[0].reason == "dcim.device:1 is out of scope"
    assert out.netbox_only == [], "out of scope objects are not in the reverse list"

    skipped = NetBoxSide(host_key="dcim.device:2", name="s2", not_synced="status 'decommissioning' maps to delete")
    nos = plan_adoption([skipped], {}, [zhost("2", "s2")], ALL, {})
    assert nos.not_adoptable[0].reason == "dcim.device:2 is not synced: status 'decommissioning' maps to delete"

    owned = {"dcim.device:3": zhost("30", "s3", tags=[("netbox:key", "dcim.device:3")])}
    dup = plan_adoption(
        [side("dcim.device:3", "s3", "192.0.2.3")], owned, [zhost("31", "old-s3", "192.0.2.3")], ALL, {}
    )
    assert dup.not_adoptable[0].reason == "dcim.device:3 already has Zabbix host 's3' (hostid 30)"

    taken = plan_adoption(
        [side("dcim.device:4", "s4", "192.0.2.4")],
        {},
        [zhost("40", "old-s4", "192.0.2.4"), zhost("41", "s4x")],
        ALL,
        {},
    )
    assert taken.adoptable[0].hostid == "40"
    clash = plan_adoption(
        [side("dcim.device:4", "s4", "192.0.2.4")],
        {"dcim.device:9": zhost("49", "s4", tags=[("netbox:key", "dcim.device:9")])},
        [zhost("40", "old-s4", "192.0.2.4")],
        ["ip"],
        {},
    )
    assert clash.not_adoptable[0].reason == "the name 's4' NetBox wants is taken by Zabbix hostid 49"


def test_interface_type_mismatch() -> None:
    report = plan_adoption(
        [side("dcim.device:1", "sw-1", "192.0.2.1")], {}, [zhost("1", "sw-1", "192.0.2.1", itype=SNMP)], ALL, {}
    )
    assert report.not_adoptable[0].reason == (
        "interface type mismatch: Zabbix has SNMP, NetBox wants agent (items on it would break)"
    )


def test_template_conflicts() -> None:
    keys = {
        "Linux by Zabbix agent": frozenset({"system.cpu.load", "agent.ping"}),
        "Old Linux": frozenset({"agent.ping"}),
    }
    assert template_conflict(["Old Linux"], ["Linux by Zabbix agent"], keys) == (
        "template 'Linux by Zabbix agent' would conflict with 'Old Linux' (both have item key 'agent.ping')"
    )
    assert template_conflict(["Linux by Zabbix agent"], ["Linux by Zabbix agent"], keys) == ""
    assert template_conflict([], ["Missing"], keys) == "template 'Missing' does not exist in Zabbix"
    s = side("dcim.device:1", "srv-1", "192.0.2.1", templates=("Linux by Zabbix agent",))
    report = plan_adoption([s], {}, [zhost("1", "srv-1", "192.0.2.1", templates=["Old Linux"])], ALL, keys)
    assert report.not_adoptable[0].reason.startswith("template 'Linux by Zabbix agent' would conflict")


def test_zabbix_only_and_netbox_only() -> None:
    sides = [
        side("dcim.device:1", "srv-1", "192.0.2.1"),
        NetBoxSide(host_key="dcim.device:2", name="srv-2", not_synced="no primary IP and require_primary_ip is set"),
    ]
    owned = {"dcim.device:1": zhost("10", "srv-1", tags=[("netbox:key", "dcim.device:1")])}
    report = plan_adoption(sides, owned, [zhost("99", "Zabbix server", "127.0.0.1")], ALL, {})
    assert [a.host for a in report.zabbix_only] == ["Zabbix server"]
    assert [(m.host_key, m.reason) for m in report.netbox_only] == [
        ("dcim.device:2", "no primary IP and require_primary_ip is set")
    ]
