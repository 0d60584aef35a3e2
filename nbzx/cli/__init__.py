"""The `nbzx` command: one entry point for every process and operator tool.

One module per command group, each thin: it parses, calls what the layers below provide, prints.
A command imports what it runs inside its function, so `nbzx --help` and the light tools start fast
(the layers contract sees those imports too).
"""

from __future__ import annotations

import argparse
import sys

from nbzx.cli import adopt, dlq, jobs, kafka, netbox, processes, routes, sync, webhook
from nbzx.common.config import ConfigError, load_config
from nbzx.common.logging import get_logger

GROUPS = (processes, webhook, kafka, sync, routes, jobs, dlq, netbox, adopt)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `nbzx` and its subcommands."""
    p = argparse.ArgumentParser(prog="nbzx", description="Keep Zabbix in step with NetBox, through Kafka.")
    p.add_argument("--config", help="YAML config file (default: $NBZX_CONFIG; none = built-in defaults)")
    sub = p.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.add_to(sub)
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
        from nbzx.common.kafka import refusal
        from nbzx.engine.netbox import NetBoxError
        from nbzx.engine.zabbix import ZabbixError

        refused = refusal(load_config(args.config), exc)
        if refused is not None:
            # One line saying who was refused what, instead of a client retrying in silence.
            get_logger(component="kafka").error("kafka_refused", error=str(refused))
            return 3
        if not isinstance(exc, NetBoxError | ZabbixError):
            raise
        # NetBox or Zabbix refused or unreachable: the reason, not a traceback.
        print(f"nbzx: {exc}", file=sys.stderr)
        return 1
    return rc
