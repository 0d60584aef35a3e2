"""The end-to-end tier's shared fixture: a whole pipeline (NetBox webhook -> receiver -> Kafka -> consumer
processes -> Zabbix), torn down after the test."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ensure_stack, zabbix_server_for
from tests.e2e.pipeline import Pipeline


@pytest.fixture
async def pipeline(
    request: pytest.FixtureRequest, netbox_api: Any, netbox_objects: Any, receiver_for_netbox: Any, tmp_path: Path
) -> AsyncIterator[Pipeline]:
    """The pipeline into Zabbix 7.0; `@pytest.mark.parametrize("pipeline", ["6.0", "7.0"], indirect=True)`
    runs a test on each server."""
    server = zabbix_server_for(getattr(request, "param", "7.0"))
    ensure_stack("kafka", server.service, "netbox")
    types = [
        "dcim.device",
        "dcim.interface",
        "ipam.ipaddress",
        "virtualization.virtualmachine",
        "dcim.site",
        "extras.tag",
    ]
    cfg = await receiver_for_netbox(types)
    cfg.zabbix.url = server.url
    p = Pipeline(cfg, netbox_api, server.api, netbox_objects("pipe"), tmp_path, server.service)
    yield p
    for c in p.consumers:
        c.stop()
    ids = [d.id for d in p.made]
    existing = (
        [d.id for d in await asyncio.to_thread(lambda: list(netbox_api.dcim.devices.filter(id=ids)))] if ids else []
    )
    if existing:
        await asyncio.to_thread(netbox_api.dcim.devices.delete, existing)
