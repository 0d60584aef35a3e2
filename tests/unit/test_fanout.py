"""Dependency fan-out: which NetBox filters find the hosts that use a changed object."""

from __future__ import annotations

import json
from typing import Any

from nbzx.core.webhook import normalise
from nbzx.engine.fanout import fanout_filters
from nbzx.engine.netbox import merge_filters


def event(object_type: str, object_id: int, data: dict[str, Any], pre: dict[str, Any] | None = None) -> Any:
    body = {
        "event": "updated",
        "object_type": object_type,
        "data": {"id": object_id, **data},
        "snapshots": {"prechange": pre, "postchange": {}},
    }
    return normalise(json.loads(json.dumps(body)))


def test_site_role_platform_tenant_cluster() -> None:
    assert fanout_filters(event("dcim.site", 3, {})) == ({"site_id": 3}, {"site_id": 3})
    assert fanout_filters(event("dcim.devicerole", 4, {})) == ({"role_id": 4}, {"role_id": 4})
    assert fanout_filters(event("dcim.devicetype", 5, {})) == ({"device_type_id": 5}, None)
    assert fanout_filters(event("virtualization.cluster", 6, {})) == ({"cluster_id": 6}, {"cluster_id": 6})
    assert fanout_filters(event("tenancy.tenant", 7, {})) == ({"tenant_id": 7}, {"tenant_id": 7})


def test_a_renamed_tag_fans_out_on_its_old_and_new_slug() -> None:
    ev = event("extras.tag", 2, {"slug": "gold", "name": "gold"}, pre={"slug": "silver", "name": "silver"})
    assert fanout_filters(ev) == ({"tag": ["gold", "silver"]}, {"tag": ["gold", "silver"]})


def test_config_context_uses_its_first_criterion_or_everything() -> None:
    ev = event("extras.configcontext", 9, {"roles": [{"id": 4}], "sites": [{"id": 1}], "tags": []})
    assert fanout_filters(ev) == ({"role_id": [4]}, {"role_id": [4]})
    assert fanout_filters(event("extras.configcontext", 9, {"roles": [], "sites": []})) == ({}, {})


def test_not_a_dependency() -> None:
    assert fanout_filters(event("circuits.circuit", 1, {})) == (None, None)


def test_scope_and_fanout_filters_combine() -> None:
    assert merge_filters({"tag": ["monitored"], "status": ["active"]}, {"tag": ["gold"]}) == {
        "tag": ["monitored", "gold"],
        "status": ["active"],
    }
    assert merge_filters({}, {"site_id": 3}) == {"site_id": 3}
