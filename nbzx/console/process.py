"""`nbzx console`: the console app with its NetBox and Zabbix clients (for live Difference views)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from aiohttp import web

from nbzx.common.config import Config
from nbzx.common.kafka import Producer
from nbzx.console.app import make_app
from nbzx.engine.open import close_engine, log_in_all, new_engine


def console_app(cfg: Config) -> web.Application:
    """The console application; Zabbix is logged in to in the background (the pages work without it)."""
    engine = new_engine(cfg)
    app = make_app(cfg, Producer(cfg, client_id=f"{cfg.kafka.client_id}-console"), engine)

    async def clients(app: web.Application) -> Any:
        stopping = asyncio.Event()
        login = asyncio.create_task(log_in_all(engine, stopping))
        yield
        stopping.set()
        login.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await login
        await close_engine(engine)

    app.cleanup_ctx.append(clients)
    return app
