"""Reconcile: find and fix everything the events missed (lost webhooks, hand edits, orphans).

Read every in-scope object from NetBox and every owned host from Zabbix, map and diff in memory
with the sync engine's pure functions, and emit a `SyncRequest` only for host keys whose plan is not
empty: the consumers then apply them through the same `sync()` path as events. A no-op reconcile
emits nothing and writes nothing. When the deletions exceed `reconcile.max_delete`, they are held
back (none is emitted) while creates and updates go out, and the job fails saying so (DESIGN.md §6).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Gauge

from nbzx.common.config import Config
from nbzx.common.kafka import Producer
from nbzx.common.logging import get_logger
from nbzx.core.model import ActualHost, Found, Plan, Window
from nbzx.core.placement import is_move_out, server_views
from nbzx.engine.sync import SyncEngine, check_name_collisions
from nbzx.engine.zabbix import ZabbixError
from nbzx.jobs.records import Job, job_kind, job_params
from nbzx.schemas.messages import JobRecord, JobStatus, ReconcileRequest, SyncRequest, encode
from nbzx.schemas.objects import HOST_TYPES, split_key

log = get_logger(component="reconcile")
DRY_RUN_CHANGES_SHOWN = 2000  # hosts whose changed fields a dry run's record lists (it is one Kafka record)
HOSTS = Gauge("nbzx_reconcile_hosts", "Hosts per server and state in the last reconcile", ["server", "state"])


def delete_cap(max_delete: str | int, owned: int) -> int:
    """How many deletions a reconcile may emit: a count, or a percentage of owned hosts. A percentage
    above 0 allows at least one; "0%" allows none, as 0 does."""
    if isinstance(max_delete, int) or not str(max_delete).endswith("%"):
        return int(max_delete)
    percent = float(str(max_delete)[:-1])
    return 0 if percent == 0 else max(1, int(owned * percent / 100))


def held_back(plans: dict[str, Plan], cap: int) -> list[str]:
    """The host keys whose deletion a reconcile holds back: all of them when they exceed `cap` (so
    many at once usually means a scope filter or NetBox gone wrong, not hosts really gone), else none."""
    deletes = sorted(k for k, p in plans.items() if _bucket(p) == "delete")
    return deletes if len(deletes) > cap else []


Progress = Callable[[int, int], Awaitable[None]]


@dataclass
class Planned:
    """A reconcile's plans, kept small: per server the count of keys in each bucket, and the plans that
    are not in sync (a key in sync is counted and let go)."""

    counts: dict[str, Counter[str]] = field(default_factory=dict)
    plans: dict[str, dict[str, Plan]] = field(default_factory=dict)
    listed: set[str] = field(default_factory=set)  # every key NetBox listed

    def add(self, server: str, plans: dict[str, Plan]) -> None:
        counts = self.counts.setdefault(server, Counter())
        kept = self.plans.setdefault(server, {})
        for k, p in plans.items():
            bucket = _bucket(p)
            counts[bucket] += 1
            if not p.empty or bucket not in ("in_sync", "skipped"):
                kept[k] = p


class Reconciler:
    """Runs one reconcile end to end and records it as a job."""

    def __init__(self, cfg: Config, engine: SyncEngine, producer: Producer) -> None:
        self.cfg, self.engine, self.producer = cfg, engine, producer
        self.timings: dict[str, float] = {}
        self.unreadable: dict[str, str] = {}  # server -> why the last reconcile could not read it

    async def plans(self, req: ReconcileRequest, progress: Progress | None = None) -> Planned:
        """Per server, how many keys fell in each bucket and the plans that are not in sync, from one
        bulk read of each server (those the request names, or all) and NetBox read a page at a time:
        each page is mapped, diffed and let go, so memory holds the Zabbix side and a few pages, not
        the whole NetBox listing. A key is planned on the servers it is routed to and on any that
        holds its host. `progress(read, total)` is called as pages come in."""
        engine = self.engine
        types = [t for t in HOST_TYPES if not req.scope.object_types or t in req.scope.object_types]
        servers = [s for s in engine.servers if not req.scope.servers or s in req.scope.servers]
        t0 = time.perf_counter()
        pages: asyncio.Queue[dict[str, Found] | BaseException | None] = asyncio.Queue()
        reader = asyncio.create_task(self._read_netbox(types, req.scope.filter, pages))
        total_task = asyncio.gather(*(engine.netbox.count(t, req.scope.filter) for t in types))
        try:
            t_zbx = time.perf_counter()
            read = await asyncio.gather(*(self._side(s) for s in servers))
            self.timings["zabbix_host_get_s"] = time.perf_counter() - t_zbx
            self.unreadable = {s: str(r) for s, r in zip(servers, read, strict=True) if isinstance(r, ZabbixError)}
            if len(self.unreadable) == len(servers):  # nothing to reconcile against: the job errs
                raise next(r for r in read if isinstance(r, ZabbixError))
            sides = {s: r for s, r in zip(servers, read, strict=True) if not isinstance(r, ZabbixError)}
            owned = {s: {k: h for k, h in side[0].items() if split_key(k)[0] in types} for s, side in sides.items()}
            total = sum(await total_task)
            out = Planned()
            map_s = 0.0
            while (page := await pages.get()) is not None:
                if isinstance(page, BaseException):
                    raise page
                t1 = time.perf_counter()
                out.listed.update(page)
                await self._plan_page(page, owned, sides, out, orphans=False)
                map_s += time.perf_counter() - t1
                if progress is not None:
                    await progress(len(out.listed), total)
            self.timings["netbox_read_s"] = time.perf_counter() - t0
            # A filtered reconcile cannot tell an orphan from a filtered-out host.
            orphans = sorted(set().union(*owned.values()) - out.listed) if owned and not req.scope.filter else []
            if orphans:  # gone, out of scope, or back meanwhile
                t1 = time.perf_counter()
                await self._plan_page(await engine.netbox.objects(orphans), owned, sides, out, orphans=True)
                out.listed.update(orphans)
                map_s += time.perf_counter() - t1
        finally:
            reader.cancel()
            total_task.cancel()
            if total_task.done() and not total_task.cancelled():
                total_task.exception()  # retrieved: a count that failed after a Zabbix error is not news
        self.timings["map_diff_s"] = map_s
        self.owned_count = {s: len(o) for s, o in owned.items()}
        for s in self.unreadable:
            out.counts.pop(s, None)
            out.plans.pop(s, None)
        return out

    async def _read_netbox(
        self, types: Sequence[str], flt: dict[str, Any], pages: asyncio.Queue[dict[str, Found] | BaseException | None]
    ) -> None:
        """Every page of every type onto `pages` as key -> object, then None (or the error)."""
        try:
            for t in types:
                async for rows in self.engine.netbox.pages(t, flt):
                    await pages.put({f"{t}:{o['id']}": o for o in rows})
        except Exception as exc:
            await pages.put(exc)
        else:
            await pages.put(None)

    async def _plan_page(
        self,
        objects: dict[str, Found],
        owned: dict[str, dict[str, ActualHost]],
        sides: dict[str, tuple[dict[str, ActualHost], dict[str, Window]]],
        out: Planned,
        *,
        orphans: bool,
    ) -> None:
        """Plan one page of keys on every server still readable, and keep what is not in sync."""
        engine = self.engine
        views = server_views(objects, await engine.routes(objects), list(engine.servers))
        for s, (_, windows) in sides.items():
            if s in self.unreadable:
                continue
            plan = engine.planner(views[s], owned[s], windows, s)
            if orphans:
                mine = [k for k in objects if k in owned[s]]
            else:
                mine = [k for k in objects if not engine.several or not is_move_out(views[s][k]) or k in owned[s]]
            plans = {k: plan(k, {}) for k in mine}
            if not orphans:
                try:
                    await check_name_collisions(engine.servers[s], plans, plan)
                except ZabbixError as exc:  # the server went away meanwhile: the others are still reconciled
                    self.unreadable[s] = str(exc)
                    continue
            out.add(s, plans)

    async def _side(self, server: str) -> tuple[dict[str, ActualHost], dict[str, Window]] | ZabbixError:
        """A server's owned hosts and maintenance windows, or why it could not be read."""
        z = self.engine.servers[server]
        try:
            owned, windows = await asyncio.gather(z.all_owned_hosts(), z.maintenance_windows(None))
        except ZabbixError as exc:
            return exc
        return owned, windows

    async def run(self, req: ReconcileRequest) -> JobRecord:
        """Reconcile and publish the job's states: running, then completed or failed."""
        job = Job(
            self.producer,
            self.cfg,
            job_kind(req),
            job_id=req.job_id,
            trigger=req.trigger,
            user=req.user,
            interval=req.interval or (self.cfg.reconcile.interval if req.trigger == "schedule" else None),
            scheduled_for=req.scheduled_for,
            params=job_params(req),
        )
        await job.publish("running")
        job.note("reconcile_started", dry_run=req.dry_run, scope=req.scope.object_types or "all")
        last = 0.0

        async def reading(read: int, total: int) -> None:  # live progress for the console, at most once a second
            nonlocal last
            if time.monotonic() - last > 1.0:
                last = time.monotonic()
                await job.publish("running", results={"progress": {"read": read, "total": total}})

        try:
            planned = await self.plans(req, reading)
        except Exception as exc:
            job.note("reconcile_errored", error=str(exc))
            return await job.publish("errored", error=f"{type(exc).__name__}: {exc}")
        several = self.engine.several
        per_server = planned.plans
        counts: Counter[str] = sum(planned.counts.values(), Counter())
        results: dict[str, Any] = {**_counted(counts), **{k: round(v, 3) for k, v in self.timings.items()}}
        if several:
            results["servers"] = {s: _counted(c) for s, c in planned.counts.items()}
        by_action: dict[str, set[str]] = {}
        for plans in per_server.values():
            for k, p in plans.items():
                if _bucket(p) not in ("in_sync", "skipped"):
                    by_action.setdefault(_bucket(p), set()).add(k)
        plan_by_action = {a: sorted(ks) for a, ks in by_action.items()}
        job.note("reconcile_planned", **{k: v for k, v in results.items() if isinstance(v, int)})
        for s, c in planned.counts.items():
            for state, n in _counted(c).items():
                HOSTS.labels(s, state).set(n)
        caps = {s: delete_cap(self.cfg.reconcile.max_delete, self.owned_count[s]) for s in per_server}
        over = {s: held_back(ps, caps[s]) for s, ps in per_server.items()}
        held = sorted({k for ks in over.values() for k in ks})
        error = None
        if held:
            where = "; ".join(
                f"{len(ks)} on {s} (cap {caps[s]} of {self.owned_count[s]} owned)"
                if several
                else f"{self.cfg.reconcile.max_delete} of {self.owned_count[s]} owned hosts = {caps[s]}"
                for s, ks in over.items()
                if ks
            )
            error = (
                f"{len(held)} hosts would be deleted, over reconcile.max_delete "
                f"({where}): the deletes were "
                f"held back{'' if req.dry_run else ', the creates and updates were sent'}. "
                "Check the scope filter and NetBox, or raise reconcile.max_delete."
            )
            results["held_deletes"] = len(held)
            job.note("reconcile_delete_cap", deletes=len(held), caps=caps)
        if self.unreadable:  # several servers, some of them down: the others were reconciled
            down = "; ".join(f"{s}: {why}" for s, why in self.unreadable.items())
            results["unreadable"] = dict(self.unreadable)
            job.note("reconcile_servers_unreadable", servers=sorted(self.unreadable))
            error = f"{error} " if error else ""
            error += f"Zabbix server(s) not reconciled, they could not be read: {down}"
        status: JobStatus = "failed" if held or self.unreadable else "completed"
        if req.dry_run:
            # What would change per host (field names only: values may be secrets), for the first hosts.
            changes: dict[str, list[str]] = {}
            for s, ps in per_server.items():
                for k, p in ps.items():
                    changes.setdefault(k, []).extend(f"{s}:{c}" if several else c for c in sorted(p.changes))
            changes = {k: v for k, v in sorted(changes.items()) if v}
            shown = dict(list(changes.items())[:DRY_RUN_CHANGES_SHOWN])
            dry = {"dry_run": True, "plan": plan_by_action, "changes": shown, "changes_total": len(changes)}
            return await job.publish(status, error=error, results={**results, **dry})
        plans = {k: p for ps in per_server.values() for k, p in ps.items() if not p.empty}
        holding = set(held)
        todo = sorted(k for k, p in plans.items() if not p.empty and k not in holding)
        progress = {"read": len(planned.listed), "planned": len(todo), "emitted": 0}
        await job.publish("running", results={**results, "progress": progress})
        last = time.monotonic()
        for emitted, k in enumerate(todo, 1):
            await self.producer.send(
                self.cfg.kafka.topics.events, k, encode(SyncRequest(host_key=k, reason="reconcile", job_id=job.id))
            )
            if time.monotonic() - last > 1.0:  # live progress for the console, at most once a second
                last = time.monotonic()
                await job.publish("running", results={**results, "progress": {**progress, "emitted": emitted}})
        emitted = len(todo)
        job.note("reconcile_emitted", sync_requests=emitted)
        if held:  # which hosts were held back, and what went out instead
            results["plan"] = plan_by_action
        return await job.publish(
            status, error=error, results={**results, "emitted": emitted, "progress": {**progress, "emitted": emitted}}
        )


def _counted(counts: Counter[str]) -> dict[str, int]:
    """The job's host counts, by the names its results use."""
    names = {"in_sync": "in_sync", "create": "create", "update": "update", "delete": "delete"}
    names |= {"conflicts": "conflict", "skipped": "skipped", "errors": "error"}
    return {name: counts[bucket] for name, bucket in names.items()}


def _bucket(p: Plan) -> str:
    if p.action == "noop":
        return "in_sync"
    if p.action == "skip":
        return "skipped"
    if p.action == "error":
        return "error"
    if p.action == "conflict":
        return "conflict"
    if p.removes:
        return "delete"
    return p.action
