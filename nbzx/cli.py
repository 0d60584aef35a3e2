"""The `nbzx` command: one entry point for every process and operator tool."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import msgspec

from nbzx.config import Config, ConfigError, load_config, require
from nbzx.logging import setup_logging


def _config(args: argparse.Namespace) -> Config:
    cfg = load_config(args.config)
    setup_logging(cfg.logging.level, cfg.logging.json)
    return cfg


def cmd_receiver(args: argparse.Namespace) -> int:
    """Run the webhook receiver until SIGTERM/SIGINT."""
    from aiohttp import web

    from receiver.app import make_app

    cfg = _config(args)
    require(cfg, "webhook_secret")
    host = args.host or cfg.receiver.host
    port = args.port or cfg.receiver.port
    web.run_app(make_app(cfg), host=host, port=port, access_log=None, print=None, shutdown_timeout=10)
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
    from receiver.webhook import Delivery, inspect_delivery

    raw, headers = _read_saved_webhook(path)
    lower = {k.lower(): v for k, v in headers.items()}
    result = inspect_delivery(
        Delivery(raw, lower.get("x-hook-signature"), lower.get("content-type")),
        secret if secret is not None else cfg.secrets.webhook_secret,
        max_body_bytes=cfg.receiver.max_body_bytes,
        object_types=cfg.receiver.object_types,
        vc_as_one_host=cfg.receiver.virtual_chassis_as_one_host,
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
    from consumer.process import run_consumer

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
    from nbzx.kafka import create_topics

    cfg = _config(args)
    t0 = time.monotonic()
    result = asyncio.run(create_topics(cfg))
    for topic, state in result.items():
        print(f"{topic}: {state}")
    print(f"done in {time.monotonic() - t0:.1f}s")
    return 0


def cmd_netbox_register(args: argparse.Namespace) -> int:
    """Create or update the NetBox webhook + event rule that post to the receiver."""
    from receiver.netbox_hook import register_webhook

    cfg = _config(args)
    require(cfg, "netbox_token", "webhook_secret")
    url = args.url or f"http://{cfg.receiver.host}:{cfg.receiver.port}/webhook"
    print(json.dumps(register_webhook(cfg, url, args.name)))
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    """Sync host keys now and print each plan and result as JSON lines."""
    from consumer.netbox import NetBox
    from consumer.sync import SyncEngine
    from consumer.zabbix import Zabbix

    cfg = _config(args)
    require(cfg, "netbox_token", "zabbix_auth")

    async def run() -> int:
        netbox, zabbix = NetBox(cfg), Zabbix(cfg)
        await zabbix.start()
        try:
            engine = SyncEngine(cfg, netbox, zabbix)
            plans = await engine.plans(args.host_keys)
            results = await engine.sync(args.host_keys, dry_run=args.dry_run)
        finally:
            await zabbix.close()
            netbox.close()
        for r in results:
            plan = plans.get(r.host_key)
            out = {"plan": msgspec.to_builtins(plan) if plan else None, "result": msgspec.to_builtins(r)}
            print(json.dumps(out, indent=2 if len(results) == 1 else None))
        return 0 if all(r.result in ("ok", "skipped") for r in results) else 1

    return asyncio.run(run())


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

    nb = sub.add_parser("netbox", help="NetBox tools").add_subparsers(dest="netbox_command", required=True)
    reg = nb.add_parser("register-webhook", help="point a NetBox webhook + event rule at the receiver")
    reg.add_argument("--url", help="receiver URL (default: http://receiver.host:receiver.port/webhook)")
    reg.add_argument("--name", default="netbox-zabbix-stream", help="webhook and event rule name")
    reg.set_defaults(func=cmd_netbox_register)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `nbzx` console script."""
    args = build_parser().parse_args(argv)
    try:
        rc: int = args.func(args)
    except ConfigError as exc:
        print(f"nbzx: configuration error: {exc}", file=sys.stderr)
        return 2
    return rc


if __name__ == "__main__":
    sys.exit(main())
