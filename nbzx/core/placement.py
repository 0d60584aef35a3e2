"""Placement: what each Zabbix server is told about each host key, and one result per key. Pure.

A key's object goes to the servers its route names; every other server sees it as `NotRouted`, so
the planner applies the delete policy there (a move, a narrowed migration window). What a server
holds for a key is only taken away once the key is in place on every server it is routed to, so a
host is never missing in between; a crash between the two steps is finished by the next sync
(docs/DESIGN.md §12).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import msgspec

from nbzx.core.model import Found, NotRouted
from nbzx.core.planner import SyncResult
from nbzx.core.routing import Route


def server_views(
    objects: Mapping[str, Found], routes: Mapping[str, Route], servers: Sequence[str]
) -> dict[str, dict[str, Found]]:
    """server -> host key -> what the planner is given for that server: the object where it is routed
    there, `NotRouted` where it is not; a key gone or out of scope is the same on every server."""
    views: dict[str, dict[str, Found]] = {s: {} for s in servers}
    for key, found in objects.items():
        r = routes.get(key)
        for s in servers:
            if r is None or s in r.servers:
                views[s][key] = found
            elif r.error:
                views[s][key] = NotRouted(reason=f"cannot route {key}: {r.error}", broken=True)
            else:
                elsewhere = f"routed to {', '.join(r.servers)}" if r.servers else r.why
                views[s][key] = NotRouted(reason=f"{elsewhere}, not {s}")
    return views


def is_move_out(found: Found) -> bool:
    """Whether a plan made from `found` takes a host off a server its key is no longer routed to."""
    return isinstance(found, NotRouted) and not found.broken


RESULT_ORDER = {"error": 0, "conflict": 1, "ok": 2, "skipped": 3}


def merge_results(host_key: str, results: Sequence[SyncResult], routed: Sequence[str], several: bool) -> SyncResult:
    """One result for a key from its result on each server (in server order). With one server it is
    that server's. Otherwise: the worst outcome (error, conflict, ok, skipped; transient only when
    every error is), the changed fields and errors named by server, and the routed servers' host ids."""
    if not several and len(results) == 1:
        r = results[0]
        servers = {r.server: r.hostid} if r.hostid and r.server else {}
        return msgspec.structs.replace(r, servers=servers, failed_on=[r.server] if r.result == "error" else [])
    ordered = sorted(results, key=lambda r: (r.server not in routed, RESULT_ORDER.get(r.result, 9)))
    worst = min(results, key=lambda r: RESULT_ORDER.get(r.result, 9))
    acted = [r for r in ordered if r.result != "skipped"]
    lead = acted[0] if acted else ordered[0]
    errors = [r for r in ordered if r.result in ("error", "conflict")]
    return SyncResult(
        host_key=host_key,
        action=lead.action,
        result=worst.result,
        hostid=next((r.hostid for r in ordered if r.server in routed and r.hostid), None),
        host=lead.host,
        changed=[f"{r.server}:{c}" for r in ordered for c in r.changed],
        reason="; ".join(f"{r.server}: {r.reason}" for r in ordered if r.reason),
        error="; ".join(f"{r.server}: {r.error or r.reason}" for r in errors) or None,
        transient=bool(errors) and all(r.transient for r in errors if r.result == "error"),
        removes=not routed and any(r.removes for r in results),
        in_netbox=lead.in_netbox,
        custom_fields=lead.custom_fields,
        servers={r.server: r.hostid for r in ordered if r.server in routed and r.hostid and not r.removes},
        failed_on=[r.server for r in ordered if r.result == "error"],
        server=",".join(routed),
    )
