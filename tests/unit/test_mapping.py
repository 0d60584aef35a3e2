"""map_host: a NetBox device/VM (as the REST API returns it) -> the desired Zabbix host."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from nbzx.common.config import Config, parse_config
from nbzx.core.diff import create_changes
from nbzx.core.mapping import Skip, map_host, matches, render, safe_host_name, secret_digest
from nbzx.core.model import AGENT, IPMI, JMX, SNMP, Interface
from nbzx.core.redact import redacted
from tests.conftest import captures

DEVICE: dict[str, Any] = next(c for c in captures() if c["file"].startswith("05-"))["body"]["data"]
VM: dict[str, Any] = next(c for c in captures() if c["file"].startswith("11-"))["body"]["data"]


def device(**changes: Any) -> dict[str, Any]:
    d = copy.deepcopy(DEVICE)
    d["status"] = {"value": "active", "label": "Active"}
    d.update(changes)
    return d


def cfg(**sections: Any) -> Config:
    return parse_config(json.dumps(sections), {})


def test_defaults_give_an_agent_host_in_the_site_group_with_owner_tags() -> None:
    d = map_host(device(), "dcim.device:1", cfg(), "http://nb/dcim/devices/1/")
    assert (d.host, d.name, d.status) == ("srv-01-renamed", "srv-01-renamed", 0)
    assert d.groups == ("NetBox/Lab Site",)
    assert d.interfaces == (Interface(type=AGENT, ip="192.0.2.10", port="10050"),)
    assert ("netbox:key", "dcim.device:1") in d.tags and ("netbox:url", "http://nb/dcim/devices/1/") in d.tags
    assert ("netbox:tag", "monitored") in d.tags and ("netbox:tag", "zabbix") in d.tags


def test_name_templates_follow_dotted_paths_and_are_made_safe() -> None:
    c = cfg(host={"name": "{site.slug}/{name} ({role.name})", "visible_name": "{name} @ {site.name}"})
    d = map_host(device(), "dcim.device:1", c)
    assert d.host == "lab-site_srv-01-renamed _Server_"
    assert d.name == "srv-01-renamed @ Lab Site"
    assert render("{custom_fields.zabbix_hostid}-{status}-{missing.path}", device()) == "10501-active-"
    assert render("{$SNMP_COMMUNITY}", device()) == "{$SNMP_COMMUNITY}"


def test_safe_host_name_is_deterministic_and_bounded() -> None:
    assert safe_host_name("rtr/01:core#1", "x") == "rtr_01_core_1"
    long = "a" * 300
    assert len(safe_host_name(long, "x")) == 128 and safe_host_name(long, "x") == safe_host_name(long, "x")
    assert safe_host_name("///", "fallback") == "___"
    assert safe_host_name("  ", "fallback") == "fallback"
    assert safe_host_name("ünïcode", "x") == "_n_code"


def test_groups_are_templated_and_include_config_context() -> None:
    c = cfg(host={"groups": ["NetBox/{site.name}", "NetBox/{role.name}", "NetBox/{tenant.name}"]})
    obj = device(config_context={"zabbix": {"groups": ["NetBox/Extra"]}})
    assert map_host(obj, "dcim.device:1", c).groups == ("NetBox/Extra", "NetBox/Lab Site", "NetBox/Server")


@pytest.mark.parametrize(
    ("match", "hit"),
    [
        ({"role": "server"}, True),
        ({"role": "Server"}, True),
        ({"role": ["switch", "server"]}, True),
        ({"role": "switch"}, False),
        ({"platform": "linux"}, True),
        ({"device_type": "acme-1000"}, True),
        ({"manufacturer": "acme"}, True),
        ({"site": "lab-site"}, True),
        ({"tag": "zabbix"}, True),
        ({"tag": "nope"}, False),
        ({"custom_fields.zabbix_hostid": "10501"}, True),
        ({"role": "server", "platform": "windows"}, False),
        ({"status": "active"}, True),
    ],
)
def test_template_rules(match: dict[str, Any], hit: bool) -> None:
    c = cfg(host={"templates": [{"match": match, "templates": ["Linux by Zabbix agent"]}]})
    d = map_host(device(), "dcim.device:1", c)
    assert d.templates == (("Linux by Zabbix agent",) if hit else ())
    assert d.managed_templates == frozenset({"Linux by Zabbix agent"})


def test_templates_from_config_context() -> None:
    obj = device(config_context={"zabbix": {"templates": ["ICMP Ping"]}})
    c = cfg(host={"templates": [{"match": {"role": "server"}, "templates": ["Linux by Zabbix agent"]}]})
    assert map_host(obj, "dcim.device:1", c).templates == ("ICMP Ping", "Linux by Zabbix agent")
    off = cfg(host={"use_config_context": False})
    assert map_host(obj, "dcim.device:1", off).templates == ()


def test_snmp_v2_when_role_matches() -> None:
    c = cfg(host={"interfaces": {"snmp_when": {"role": ["server"]}, "snmp": {"version": 2, "community": "{$C}"}}})
    [iface] = map_host(device(), "dcim.device:1", c).interfaces
    assert (iface.type, iface.port) == (SNMP, "161")
    assert dict(iface.details) == {"version": "2", "bulk": "1", "community": "{$C}"}


def test_snmp_v3_carries_every_parameter() -> None:
    snmp = {
        "version": 3,
        "securityname": "{name}",
        "securitylevel": "authPriv",
        "authprotocol": "SHA256",
        "authpassphrase_env": "AUTH_VAR",
        "privprotocol": "AES256",
        "privpassphrase": "{$SNMPV3_PRIV}",
        "contextname": "ctx",
    }
    c = parse_config(json.dumps({"host": {"interfaces": {"default": "snmp", "snmp": snmp}}}), {"AUTH_VAR": "a-pass"})
    [iface] = map_host(device(), "dcim.device:1", c).interfaces
    assert dict(iface.details) == {
        "version": "3",
        "bulk": "1",
        "securityname": "srv-01-renamed",
        "securitylevel": "2",
        "authprotocol": "3",
        "authpassphrase": "a-pass",
        "privprotocol": "3",
        "privpassphrase": "{$SNMPV3_PRIV}",
        "contextname": "ctx",
    }


def test_snmp_v3_passphrases_from_the_environment() -> None:
    snmp = {"version": 3, "securitylevel": "authPriv", "authpassphrase_env": "A", "privpassphrase_env": "P"}
    c = parse_config(json.dumps({"host": {"interfaces": {"default": "snmp", "snmp": snmp}}}), {"A": "a1", "P": "p1"})
    [iface] = map_host(device(), "dcim.device:1", c).interfaces
    assert (dict(iface.details)["authpassphrase"], dict(iface.details)["privpassphrase"]) == ("a1", "p1")


def test_dns_name_and_ip_family() -> None:
    obj = device()
    obj["primary_ip4"] = {**obj["primary_ip4"], "dns_name": "srv01.example.net"}
    obj["primary_ip"] = obj["primary_ip4"]
    [iface] = map_host(obj, "dcim.device:1", cfg(host={"interfaces": {"use_dns": True}})).interfaces
    assert (iface.useip, iface.dns, iface.ip) == (0, "srv01.example.net", "192.0.2.10")
    obj6 = device(primary_ip6={"address": "2001:db8::10/64", "dns_name": ""})
    [v6] = map_host(obj6, "dcim.device:1", cfg(host={"interfaces": {"ip_family": "ipv6"}})).interfaces
    assert v6.ip == "2001:db8::10"


def test_several_interfaces_from_config_context() -> None:
    ctx = {
        "zabbix": {
            "interfaces": [
                {"type": "agent"},
                {"type": "snmp", "port": 1161, "snmp": {"community": "x"}},
                {"type": "agent", "ip": "198.51.100.1", "port": 10051},
            ]
        }
    }
    ifaces = map_host(device(config_context=ctx), "dcim.device:1", cfg()).interfaces
    assert [(i.type, i.ip, i.port, i.main) for i in ifaces] == [
        (AGENT, "192.0.2.10", "10050", 1),
        (AGENT, "198.51.100.1", "10051", 0),
        (SNMP, "192.0.2.10", "1161", 1),
    ]


def test_no_primary_ip_means_no_interface_or_skip_when_required() -> None:
    obj = device(primary_ip=None, primary_ip4=None)
    assert map_host(obj, "dcim.device:1", cfg()).interfaces == ()
    with pytest.raises(Skip, match="no primary IP"):
        map_host(obj, "dcim.device:1", cfg(scope={"devices": {"require_primary_ip": True}}))


def test_tags_fields_extras_and_context() -> None:
    c = cfg(
        host={
            "tags": {
                "from_netbox_tags": False,
                "fields": {"role": "role.slug", "serial": "serial"},
                "extra": {"site": "{site.slug}"},
            }
        }
    )
    obj = device(config_context={"zabbix": {"tags": {"team": "{tenant.name}net"}}})
    d = map_host(obj, "dcim.device:1", c)
    assert [t for t in d.tags if not t[0].startswith("netbox:")] == [
        ("role", "server"),
        ("serial", ""),
        ("site", "lab-site"),
        ("team", "net"),
    ]
    assert d.managed_tag_names == {"role", "serial", "site", "team"}


def test_inventory_mode_and_fields() -> None:
    c = cfg(host={"inventory": {"mode": "automatic", "fields": {"serialno_a": "{serial}", "location": "{site.name}"}}})
    d = map_host(device(serial="SN1"), "dcim.device:1", c)
    assert d.inventory_mode == 1 and dict(d.inventory) == {"serialno_a": "SN1", "location": "Lab Site"}


def test_macros_text_secret_and_context() -> None:
    macros = {"{$SITE}": {"value": "{site.slug}"}, "{$PW}": {"value_env": "PW_VAR", "secret": True}}
    c = parse_config(json.dumps({"host": {"macros": macros}}), {"PW_VAR": "s3{cr}et"})
    d = map_host(device(config_context={"zabbix": {"macros": {"{$CTX}": 5}}}), "dcim.device:1", c)
    assert [(m.macro, m.value, m.secret) for m in d.macros] == [
        ("{$CTX}", "5", False),
        ("{$PW}", "s3{cr}et", True),  # from the environment as it is: never rendered
        ("{$SITE}", "lab-site", False),
    ]
    assert secret_digest("s3cret") != secret_digest("s3cret2")


def test_proxy_description_and_status_map() -> None:
    c = cfg(host={"proxy": "proxy-{site.slug}", "description": "{description}"})
    d = map_host(device(description="rack 4"), "dcim.device:1", c)
    assert (d.proxy, d.description) == ("proxy-lab-site", "rack 4")
    assert map_host(device(status={"value": "planned"}), "dcim.device:1", cfg()).status == 1
    assert map_host(device(status={"value": "offline"}), "dcim.device:1", cfg()).status == 1
    with pytest.raises(Skip, match="maps to delete"):
        map_host(device(status={"value": "decommissioning"}), "dcim.device:1", cfg())
    maint = map_host(
        device(status={"value": "active"}), "dcim.device:1", cfg(host={"status": {"active": "maintenance"}})
    )
    assert maint.maintenance and maint.status == 0


def test_virtual_machine() -> None:
    vm = copy.deepcopy(VM)
    vm["status"] = {"value": "active"}
    d = map_host(vm, "virtualization.virtualmachine:1", cfg(host={"groups": ["NetBox/VMs/{cluster.name}"]}))
    assert d.host == "vm-01" and d.groups == ("NetBox/VMs/kvm-cluster-1",) and d.interfaces == ()
    with pytest.raises(Skip):
        map_host(vm, "virtualization.virtualmachine:1", cfg(scope={"virtual_machines": {"enabled": False}}))


def test_maintenance_by_status_or_tag() -> None:
    by_status = cfg(host={"status": {"active": "maintenance"}})
    assert map_host(device(), "dcim.device:1", by_status).maintenance
    by_tag = cfg(host={"maintenance": {"tags": ["zabbix"]}})
    assert map_host(device(), "dcim.device:1", by_tag).maintenance
    assert not map_host(device(), "dcim.device:1", cfg()).maintenance


def test_virtual_chassis_as_one_host_is_named_after_the_chassis_on_the_master() -> None:
    vc = {"id": 3, "name": "core-stack", "master": {"id": 1, "name": "sw-1"}}
    one = cfg(receiver={"virtual_chassis_as_one_host": True})
    master = map_host(device(name="sw-1", virtual_chassis=vc), "dcim.device:1", one)
    assert (master.host, master.name) == ("core-stack", "core-stack")
    with pytest.raises(Skip, match="virtual chassis 'core-stack'"):
        map_host(device(name="sw-2", virtual_chassis=vc), "dcim.device:2", one)
    apart = map_host(device(name="sw-2", virtual_chassis=vc), "dcim.device:2", cfg())
    assert apart.host == "sw-2", "by default every member is its own host"


def test_a_proxy_group_wins_where_zabbix_has_groups_and_the_proxy_is_the_fallback_on_60() -> None:
    from nbzx.core.planner import plan_host

    conf = cfg(host={"proxy": "px-{site.slug}", "proxy_group": "pg-main"})
    obj = device(config_context={})
    d = map_host(obj, "dcim.device:1", conf, "")
    assert (d.proxy, d.proxy_group) == ("px-lab-site", "pg-main")
    on_70 = plan_host("dcim.device:1", obj, None, {}, conf, "2026-11-29", proxy_groups=True)
    on_60 = plan_host("dcim.device:1", obj, None, {}, conf, "2026-11-29", proxy_groups=False)
    assert (on_70.changes.get("proxy"), on_70.changes["proxy_group"]) == (None, "pg-main")
    assert (on_60.changes["proxy"], on_60.changes.get("proxy_group")) == ("px-lab-site", None)


def test_a_config_context_proxy_or_proxy_group_overrides_the_global_one() -> None:
    conf = cfg(host={"proxy_group": "pg-main"})
    mine = map_host(device(config_context={"zabbix": {"proxy": "px-9"}}), "dcim.device:1", conf, "")
    assert (mine.proxy, mine.proxy_group) == ("px-9", None)
    group = map_host(device(config_context={"zabbix": {"proxy_group": "pg-{site.slug}"}}), "dcim.device:1", conf, "")
    assert (group.proxy, group.proxy_group) == (None, "pg-lab-site")


def test_ipmi_and_jmx_interfaces_and_one_on_the_out_of_band_ip() -> None:
    obj = device(oob_ip={"id": 9, "address": "10.99.0.10/24", "dns_name": "srv01-bmc.example.net"})
    c = cfg(host={"interfaces": {"extra": [{"type": "ipmi", "address": "oob"}, {"type": "jmx"}]}})
    ifaces = map_host(obj, "dcim.device:1", c).interfaces
    assert [(i.type, i.ip, i.port, i.main, i.useip) for i in ifaces] == [
        (AGENT, "192.0.2.10", "10050", 1, 1),
        (IPMI, "10.99.0.10", "623", 1, 1),
        (JMX, "192.0.2.10", "12345", 1, 1),
    ]


def test_ipmi_access_from_config_and_config_context_with_the_password_from_the_environment() -> None:
    ipmi = {"authtype": "md5", "privilege": "operator", "username": "{name}", "password_env": "NBZX_IPMI_PASSWORD"}
    c = parse_config(json.dumps({"host": {"interfaces": {"ipmi": ipmi}}}), {"NBZX_IPMI_PASSWORD": "s3cret"})
    d = map_host(device(), "dcim.device:1", c)
    assert (d.ipmi_authtype, d.ipmi_privilege, d.ipmi_username, d.ipmi_password) == (2, 3, "srv-01-renamed", "s3cret")
    ctx = {"zabbix": {"ipmi": {"authtype": "RMCP+", "privilege": "admin", "username": "bmc"}}}
    d2 = map_host(device(config_context=ctx), "dcim.device:1", c)
    assert (d2.ipmi_authtype, d2.ipmi_privilege, d2.ipmi_username, d2.ipmi_password) == (6, 4, "bmc", "s3cret")
    plain = map_host(device(), "dcim.device:1", cfg())
    assert (plain.ipmi_authtype, plain.ipmi_privilege, plain.ipmi_username, plain.ipmi_password) == (-1, 2, "", "")
    with pytest.raises(ValueError, match="authtype 'md4'"):
        map_host(device(config_context={"zabbix": {"ipmi": {"authtype": "md4"}}}), "dcim.device:1", c)
    assert redacted(create_changes(d))["ipmi_password"] == "********"
    assert "ipmi_authtype" not in create_changes(plain), "defaults are not written"


def test_an_interface_on_a_missing_out_of_band_ip_is_left_out() -> None:
    c = cfg(host={"interfaces": {"extra": [{"type": "ipmi", "address": "oob"}]}})
    assert [i.type for i in map_host(device(oob_ip=None), "dcim.device:1", c).interfaces] == [AGENT]


def test_dns_or_ip_per_interface_and_exactly_one_main_per_type() -> None:
    oob = {"id": 9, "address": "10.99.0.10/24", "dns_name": "bmc.example.net"}
    ctx = {
        "zabbix": {
            "interfaces": [
                {"type": "ipmi", "address": "oob", "use_dns": True, "port": 6230},
                {"type": "jmx", "port": 9010},
                {"type": "jmx", "port": 9011},
                {"type": 4, "ip": "198.51.100.7"},
            ]
        }
    }
    ifaces = map_host(device(oob_ip=oob, config_context=ctx), "dcim.device:1", cfg()).interfaces
    assert [(i.type, i.ip, i.dns, i.useip, i.port, i.main) for i in ifaces] == [
        (IPMI, "10.99.0.10", "bmc.example.net", 0, "6230", 1),
        (JMX, "192.0.2.10", "", 1, "9010", 1),
        (JMX, "192.0.2.10", "", 1, "9011", 0),
        (JMX, "198.51.100.7", "", 1, "12345", 0),
    ]


def test_an_unknown_interface_type_is_a_planning_error_not_an_agent() -> None:
    ctx = {"zabbix": {"interfaces": [{"type": "telnet"}]}}
    with pytest.raises(ValueError, match="interface type 'telnet'"):
        map_host(device(config_context=ctx), "dcim.device:1", cfg())


@pytest.mark.parametrize(
    ("env", "tiers"),
    [
        ("prod", ["gold", "silver"]),  # NetBox before 4.7: selection custom fields as their values
        (
            {"value": "prod", "label": "Production"},
            [{"value": "gold", "label": "Gold"}, {"value": "silver", "label": "Silver"}],
        ),
    ],
    ids=["plain", "netbox-4.7-value-label"],
)
def test_selection_custom_fields_in_both_shapes(env: Any, tiers: Any) -> None:
    obj = device(custom_fields={"env": env, "tiers": tiers})
    c = cfg(
        host={
            "groups": ["NetBox/{custom_fields.env}", "Tiers/{custom_fields.tiers}"],
            "templates": [{"match": {"custom_fields.env": "prod"}, "templates": ["ICMP Ping"]}],
        }
    )
    d = map_host(obj, "dcim.device:1", c)
    assert d.groups == ("NetBox/prod", "Tiers/gold,silver")
    assert d.templates == ("ICMP Ping",)
    assert matches({"custom_fields.tiers": ["silver"]}, obj)
    assert not matches({"custom_fields.env": "dev"}, obj)


def test_a_rule_may_name_a_selection_by_its_label_in_netbox_4_7() -> None:
    obj = device(custom_fields={"env": {"value": "prod", "label": "Production"}})
    assert matches({"custom_fields.env": "Production"}, obj)
    assert render("{custom_fields.env} / {custom_fields.env.label}", obj) == "prod / Production"
