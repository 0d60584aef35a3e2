"""`sync(host_keys)`: the one path every event, reconcile and replay ends in.

Read NetBox (the truth) and Zabbix (what is) for the whole batch, map and diff with the pure
functions, then apply only the plans that are not empty. Idempotent: a second run finds nothing to do.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import msgspec
from prometheus_client import Counter, Histogram

from nbzx.common.config import Config, parse_duration
from nbzx.common.logging import get_logger
from nbzx.core.batch import Write, group_writes
from nbzx.core.mapping import Skip, map_host
from nbzx.core.model import ActualHost, DesiredHost, Found, Plan, Window
from nbzx.core.planner import SyncResult, one_proxy, plan_host, today_utc
from nbzx.engine.netbox import NetBox, NetBoxError
from nbzx.engine.zabbix import Zabbix, ZabbixError

log = get_logger(component="sync")

SYNCS = Counter("nbzx_sync_total", "Host syncs by action and result", ["action", "result"])
SYNC_SECONDS = Histogram("nbzx_sync_seconds", "Time to sync one batch of host keys")


async def check_name_collisions(
    zabbix: Zabbix, plans: dict[str, Plan], replan: Callable[[str, Mapping[str, ActualHost]], Plan]
) -> None:
    """Creates and renames may collide with a host we do not own: one host.get by name for all of them,
    and the keys whose name is taken are planned again knowing that host (conflict, or adoption)."""
    names = {p.changes["host"]: k for k, p in plans.items() if "host" in p.changes}
    if not names:
        return
    by_name = await zabbix.hosts_by_name(names)
    for name in by_name:
        plans[names[name]] = replan(names[name], by_name)


class SyncEngine:
    """Reads both sides in batches and applies minimal plans."""

    def __init__(self, cfg: Config, netbox: NetBox, zabbix: Zabbix, today: Callable[[], str] = today_utc) -> None:
        self.cfg = cfg
        self.netbox = netbox
        self.zabbix = zabbix
        self.today = today

    async def plans(self, host_keys: Iterable[str]) -> dict[str, Plan]:
        """Read NetBox and Zabbix for all keys at once, then map and diff each (no writes)."""
        return (await self._plans_and_sides(sorted(set(host_keys))))[0]

    async def _plans_and_sides(
        self, keys: list[str]
    ) -> tuple[dict[str, Plan], Mapping[str, Found], Mapping[str, ActualHost]]:
        objects, actual, windows = await asyncio.gather(
            self.netbox.objects(keys), self.zabbix.hosts_by_key(keys), self.zabbix.maintenance_windows(keys)
        )
        plan = self.planner(objects, actual, windows)
        plans = {k: plan(k, {}) for k in keys}
        await check_name_collisions(self.zabbix, plans, plan)
        return plans, objects, actual

    def planner(
        self, objects: Mapping[str, Found], actual: Mapping[str, ActualHost], windows: Mapping[str, Window]
    ) -> Callable[[str, Mapping[str, ActualHost]], Plan]:
        """`plan(host_key, hosts_by_name)` over what one batch or one reconcile read from both sides."""
        cfg, today, now = self.cfg, self.today(), int(time.time())
        proxy_groups = self.zabbix.caps.proxy_groups

        def plan(k: str, by_name: Mapping[str, ActualHost]) -> Plan:
            try:
                url = self.netbox.object_url(k)
                obj, host, window = objects.get(k), actual.get(k), windows.get(k)
                return plan_host(k, obj, host, by_name, cfg, today, url, window, now, proxy_groups)
            except Exception as exc:  # one object's bad data (a malformed config context) is that key's error
                return Plan(host_key=k, action="error", reason=f"cannot plan {k}: {type(exc).__name__}: {exc}")

        return plan

    async def explain(self, host_key: str) -> tuple[Plan, DesiredHost | None, ActualHost | None]:
        """One key's plan (as `sync` would make it, writing nothing), with both sides it compared."""
        plans, objects, actuals = await self._plans_and_sides([host_key])
        found, actual = objects.get(host_key), actuals.get(host_key)
        desired = self.desired(host_key, found) if isinstance(found, dict) else None
        return plans[host_key], (desired if isinstance(desired, DesiredHost) else None), actual

    def desired(self, host_key: str, obj: Mapping[str, Any]) -> DesiredHost | str:
        """The host NetBox wants for one object, or why there is none (a skip reason, a mapping error)."""
        try:
            desired = map_host(obj, host_key, self.cfg, self.netbox.object_url(host_key))
        except Skip as skip:
            return skip.reason
        except Exception as exc:  # data that cannot be mapped (a malformed config context)
            return f"cannot plan {host_key}: {type(exc).__name__}: {exc}"
        return one_proxy(desired, self.zabbix.caps.proxy_groups)

    async def sync(self, host_keys: Iterable[str], dry_run: bool = False) -> list[SyncResult]:
        """Bring Zabbix in line with NetBox for these host keys; one result per key."""
        t0 = time.perf_counter()
        keys = sorted(set(host_keys))
        try:
            plans, objects, _ = await self._plans_and_sides(keys)
        except (NetBoxError, ZabbixError) as exc:
            if not exc.transient and len(keys) > 1:
                # A refusal of the bulk read may come from one key: read each alone, so it fails alone.
                log.warning("batch_read_split", keys=len(keys), error=str(exc))
                return [r for rs in await asyncio.gather(*(self.sync([k], dry_run) for k in keys)) for r in rs]
            return [
                SyncResult(host_key=k, action="read", result="error", error=str(exc), transient=exc.transient)
                for k in keys
            ]
        if dry_run:
            writes = [Write(kind="single", plans=(p,)) for p in plans.values()]
        else:
            writes = group_writes(plans.values(), massupdate=self.zabbix.caps.host_massupdate)
        done = await asyncio.gather(*(self._write(w, dry_run) for w in writes))
        order = {k: i for i, k in enumerate(keys)}
        results = sorted((_with_object(r, objects) for rs in done for r in rs), key=lambda r: order[r.host_key])
        SYNC_SECONDS.observe(time.perf_counter() - t0)
        return results

    async def _write(self, write: Write, dry_run: bool) -> list[SyncResult]:
        """One Zabbix write call for the plans of `write`, or one per plan when it is a single one."""
        if write.kind == "single":
            return [await self._apply(write.plans[0], dry_run)]
        t0 = time.perf_counter()
        try:
            hostids = await self.zabbix.apply_batch(write.kind, write.plans)
        except (ZabbixError, ValueError, KeyError, TypeError) as exc:
            err = _as_zabbix_error(exc)
            if err.transient:
                return [self._failed(p, err, t0, batched=len(write.plans)) for p in write.plans]
            # One bad host (a template gone, a name taken meanwhile) fails the whole call, and Zabbix
            # rolled it back: write them one by one, so every other host still lands.
            log.warning("batch_write_split", kind=write.kind, hosts=len(write.plans), error=str(err))
            return list(await asyncio.gather(*(self._apply(p, dry_run) for p in write.plans)))
        return [
            self._succeeded(p, hostid, sorted(p.changes), t0, batched=len(write.plans))
            for p, hostid in zip(write.plans, hostids, strict=True)
        ]

    def _succeeded(
        self, plan: Plan, hostid: str | None, changed: list[str], t0: float, batched: int | None = None
    ) -> SyncResult:
        res = SyncResult(
            host_key=plan.host_key,
            action=plan.action,
            result="ok",
            hostid=hostid,
            host=plan.host,
            changed=changed,
            reason=plan.reason,
            removes=plan.removes,
        )
        return self._finish(res, t0, batched=batched)

    def _failed(self, plan: Plan, exc: ZabbixError, t0: float, batched: int | None = None) -> SyncResult:
        res = SyncResult(
            host_key=plan.host_key,
            action=plan.action,
            result="error",
            hostid=plan.hostid,
            host=plan.host,
            changed=sorted(plan.changes),
            error=str(exc),
            # A name taken since the plan was made (another consumer created it during a rebalance, or
            # someone by hand): planning again finds the host, ours (update) or not (conflict).
            transient=exc.transient or (plan.action == "create" and "already exists" in str(exc)),
        )
        return self._finish(res, t0, batched=batched)

    def _finish(self, res: SyncResult, t0: float, dry_run: bool = False, batched: int | None = None) -> SyncResult:
        """Count and log one host's result."""
        SYNCS.labels(res.action, res.result).inc()
        log.info(
            "sync",
            host_key=res.host_key,
            action=res.action,
            result=res.result,
            changed=res.changed,
            reason=res.reason or None,
            error=res.error,
            dry_run=dry_run or None,
            batched=batched,
            duration_ms=round((time.perf_counter() - t0) * 1000, 1),
        )
        return res

    async def _apply(self, plan: Plan, dry_run: bool) -> SyncResult:
        t0 = time.perf_counter()
        changed = sorted(plan.changes)
        if plan.action == "conflict":
            res = SyncResult(
                host_key=plan.host_key,
                action="conflict",
                result="conflict",
                hostid=plan.hostid,
                host=plan.host,
                reason=plan.reason,
            )
        elif plan.action == "error":
            res = SyncResult(host_key=plan.host_key, action="plan", result="error", host=plan.host, error=plan.reason)
        elif plan.empty or dry_run:
            res = SyncResult(
                host_key=plan.host_key,
                action=plan.action,
                result="skipped" if plan.empty else "ok",
                hostid=plan.hostid,
                host=plan.host,
                changed=changed,
                reason=plan.reason,
                removes=plan.removes,
            )
        else:
            try:
                hostid = await self.zabbix.apply(plan)
                if plan.maintenance is not None:
                    await self.zabbix.apply_maintenance(
                        plan, hostid, parse_duration(self.cfg.host.maintenance.duration)
                    )
                    changed = [*changed, f"maintenance:{plan.maintenance}"]
            except (ZabbixError, ValueError, KeyError, TypeError) as exc:
                return self._failed(plan, _as_zabbix_error(exc), t0)
            return self._succeeded(plan, hostid, changed, t0)
        return self._finish(res, t0, dry_run)


def _with_object(r: SyncResult, objects: Mapping[str, Found]) -> SyncResult:
    """The result with what NetBox holds for its key (what write-back compares with)."""
    found = objects.get(r.host_key)
    fields = found.get("custom_fields") or {} if isinstance(found, dict) else None
    return msgspec.structs.replace(r, in_netbox=found is not None, custom_fields=fields)


def _as_zabbix_error(exc: Exception) -> ZabbixError:
    """A write that failed before or inside Zabbix, as that plan's error (a bad payload is permanent)."""
    return exc if isinstance(exc, ZabbixError) else ZabbixError(f"{type(exc).__name__}: {exc}", transient=False)
