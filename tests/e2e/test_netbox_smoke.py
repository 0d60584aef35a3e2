"""Smoke test: the stack's NetBox is real and sends signed webhooks to a listener of ours."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from nbzx.core.webhook import signature_valid
from tests.conftest import HOOK_SECRET


async def test_netbox_device_create_sends_signed_webhook(
    netbox_api: Any, netbox_webhook: Any, netbox_objects: Any, aiohttp_listener: Any
) -> None:
    received: asyncio.Queue[tuple[bytes, str | None]] = asyncio.Queue()

    async def catch(request: web.Request) -> web.Response:
        await received.put((await request.read(), request.headers.get("X-Hook-Signature")))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", catch)
    url = await aiohttp_listener(app)
    netbox_webhook(f"{url}/hook", object_types=["dcim.device"])
    base = netbox_objects("smoke")

    device = await asyncio.to_thread(
        netbox_api.dcim.devices.create,
        name=f"{base['tag']}-dev",
        device_type=base["device_type"].id,
        role=base["role"].id,
        site=base["site"].id,
    )
    raw, sig = await asyncio.wait_for(received.get(), timeout=30)
    assert signature_valid(HOOK_SECRET, raw, sig)
    assert not signature_valid(HOOK_SECRET, raw + b" ", sig)
    body = json.loads(raw)
    assert (body["event"], body["object_type"], body["data"]["id"]) == ("created", "dcim.device", device.id)
    assert body["request"]["user"] == "admin"
