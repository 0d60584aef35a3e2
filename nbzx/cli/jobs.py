"""`nbzx reconcile | jobs | replay`: start jobs, follow them, list them."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

import msgspec

from nbzx.cli.options import load, servers


def add_to(sub: Any) -> None:
    rc = sub.add_parser("reconcile", help="request a reconcile (consumers run it), or run one here")
    rc.add_argument("--dry-run", action="store_true", help="record the plan, emit nothing")
    rc.add_argument(
        "--scope", action="append", metavar="OBJECT_TYPE", help="dcim.device or virtualization.virtualmachine"
    )
    rc.add_argument("--filter", action="append", metavar="KEY=VALUE", help="NetBox filter, e.g. site=lab")
    rc.add_argument(
        "--server", action="append", metavar="NAME", help="only this Zabbix server (repeatable; default all)"
    )
    rc.add_argument("--wait", action="store_true", help="wait for the job and print it")
    rc.add_argument("--timeout", type=float, default=600, help="seconds --wait waits (default 600)")
    rc.add_argument("--local", action="store_true", help="run the reconcile in this process")
    rc.add_argument("--user", help="who asked (recorded on the job)")
    rc.set_defaults(func=reconcile)

    jb = sub.add_parser("jobs", help="job records (reconcile, backfill, ...)")
    jb.add_argument("id", nargs="?", help="one job id")
    jb.add_argument("--json", action="store_true")
    jb.add_argument("--limit", type=int, default=50)
    jb.set_defaults(func=jobs)

    rp = sub.add_parser("replay", help="re-apply the events topic from a time (backfill)")
    rp.add_argument("--since", required=True, help="ISO time, e.g. 2026-11-01T00:00Z")
    rp.add_argument("--until", help="ISO time (default: the end offsets at start)")
    rp.add_argument("--group", help="consumer group (default: <group>-backfill-<epoch>)")
    rp.set_defaults(func=backfill)


def reconcile(args: argparse.Namespace) -> int:
    """Request a reconcile (or run one here with --local); --wait follows the job to its end."""
    from nbzx.common.kafka import Producer
    from nbzx.engine.open import open_engine
    from nbzx.jobs.reconcile import Reconciler
    from nbzx.jobs.records import ENDED, read_jobs, reconcile_request
    from nbzx.schemas.messages import encode

    cfg = load(args)
    flt = dict(kv.split("=", 1) for kv in args.filter or [])
    req = reconcile_request(
        "cli",
        user=args.user,
        dry_run=args.dry_run,
        object_types=args.scope,
        filter=flt,
        servers=servers(cfg, args.server),
    )

    async def run() -> int:
        producer = Producer(cfg, client_id=f"{cfg.kafka.client_id}-cli")
        try:
            if args.local:
                async with open_engine(cfg, connect=False) as engine:
                    record = await Reconciler(cfg, engine, producer).run(req)
                print(json.dumps(msgspec.to_builtins(record), indent=2))
                return 0 if record.status == "completed" else 1
            await producer.send(cfg.kafka.topics.control, "reconcile", encode(req))
            print(f"reconcile requested: job {req.job_id}")
            if not args.wait:
                return 0
            deadline = time.monotonic() + args.timeout
            while time.monotonic() < deadline:
                seen = (await read_jobs(cfg)).get(req.job_id)
                if seen is not None and seen.status in ENDED:
                    print(json.dumps(msgspec.to_builtins(seen), indent=2))
                    return 0 if seen.status == "completed" else 1
                await asyncio.sleep(1)
            print(f"job {req.job_id} did not finish within {args.timeout}s", file=sys.stderr)
            return 1
        finally:
            await producer.stop()

    return asyncio.run(run())


def jobs(args: argparse.Namespace) -> int:
    """List job records (a table, or --json), or show one."""
    from nbzx.jobs.records import newest_first, read_jobs

    cfg = load(args)
    records = asyncio.run(read_jobs(cfg))
    if args.id:
        record = records.get(args.id)
        if record is None:
            print(f"no job {args.id}", file=sys.stderr)
            return 1
        print(json.dumps(msgspec.to_builtins(record), indent=2))
        return 0
    rows = newest_first(records)[: args.limit]
    if args.json:
        print(json.dumps(msgspec.to_builtins(rows), indent=2))
        return 0
    print(f"{'ID':36}  {'KIND':19}  {'STATUS':9}  {'TRIGGER':8}  {'CREATED':19}  {'DURATION':>8}  RESULTS")
    for r in rows:
        counts = " ".join(f"{k}={v}" for k, v in r.results.items() if isinstance(v, int) and not isinstance(v, bool))
        dur = f"{r.duration_s:.1f}s" if r.duration_s is not None else ""
        print(
            f"{r.job_id:36}  {r.job_kind:19}  {r.status:9}  {r.trigger:8}  {r.created[:19]:19}  {dur:>8}  "
            f"{counts or (r.error or '')[:60]}"
        )
    return 0


def backfill(args: argparse.Namespace) -> int:
    """Re-apply the events topic from --since (to --until) through the sync path, with progress."""
    from nbzx.common.kafka import Producer
    from nbzx.engine.open import open_engine
    from nbzx.jobs.replay import replay
    from nbzx.jobs.schedule import parse_time

    cfg = load(args)
    since = parse_time(args.since)
    until = parse_time(args.until) if args.until else None
    group = args.group or f"{cfg.kafka.group}-backfill-{int(time.time())}"

    async def run() -> int:
        producer = Producer(cfg, client_id=f"{cfg.kafka.client_id}-replay")
        try:
            async with open_engine(cfg) as engine:
                record = await replay(cfg, engine, producer, since, until, group)
        finally:
            await producer.stop()
        print(json.dumps(msgspec.to_builtins(record), indent=2))
        return 0 if record.status == "completed" else 1

    return asyncio.run(run())
