"""diff: desired vs actual -> the minimal plan; and the delete policies."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nbzx.common.config import DeleteConfig
from nbzx.core.diff import create_changes, macro_description, plan_absent, plan_sync
from nbzx.core.model import AGENT, SNMP, DesiredHost, Interface, Macro
from nbzx.core.zabbix_payloads import normalise_host
from nbzx.core.zabbix_versions import capabilities

V60 = capabilities("6.0.14")


def zabbix_row(changes: dict[str, Any], hostid: str = "10500") -> dict[str, Any]:
    """What host.get returns after a host.create with these (name-level) changes, as Zabbix 6.0 shapes it:
    strings everywhere, agent details as [], secret macros without a value, no PSK."""
    return {
        "hostid": hostid,
        "host": changes["host"],
        "name": changes["name"],
        "status": str(changes["status"]),
        "description": changes.get("description", ""),
        "inventory_mode": str(changes.get("inventory_mode", -1)),
        "proxy_hostid": "0",
        "groups": [{"groupid": str(i), "name": g} for i, g in enumerate(changes["groups"])],
        "parentTemplates": [{"templateid": str(i), "name": t} for i, t in enumerate(changes.get("templates", []))],
        "interfaces": [
            {
                "interfaceid": str(900 + n),
                "type": str(i["type"]),
                "main": str(i["main"]),
                "useip": str(i["useip"]),
                "ip": i["ip"],
                "dns": i["dns"],
                "port": i["port"],
                "details": {k: str(v) for k, v in i["details"].items()} if i.get("details") else [],
            }
            for n, i in enumerate(changes.get("interfaces", []))
        ],
        "tags": changes.get("tags", []),
        "macros": [
            {
                "hostmacroid": str(700 + n),
                "macro": m["macro"],
                "type": str(m["type"]),
                "description": m["description"],
                **({} if m["type"] == 1 else {"value": m["value"]}),
            }
            for n, m in enumerate(changes.get("macros", []))
        ],
        "inventory": dict(changes.get("inventory", {})) if changes.get("inventory_mode", -1) != -1 else [],
        # Agent encryption as host.get returns it: the PSK identity and key are write-only.
        "tls_connect": str(changes.get("tls_connect", 1)),
        "tls_accept": str(changes.get("tls_accept", 1)),
        "tls_issuer": changes.get("tls_issuer", ""),
        "tls_subject": changes.get("tls_subject", ""),
    }


def actual_of(d: DesiredHost) -> Any:
    return normalise_host(V60, zabbix_row(create_changes(d)), {})


BASE = DesiredHost(
    host_key="dcim.device:1",
    host="srv-01",
    name="srv 01",
    status=0,
    groups=("NetBox/Lab",),
    templates=("ICMP Ping",),
    interfaces=(Interface(type=AGENT, ip="192.0.2.10"),),
    tags=(("netbox:key", "dcim.device:1"), ("site", "lab")),
    macros=(Macro(macro="{$A}", value="1"), Macro(macro="{$PW}", value="s3cret", secret=True)),
    inventory_mode=1,
    inventory=(("serialno_a", "SN1"),),
    description="d",
    managed_tag_names=frozenset({"site"}),
    managed_templates=frozenset({"ICMP Ping", "Linux by Zabbix agent"}),
    managed_macros=frozenset({"{$A}", "{$PW}"}),
)


def test_unchanged_host_is_a_noop() -> None:
    assert plan_sync(BASE, actual_of(BASE)).action == "noop"


def test_no_host_is_a_create_with_everything() -> None:
    plan = plan_sync(BASE, None)
    assert plan.action == "create"
    assert plan.changes["tags"][0] == {"tag": "netbox:key", "value": "dcim.device:1"}
    assert plan.changes["macros"][1] == {
        "macro": "{$PW}",
        "value": "s3cret",
        "type": 1,
        "description": macro_description(BASE.macros[1]),
    }


@pytest.mark.parametrize(
    ("change", "expected_keys"),
    [
        ({"host": "srv-02"}, {"host"}),
        ({"name": "renamed"}, {"name"}),
        ({"status": 1}, {"status"}),
        ({"description": "new"}, {"description"}),
        ({"groups": ("NetBox/Lab", "NetBox/Other")}, {"groups"}),
        ({"templates": ("ICMP Ping", "Linux by Zabbix agent")}, {"templates"}),
        ({"templates": ()}, {"templates", "templates_clear"}),
        ({"interfaces": (Interface(type=AGENT, ip="192.0.2.11"),)}, {"interfaces"}),
        ({"tags": (("netbox:key", "dcim.device:1"), ("site", "other"))}, {"tags"}),
        ({"macros": (Macro(macro="{$A}", value="2"), BASE.macros[1])}, {"macros"}),
        ({"macros": (BASE.macros[0], Macro(macro="{$PW}", value="rotated", secret=True))}, {"macros"}),
        ({"inventory": (("serialno_a", "SN2"),)}, {"inventory"}),
        ({"inventory_mode": 0}, {"inventory_mode"}),
    ],
)
def test_exactly_one_attribute_differs(change: dict[str, Any], expected_keys: set[str]) -> None:
    actual = actual_of(BASE)
    desired = msgspec.structs.replace(BASE, **change)
    plan = plan_sync(desired, actual)
    assert plan.action == "update" and plan.hostid == "10500"
    assert set(plan.changes) == expected_keys


def test_interface_change_keeps_the_interface_id() -> None:
    desired = msgspec.structs.replace(BASE, interfaces=(Interface(type=AGENT, ip="192.0.2.99"),))
    [iface] = plan_sync(desired, actual_of(BASE)).changes["interfaces"]
    assert iface["interfaceid"] == "900" and iface["ip"] == "192.0.2.99"


def test_agent_to_snmp_replaces_the_interface_and_clears_templates() -> None:
    snmp = Interface(
        type=SNMP, ip="192.0.2.10", port="161", details=(("bulk", "1"), ("community", "c"), ("version", "2"))
    )
    desired = msgspec.structs.replace(BASE, interfaces=(snmp,), templates=("Linux by Zabbix agent",))
    plan = plan_sync(desired, actual_of(BASE))
    assert plan.changes["interfaces"] == [
        {
            "type": 2,
            "main": 1,
            "useip": 1,
            "ip": "192.0.2.10",
            "dns": "",
            "port": "161",
            "details": {"bulk": "1", "community": "c", "version": "2"},
        }
    ]
    assert plan.changes["templates_clear"] == ["ICMP Ping"]
    assert plan.changes["templates"] == ["Linux by Zabbix agent"]


def test_hand_added_groups_tags_templates_and_macros_stay() -> None:
    row = zabbix_row(create_changes(BASE))
    row["groups"].append({"groupid": "77", "name": "Team/Hand made"})
    row["tags"].append({"tag": "owner", "value": "alice"})
    row["parentTemplates"].append({"templateid": "88", "name": "Custom template"})
    row["macros"].append({"hostmacroid": "799", "macro": "{$HAND}", "value": "x", "type": "0", "description": ""})
    actual = normalise_host(V60, row, {})
    assert plan_sync(BASE, actual).action == "noop"
    desired = msgspec.structs.replace(
        BASE, groups=("NetBox/Moved",), tags=(("netbox:key", "dcim.device:1"),), templates=(), macros=(BASE.macros[0],)
    )
    ch = plan_sync(desired, actual).changes
    assert ch["groups"] == ["NetBox/Moved", "Team/Hand made"]
    assert {"tag": "owner", "value": "alice"} in ch["tags"] and {"tag": "site", "value": "lab"} not in ch["tags"]
    assert ch["templates"] == ["Custom template"] and ch["templates_clear"] == ["ICMP Ping"]
    assert {"hostmacroid": "799"} in ch["macros"] and all(m.get("macro") != "{$PW}" for m in ch["macros"])


def test_authoritative_groups_remove_hand_added_ones() -> None:
    row = zabbix_row(create_changes(BASE))
    row["groups"].append({"groupid": "77", "name": "Team/Hand made"})
    desired = msgspec.structs.replace(BASE, authoritative=frozenset({"groups"}))
    assert plan_sync(desired, normalise_host(V60, row, {})).changes == {"groups": ["NetBox/Lab"]}


def test_delete_policies() -> None:
    actual = actual_of(BASE)
    hard = plan_absent("dcim.device:1", actual, DeleteConfig(mode="hard"), "2026-11-23", "gone")
    assert (hard.action, hard.hostid) == ("delete", "10500")
    disable = plan_absent("dcim.device:1", actual, DeleteConfig(mode="disable"), "2026-11-23", "gone")
    assert (
        disable.changes["status"] == 1 and {"tag": "netbox:deleted", "value": "2026-11-23"} in disable.changes["tags"]
    )
    soft = plan_absent("dcim.device:1", actual, DeleteConfig(mode="soft"), "2026-11-23", "gone")
    assert soft.changes["host"] == "srv-01_archived_20261123"
    assert soft.changes["name"] == "srv 01 (archived 2026-11-23)"
    assert soft.changes["groups"] == ["NetBox/Archived"] and soft.changes["status"] == 1
    assert plan_absent("dcim.device:1", None, DeleteConfig(), "2026-11-23", "gone").action == "noop"


def test_soft_delete_is_idempotent_and_resurrection_restores_the_host() -> None:
    soft = plan_absent("dcim.device:1", actual_of(BASE), DeleteConfig(mode="soft"), "2026-11-23", "gone")
    archived_row = zabbix_row({**create_changes(BASE), **soft.changes})
    archived = normalise_host(V60, archived_row, {})
    assert archived.deleted_on == "2026-11-23"
    again = plan_absent("dcim.device:1", archived, DeleteConfig(mode="soft"), "2026-11-24", "gone")
    assert again.action == "noop"
    grace = DeleteConfig(mode="soft", grace="30d")
    assert plan_absent("dcim.device:1", archived, grace, "2026-12-22", "gone").action == "noop", "29 days"
    late = plan_absent("dcim.device:1", archived, grace, "2026-12-23", "gone")
    assert (late.action, late.hostid, late.removes) == ("delete", "10500", True), "past the grace: hard delete"
    back = plan_sync(BASE, archived)
    assert back.action == "update" and back.hostid == "10500"
    assert {"host", "name", "status", "groups", "tags"} <= set(back.changes)
    assert all(t["tag"] != "netbox:deleted" for t in back.changes["tags"])


# ---- property: after applying the plan, the diff is empty ----

_name = st.text("abcdefghij-_. 0123456789", min_size=1, max_size=12).map(str.strip).filter(bool)
_iface = st.builds(
    Interface,
    type=st.sampled_from([AGENT, SNMP]),
    ip=st.sampled_from(["192.0.2.1", "198.51.100.7", "2001:db8::1"]),
    port=st.sampled_from(["10050", "161", "1161"]),
    details=st.just(()),
).map(
    lambda i: (
        msgspec.structs.replace(i, details=(("bulk", "1"), ("community", "c"), ("version", "2")))
        if i.type == SNMP
        else i
    )
)
_macro = st.builds(
    Macro,
    macro=st.sampled_from(["{$A}", "{$B}", "{$C}"]),
    value=_name,
    secret=st.booleans(),
    description=st.sampled_from(["", "note"]),
)


@st.composite
def desired_hosts(draw: Any) -> DesiredHost:
    ifaces = draw(st.lists(_iface, max_size=2, unique_by=lambda i: i.type))
    macros = draw(st.lists(_macro, max_size=3, unique_by=lambda m: m.macro))
    inventory_mode = draw(st.sampled_from([-1, 0, 1]))
    return DesiredHost(
        host_key="dcim.device:7",
        host=draw(_name),
        name=draw(_name),
        status=draw(st.sampled_from([0, 1])),
        groups=tuple(sorted(set(draw(st.lists(_name.map(lambda n: f"NetBox/{n}"), min_size=1, max_size=3))))),
        templates=tuple(
            sorted(set(draw(st.lists(st.sampled_from(["ICMP Ping", "Linux by Zabbix agent"]), max_size=2))))
        ),
        interfaces=tuple(sorted(ifaces)),
        tags=tuple(sorted({("netbox:key", "dcim.device:7"), *draw(st.lists(st.tuples(_name, _name), max_size=3))})),
        macros=tuple(sorted(macros)),
        inventory_mode=inventory_mode,
        inventory=tuple(sorted(draw(st.dictionaries(st.sampled_from(["serialno_a", "location"]), _name)).items()))
        if inventory_mode != -1
        else (),
        description=draw(st.sampled_from(["", "x"])),
    )


@settings(max_examples=300, deadline=None)
@given(desired_hosts())
def test_diff_after_create_is_empty(d: DesiredHost) -> None:
    d = msgspec.structs.replace(d, managed_tag_names=frozenset(t for t, _ in d.tags))
    assert plan_sync(d, actual_of(d)).action == "noop"


@settings(max_examples=300, deadline=None)
@given(desired_hosts(), desired_hosts())
def test_diff_after_update_is_empty(before: DesiredHost, after: DesiredHost) -> None:
    managed = frozenset(t for t, _ in before.tags + after.tags)
    before = msgspec.structs.replace(before, managed_tag_names=managed)
    after = msgspec.structs.replace(
        after,
        managed_tag_names=managed,
        managed_templates=frozenset(before.templates + after.templates),
        managed_macros=frozenset(m.macro for m in before.macros + after.macros),
    )
    actual = actual_of(before)
    plan = plan_sync(after, actual)
    if plan.action == "noop":
        return
    # What Zabbix holds after host.update: the create row with the changed fields replaced.
    row_changes = {**create_changes(before), **plan.changes}
    row_changes.pop("templates_clear", None)
    if "inventory" in plan.changes:
        row_changes["inventory"] = {**dict(before.inventory), **plan.changes["inventory"]}
    if "macros" in plan.changes:  # kept-by-id entries are someone else's; none here
        row_changes["macros"] = [m for m in plan.changes["macros"] if "macro" in m]
    assert plan_sync(after, normalise_host(V60, zabbix_row(row_changes), {})).action == "noop"


# ---- maintenance windows ----


def test_maintenance_op() -> None:
    from nbzx.core.model import Window, maintenance_op

    live, old = Window(maintenanceid="7", active_till=2000), Window(maintenanceid="8", active_till=500)
    assert maintenance_op(True, None, 1000) == ("start", None)
    assert maintenance_op(True, live, 1000) == (None, None), "an active window of ours is enough"
    assert maintenance_op(True, old, 1000) == ("start", "8"), "an expired one is replaced"
    assert maintenance_op(False, live, 1000) == ("end", "7")
    assert maintenance_op(False, None, 1000) == (None, None)
