"""Dependency fan-out: a change to a site, role, tag, ... becomes one SyncRequest per host using it."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from nbzx.common.logging import get_logger
from nbzx.core.model import OWNER_TAG, URL_TAG, ActualHost
from nbzx.engine.netbox import NetBox, NetBoxError
from nbzx.engine.zabbix import Zabbix
from nbzx.schemas.messages import ChangeEvent

log = get_logger(component="fanout")

# object type -> (device filter, VM filter); None where that kind of host cannot depend on it.
DEPENDENCY_FILTERS: dict[str, tuple[str | None, str | None]] = {
    "dcim.site": ("site_id", "site_id"),
    "dcim.region": ("region_id", "region_id"),
    "dcim.sitegroup": ("site_group_id", "site_group_id"),
    "dcim.location": ("location_id", None),
    "dcim.devicerole": ("role_id", "role_id"),
    "dcim.platform": ("platform_id", "platform_id"),
    "dcim.devicetype": ("device_type_id", None),
    "dcim.manufacturer": ("manufacturer_id", None),
    "dcim.virtualchassis": ("virtual_chassis_id", None),
    "tenancy.tenant": ("tenant_id", "tenant_id"),
    "tenancy.tenantgroup": ("tenant_group_id", "tenant_group_id"),
    "virtualization.cluster": ("cluster_id", "cluster_id"),
    "virtualization.clustergroup": ("cluster_group_id", "cluster_group_id"),
    "extras.tag": ("tag", "tag"),
}
GEOGRAPHY_TYPES = frozenset({"dcim.site", "dcim.region", "dcim.sitegroup"})
# Config context assignment criteria -> host filter, most selective first.
_CONTEXT_CRITERIA = (
    ("tags", "tag", "slug"),
    ("clusters", "cluster_id", "id"),
    ("device_types", "device_type_id", "id"),
    ("platforms", "platform_id", "id"),
    ("roles", "role_id", "id"),
    ("locations", "location_id", "id"),
    ("sites", "site_id", "id"),
    ("site_groups", "site_group_id", "id"),
    ("regions", "region_id", "id"),
    ("tenants", "tenant_id", "id"),
    ("tenant_groups", "tenant_group_id", "id"),
    ("cluster_groups", "cluster_group_id", "id"),
)


def fanout_filters(ev: ChangeEvent) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """NetBox filters (devices, VMs) that find every host depending on the changed object. Pure.

    A config context is matched on its first non-empty assignment criterion, old or new (a superset
    of the hosts it applies to: syncing a host that did not change is a no-op); none means all hosts.
    """
    body = ev.body_json()
    if ev.object_type == "extras.configcontext":
        return _context_filters(body)
    if ev.object_type not in DEPENDENCY_FILTERS:
        return None, None
    dev_key, vm_key = DEPENDENCY_FILTERS[ev.object_type]
    value: Any = ev.object_id
    if ev.object_type == "extras.tag":
        slugs = _identifiers(body, "slug")
        if not slugs:
            return None, None
        value = sorted(slugs)
    return ({dev_key: value} if dev_key else None), ({vm_key: value} if vm_key else None)


def _context_filters(body: dict[str, Any]) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    data = body.get("data") if isinstance(body.get("data"), Mapping) else {}
    pre = (body.get("snapshots") or {}).get("prechange") or {}
    for field_name, param, attr in _CONTEXT_CRITERIA:
        values: set[Any] = set()
        for side in (data, pre):
            for item in side.get(field_name) or [] if isinstance(side, Mapping) else []:
                values.add(item.get(attr) if isinstance(item, Mapping) else item)
        values.discard(None)
        if values:
            vm_ok = param not in ("device_type_id", "location_id")
            return {param: sorted(values)}, ({param: sorted(values)} if vm_ok else None)
    return {}, {}


async def dependent_host_keys(netbox: NetBox, servers: Sequence[Zabbix], ev: ChangeEvent) -> list[str]:
    """The hosts that depend on the changed object: in-scope ones from NetBox; for a tag also the
    Zabbix hosts we own (on any server) that still carry it; and for an object NetBox no longer knows
    (deleted, or a filter on it refused), the hosts we own that carry its name or slug in a tag. Never
    an error for a dependency that is gone: the periodic reconcile catches what no tag shows. A site,
    region or site group change also drops the cached geography routes by region are decided on."""
    if ev.object_type in GEOGRAPHY_TYPES:
        netbox.forget_geography()
    dev_filter, vm_filter = fanout_filters(ev)
    keys: set[str] = set()
    gone = ev.event == "deleted"
    for object_type, flt in (("dcim.device", dev_filter), ("virtualization.virtualmachine", vm_filter)):
        if flt is None:
            continue
        try:
            keys.update(f"{object_type}:{i}" for i in await netbox.ids(object_type, flt))
        except NetBoxError as exc:
            if exc.status != 400:
                raise
            gone = True  # NetBox refuses a filter on an object it no longer has
    body = ev.body_json()
    names = _identifiers(body, "name")
    if ev.object_type == "extras.tag":
        for tagged in await asyncio.gather(*(z.host_keys_with_tag("netbox:tag", sorted(names)) for z in servers)):
            keys.update(tagged)
    if gone:
        owned: dict[str, ActualHost] = {}
        for hosts in await asyncio.gather(*(z.all_owned_hosts() for z in servers)):
            owned.update(hosts)
        carried = hosts_carrying(owned, names | _identifiers(body, "slug"))
        log.info("fanout_dependency_gone", dependency=ev.host_key, hosts=len(carried))
        keys.update(carried)
    return sorted(keys)


def hosts_carrying(owned: Mapping[str, ActualHost], values: set[str]) -> list[str]:
    """Keys of owned hosts with a tag whose value is one of `values` (other than our own `netbox:key`
    and `netbox:url`, whose values are never a name). Pure."""
    return sorted(k for k, h in owned.items() if any(v in values for t, v in h.tags if t not in (OWNER_TAG, URL_TAG)))


def _identifiers(body: Mapping[str, Any], attr: str) -> set[str]:
    """`attr` (name or slug) of the object, before and after the change."""
    sides = (body.get("data"), (body.get("snapshots") or {}).get("prechange"))
    return {str(s[attr]) for s in sides if isinstance(s, Mapping) and s.get(attr)}
