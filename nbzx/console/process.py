"""`nbzx console`: the console app with its NetBox and Zabbix clients (for live Difference views)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from aiohttp import web

from nbzx.common.config import Config
from nbzx.common.kafka import Producer
from nbzx.console.app import make_app
from nbzx.consumer.process import connect_zabbix
from nbzx.engine.netbox import NetBox
from nbzx.engine.sync import SyncEngine
from nbzx.engine.zabbix import Zabbix


def console_app(cfg: Config) -> web.Application:
    """The console application; Zabbix is logged in to in the background (the pages work without it)."""
    netbox, zabbix = NetBox(cfg), Zabbix(cfg)
    app = make_app(cfg, Producer(cfg, client_id=f"{cfg.kafka.client_id}-console"), SyncEngine(cfg, netbox, zabbix))

    async def clients(app: web.Application) -> Any:
        stopping = asyncio.Event()
        login = asyncio.create_task(connect_zabbix(zabbix, stopping))
        yield
        stopping.set()
        login.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await login
        await zabbix.close()
        netbox.close()

    app.cleanup_ctx.append(clients)
    return app
