"""`nbzx console`: the console app with its NetBox and Zabbix clients (for live Difference views)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from aiohttp import web

from console.app import make_app
from consumer.netbox import NetBox
from consumer.process import connect_zabbix
from consumer.sync import SyncEngine
from consumer.zabbix import Zabbix
from nbzx.config import Config
from nbzx.kafka import Producer


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
