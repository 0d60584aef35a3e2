"""`nbzx kafka init`: create the project's topics (idempotent)."""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from nbzx.cli.options import load


def add_to(sub: Any) -> None:
    k = sub.add_parser("kafka", help="Kafka tools").add_subparsers(dest="kafka_command", required=True)
    k.add_parser("init", help="create the topics (idempotent)").set_defaults(func=init)


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
