"""What the console pages and API show: filters, paging, summaries and the Difference view. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Generic, TypeVar, get_args

import msgspec

from nbzx.common.config import TLS_MODES
from nbzx.core.model import INTERFACE_NAMES, TLS_FIELDS, ActualHost, DesiredHost, Plan
from nbzx.core.redact import MASK, redacted
from nbzx.jobs.records import ENDED
from nbzx.jobs.schedule import parse_time
from nbzx.schemas.messages import HostResult, HostStatus, JobKind, JobRecord, JobStatus

T = TypeVar("T")

# The choices the filters offer are the message contract's own.
HOST_RESULTS: tuple[str, ...] = get_args(HostResult)
JOB_STATUSES: tuple[str, ...] = get_args(JobStatus)
JOB_KINDS: tuple[str, ...] = get_args(JobKind)


class Page(msgspec.Struct, Generic[T], kw_only=True):
    """One page of a filtered list."""

    items: list[T]
    total: int  # how many match the filter
    page: int
    pages: int


def paginate(rows: list[T], page: int, per_page: int) -> Page[T]:
    """Rows of page `page` (1-based; clamped to the pages there are)."""
    pages = max(1, -(-len(rows) // per_page))
    page = min(max(1, page), pages)
    return Page(items=rows[(page - 1) * per_page : page * per_page], total=len(rows), page=page, pages=pages)


def query_jobs(
    jobs: Iterable[JobRecord],
    *,
    kind: str = "",
    status: str = "",
    since: datetime | None = None,
    until: datetime | None = None,
    page: int = 1,
    per_page: int = 50,
) -> Page[JobRecord]:
    """Jobs matching the filters (created within [since, until]), newest first."""
    rows = [
        j
        for j in jobs
        if (not kind or j.job_kind == kind)
        and (not status or j.status == status)
        and (since is None or parse_time(j.created) >= since)
        and (until is None or parse_time(j.created) <= until)
    ]
    rows.sort(key=lambda j: j.created, reverse=True)
    return paginate(rows, page, per_page)


def query_hosts(
    hosts: Mapping[str, HostStatus],
    *,
    result: str = "",
    q: str = "",
    server: str = "",
    page: int = 1,
    per_page: int = 50,
) -> Page[HostStatus]:
    """Host statuses with this result, kept on `server`, whose name or key contains `q` (any case),
    newest sync first."""
    needle = q.strip().lower()
    rows = [
        h
        for h in hosts.values()
        if (not result or h.result == result)
        and (not needle or needle in h.host.lower() or needle in h.host_key)
        and (not server or server in h.servers)
    ]
    rows.sort(key=lambda h: h.synced_at, reverse=True)
    return paginate(rows, page, per_page)


def job_summary(record: JobRecord) -> str:
    """One line saying what the job did (or why it did not)."""
    r = record.results
    if record.status in ("errored", "failed", "skipped") and record.error:
        return record.error.splitlines()[0][:160]
    if record.status == "scheduled":
        every = f", then every {record.interval} min" if record.interval else ""
        return f"runs at {record.scheduled_for}{every}"
    if record.job_kind in ("reconcile", "dry_run"):
        if record.status == "running" and "progress" in r:
            p = r["progress"]
            if "total" in p:  # still reading NetBox
                return f"read {p.get('read', 0)} of {p['total']} from NetBox"
            return f"read {p.get('read', 0)}, planned {p.get('planned', 0)}, emitted {p.get('emitted', 0)}"
        if "in_sync" in r:
            head = f"{r.get('in_sync', 0)} in sync, {r.get('create', 0)} to create, {r.get('update', 0)} to update, "
            tail = f"{r.get('delete', 0)} to delete, {r.get('conflicts', 0)} conflicts, {r.get('errors', 0)} errors"
            return head + tail
    if record.job_kind == "host_sync" and r:
        changed = f" ({', '.join(r.get('changed') or [])})" if r.get("changed") else ""
        return f"{r.get('host_key')}: {r.get('result')}{changed}"
    if record.job_kind == "backfill":
        p = r.get("progress", r)
        read = p.get("read", p.get("messages", 0))
        return f"{read} messages, {p.get('applied', 0)} applied, {p.get('dead_lettered', 0)} dead-lettered"
    if record.job_kind == "dlq_retry" and r:
        return f"{len(r.get('host_keys', []))} host(s) re-queued"
    return ", ".join(f"{k} {v}" for k, v in r.items() if isinstance(v, int | float | str))[:160]


def prune_jobs(jobs: dict[str, JobRecord], max_count: int, max_age_s: float, now: datetime) -> list[str]:
    """Ids of ended jobs to forget: older than `max_age_s`, or beyond the newest `max_count` jobs.
    Jobs not ended (scheduled, pending, running) are never dropped."""
    ended = sorted((j for j in jobs.values() if j.status in ENDED), key=lambda j: j.created, reverse=True)
    keep_running = len(jobs) - len(ended)
    drop = []
    for i, j in enumerate(ended):
        too_many = keep_running + i >= max_count
        if too_many or (now - parse_time(j.created)).total_seconds() > max_age_s:
            drop.append(j.job_id)
    return drop


class DiffRow(msgspec.Struct, kw_only=True):
    """One field of a host: what NetBox wants, what Zabbix has, and whether the planner would write it."""

    field: str
    netbox: str
    zabbix: str
    differs: bool


_STATUS = {0: "enabled", 1: "disabled"}


def _macros(macros: Iterable[Any]) -> str:
    # A secret macro's value is never shown, whichever side it comes from.
    return "\n".join(sorted(f"{m.macro}={MASK if m.secret else m.value}" for m in macros))


def _interfaces(ifaces: Iterable[Any]) -> str:
    lines = []
    for i in ifaces:
        kind = INTERFACE_NAMES.get(i.type, str(i.type))
        addr = i.ip if i.useip else i.dns
        # SNMP secrets masked by the same rule as everything else that shows a plan (consumer.redact).
        details = " ".join(f"{k}={v}" for k, v in redacted(dict(i.details)).items())
        lines.append(f"{kind} {addr}:{i.port}{' main' if i.main else ''} {details}".strip())
    return "\n".join(sorted(lines))


def _show(field: str, value: Any) -> str:
    if value is None:
        return ""
    if field == "status":
        return _STATUS.get(value, str(value))
    if field in ("tls_connect", "tls_accept"):
        return ", ".join(name for name, bit in TLS_MODES.items() if int(value) & bit)
    if field == "tags":
        return "\n".join(f"{t}={v}" for t, v in sorted(value))
    if field == "inventory":  # Zabbix returns every inventory field; the empty ones say nothing
        items = value.items() if isinstance(value, dict) else value
        return "\n".join(f"{k}={v}" for k, v in sorted(items) if v)
    if isinstance(value, list | tuple | frozenset):
        return "\n".join(sorted(map(str, value)))
    return str(value)


def difference_rows(desired: DesiredHost | None, actual: ActualHost | None, plan: Plan) -> list[DiffRow]:
    """Field by field, NetBox's wanted host against Zabbix's, marked as the planner decided. Secrets masked."""
    fields = (
        "host",
        "name",
        "status",
        "groups",
        "templates",
        "interfaces",
        "tags",
        "macros",
        "inventory_mode",
        "inventory",
        "description",
        "proxy",
        "proxy_group",
        *TLS_FIELDS,  # the PSK itself is write-only in Zabbix and never shown: its digest is in macros
    )
    rows = []
    for f in fields:
        want = getattr(desired, f, None) if desired is not None else None
        has = getattr(actual, f, None) if actual is not None else None
        if f == "macros":
            nb, zb = _macros(want or ()), _macros(has or ())
        elif f == "interfaces":
            nb = _interfaces(want or ())
            zb = _interfaces(a.iface for a in has or ())
        else:
            nb, zb = _show(f, want), _show(f, has)
        # What the planner writes differs; a host to create differs wherever NetBox wants something.
        differs = nb != zb if plan.action == "create" else f in plan.changes
        rows.append(DiffRow(field=f, netbox=nb, zabbix=zb, differs=differs))
    return rows
