"""Real NetBox -> receiver -> Kafka: every change arrives once, with the right key and changed fields."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from nbzx.schemas import ChangeEvent, decode
from tests.conftest import consume_all, lab_ip


async def test_device_interface_ip_and_vm_changes_arrive_keyed_by_host(
    netbox_api: Any, netbox_objects: Any, receiver_for_netbox: Any
) -> None:
    cfg = await receiver_for_netbox(
        [
            "dcim.device",
            "dcim.interface",
            "ipam.ipaddress",
            "virtualization.virtualmachine",
            "virtualization.vminterface",
        ]
    )
    base = netbox_objects("rcv")
    nb = netbox_api

    def changes() -> dict[str, Any]:
        name = f"rcv-{uuid.uuid4().hex[:6]}"
        dev = nb.dcim.devices.create(
            name=name, device_type=base["device_type"].id, role=base["role"].id, site=base["site"].id, status="active"
        )
        iface = nb.dcim.interfaces.create(device=dev.id, name="eth0", type="1000base-t")
        ip = nb.ipam.ip_addresses.create(
            address=f"{lab_ip(7)}/24", assigned_object_type="dcim.interface", assigned_object_id=iface.id
        )
        dev.update({"name": f"{name}-x", "status": "offline"})
        ctype = nb.virtualization.cluster_types.create(name=name, slug=name)
        cluster = nb.virtualization.clusters.create(name=name, type=ctype.id)
        vm = nb.virtualization.virtual_machines.create(name=f"{name}-vm", cluster=cluster.id, status="active")
        vmif = nb.virtualization.interfaces.create(virtual_machine=vm.id, name="eth0")
        vm.update({"memory": 2048})
        ip.delete()
        vmif.delete()
        vm.delete()
        dev.delete()  # also deletes eth0
        cluster.delete()
        ctype.delete()
        return {"dev": dev.id, "iface": iface.id, "ip": ip.id, "vm": vm.id, "vmif": vmif.id}

    ids = await asyncio.to_thread(changes)
    dkey, vkey = f"dcim.device:{ids['dev']}", f"virtualization.virtualmachine:{ids['vm']}"
    expected = [
        ("created", "dcim.device", ids["dev"], dkey),
        ("created", "dcim.interface", ids["iface"], dkey),
        ("created", "ipam.ipaddress", ids["ip"], dkey),
        ("updated", "dcim.device", ids["dev"], dkey),
        ("created", "virtualization.virtualmachine", ids["vm"], vkey),
        ("created", "virtualization.vminterface", ids["vmif"], vkey),
        ("updated", "virtualization.virtualmachine", ids["vm"], vkey),
        ("deleted", "ipam.ipaddress", ids["ip"], dkey),
        ("deleted", "virtualization.vminterface", ids["vmif"], vkey),
        ("deleted", "virtualization.virtualmachine", ids["vm"], vkey),
        ("deleted", "dcim.device", ids["dev"], dkey),
        ("deleted", "dcim.interface", ids["iface"], dkey),
    ]
    records = await consume_all(cfg, cfg.kafka.topics.events, len(expected), timeout_s=60)
    await asyncio.sleep(2)
    records = await consume_all(cfg, cfg.kafka.topics.events, len(expected) + 1, timeout_s=3)
    events = [decode(r.value) for r in records]
    assert all(
        isinstance(e, ChangeEvent) and r.key.decode() == e.host_key for e, r in zip(events, records, strict=True)
    )
    got = sorted((e.event, e.object_type, e.object_id, e.host_key) for e in events)  # type: ignore[union-attr]
    assert got == sorted(expected), "each change exactly once, keyed by its host"
    by = {(e.event, e.object_type): e for e in events}  # type: ignore[union-attr]
    assert by[("updated", "dcim.device")].changed == ["name", "status"]
    assert by[("updated", "virtualization.virtualmachine")].changed == ["memory"]
    assert by[("created", "dcim.device")].user == "admin"
    # All events of one host share one partition, so their order is kept.
    assert len({r.partition for r, e in zip(records, events, strict=True) if e.host_key == dkey}) == 1
