"""`nbzx adopt plan|apply` (DESIGN §11): read both sides, let `nbzx.core.adoption` decide, and take over the
valid hosts as a job: our owner tag on the host, then the normal `sync()` of its key."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import msgspec

from nbzx.common.kafka import Producer
from nbzx.common.logging import get_logger
from nbzx.core.adoption import AdoptionReport, NetBoxSide, plan_adoption
from nbzx.core.mapping import ip_address
from nbzx.core.model import ActualHost, DesiredHost
from nbzx.core.planner import SyncResult
from nbzx.core.writeback import adopted_entry, sync_state, write_back
from nbzx.engine.netbox_write import apply_write_backs
from nbzx.engine.sync import SyncEngine
from nbzx.engine.zabbix import Zabbix, ZabbixError
from nbzx.jobs.records import Job
from nbzx.schemas.messages import JobRecord, Trigger
from nbzx.schemas.objects import HOST_TYPES

log = get_logger(component="adopt")
TAG_BATCH = 500  # hosts per host.update that adds the owner tag


def primary_ips(obj: dict[str, Any]) -> tuple[str, ...]:
    """An object's primary and out-of-band addresses, without prefix length."""
    addresses = (ip_address(obj.get(name))[0] for name in ("primary_ip4", "primary_ip6", "oob_ip"))
    return tuple(a for a in addresses if a)


async def netbox_sides(
    engine: SyncEngine, object_types: Iterable[str] = HOST_TYPES, server: str | None = None
) -> list[NetBoxSide]:
    """Every NetBox object of these types, in scope or not, with its desired host on `server` (the first
    by default) or why it has none; with several servers, only the objects routed to `server`."""
    types = list(object_types)
    server = server or engine.zabbix.server
    listings = await asyncio.gather(*(engine.netbox.all_objects(t, scoped=False) for t in types))
    in_scope = await asyncio.gather(*(engine.netbox.ids(t, {}) for t in types))
    routes = await engine.routes({f"{t}:{o['id']}": o for t, rows in zip(types, listings, strict=True) for o in rows})
    sides = []
    for t, rows, ids in zip(types, listings, in_scope, strict=True):
        scoped = set(ids)
        for obj in rows:
            key = f"{t}:{obj['id']}"
            if engine.several and server not in routes[key].servers:
                continue
            desired = engine.desired(key, obj, server)
            sides.append(
                NetBoxSide(
                    host_key=key,
                    name=str(obj.get("name") or ""),
                    ips=primary_ips(obj),
                    desired=desired if isinstance(desired, DesiredHost) else None,
                    not_synced=desired if isinstance(desired, str) else "",
                    in_scope=int(obj["id"]) in scoped,
                )
            )
    return sides


async def adoption_report(engine: SyncEngine, server: str | None = None) -> AdoptionReport:
    """What `nbzx adopt plan` prints for one Zabbix server (the first by default): nothing is written."""
    zabbix = engine.servers[server or engine.zabbix.server]
    sides, owned, unowned = await asyncio.gather(
        netbox_sides(engine, server=zabbix.server), zabbix.all_owned_hosts(), zabbix.unowned_hosts()
    )
    templates = {t for s in sides if s.desired for t in s.desired.templates} | {t for h in unowned for t in h.templates}
    item_keys = await zabbix.template_item_keys(templates)
    return plan_adoption(sides, owned, unowned, engine.cfg.host.adopt_match, item_keys)


async def adopt(
    engine: SyncEngine,
    producer: Producer,
    host_keys: list[str] | None,
    *,
    trigger: Trigger = "cli",
    user: str | None = None,
    job_id: str | None = None,
    server: str | None = None,
) -> JobRecord:
    """Take over the valid matches for `host_keys` (None: every valid one) on `server` (the first by
    default), recorded as an `adopt` job: `completed`, `failed` when a host could not be taken over,
    `errored` when the job could not run."""
    server = server or engine.zabbix.server
    params: dict[str, Any] = {"host_keys": host_keys or "all valid"}
    if engine.several:
        params["server"] = server
    job = Job(producer, engine.cfg, "adopt", job_id=job_id, trigger=trigger, user=user, params=params)
    await job.publish("running")
    try:
        summary = await _take_over(engine, job, host_keys, server)
    except Exception as exc:  # Zabbix or NetBox away, or a bug: the job says so
        log.exception("adopt_errored", job_id=job.id)
        return await job.publish("errored", error=f"{type(exc).__name__}: {exc}")
    return await job.publish("failed" if summary["failed"] else "completed", results=summary)


async def _tag(zabbix: Zabbix, batch: list[tuple[ActualHost, str]], failed: dict[str, str]) -> list[str]:
    """Owner tags on a batch in one call; when Zabbix refuses it (one host changed meanwhile), one by one."""
    try:
        await zabbix.add_owner_tags(batch)
        return [k for _, k in batch]
    except ZabbixError as exc:
        if len(batch) == 1:
            failed[batch[0][1]] = f"owner tag not added: {exc}"
            return []
    return [k for one in batch for k in await _tag(zabbix, [one], failed)]


async def _write_back(engine: SyncEngine, results: list[SyncResult]) -> None:
    """With write-back on: an "adopted" journal entry and the custom fields on each adopted object (the
    consumers would not write them: the next sync of an adopted host changes nothing)."""
    cfg, now = engine.cfg.netbox.write_back, datetime.now(UTC)
    urls = {name: z.settings.ui_url for name, z in engine.servers.items()}
    if not cfg.enabled or not results:
        return
    writes = [
        msgspec.structs.replace(
            write_back(r, sync_state(r, retrying=False), None, cfg, urls, now),
            journal=adopted_entry(r, urls) if cfg.journal else None,
        )
        for r in results
    ]
    await apply_write_backs(engine.netbox, writes)


async def _take_over(engine: SyncEngine, job: Job, host_keys: list[str] | None, server: str) -> dict[str, Any]:
    """Owner tags on the valid matches on `server`, then the normal sync of their keys; the job's results."""
    zabbix = engine.servers[server]
    report = await adoption_report(engine, server)
    valid = {a.host_key: a for a in report.adoptable if a.host_key}
    why_not = {a.host_key: a.reason for a in report.not_adoptable if a.host_key}
    wanted = host_keys if host_keys is not None else sorted(valid)
    refused = {k: why_not.get(k, "no Zabbix host we do not own matches it") for k in wanted if k not in valid}
    todo = [k for k in wanted if k in valid]
    job.note("adopt_planned", adoptable=len(todo), refused=len(refused))
    # Read again, by name, right before tagging: host.update replaces the tags whole, so the tags sent
    # back must be the ones the host has now, not the ones the report saw.
    hosts = await zabbix.hosts_by_name(valid[k].host for k in todo)
    failed = {k: "the host is gone from Zabbix" for k in todo if valid[k].host not in hosts}
    tagged: list[str] = []
    found = [k for k in todo if k not in failed]
    for start in range(0, len(found), TAG_BATCH):
        batch = [(hosts[valid[k].host], k) for k in found[start : start + TAG_BATCH]]
        tagged += await _tag(zabbix, batch, failed)
        await job.publish("running", results={"progress": {"tagged": len(tagged), "of": len(todo)}})
    results = await engine.sync(tagged)
    failed.update({r.host_key: r.error or r.reason for r in results if r.result not in ("ok", "skipped")})
    adopted = {r.host_key: r.hostid for r in results if r.host_key not in failed}
    for key in adopted:
        log.info("adopted", host_key=key, hostid=adopted[key], host=valid[key].host)
    await _write_back(engine, [r for r in results if r.host_key in adopted])
    job.note("adopt_done", adopted=len(adopted), failed=len(failed), refused=len(refused))
    return {
        "adopted": len(adopted),
        "failed": len(failed),
        "refused": len(refused),
        "hosts": {k: {"hostid": v, "host": valid[k].host} for k, v in adopted.items()},
        "errors": failed,
        "refusals": refused,
    }
