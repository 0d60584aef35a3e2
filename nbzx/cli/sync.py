"""`nbzx sync HOST_KEY...`: sync host keys now (or only plan them) and print each plan and result."""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

import msgspec

from nbzx.cli.options import load


def add_to(sub: Any) -> None:
    sy = sub.add_parser("sync", help="sync host keys now (e.g. dcim.device:12) and print the plan")
    sy.add_argument("host_keys", nargs="+", metavar="HOST_KEY")
    sy.add_argument("--dry-run", action="store_true", help="print the plan, write nothing")
    sy.set_defaults(func=sync)


def sync(args: argparse.Namespace) -> int:
    """JSON lines of plan and result (secrets masked; with several servers also each server's plan);
    exit 1 if any key did not sync."""
    from nbzx.core.redact import redacted
    from nbzx.engine.open import open_engine

    cfg = load(args)

    async def run() -> int:
        async with open_engine(cfg, connect=False) as engine:
            plans = await engine.plans(args.host_keys)
            results = await engine.sync(args.host_keys, dry_run=args.dry_run)
        for r in results:
            per_server = plans.get(r.host_key, {})
            first = next(iter(per_server.values()), None)
            shown: dict[str, Any] = {"plan": msgspec.to_builtins(first) if first else None}
            if engine.several:  # the plan on each server the key concerns, by name
                shown["plans"] = msgspec.to_builtins(per_server)
            out = redacted({**shown, "result": msgspec.to_builtins(r)})
            print(json.dumps(out, indent=2 if len(results) == 1 else None))
        return 0 if all(r.result in ("ok", "skipped") for r in results) else 1

    return asyncio.run(run())
