"""The `nbzx` command: one entry point for every process and operator tool."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from nbzx.common.config import Config, ConfigError, load_config, require
from nbzx.common.logging import setup_logging

if TYPE_CHECKING:
    from nbzx.engine.sync import SyncEngine


def _config(args: argparse.Namespace) -> Config:
    cfg = load_config(args.config)
    setup_logging(cfg.logging.level, cfg.logging.json)
    return cfg


def _new_loop() -> asyncio.AbstractEventLoop:
    """uvloop where it is installed (Linux): the receiver handles about a third more webhooks per core."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def cmd_receiver(args: argparse.Namespace) -> int:
    """Run the webhook receiver until SIGTERM/SIGINT."""
    from nbzx.receiver.app import make_app

    cfg = _config(args)
    require(cfg, "webhook_secret")
    _serve(make_app(cfg), args.host or cfg.receiver.host, args.port or cfg.receiver.port)
    return 0


def _serve(app: Any, host: str, port: int) -> None:
    """Serve an aiohttp app until SIGTERM/SIGINT."""
    from aiohttp import web

    web.run_app(app, host=host, port=port, access_log=None, print=None, shutdown_timeout=10, loop=_new_loop())


def cmd_console(args: argparse.Namespace) -> int:
    """Run the operator console until SIGTERM/SIGINT."""
    from nbzx.console.process import console_app

    cfg = _config(args)
    require(cfg, "console_tokens")
    _serve(console_app(cfg), args.host or cfg.console.host, args.port or cfg.console.port)
    return 0


def _read_saved_webhook(path: Path) -> tuple[bytes, dict[str, str]]:
    """A raw body file, or a capture with `raw_body` and `headers` (like shared/netbox-webhooks)."""
    data = path.read_bytes()
    try:
        doc = json.loads(data)
    except ValueError:
        return data, {"Content-Type": "application/json"}
    if isinstance(doc, dict) and isinstance(doc.get("raw_body"), str):
        headers = {str(k): str(v) for k, v in (doc.get("headers") or {}).items()}
        return doc["raw_body"].encode(), headers
    return data, {"Content-Type": "application/json"}


def inspect_file(path: Path, cfg: Config, secret: str | None) -> dict[str, Any]:
    """What `/webhook` would do with a saved delivery, as a JSON-able dict."""
    from nbzx.receiver.webhook import Delivery, inspect_delivery

    raw, headers = _read_saved_webhook(path)
    lower = {k.lower(): v for k, v in headers.items()}
    result = inspect_delivery(
        Delivery(raw, lower.get("x-hook-signature"), lower.get("content-type")),
        secret if secret is not None else cfg.secrets.webhook_secret,
        max_body_bytes=cfg.receiver.max_body_bytes,
        object_types=cfg.receiver.object_types,
        vc_as_one_host=cfg.receiver.virtual_chassis_as_one_host,
        own_fields=cfg.netbox.write_back.own_fields,
    )
    out: dict[str, Any] = {
        "file": str(path),
        "status": result.status,
        "signature": "valid" if result.signature_valid else "invalid",
    }
    if result.reason:
        out["reason"] = result.reason
    if result.ignored:
        out["ignored"] = result.ignored
    if result.event is not None:
        ev = result.event
        out.update(
            event=ev.event,
            object_type=ev.object_type,
            object_id=ev.object_id,
            host_key=ev.host_key,
            changed=ev.changed,
            user=ev.user,
            request_id=ev.request_id,
            timestamp=ev.timestamp,
        )
        if ev.previous_owner is not None:
            out["previous_owner"] = msgspec.to_builtins(ev.previous_owner)
    return out


def cmd_consumer(args: argparse.Namespace) -> int:
    """Run the consumer group member until SIGTERM."""
    from nbzx.consumer.process import run_consumer

    cfg = _config(args)
    require(cfg, "netbox_token", "zabbix_auth")
    asyncio.run(run_consumer(cfg))
    return 0


def cmd_webhook_inspect(args: argparse.Namespace) -> int:
    """Print what the receiver would do with each saved webhook; exit 1 if any would be refused."""
    cfg = load_config(args.config)
    worst = 0
    for f in args.files:
        out = inspect_file(Path(f), cfg, args.secret)
        print(json.dumps(out, indent=2 if len(args.files) == 1 else None))
        worst = max(worst, 0 if out["status"] == 202 else 1)
    return worst


def cmd_kafka_init(args: argparse.Namespace) -> int:
    """Create the project's topics (idempotent)."""
    from nbzx.common.kafka import create_topics

    cfg = _config(args)
    t0 = time.monotonic()
    result = asyncio.run(create_topics(cfg))
    for topic, state in result.items():
        print(f"{topic}: {state}")
    print(f"done in {time.monotonic() - t0:.1f}s")
    return 0


def cmd_netbox_register(args: argparse.Namespace) -> int:
    """Create or update the NetBox webhook + event rule that post to the receiver."""
    from nbzx.receiver.netbox_hook import register_webhook

    cfg = _config(args)
    require(cfg, "netbox_token", "webhook_secret")
    url = args.url or f"http://{cfg.receiver.host}:{cfg.receiver.port}/webhook"
    print(json.dumps(register_webhook(cfg, url, args.name)))
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    """Sync host keys now and print each plan and result as JSON lines."""
    from nbzx.core.redact import redacted

    cfg = _config(args)

    async def run() -> int:
        async with open_engine(cfg) as engine:
            plans = await engine.plans(args.host_keys)
            results = await engine.sync(args.host_keys, dry_run=args.dry_run)
        for r in results:
            plan = plans.get(r.host_key)
            out = redacted({"plan": msgspec.to_builtins(plan) if plan else None, "result": msgspec.to_builtins(r)})
            print(json.dumps(out, indent=2 if len(results) == 1 else None))
        return 0 if all(r.result in ("ok", "skipped") for r in results) else 1

    return asyncio.run(run())


@contextlib.asynccontextmanager
async def open_engine(cfg: Config) -> AsyncIterator[SyncEngine]:
    """The sync engine with both clients, logged in to Zabbix; closed on the way out. Every command
    that reads or writes NetBox and Zabbix opens it here."""
    from nbzx.engine.netbox import NetBox
    from nbzx.engine.sync import SyncEngine
    from nbzx.engine.zabbix import Zabbix

    require(cfg, "netbox_token", "zabbix_auth")
    engine = SyncEngine(cfg, NetBox(cfg), Zabbix(cfg))
    try:
        await engine.zabbix.start()
        yield engine
    finally:
        await engine.zabbix.close()
        engine.netbox.close()


def cmd_reconcile(args: argparse.Namespace) -> int:
    """Request a reconcile (or run one here with --local); --wait follows the job to its end."""
    from nbzx.common.kafka import Producer
    from nbzx.jobs.records import read_jobs
    from nbzx.schemas.messages import ReconcileRequest, ReconcileScope, encode

    cfg = _config(args)
    flt = dict(kv.split("=", 1) for kv in args.filter or [])
    req = ReconcileRequest(
        trigger="cli",
        dry_run=args.dry_run,
        user=args.user,
        scope=ReconcileScope(object_types=args.scope or [], filter=flt),
    )

    async def run() -> int:
        producer = Producer(cfg, client_id=f"{cfg.kafka.client_id}-cli")
        try:
            if args.local:
                from nbzx.jobs.reconcile import Reconciler

                async with open_engine(cfg) as engine:
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
                if seen is not None and seen.status in ("completed", "errored", "failed", "skipped"):
                    print(json.dumps(msgspec.to_builtins(seen), indent=2))
                    return 0 if seen.status == "completed" else 1
                await asyncio.sleep(1)
            print(f"job {req.job_id} did not finish within {args.timeout}s", file=sys.stderr)
            return 1
        finally:
            await producer.stop()

    return asyncio.run(run())


def cmd_jobs(args: argparse.Namespace) -> int:
    """List job records (a table, or --json), or show one."""
    from nbzx.jobs.records import newest_first, read_jobs

    cfg = _config(args)
    jobs = asyncio.run(read_jobs(cfg))
    if args.id:
        record = jobs.get(args.id)
        if record is None:
            print(f"no job {args.id}", file=sys.stderr)
            return 1
        print(json.dumps(msgspec.to_builtins(record), indent=2))
        return 0
    rows = newest_first(jobs)[: args.limit]
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


def cmd_scheduler(args: argparse.Namespace) -> int:
    """Emit reconcile requests on the configured schedule until SIGTERM."""
    import signal

    from nbzx.common.kafka import Producer
    from nbzx.jobs.schedule import run_scheduler

    cfg = _config(args)

    async def run() -> None:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.set)
        producer = Producer(cfg, client_id=f"{cfg.kafka.client_id}-scheduler")
        try:
            await run_scheduler(cfg, producer, stopping)
        finally:
            await producer.stop()

    asyncio.run(run())
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    """Re-apply the events topic from --since (to --until) through the sync path, with progress."""
    from nbzx.common.kafka import Producer
    from nbzx.jobs.replay import replay
    from nbzx.jobs.schedule import parse_time

    cfg = _config(args)
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


def cmd_dlq(args: argparse.Namespace) -> int:
    """List dead letters, or re-queue them."""
    from nbzx.delivery.dead_letters import list_dead_letters, retry_dead_letters

    cfg = _config(args)
    if args.dlq_command == "retry":
        keys = asyncio.run(retry_dead_letters(cfg, set(args.host_key) if args.host_key else None))
        print(f"re-queued {len(keys)} host key(s): {' '.join(keys)}")
        return 0
    letters = asyncio.run(list_dead_letters(cfg))
    if args.json:
        print(json.dumps(msgspec.to_builtins(letters), indent=2))
    else:
        for d in letters:
            print(f"{d.produced_at[:19]}  {d.host_key:40}  attempts={d.attempts}  {d.error}")
        print(f"{len(letters)} dead letter(s)")
    return 0


def cmd_netbox_fields(args: argparse.Namespace) -> int:
    """Create the custom fields write-back uses (idempotent)."""
    from nbzx.engine.netbox import NetBox
    from nbzx.engine.netbox_write import ensure_custom_fields

    cfg = _config(args)
    require(cfg, "netbox_token")
    netbox = NetBox(cfg)
    try:
        result = asyncio.run(ensure_custom_fields(netbox, cfg.netbox.write_back))
    finally:
        netbox.close()
    for name, state in result.items():
        print(f"{name}: {state}")
    return 0


def cmd_adopt(args: argparse.Namespace) -> int:
    """List what brownfield adoption would take over (plan), or take it over as a job (apply)."""
    from nbzx.common.kafka import Producer
    from nbzx.jobs.adopt import adopt, adoption_report

    cfg = _config(args)
    if args.adopt_command == "apply" and not (args.all or args.host_keys):
        print("nbzx adopt apply: give host keys, or --all for every valid one", file=sys.stderr)
        return 2

    async def run() -> int:
        if args.adopt_command == "plan":
            async with open_engine(cfg) as engine:
                report = await adoption_report(engine)
            print(json.dumps(msgspec.to_builtins(report), indent=2) if args.json else render_adoption(report))
            return 0
        producer = Producer(cfg, client_id=f"{cfg.kafka.client_id}-cli")
        try:
            async with open_engine(cfg) as engine:
                record = await adopt(engine, producer, None if args.all else args.host_keys, user=args.user)
        finally:
            await producer.stop()
        print(json.dumps(msgspec.to_builtins(record), indent=2))
        return 0 if record.status == "completed" else 1

    return asyncio.run(run())


def render_adoption(report: Any) -> str:
    """`nbzx adopt plan` as text: four sections, one line per host."""
    lines = [f"Adoptable ({len(report.adoptable)}): nbzx adopt apply --all, or name the host keys"]
    for a in report.adoptable:
        changes = ", ".join(a.changes) or "nothing"
        lines.append(f"  {a.host_key:36} <- {a.host!r} (hostid {a.hostid}, by {a.matched_by}); would change: {changes}")
    lines.append(f"Not adoptable ({len(report.not_adoptable)}):")
    for a in report.not_adoptable:
        lines.append(f"  {a.host!r} (hostid {a.hostid}): {a.reason}")
    lines.append(f"Zabbix only, matching no NetBox object ({len(report.zabbix_only)}):")
    lines.extend(f"  {a.host!r} (hostid {a.hostid})" for a in report.zabbix_only)
    lines.append(f"NetBox objects in scope without a Zabbix host ({len(report.netbox_only)}):")
    lines.extend(f"  {m.host_key:36} {m.name!r}: {m.reason}" for m in report.netbox_only)
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `nbzx` and its subcommands."""
    p = argparse.ArgumentParser(prog="nbzx", description="Keep Zabbix in step with NetBox, through Kafka.")
    p.add_argument("--config", help="YAML config file (default: $NBZX_CONFIG; none = built-in defaults)")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("receiver", help="run the webhook receiver")
    r.add_argument("--host", help="listen address (default: receiver.host)")
    r.add_argument("--port", type=int, help="listen port (default: receiver.port)")
    r.set_defaults(func=cmd_receiver)

    sub.add_parser("consumer", help="run a consumer (group member on the events topic)").set_defaults(func=cmd_consumer)

    co = sub.add_parser("console", help="run the operator console (web pages and JSON API)")
    co.add_argument("--host")
    co.add_argument("--port", type=int)
    co.set_defaults(func=cmd_console)

    wh = sub.add_parser("webhook", help="webhook tools").add_subparsers(dest="webhook_command", required=True)
    ins = wh.add_parser("inspect", help="show what /webhook does with a saved delivery")
    ins.add_argument("files", nargs="+", help="raw body file, or JSON capture with raw_body and headers")
    ins.add_argument("--secret", help="webhook secret (default: $NBZX_WEBHOOK_SECRET)")
    ins.set_defaults(func=cmd_webhook_inspect)

    k = sub.add_parser("kafka", help="Kafka tools").add_subparsers(dest="kafka_command", required=True)
    k.add_parser("init", help="create the topics (idempotent)").set_defaults(func=cmd_kafka_init)

    sy = sub.add_parser("sync", help="sync host keys now (e.g. dcim.device:12) and print the plan")
    sy.add_argument("host_keys", nargs="+", metavar="HOST_KEY")
    sy.add_argument("--dry-run", action="store_true", help="print the plan, write nothing")
    sy.set_defaults(func=cmd_sync)

    rc = sub.add_parser("reconcile", help="request a reconcile (consumers run it), or run one here")
    rc.add_argument("--dry-run", action="store_true", help="record the plan, emit nothing")
    rc.add_argument(
        "--scope", action="append", metavar="OBJECT_TYPE", help="dcim.device or virtualization.virtualmachine"
    )
    rc.add_argument("--filter", action="append", metavar="KEY=VALUE", help="NetBox filter, e.g. site=lab")
    rc.add_argument("--wait", action="store_true", help="wait for the job and print it")
    rc.add_argument("--timeout", type=float, default=600, help="seconds --wait waits (default 600)")
    rc.add_argument("--local", action="store_true", help="run the reconcile in this process")
    rc.add_argument("--user", help="who asked (recorded on the job)")
    rc.set_defaults(func=cmd_reconcile)

    jb = sub.add_parser("jobs", help="job records (reconcile, backfill, ...)")
    jb.add_argument("id", nargs="?", help="one job id")
    jb.add_argument("--json", action="store_true")
    jb.add_argument("--limit", type=int, default=50)
    jb.set_defaults(func=cmd_jobs)

    sub.add_parser("scheduler", help="emit reconciles every reconcile.interval minutes").set_defaults(
        func=cmd_scheduler
    )

    rp = sub.add_parser("replay", help="re-apply the events topic from a time (backfill)")
    rp.add_argument("--since", required=True, help="ISO time, e.g. 2026-11-01T00:00Z")
    rp.add_argument("--until", help="ISO time (default: the end offsets at start)")
    rp.add_argument("--group", help="consumer group (default: <group>-backfill-<epoch>)")
    rp.set_defaults(func=cmd_replay)

    dl = sub.add_parser("dlq", help="dead letters").add_subparsers(dest="dlq_command", required=True)
    ls = dl.add_parser("list", help="show the dead letters")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_dlq)
    rt = dl.add_parser("retry", help="re-queue dead letters as sync requests")
    rt.add_argument("--host-key", action="append", help="only these host keys (repeatable)")
    rt.set_defaults(func=cmd_dlq)

    nb = sub.add_parser("netbox", help="NetBox tools").add_subparsers(dest="netbox_command", required=True)
    reg = nb.add_parser("register-webhook", help="point a NetBox webhook + event rule at the receiver")
    reg.add_argument("--url", help="receiver URL (default: http://receiver.host:receiver.port/webhook)")
    reg.add_argument("--name", default="netbox-zabbix-stream", help="webhook and event rule name")
    reg.set_defaults(func=cmd_netbox_register)
    nb.add_parser("setup-fields", help="create the custom fields write-back uses (idempotent)").set_defaults(
        func=cmd_netbox_fields
    )

    ad = sub.add_parser("adopt", help="take over Zabbix hosts made before us").add_subparsers(
        dest="adopt_command", required=True
    )
    ap = ad.add_parser("plan", help="list adoptable hosts with reasons, Zabbix-only hosts, NetBox objects without")
    ap.add_argument("--json", action="store_true")
    ap.set_defaults(func=cmd_adopt)
    aa = ad.add_parser("apply", help="take over valid hosts (owner tag, then a normal sync) as a job")
    aa.add_argument("host_keys", nargs="*", metavar="HOST_KEY")
    aa.add_argument("--all", action="store_true", help="every valid one")
    aa.add_argument("--user", help="who asked (recorded on the job)")
    aa.set_defaults(func=cmd_adopt)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `nbzx` console script."""
    args = build_parser().parse_args(argv)
    try:
        rc: int = args.func(args)
    except ConfigError as exc:
        print(f"nbzx: configuration error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        from nbzx.engine.netbox import NetBoxError
        from nbzx.engine.zabbix import ZabbixError

        if not isinstance(exc, NetBoxError | ZabbixError):
            raise
        # NetBox or Zabbix refused or unreachable: the reason, not a traceback.
        print(f"nbzx: {exc}", file=sys.stderr)
        return 1
    return rc
