"""`nbzx dlq list | retry`: the dead letters, and re-queuing them as a job (as the console does)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

import msgspec

from nbzx.cli.options import load


def add_to(sub: Any) -> None:
    dl = sub.add_parser("dlq", help="dead letters").add_subparsers(dest="dlq_command", required=True)
    ls = dl.add_parser("list", help="show the dead letters")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=list_letters)
    rt = dl.add_parser("retry", help="re-queue dead-lettered hosts as sync requests, as one dlq_retry job")
    rt.add_argument("--host-key", action="append", help="only these host keys (repeatable; default: every one)")
    rt.add_argument("--user", help="who asked (recorded on the job)")
    rt.set_defaults(func=retry)


def list_letters(args: argparse.Namespace) -> int:
    """Print the dead letters (a line each, or --json)."""
    from nbzx.jobs.dead_letters import list_dead_letters

    cfg = load(args)
    letters = asyncio.run(list_dead_letters(cfg))
    if args.json:
        print(json.dumps(msgspec.to_builtins(letters), indent=2))
        return 0
    for d in letters:
        print(f"{d.produced_at[:19]}  {d.host_key:40}  attempts={d.attempts}  {d.error}")
    print(f"{len(letters)} dead letter(s)")
    return 0


def retry(args: argparse.Namespace) -> int:
    """Re-queue the named host keys (or every one with a dead letter); a named key without one is refused."""
    from nbzx.common.kafka import Producer
    from nbzx.jobs.dead_letters import list_dead_letters, requeue, retry_keys

    cfg = load(args)

    async def run() -> int:
        letters = await list_dead_letters(cfg)
        keys, missing = retry_keys((d.host_key for d in letters), args.host_key or [])
        if missing:
            print(f"nbzx: no dead letter for {', '.join(missing)}; nothing re-queued", file=sys.stderr)
            return 1
        producer = Producer(cfg, client_id=f"{cfg.kafka.client_id}-cli")
        try:
            job = await requeue(cfg, producer, keys, trigger="cli", user=args.user)
        finally:
            await producer.stop()
        print(f"re-queued {len(keys)} host key(s) as job {job.job_id}: {' '.join(keys)}")
        return 0

    return asyncio.run(run())
