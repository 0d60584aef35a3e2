"""`nbzx webhook inspect`: what the receiver would do with saved deliveries, without Kafka."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

if TYPE_CHECKING:
    from nbzx.common.config import Config


def add_to(sub: Any) -> None:
    wh = sub.add_parser("webhook", help="webhook tools").add_subparsers(dest="webhook_command", required=True)
    ins = wh.add_parser("inspect", help="show what /webhook does with a saved delivery")
    ins.add_argument("files", nargs="+", help="raw body file, or JSON capture with raw_body and headers")
    ins.add_argument("--secret", help="webhook secret (default: $NBZX_WEBHOOK_SECRET)")
    ins.set_defaults(func=inspect)


def inspect(args: argparse.Namespace) -> int:
    """Print what the receiver would do with each saved webhook; exit 1 if any would be refused."""
    from nbzx.common.config import load_config

    cfg = load_config(args.config)
    worst = 0
    for f in args.files:
        out = inspect_file(Path(f), cfg, args.secret)
        print(json.dumps(out, indent=2 if len(args.files) == 1 else None))
        worst = max(worst, 0 if out["status"] == 202 else 1)
    return worst


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
    from nbzx.core.webhook import Delivery, inspect_delivery

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
