"""`nbzx routes explain HOST_KEY`: which routing rule sends an object to which Zabbix servers, and why not elsewhere."""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

import msgspec

from nbzx.cli.options import load


def add_to(sub: Any) -> None:
    rt = sub.add_parser("routes", help="Zabbix servers and routing rules")
    rsub = rt.add_subparsers(dest="routes_command", required=True)
    ex = rsub.add_parser("explain", help="which rule routes a host where, and why not elsewhere (e.g. dcim.device:12)")
    ex.add_argument("host_key", metavar="HOST_KEY")
    ex.add_argument("--json", action="store_true")
    ex.set_defaults(func=explain)


def explain(args: argparse.Namespace) -> int:
    """Print the explanation; nothing is written."""
    from nbzx.engine.open import open_engine
    from nbzx.engine.routes import describe, explain_route
    from nbzx.schemas.objects import is_host_key

    if not is_host_key(args.host_key):
        print(f"nbzx: {args.host_key!r} is not a host key such as dcim.device:12")
        return 2
    cfg = load(args)

    async def run() -> int:
        async with open_engine(cfg, connect=False) as engine:
            found = await explain_route(engine, args.host_key)
        print(json.dumps(msgspec.to_builtins(found), indent=2) if args.json else "\n".join(describe(found)))
        return 0

    return asyncio.run(run())
