"""`nbzx consumer`: the production process next to the receiver."""

from __future__ import annotations

import asyncio
import signal
import time

from aiohttp import web

from nbzx.common.config import Config
from nbzx.common.http import add_health_routes, serve
from nbzx.common.kafka import Producer, check_credentials
from nbzx.common.logging import get_logger
from nbzx.delivery.consumer import EventConsumer
from nbzx.engine.netbox import NetBox, NetBoxError
from nbzx.engine.netbox_write import missing_custom_fields
from nbzx.engine.open import close_engine, log_in, log_in_all, new_engine
from nbzx.engine.sync import SyncEngine
from nbzx.jobs.changelog import ChangelogFollower
from nbzx.jobs.control import ControlLoop
from nbzx.jobs.reconcile import Reconciler

log = get_logger(component="consumer")


async def check_write_back_fields(netbox: NetBox, cfg: Config) -> None:
    """Say at start when write-back's custom fields are missing (they are then not written, and the
    journal still is); NetBox away is no reason not to start."""
    try:
        missing = await missing_custom_fields(netbox, cfg.netbox.write_back)
    except NetBoxError as exc:
        log.warning("write_back_fields_unchecked", error=str(exc))
        return
    if missing:
        log.error("write_back_fields_missing", fields=missing, fix="nbzx netbox setup-fields")


async def _after_log_in(engine: SyncEngine, consumer: EventConsumer, control: ControlLoop) -> None:
    if await log_in(engine.zabbix, consumer.stopping):
        await asyncio.gather(consumer.run(), control.run())


async def run_consumer(cfg: Config, *, http: bool = True) -> None:
    """Run until SIGTERM/SIGINT: finish (or abandon, uncommitted) the batch in flight, leave the group."""
    producer = Producer(cfg, client_id=f"{cfg.kafka.client_id}-consumer")
    engine = new_engine(cfg)
    consumer = EventConsumer(cfg, engine, producer)
    control = ControlLoop(cfg, Reconciler(cfg, engine, producer), producer, consumer.stopping)
    follower = ChangelogFollower(cfg, engine.netbox, consumer.stopping)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, consumer.stopping.set)

    async def ready() -> bool:
        return consumer.consumer is not None and time.monotonic() - consumer.last_poll < 60

    runner = None
    if http:
        app = web.Application()
        add_health_routes(app, ready, "not consuming")
        runner = await serve(app, cfg.consumer.http_host, cfg.consumer.http_port)
    try:
        await check_credentials(cfg)
        await producer.start()
        if cfg.netbox.write_back.custom_fields:
            await check_write_back_fields(engine.netbox, cfg)
        # The change-log follower needs NetBox and Kafka only: it runs even while Zabbix is away.
        changes = [follower.run()] if cfg.changelog.enabled else []
        if engine.several:
            # Each server logs in on its own: one that is down holds back only the keys routed to it
            # (their syncs fail as transient and wait), not the start of the others.
            await asyncio.gather(log_in_all(engine, consumer.stopping), consumer.run(), control.run(), *changes)
        else:
            await asyncio.gather(_after_log_in(engine, consumer, control), *changes)
    finally:
        await producer.stop()
        await close_engine(engine)
        if runner is not None:
            await runner.cleanup()
