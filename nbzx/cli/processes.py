"""`nbzx receiver | consumer | console | scheduler`: the long-running processes, until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import TYPE_CHECKING, Any

from nbzx.cli.options import load
from nbzx.common.config import require

if TYPE_CHECKING:
    from aiohttp import web


def add_to(sub: Any) -> None:
    r = sub.add_parser("receiver", help="run the webhook receiver")
    r.add_argument("--host", help="listen address (default: receiver.host)")
    r.add_argument("--port", type=int, help="listen port (default: receiver.port)")
    r.set_defaults(func=receiver)

    sub.add_parser("consumer", help="run a consumer (group member on the events topic)").set_defaults(func=consumer)

    co = sub.add_parser("console", help="run the operator console (web pages and JSON API)")
    co.add_argument("--host")
    co.add_argument("--port", type=int)
    co.set_defaults(func=console)

    sub.add_parser("scheduler", help="emit reconciles every reconcile.interval minutes").set_defaults(func=scheduler)


def receiver(args: argparse.Namespace) -> int:
    """Run the webhook receiver."""
    from nbzx.receiver.app import make_app

    cfg = require(load(args), "webhook_secret")
    return _serve(make_app(cfg), args.host or cfg.receiver.host, args.port or cfg.receiver.port)


def consumer(args: argparse.Namespace) -> int:
    """Run the consumer group member (and its control loop)."""
    from nbzx.consumer.process import run_consumer

    asyncio.run(run_consumer(require(load(args), "netbox_token", "zabbix_auth")))
    return 0


def console(args: argparse.Namespace) -> int:
    """Run the operator console."""
    from nbzx.console.process import console_app

    cfg = require(load(args), "console_tokens")
    return _serve(console_app(cfg), args.host or cfg.console.host, args.port or cfg.console.port)


def scheduler(args: argparse.Namespace) -> int:
    """Emit reconcile requests on the configured schedule."""
    from nbzx.common.kafka import Producer
    from nbzx.jobs.schedule import run_scheduler

    cfg = load(args)

    async def run() -> None:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.set)
        producer = Producer(cfg, client_id=f"{cfg.kafka.client_id}-scheduler")
        try:
            await run_scheduler(cfg, producer, stopping)
        finally:
            await producer.stop()

    asyncio.run(run())
    return 0


def _new_loop() -> asyncio.AbstractEventLoop:
    """uvloop where it is installed (Linux): the receiver handles about a third more webhooks per core."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _serve(app: web.Application, host: str, port: int) -> int:
    """Serve an aiohttp app until SIGTERM/SIGINT; 0 when it stopped."""
    from aiohttp import web

    web.run_app(app, host=host, port=port, access_log=None, print=None, shutdown_timeout=10, loop=_new_loop())
    return 0
