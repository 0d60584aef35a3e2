"""`sync(host_keys)`: the one path every event, reconcile and replay ends in.

Read NetBox (the truth) and every Zabbix server (what is) for the whole batch, route each object,
map and diff with the pure functions per server, then apply only the plans that are not empty.
Idempotent: a second run finds nothing to do. A server that is down fails only the keys it concerns.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar

import msgspec
from prometheus_client import Counter, Histogram

from nbzx.common.config import Config, parse_duration
from nbzx.common.logging import get_logger
from nbzx.core.batch import Write, group_writes
from nbzx.core.mapping import Skip, map_host
from nbzx.core.model import ActualHost, DesiredHost, Found, Plan, Window
from nbzx.core.placement import is_move_out, merge_results, server_views
from nbzx.core.planner import SyncResult, one_proxy, plan_host, today_utc
from nbzx.core.routing import Route, route, uses_geography
from nbzx.engine.netbox import NetBox, NetBoxError
from nbzx.engine.zabbix import Zabbix, ZabbixError
from nbzx.schemas.objects import HOST_TYPES, split_key

NOT_A_HOST = "not a host: only a device or a virtual machine has one"
log = get_logger(component="sync")

SYNCS = Counter("nbzx_sync_total", "Host syncs by server, action and result", ["server", "action", "result"])
T = TypeVar("T")
SYNC_SECONDS = Histogram("nbzx_sync_seconds", "Time to sync one batch of host keys")
# Where one batch's time goes (a single change's latency is their sum, plus delivery): the reads run at once.
STAGE_SECONDS = Histogram(
    "nbzx_sync_stage_seconds",
    "Time of each stage of one batch: read_netbox, read_zabbix, plan, write; and kafka: receiver to consumer",
    ["stage"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5, 10),
)


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


class Batch(msgspec.Struct, kw_only=True):
    """One read of both sides for a set of keys, and the plans made from it, per server."""

    objects: Mapping[str, Found]
    routes: dict[str, Route]
    views: dict[str, dict[str, Found]]  # server -> key -> what its planner was given
    plans: dict[str, dict[str, Plan]] = msgspec.field(default_factory=dict)  # server -> key -> plan
    actual: dict[str, Mapping[str, ActualHost]] = msgspec.field(default_factory=dict)
    unread: dict[str, ZabbixError] = msgspec.field(default_factory=dict)  # servers that could not be read

    def routed(self, key: str) -> tuple[str, ...]:
        """The servers a key is routed to (none when it is gone, out of scope or not monitored)."""
        r = self.routes.get(key)
        return r.servers if r is not None else ()


class ServerView(msgspec.Struct, kw_only=True):
    """One key on one server, as `explain` shows it."""

    server: str
    routed: bool
    plan: Plan
    desired: DesiredHost | None
    actual: ActualHost | None


class SyncEngine:
    """Reads both sides in batches and applies minimal plans, on every Zabbix server a key concerns.

    `servers` holds one client per configured server, by name; a bare `Zabbix` is the only one."""

    def __init__(
        self,
        cfg: Config,
        netbox: NetBox,
        zabbix: Zabbix | Mapping[str, Zabbix],
        today: Callable[[], str] = today_utc,
    ) -> None:
        self.cfg = cfg
        self.netbox = netbox
        self.servers: dict[str, Zabbix] = dict(zabbix) if isinstance(zabbix, Mapping) else {zabbix.server: zabbix}
        self.today = today

    @property
    def zabbix(self) -> Zabbix:
        """The first server's client: the only one in a one-server config."""
        return next(iter(self.servers.values()))

    @property
    def several(self) -> bool:
        return len(self.servers) > 1

    async def routes(self, objects: Mapping[str, Found]) -> dict[str, Route]:
        """The route of every in-scope object (region and site group trees read only when a rule needs them)."""
        geo = await self.netbox.geography() if uses_geography(self.cfg.routes) else None
        return {k: route(o, self.cfg, geo) for k, o in objects.items() if isinstance(o, dict)}

    async def plans(self, host_keys: Iterable[str]) -> dict[str, dict[str, Plan]]:
        """Read NetBox and every server for all keys at once, then map and diff (no writes): key ->
        server -> plan, for the servers a key is routed to and any other that holds its host."""
        batch = await self._read(sorted(set(host_keys)))
        out: dict[str, dict[str, Plan]] = {}
        for server, plans in batch.plans.items():
            for k, p in plans.items():
                if server in batch.routed(k) or not p.empty or not self.several:
                    out.setdefault(k, {})[server] = p
        return out

    async def _read(self, keys: list[str]) -> Batch:
        """NetBox and every server at once; a server that fails is kept in `unread`, not raised."""
        reads = asyncio.gather(*(self._side(z, keys) for z in self.servers.values()))
        objects, sides = await asyncio.gather(_timed("read_netbox", self.netbox.objects(keys)), reads)
        t0 = time.perf_counter()
        routes = await self.routes(objects)
        batch = Batch(objects=objects, routes=routes, views=server_views(objects, routes, list(self.servers)))
        for (server, z), side in zip(self.servers.items(), sides, strict=True):
            if isinstance(side, ZabbixError):
                batch.unread[server] = side
                continue
            actual, windows = side
            plan = self.planner(batch.views[server], actual, windows, server)
            plans = {k: plan(k, {}) for k in keys}
            try:
                await check_name_collisions(z, plans, plan)
            except ZabbixError as exc:
                batch.unread[server] = exc
                continue
            batch.plans[server], batch.actual[server] = plans, actual
        STAGE_SECONDS.labels("plan").observe(time.perf_counter() - t0)
        return batch

    @staticmethod
    async def _side(z: Zabbix, keys: list[str]) -> tuple[dict[str, ActualHost], dict[str, Window]] | ZabbixError:
        try:
            actual, windows = await _timed(
                "read_zabbix", asyncio.gather(z.hosts_by_key(keys), z.maintenance_windows(keys))
            )
        except ZabbixError as exc:
            return exc
        return actual, windows

    def planner(
        self,
        objects: Mapping[str, Found],
        actual: Mapping[str, ActualHost],
        windows: Mapping[str, Window],
        server: str | None = None,
    ) -> Callable[[str, Mapping[str, ActualHost]], Plan]:
        """`plan(host_key, hosts_by_name)` for one server (the first by default) over what one batch or
        one reconcile read from both sides."""
        cfg, today, now = self.cfg, self.today(), int(time.time())
        server = server or self.zabbix.server
        proxy_groups = self.servers[server].caps.proxy_groups

        def plan(k: str, by_name: Mapping[str, ActualHost]) -> Plan:
            try:
                url = self.netbox.object_url(k)
                obj, host, window = objects.get(k), actual.get(k), windows.get(k)
                p = plan_host(k, obj, host, by_name, cfg, today, url, window, now, proxy_groups)
            except Exception as exc:  # one object's bad data (a malformed config context) is that key's error
                p = Plan(host_key=k, action="error", reason=f"cannot plan {k}: {type(exc).__name__}: {exc}")
            p.server = server
            return p

        return plan

    async def explain(self, host_key: str) -> list[ServerView]:
        """One key's plan on each server it is routed to or held on (as `sync` would make it, writing
        nothing), with both sides it compared. A server that cannot be read raises its error."""
        batch = await self._read([host_key])
        if batch.unread:
            raise next(iter(batch.unread.values()))
        found, views = batch.objects.get(host_key), []
        for server, plans in batch.plans.items():
            plan, actual, routed = plans[host_key], batch.actual[server].get(host_key), server in batch.routed(host_key)
            if not routed and actual is None and self.several:
                continue
            desired = self.desired(host_key, found, server) if routed and isinstance(found, dict) else None
            views.append(
                ServerView(
                    server=server,
                    routed=routed,
                    plan=plan,
                    desired=desired if isinstance(desired, DesiredHost) else None,
                    actual=actual,
                )
            )
        return views

    def desired(self, host_key: str, obj: Mapping[str, Any], server: str | None = None) -> DesiredHost | str:
        """The host NetBox wants for one object on one server (the first by default), or why there is
        none (a skip reason, a mapping error)."""
        try:
            desired = map_host(obj, host_key, self.cfg, self.netbox.object_url(host_key))
        except Skip as skip:
            return skip.reason
        except Exception as exc:  # data that cannot be mapped (a malformed config context)
            return f"cannot plan {host_key}: {type(exc).__name__}: {exc}"
        return one_proxy(desired, self.servers[server or self.zabbix.server].caps.proxy_groups)

    async def sync(self, host_keys: Iterable[str], dry_run: bool = False) -> list[SyncResult]:
        """Bring every server in line with NetBox for these host keys; one result per key.

        First what each key needs where it is routed; then, for a key no longer routed to a server
        that holds its host, the delete policy there, but only once the key is in place everywhere
        it is routed to."""
        t0 = time.perf_counter()
        keys = sorted(set(host_keys))
        # A key that names no device or VM (an IP whose interface is gone, from the change log) has no host.
        others = [k for k in keys if split_key(k)[0] not in HOST_TYPES]
        if others:
            skipped = [SyncResult(host_key=k, action="noop", result="skipped", reason=NOT_A_HOST) for k in others]
            hosts = [k for k in keys if k not in others]
            return skipped + (await self.sync(hosts, dry_run) if hosts else [])
        try:
            batch = await self._read(keys)
            permanent = next((e for e in batch.unread.values() if not e.transient), None)
            if permanent is not None:
                raise permanent
        except (NetBoxError, ZabbixError) as exc:
            if not exc.transient and len(keys) > 1:
                # A refusal of the bulk read may come from one key: read each alone, so it fails alone.
                log.warning("batch_read_split", keys=len(keys), error=str(exc))
                return [r for rs in await asyncio.gather(*(self.sync([k], dry_run) for k in keys)) for r in rs]
            return [
                SyncResult(host_key=k, action="read", result="error", error=str(exc), transient=exc.transient)
                for k in keys
            ]
        placed: dict[str, dict[str, Plan]] = {s: {} for s in batch.plans}
        moves: dict[str, dict[str, Plan]] = {s: {} for s in batch.plans}
        for server, plans in batch.plans.items():
            for k, p in plans.items():
                if is_move_out(batch.views[server][k]):
                    if not p.empty:
                        moves[server][k] = p
                    elif k in batch.actual[server]:
                        placed[server][k] = p  # archived there, waiting for delete.grace
                    # else: not routed there, and nothing there: not this server's business
                else:
                    placed[server][k] = p
        results: dict[str, list[SyncResult]] = {k: self._unread(k, batch) for k in keys}
        t_write = time.perf_counter()
        for rs in await asyncio.gather(*(self._apply_all(s, ps, dry_run) for s, ps in placed.items())):
            for r in rs:
                results[r.host_key].append(r)
        ready = {s: {k: p for k, p in ps.items() if self._in_place(k, batch, results[k])} for s, ps in moves.items()}
        for rs in await asyncio.gather(*(self._apply_all(s, ps, dry_run) for s, ps in ready.items())):
            for r in rs:
                results[r.host_key].append(r)
        for server, ps in moves.items():
            for k, p in ps.items():
                if k not in ready[server]:
                    results[k].append(self._kept(p, batch.routed(k), results[k]))
        for k in keys:
            if not results[k]:  # routed to no server, and on none: nothing to do anywhere
                route_of = batch.routes.get(k)
                why = (route_of.error or route_of.why) if route_of is not None else "routed to no server"
                results[k] = [SyncResult(host_key=k, action="skip", result="skipped", reason=why)]
        merged = [merge_results(k, results[k], batch.routed(k), self.several) for k in keys]
        STAGE_SECONDS.labels("write").observe(time.perf_counter() - t_write)
        SYNC_SECONDS.observe(time.perf_counter() - t0)
        return [_with_object(r, batch.objects) for r in merged]

    def _unread(self, key: str, batch: Batch) -> list[SyncResult]:
        """The key's error on each server that could not be read and that concerns it: one it is routed
        to, or any when it has no route (gone or out of scope: its host may be on any of them). A server
        it is not routed to is left alone while it is down; the reconcile finds a host left there."""
        routed = batch.routed(key)
        return [
            SyncResult(host_key=key, action="read", result="error", error=str(e), transient=e.transient, server=s)
            for s, e in batch.unread.items()
            if s in routed or not routed
        ]

    @staticmethod
    def _in_place(key: str, batch: Batch, done: list[SyncResult]) -> bool:
        """Whether a key is in place on every server it is routed to (so another may let its host go)."""
        ok = {r.server for r in done if r.result in ("ok", "skipped")}
        return all(s in ok for s in batch.routed(key))

    def _kept(self, plan: Plan, routed: tuple[str, ...], done: list[SyncResult]) -> SyncResult:
        """A host left where it is because its key is not in place where it is routed: retried while
        what holds it back is transient, settled (dead-lettered, the host still kept) when it is not
        (a name conflict there, a template that server lacks)."""
        blocking = [r for r in done if r.server in routed and r.result not in ("ok", "skipped")]
        res = _result(
            plan,
            result="error",
            hostid=plan.hostid,
            error=f"kept on {plan.server} until it is in place on {', '.join(routed)}",
            transient=all(r.result == "error" and r.transient for r in blocking),
        )
        return self._finish(res, time.perf_counter())

    async def _apply_all(self, server: str, plans: Mapping[str, Plan], dry_run: bool) -> list[SyncResult]:
        """Apply one server's plans: batched writes where Zabbix can take them, one by one otherwise."""
        z = self.servers[server]
        if dry_run:
            writes = [Write(kind="single", plans=(p,)) for p in plans.values()]
        else:
            writes = group_writes(plans.values(), massupdate=z.caps.host_massupdate)
        done = await asyncio.gather(*(self._write(z, w, dry_run) for w in writes))
        return [r for rs in done for r in rs]

    async def _write(self, z: Zabbix, write: Write, dry_run: bool) -> list[SyncResult]:
        """One Zabbix write call for the plans of `write`, or one per plan when it is a single one."""
        if write.kind == "single":
            return [await self._apply(z, write.plans[0], dry_run)]
        t0 = time.perf_counter()
        try:
            hostids = await z.apply_batch(write.kind, write.plans)
        except (ZabbixError, ValueError, KeyError, TypeError) as exc:
            err = _as_zabbix_error(exc)
            if err.transient:
                return [self._failed(p, err, t0, batched=len(write.plans)) for p in write.plans]
            # One bad host (a template gone, a name taken meanwhile) fails the whole call, and Zabbix
            # rolled it back: write them one by one, so every other host still lands.
            log.warning("batch_write_split", server=z.server, kind=write.kind, hosts=len(write.plans), error=str(err))
            return list(await asyncio.gather(*(self._apply(z, p, dry_run) for p in write.plans)))
        return [
            self._succeeded(p, hostid, sorted(p.changes), t0, batched=len(write.plans))
            for p, hostid in zip(write.plans, hostids, strict=True)
        ]

    def _succeeded(
        self, plan: Plan, hostid: str | None, changed: list[str], t0: float, batched: int | None = None
    ) -> SyncResult:
        res = _result(plan, result="ok", hostid=hostid, changed=changed, reason=plan.reason, removes=plan.removes)
        return self._finish(res, t0, batched=batched)

    def _failed(self, plan: Plan, exc: ZabbixError, t0: float, batched: int | None = None) -> SyncResult:
        res = _result(
            plan,
            result="error",
            hostid=plan.hostid,
            changed=sorted(plan.changes),
            error=str(exc),
            # A name taken since the plan was made (another consumer created it during a rebalance, or
            # someone by hand): planning again finds the host, ours (update) or not (conflict).
            transient=exc.transient or (plan.action == "create" and "already exists" in str(exc)),
        )
        return self._finish(res, t0, batched=batched)

    def _finish(self, res: SyncResult, t0: float, dry_run: bool = False, batched: int | None = None) -> SyncResult:
        """Count and log one host's result."""
        SYNCS.labels(res.server, res.action, res.result).inc()
        log.info(
            "sync",
            host_key=res.host_key,
            server=res.server if self.several else None,
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

    async def _apply(self, z: Zabbix, plan: Plan, dry_run: bool) -> SyncResult:
        t0 = time.perf_counter()
        changed = sorted(plan.changes)
        if plan.action == "conflict":
            res = _result(plan, result="conflict", hostid=plan.hostid, reason=plan.reason)
        elif plan.action == "error":
            res = _result(plan, action="plan", result="error", error=plan.reason)
        elif plan.empty or dry_run:
            result = "skipped" if plan.empty else "ok"
            res = _result(
                plan, result=result, hostid=plan.hostid, changed=changed, reason=plan.reason, removes=plan.removes
            )
        else:
            try:
                hostid = await z.apply(plan)
                if plan.maintenance is not None:
                    await z.apply_maintenance(plan, hostid, parse_duration(self.cfg.host.maintenance.duration))
                    changed = [*changed, f"maintenance:{plan.maintenance}"]
            except (ZabbixError, ValueError, KeyError, TypeError) as exc:
                return self._failed(plan, _as_zabbix_error(exc), t0)
            return self._succeeded(plan, hostid, changed, t0)
        return self._finish(res, t0, dry_run)


async def _timed(stage: str, work: Awaitable[T]) -> T:
    """`work`'s result, its time observed as `stage`."""
    t0 = time.perf_counter()
    try:
        return await work
    finally:
        STAGE_SECONDS.labels(stage).observe(time.perf_counter() - t0)


def _result(plan: Plan, **what: Any) -> SyncResult:
    """A result of `plan` on its server: its key, host name and action, and `what` happened."""
    return SyncResult(
        **{"host_key": plan.host_key, "action": plan.action, "host": plan.host, "server": plan.server, **what}
    )


def _with_object(r: SyncResult, objects: Mapping[str, Found]) -> SyncResult:
    """The result with what NetBox holds for its key (what write-back compares with)."""
    found = objects.get(r.host_key)
    fields = found.get("custom_fields") or {} if isinstance(found, dict) else None
    return msgspec.structs.replace(r, in_netbox=found is not None, custom_fields=fields)


def _as_zabbix_error(exc: Exception) -> ZabbixError:
    """A write that failed before or inside Zabbix, as that plan's error (a bad payload is permanent)."""
    return exc if isinstance(exc, ZabbixError) else ZabbixError(f"{type(exc).__name__}: {exc}", transient=False)
