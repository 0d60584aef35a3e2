"""Grouping plans into as few Zabbix write calls as possible (pure)."""

from __future__ import annotations

from typing import Any

from nbzx.core.batch import group_writes
from nbzx.core.model import Plan


def update(n: int, **changes: Any) -> Plan:
    return Plan(host_key=f"dcim.device:{n}", action="update", hostid=str(10000 + n), changes=changes)


def create(n: int) -> Plan:
    return Plan(host_key=f"dcim.device:{n}", action="create", changes={"host": f"h{n}", "groups": ["NetBox/a"]})


def kinds(plans: list[Plan], size: int = 100) -> list[tuple[str, list[str]]]:
    return sorted((w.kind, [p.host_key for p in w.plans]) for w in group_writes(plans, size))


def test_creates_share_one_array_call() -> None:
    assert kinds([create(1), create(2), create(3)]) == [("create", ["dcim.device:1", "dcim.device:2", "dcim.device:3"])]


def test_identical_status_changes_become_one_massupdate() -> None:
    plans = [update(i, status=1) for i in range(4)] + [update(9, status=0)]
    assert kinds(plans) == [
        ("massupdate", [f"dcim.device:{i}" for i in range(4)]),
        ("single", ["dcim.device:9"]),
    ]


def test_group_lists_in_any_key_order_still_match() -> None:
    a = update(1, groups=["NetBox/x"], status=1)
    b = update(2, status=1, groups=["NetBox/x"])
    assert kinds([a, b]) == [("massupdate", ["dcim.device:1", "dcim.device:2"])]


def test_per_host_changes_go_into_one_array_update() -> None:
    plans = [update(1, name="a"), update(2, tags=[{"tag": "t", "value": "2"}]), update(3, status=1)]
    assert kinds(plans) == [("update", ["dcim.device:1", "dcim.device:2", "dcim.device:3"])]


def test_deletes_maintenance_and_noops_stay_alone() -> None:
    delete = Plan(host_key="dcim.device:1", action="delete", hostid="1")
    noop = Plan(host_key="dcim.device:2", action="noop", hostid="2")
    maint = Plan(host_key="dcim.device:3", action="update", hostid="3", changes={"status": 0}, maintenance="start")
    conflict = Plan(host_key="dcim.device:4", action="conflict", hostid="4")
    assert [k for k, _ in kinds([delete, noop, maint, conflict, update(5, status=0)])] == ["single"] * 5


def test_batches_are_capped() -> None:
    writes = group_writes([create(i) for i in range(250)], size=100)
    assert sorted(len(w.plans) for w in writes) == [50, 100, 100]
    assert {p.host_key for w in writes for p in w.plans} == {f"dcim.device:{i}" for i in range(250)}
    mass = group_writes([update(i, status=1) for i in range(700)], size=100, mass_size=500)
    assert sorted((w.kind, len(w.plans)) for w in mass) == [("massupdate", 200), ("massupdate", 500)]


def test_without_massupdate_the_same_changes_go_out_as_one_array_update() -> None:
    # Zabbix 8.0 removed host.massupdate: the group that would have been one becomes one array host.update.
    plans = [update(i, status=1) for i in range(4)] + [update(9, name="x")]
    assert sorted((w.kind, len(w.plans)) for w in group_writes(plans, massupdate=False)) == [("update", 5)]
