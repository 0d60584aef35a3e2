"""`nbzx kafka init`: create the project's topics (idempotent). `nbzx kafka acls`: the ACLs each
component needs on a cluster that enforces them (nbzx/core/acls.py)."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

import msgspec

from nbzx.cli.options import load
from nbzx.core.acls import COMPONENTS, acls, kafka_acls_commands


def add_to(sub: Any) -> None:
    k = sub.add_parser("kafka", help="Kafka tools").add_subparsers(dest="kafka_command", required=True)
    k.add_parser("init", help="create the topics (idempotent)").set_defaults(func=init)
    a = k.add_parser("acls", help="the ACLs each component needs (kafka-acls.sh lines, or JSON)")
    for component in COMPONENTS:
        a.add_argument(f"--{component}", metavar="USER", default=f"nbzx-{component}", help=f"the {component}'s user")
    a.add_argument("--json", action="store_true", help="one JSON object per rule instead of command lines")
    a.add_argument("--command-config", default="admin.properties", help="kafka-acls.sh's client properties file")
    a.set_defaults(func=print_acls)


def init(args: argparse.Namespace) -> int:
    """Create the topics, printing each one's state."""
    from nbzx.common.kafka import create_topics

    cfg = load(args)
    t0 = time.monotonic()
    result = asyncio.run(create_topics(cfg))
    for topic, state in result.items():
        print(f"{topic}: {state}")
    print(f"done in {time.monotonic() - t0:.1f}s")
    return 0


def print_acls(args: argparse.Namespace) -> int:
    """Print the ACLs of the config's topics and group for the named users."""
    cfg = load(args)
    rules = acls(cfg.kafka.topics, cfg.kafka.group, {c: getattr(args, c) for c in COMPONENTS})
    if args.json:
        for rule in rules:
            print(json.dumps(msgspec.to_builtins(rule)))
    else:
        print("\n".join(kafka_acls_commands(rules, cfg.kafka.bootstrap, args.command_config)))
    return 0
