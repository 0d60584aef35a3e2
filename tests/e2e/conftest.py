"""The end-to-end tier's shared fixture: a whole pipeline (NetBox webhook -> receiver -> Kafka -> consumer
processes -> Zabbix), torn down after the test."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
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


@pytest.fixture
def netbox_user(netbox_api: Any) -> Iterator[Callable[[list[tuple[str, list[str]]]], tuple[str, str]]]:
    """Factory: (username, v2 token) of a new NetBox user holding only the given (action, object
    types) permissions; removed after the test."""
    made: list[Any] = []

    def make(permissions: list[tuple[str, list[str]]]) -> tuple[str, str]:
        name = f"test-nbzx-{uuid.uuid4().hex[:6]}"
        # NetBox wants a numeral, an upper- and a lower-case letter in a password.
        user = netbox_api.users.users.create(username=name, password=f"{secrets.token_urlsafe(24)}Aa1")
        made.append(user)
        for action, types in permissions:
            made.append(
                netbox_api.users.permissions.create(
                    name=f"{name}-{action}", object_types=types, actions=[action], users=[user.id]
                )
            )
        token = netbox_api.users.tokens.create(user=user.id, write_enabled=True, description="nbzx test")
        return name, f"nbt_{token.key}.{token.token}"

    yield make
    for obj in reversed(made):
        obj.delete()
