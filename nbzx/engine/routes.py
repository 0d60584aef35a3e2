"""`explain_route(host_key)`: which rule routes an object where, why not elsewhere, and where its host is."""

from __future__ import annotations

import asyncio

import msgspec

from nbzx.core.routing import Route, RuleCheck, explain, route, uses_geography
from nbzx.engine.sync import SyncEngine
from nbzx.engine.zabbix import ZabbixError


class RouteExplanation(msgspec.Struct, kw_only=True):
    """What `nbzx routes explain` and the console show for one key."""

    host_key: str
    name: str = ""
    netbox: str  # "in scope", "out of scope", "gone"
    checks: list[RuleCheck] = msgspec.field(default_factory=list)
    route: Route | None = None
    hosts: dict[str, str] = msgspec.field(default_factory=dict)  # server -> hostid of the key's host there now
    unreadable: dict[str, str] = msgspec.field(default_factory=dict)  # server -> why it could not be read


async def explain_route(engine: SyncEngine, host_key: str) -> RouteExplanation:
    """Read the object (and the region and site group trees when a rule needs them) and every
    server's host for the key; nothing is written."""
    found = (await engine.netbox.objects([host_key])).get(host_key)
    out = RouteExplanation(host_key=host_key, netbox="gone" if found is None else "out of scope")
    if isinstance(found, dict):
        geo = await engine.netbox.geography() if uses_geography(engine.cfg.routes) else None
        out.name, out.netbox = str(found.get("name") or ""), "in scope"
        out.checks, out.route = explain(found, engine.cfg, geo), route(found, engine.cfg, geo)
    names = list(engine.servers)
    reads = await asyncio.gather(*(z.hosts_by_key([host_key]) for z in engine.servers.values()), return_exceptions=True)
    for name, read in zip(names, reads, strict=True):
        if isinstance(read, ZabbixError):
            out.unreadable[name] = str(read)
        elif isinstance(read, BaseException):
            raise read
        elif host_key in read:
            out.hosts[name] = read[host_key].hostid
    return out


def describe(e: RouteExplanation) -> list[str]:
    """The explanation as lines for a person. Pure."""
    lines = [f"{e.host_key}{f' ({e.name})' if e.name else ''}: {e.netbox} in NetBox"]
    for c in e.checks:
        mark = "matches" if c.matched else "no     "
        lines.append(f"  {mark} {c.name}: {c.why}")
    if e.route is not None:
        if e.route.error:
            lines.append(f"  cannot route: {e.route.error}")
        where = ", ".join(e.route.servers) or "no server (not monitored)"
        lines.append(f"routed to: {where}" + ("" if e.checks else f" ({e.route.why})"))
    else:
        lines.append("routed to: no server (the delete policy applies wherever its host is)")
    for server, hostid in e.hosts.items():
        routed = e.route is not None and server in e.route.servers
        lines.append(f"host on {server}: hostid {hostid}" + ("" if routed else " (not routed here: to be removed)"))
    for server, why in e.unreadable.items():
        lines.append(f"{server}: could not be read: {why}")
    return lines
