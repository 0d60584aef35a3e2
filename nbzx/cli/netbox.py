"""`nbzx netbox register-webhook | setup-fields`: set NetBox up for the receiver and for write-back."""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from nbzx.cli.options import load
from nbzx.common.config import require


def add_to(sub: Any) -> None:
    nb = sub.add_parser("netbox", help="NetBox tools").add_subparsers(dest="netbox_command", required=True)
    reg = nb.add_parser("register-webhook", help="point a NetBox webhook + event rule at the receiver")
    reg.add_argument("--url", help="receiver URL (default: http://receiver.host:receiver.port/webhook)")
    reg.add_argument("--name", default="netbox-zabbix-stream", help="webhook and event rule name")
    reg.set_defaults(func=register)
    nb.add_parser("setup-fields", help="create the custom fields write-back uses (idempotent)").set_defaults(
        func=setup_fields
    )


def register(args: argparse.Namespace) -> int:
    """Create or update the NetBox webhook + event rule that post to the receiver."""
    from nbzx.receiver.netbox_hook import register_webhook

    cfg = load(args)
    require(cfg, "netbox_token", "webhook_secret")
    url = args.url or f"http://{cfg.receiver.host}:{cfg.receiver.port}/webhook"
    print(json.dumps(register_webhook(cfg, url, args.name)))
    return 0


def setup_fields(args: argparse.Namespace) -> int:
    """Create the custom fields write-back uses (idempotent), printing each one's state."""
    from nbzx.engine.netbox import NetBox
    from nbzx.engine.netbox_write import ensure_custom_fields

    cfg = load(args)
    require(cfg, "netbox_token")
    netbox = NetBox(cfg)
    try:
        result = asyncio.run(ensure_custom_fields(netbox, cfg.netbox.write_back))
    finally:
        netbox.close()
    for name, state in result.items():
        print(f"{name}: {state}")
    return 0
