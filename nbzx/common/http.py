"""The HTTP routes every process serves: /healthz, /readyz and /metrics."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

Ready = Callable[[], Awaitable[bool]]


def add_health_routes(app: web.Application, ready: Ready, not_ready_reason: str) -> None:
    """Liveness (the process answers), readiness (`ready()`), and Prometheus metrics."""

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_request: web.Request) -> web.Response:
        if await ready():
            return web.json_response({"status": "ready"})
        return web.json_response({"status": not_ready_reason}, status=503)

    async def metrics(_request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)


async def serve(app: web.Application, host: str, port: int) -> web.AppRunner:
    """Start `app` in the running loop (next to other work); the caller cleans the runner up."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
