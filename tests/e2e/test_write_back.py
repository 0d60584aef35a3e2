"""Write-back to NetBox through the whole pipeline, with a NetBox token that has only the permissions
README lists: journal entries on creation, failure and recovery with their kinds, the custom fields
filled, and no loop (NetBox's webhook for our own write ends in a sync that writes nothing anywhere)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from nbzx.common.kafka import Producer
from nbzx.engine.netbox import NetBox
from nbzx.engine.netbox_write import ensure_custom_fields
from nbzx.receiver import metrics
from nbzx.schemas import SyncRequest, encode
from tests.e2e.pipeline import ConsumerProcess, Pipeline, pipeline_config_doc, wait_until, write_config

# What README says write-back's token needs (reads, the object's custom fields, journal entries).
VIEW = [
    "dcim.device",
    "dcim.interface",
    "dcim.site",
    "ipam.ipaddress",
    "virtualization.virtualmachine",
    "virtualization.vminterface",
    "extras.tag",
]
PERMISSIONS = [
    ("view", VIEW),
    ("change", ["dcim.device", "virtualization.virtualmachine"]),
    ("add", ["extras.journalentry"]),
]


@pytest.fixture
def limited_token(netbox_user: Any) -> tuple[str, str]:
    """(username, v2 token) of a new NetBox user holding only `PERMISSIONS`."""
    made: tuple[str, str] = netbox_user(PERMISSIONS)
    return made


def journal(nb: Any, device_id: int) -> list[tuple[str, str]]:
    rows = nb.extras.journal_entries.filter(assigned_object_type="dcim.device", assigned_object_id=device_id)
    return [
        (r.kind.value if hasattr(r.kind, "value") else r.kind, r.comments) for r in sorted(rows, key=lambda r: r.id)
    ]


def changes_by(nb: Any, user: str, device_id: int) -> int:
    """How many times `user` changed the device (its journal entries are logged as their own objects)."""
    rows = nb.core.object_changes.filter(user_name=user, changed_object_type="dcim.device", changed_object_id=device_id)
    return len(list(rows))


@pytest.mark.parametrize("pipeline", ["6.0", "7.0"], indirect=True, ids=["zabbix6.0", "zabbix7.0"])
async def test_journal_and_custom_fields_on_create_failure_and_recovery_and_no_loop(
    pipeline: Pipeline, limited_token: tuple[str, str]
) -> None:
    user, token = limited_token
    nb, cfg = pipeline.nb, pipeline.cfg
    admin = NetBox(cfg)
    try:
        await ensure_custom_fields(admin, cfg.netbox.write_back)  # the one step that needs more rights
    finally:
        admin.close()
    doc = pipeline_config_doc(cfg)
    doc["netbox"]["write_back"] = {"journal": True, "custom_fields": True}
    cfg.netbox.write_back.custom_fields = True  # the in-process receiver's config: it drops our own writes
    own_writes = metrics.WEBHOOKS.labels("own_write")._value.get()
    path = write_config(doc, pipeline.tmp / "consumer-wb.yaml")
    consumer = ConsumerProcess(path, pipeline.tmp / "consumer-wb.log", netbox_token=token)
    pipeline.consumers.append(consumer)

    [dev] = await asyncio.to_thread(pipeline.devices, [f"wb-{uuid.uuid4().hex[:6]}"], with_ip=True)
    key = f"dcim.device:{dev.id}"
    hostid = (await pipeline.converged([key]))[key]["hostid"]

    def fields() -> dict[str, Any]:
        return dict(nb.dcim.devices.get(dev.id).custom_fields)

    await wait_until(lambda: fields().get("nbzx_sync_state") == "in_sync", 60, "the sync state in NetBox")
    assert fields()["nbzx_zabbix_hostid"] == int(hostid) and fields()["nbzx_synced_at"]
    entries = await wait_until(lambda: journal(nb, dev.id), 30, "a journal entry")
    assert [k for k, _ in entries] == ["info"] and f"hostid={hostid}" in entries[0][1]

    # Zabbix refuses the host for good (a template it does not have): danger, with Zabbix's error.
    await asyncio.to_thread(dev.update, {"local_context_data": {"zabbix": {"templates": ["No Such Template 42"]}}})
    await wait_until(lambda: fields().get("nbzx_sync_state") == "failed", 60, "the failed state in NetBox")
    entries = await wait_until(lambda: len(journal(nb, dev.id)) >= 2 and journal(nb, dev.id), 30, "a second entry")
    assert [k for k, _ in entries] == ["info", "danger"] and "No Such Template 42" in entries[1][1]
    assert fields()["nbzx_zabbix_hostid"] == int(hostid), "a failure keeps the hostid"

    # Fixed in NetBox: recovered.
    await asyncio.to_thread(dev.update, {"local_context_data": None})
    await wait_until(lambda: fields().get("nbzx_sync_state") == "in_sync", 60, "the recovered state in NetBox")
    entries = await wait_until(lambda: len(journal(nb, dev.id)) >= 3 and journal(nb, dev.id), 30, "a third entry")
    assert [k for k, _ in entries] == ["info", "danger", "success"]

    # No loop: our own writes came back as webhooks; over three more passes nothing is written anywhere.
    await asyncio.sleep(3)
    before = (changes_by(nb, user, dev.id), len(journal(nb, dev.id)), consumer.zabbix_writes())
    assert before[0] == 3, "one custom-field write per change of outcome (created, failed, recovered)"
    assert metrics.WEBHOOKS.labels("own_write")._value.get() - own_writes == 3, "their webhooks dropped"
    noops = consumer.metric("nbzx_sync_total", action="noop")
    producer = Producer(cfg, client_id="test-wb")
    try:
        for _ in range(3):
            await producer.send(cfg.kafka.topics.events, key, encode(SyncRequest(host_key=key, reason="cli")))
            await asyncio.sleep(1.5)
    finally:
        await producer.stop()
    await wait_until(lambda: consumer.metric("nbzx_sync_total", action="noop") - noops >= 3, 30, "three passes")
    await asyncio.sleep(3)
    assert consumer.metric("nbzx_sync_total", action="noop") - noops == 3, "three passes, nothing else synced"
    assert (changes_by(nb, user, dev.id), len(journal(nb, dev.id)), consumer.zabbix_writes()) == before
