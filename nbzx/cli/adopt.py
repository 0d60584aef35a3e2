"""`nbzx adopt plan | apply`: brownfield adoption of Zabbix hosts made before us (DESIGN §11)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import TYPE_CHECKING, Any

import msgspec

from nbzx.cli.options import load, servers

if TYPE_CHECKING:
    from nbzx.core.adoption import AdoptionReport


def add_to(sub: Any) -> None:
    ad = sub.add_parser("adopt", help="take over Zabbix hosts made before us").add_subparsers(
        dest="adopt_command", required=True
    )
    ap = ad.add_parser("plan", help="list adoptable hosts with reasons, Zabbix-only hosts, NetBox objects without")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--server", help="the Zabbix server (default: the first configured)")
    ap.set_defaults(func=adopt_command)
    aa = ad.add_parser("apply", help="take over valid hosts (owner tag, then a normal sync) as a job")
    aa.add_argument("host_keys", nargs="*", metavar="HOST_KEY")
    aa.add_argument("--all", action="store_true", help="every valid one")
    aa.add_argument("--user", help="who asked (recorded on the job)")
    aa.add_argument("--server", help="the Zabbix server (default: the first configured)")
    aa.set_defaults(func=adopt_command)


def adopt_command(args: argparse.Namespace) -> int:
    """List what brownfield adoption would take over (plan), or take it over as a job (apply)."""
    from nbzx.common.kafka import Producer
    from nbzx.engine.open import open_engine
    from nbzx.jobs.adopt import adopt, adoption_report

    cfg = load(args)
    servers(cfg, [args.server] if args.server else [])
    if args.adopt_command == "apply" and not (args.all or args.host_keys):
        print("nbzx adopt apply: give host keys, or --all for every valid one", file=sys.stderr)
        return 2

    async def run() -> int:
        if args.adopt_command == "plan":
            async with open_engine(cfg) as engine:
                report = await adoption_report(engine, args.server)
            print(json.dumps(msgspec.to_builtins(report), indent=2) if args.json else render_adoption(report))
            return 0
        producer = Producer(cfg, client_id=f"{cfg.kafka.client_id}-cli")
        try:
            async with open_engine(cfg) as engine:
                keys = None if args.all else args.host_keys
                record = await adopt(engine, producer, keys, user=args.user, server=args.server)
        finally:
            await producer.stop()
        print(json.dumps(msgspec.to_builtins(record), indent=2))
        return 0 if record.status == "completed" else 1

    return asyncio.run(run())


def render_adoption(report: AdoptionReport) -> str:
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
