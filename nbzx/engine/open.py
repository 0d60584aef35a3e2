"""The one place the engine is put together: its NetBox and Zabbix clients, logged in, closed.

Every process (consumer, console) and every command that reads or writes both sides opens it here.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from nbzx.common.config import Config, require, zabbix_servers
from nbzx.common.logging import get_logger
from nbzx.common.retry import Stopped, retry
from nbzx.engine.netbox import NetBox
from nbzx.engine.sync import SyncEngine
from nbzx.engine.zabbix import Zabbix, ZabbixError

log = get_logger(component="engine")


def new_engine(cfg: Config) -> SyncEngine:
    """The engine with fresh clients (one per Zabbix server), not logged in yet."""
    return SyncEngine(cfg, NetBox(cfg), {name: Zabbix(cfg, server=name) for name in zabbix_servers(cfg)})


async def close_engine(engine: SyncEngine) -> None:
    """Close every client (logging out of Zabbix where it was a password login)."""
    await asyncio.gather(*(z.close() for z in engine.servers.values()))
    engine.netbox.close()


async def log_in_all(engine: SyncEngine, stopping: asyncio.Event) -> bool:
    """Log in to every server at once, each retrying on its own (see `log_in`); False if asked to stop
    first. A process waits for this before it starts; sync then isolates a server that goes down."""
    return all(await asyncio.gather(*(log_in(z, stopping) for z in engine.servers.values())))


async def log_in(zabbix: Zabbix, stopping: asyncio.Event) -> bool:
    """Log in, retrying with backoff while Zabbix is unreachable; False if asked to stop first.

    A Zabbix older than 6.0 is no outage: it is logged as an error, and tried again (it may be upgraded)."""

    def on_retry(exc: BaseException, delay: float) -> None:
        transient = isinstance(exc, ZabbixError) and exc.transient
        event = "zabbix_unavailable_at_start" if transient else "zabbix_unsupported"
        (log.warning if transient else log.error)(event, server=zabbix.server, error=str(exc), retry_in_s=delay)

    try:
        await retry(zabbix.connect, retry_if=lambda e: isinstance(e, ZabbixError), on_retry=on_retry, stopping=stopping)
    except Stopped:
        return False
    return True


@contextlib.asynccontextmanager
async def open_engine(cfg: Config, connect: bool = True) -> AsyncIterator[SyncEngine]:
    """The engine, logged in to every Zabbix server now (one that cannot be reached is the caller's
    error), or at each one's first call (`connect=False`: a command that reports a server it cannot
    read); closed on the way out. For commands; processes use `new_engine` and `log_in_all`."""
    require(cfg, "netbox_token", "zabbix_auth")
    engine = new_engine(cfg)
    try:
        if connect:
            await asyncio.gather(*(z.start() for z in engine.servers.values()))
        yield engine
    finally:
        await close_engine(engine)
