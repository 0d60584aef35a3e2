"""The planner: everything about one host key is decided here, from what both sides hold. Pure.

Create, update, delete (with its grace), adoption of a same-named host, conflicts, out-of-scope policy
and the maintenance window: `plan_host` is the only place that chooses (docs/DESIGN.md §3). The engine
reads the two sides and applies the plan; `SyncResult` is what applying it came to.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import msgspec

from nbzx.common.config import Config
from nbzx.core.diff import plan_absent, plan_sync
from nbzx.core.mapping import Skip, map_host
from nbzx.core.model import OUT_OF_SCOPE, ActualHost, DesiredHost, Found, NotRouted, Plan, Window, maintenance_op
from nbzx.schemas.objects import ENDPOINTS


class SyncResult(msgspec.Struct, kw_only=True):
    """What happened to one host key."""

    host_key: str
    action: str
    result: str  # ok | error | conflict | skipped
    hostid: str | None = None
    host: str = ""
    changed: list[str] = msgspec.field(default_factory=list)
    reason: str = ""
    error: str | None = None
    transient: bool = False
    removes: bool = False  # the delete policy took (or keeps) this host away
    in_netbox: bool = True  # False when the key's object is gone from NetBox
    custom_fields: dict[str, Any] | None = None  # the object's custom fields as read (None: not read in scope)
    server: str = ""  # the Zabbix server (after merging: the servers the key is routed to, comma-separated)
    servers: dict[str, str] = msgspec.field(default_factory=dict)  # server -> hostid where the host is kept
    failed_on: list[str] = msgspec.field(default_factory=list)  # servers it failed on (none: not one server's)


def today_utc() -> str:
    """Today's date in UTC, as the delete policy stamps it."""
    return datetime.now(UTC).date().isoformat()


def plan_host(
    host_key: str,
    found: Found,
    actual: ActualHost | None,
    by_name: Mapping[str, ActualHost],
    cfg: Config,
    today: str,
    netbox_url: str = "",
    window: Window | None = None,
    now: int = 0,
    proxy_groups: bool = True,
) -> Plan:
    """The plan for one host key from what both sides hold, its maintenance window included. Pure.

    `proxy_groups` is False on a Zabbix without them (6.0): a proxy group the config asks for is
    then left out (the proxy, if one is configured too, is used instead), or the host would differ
    from it forever."""
    plan, desired = _host_plan(host_key, found, actual, by_name, cfg, today, netbox_url, proxy_groups)
    plan.host = plan.host or (desired.host if desired else actual.host if actual else "")
    wanted = desired is not None and desired.maintenance and plan.action in ("create", "update", "noop")
    plan.maintenance, plan.maintenance_id = maintenance_op(wanted, window, now)
    if plan.maintenance == "start" and plan.action == "delete":
        plan.maintenance = None
    return plan


def _host_plan(
    host_key: str,
    found: Found,
    actual: ActualHost | None,
    by_name: Mapping[str, ActualHost],
    cfg: Config,
    today: str,
    netbox_url: str,
    proxy_groups: bool,
) -> tuple[Plan, DesiredHost | None]:
    """The host's plan, and its desired state when it has one."""
    object_type = host_key.rpartition(":")[0]
    if object_type not in ENDPOINTS:
        return Plan(host_key=host_key, action="skip", reason=f"{object_type} is not a host"), None
    if found is None:
        return plan_absent(host_key, actual, cfg.delete, today, "deleted in NetBox"), None
    if isinstance(found, NotRouted):  # moved to another server, or not monitored: the delete policy
        if found.broken:
            return Plan(host_key=host_key, action="error", reason=found.reason), None
        return plan_absent(host_key, actual, cfg.delete, today, found.reason), None
    if found is OUT_OF_SCOPE:
        policy = cfg.delete.out_of_scope
        if policy == "ignore":
            return Plan(host_key=host_key, action="skip", reason="out of scope (ignored by policy)"), None
        delete_cfg = cfg.delete if policy == "delete" else msgspec.structs.replace(cfg.delete, mode="disable")
        return plan_absent(host_key, actual, delete_cfg, today, "out of scope"), None
    assert isinstance(found, dict)
    try:
        desired = map_host(found, host_key, cfg, netbox_url)
    except Skip as skip:
        if skip.delete:
            return plan_absent(host_key, actual, cfg.delete, today, skip.reason), None
        return Plan(host_key=host_key, action="skip", reason=skip.reason), None
    desired = one_proxy(desired, proxy_groups)
    other = by_name.get(desired.host)
    if other is not None and (actual is None or other.hostid != actual.hostid):
        if actual is None and other.host_key is None and cfg.host.adopt:
            return plan_sync(desired, other), desired  # brownfield adoption: the update adds our owner tag
        owner = f"owned by {other.host_key}" if other.host_key else "not managed by netbox-zabbix-stream"
        reason = f"Zabbix host {desired.host!r} (hostid {other.hostid}) already exists, {owner}"
        return Plan(host_key=host_key, action="conflict", hostid=other.hostid, host=desired.host, reason=reason), None
    return plan_sync(desired, actual), desired


def one_proxy(desired: DesiredHost, proxy_groups: bool) -> DesiredHost:
    """A host has one of the two: the proxy group where Zabbix has groups (7.0+), else the proxy."""
    if not desired.proxy_group:
        return desired
    return msgspec.structs.replace(desired, **({"proxy": None} if proxy_groups else {"proxy_group": None}))
