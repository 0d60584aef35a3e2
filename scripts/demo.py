"""Seed the local NetBox with a few monitored devices and VMs, and wait until Zabbix shows them.

Run by scripts/run once the receiver and the consumer are up. Idempotent: existing objects are reused.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.request

import pynetbox
from zabbix_utils import ZabbixAPI

NETBOX = os.environ.get("NBZX_NETBOX_URL", "http://127.0.0.1:8000")
ZABBIX = os.environ.get("NBZX_ZABBIX_URL", "http://127.0.0.1:8081")
RECEIVER = os.environ.get("NBZX_RECEIVER_URL", "http://127.0.0.1:8090")


def get_or_create(endpoint: object, lookup: dict[str, object], **fields: object) -> object:
    obj = endpoint.get(**lookup)  # type: ignore[attr-defined]
    return obj or endpoint.create(**lookup, **fields)  # type: ignore[attr-defined]


def seed(nb: pynetbox.api) -> list[str]:
    tag = get_or_create(nb.extras.tags, {"slug": "monitored"}, name="monitored")
    site = get_or_create(nb.dcim.sites, {"slug": "demo-lab"}, name="Demo Lab")
    manu = get_or_create(nb.dcim.manufacturers, {"slug": "acme"}, name="Acme")
    dtype = get_or_create(nb.dcim.device_types, {"slug": "acme-1000"}, model="Acme 1000", manufacturer=manu.id)
    roles = {
        slug: get_or_create(nb.dcim.device_roles, {"slug": slug}, name=slug.title(), color="2196f3")
        for slug in ("server", "switch")
    }
    ctype = get_or_create(nb.virtualization.cluster_types, {"slug": "kvm"}, name="KVM")
    cluster = get_or_create(nb.virtualization.clusters, {"name": "demo-kvm"}, type=ctype.id)
    keys = []
    for i, (name, role) in enumerate([("demo-srv-01", "server"), ("demo-srv-02", "server"), ("demo-sw-01", "switch")]):
        dev = get_or_create(
            nb.dcim.devices,
            {"name": name},
            device_type=dtype.id,
            role=roles[role].id,
            site=site.id,
            status="active",
            serial=f"SN-{1000 + i}",
            tags=[tag.id],
        )
        if not dev.primary_ip4:
            iface = get_or_create(
                nb.dcim.interfaces, {"device_id": dev.id, "name": "mgmt0"}, device=dev.id, type="1000base-t"
            )
            ip = nb.ipam.ip_addresses.create(
                address=f"192.0.2.{21 + i}/24", assigned_object_type="dcim.interface", assigned_object_id=iface.id
            )
            dev.update({"primary_ip4": ip.id})
        keys.append(f"dcim.device:{dev.id}")
    for name in ("demo-vm-01", "demo-vm-02"):
        # No role and no IP: no agent template that would need an interface to link.
        vm = get_or_create(
            nb.virtualization.virtual_machines,
            {"name": name},
            cluster=cluster.id,
            site=site.id,
            status="active",
            tags=[tag.id],
        )
        keys.append(f"virtualization.virtualmachine:{vm.id}")
    return keys


def request_reconcile() -> str:
    """Objects from an earlier run send no webhook (nothing changed in NetBox), while Zabbix may have lost
    their hosts meanwhile (a reset): ask the receiver for a reconcile of the demo site, as an operator
    would with POST /reconcile. Scoped by a filter, it fills in and never deletes anything else."""
    req = urllib.request.Request(
        f"{RECEIVER}/reconcile",
        data=json.dumps({"filter": {"site": "demo-lab"}}).encode(),
        headers={"Authorization": f"Bearer {os.environ['NBZX_API_TOKEN']}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return str(json.load(resp)["job_id"])


def main() -> int:
    nb = pynetbox.api(NETBOX, token=os.environ["NETBOX_TOKEN"])
    print("[run] creating sample devices and VMs in NetBox (tag 'monitored', site 'Demo Lab')", flush=True)
    keys = seed(nb)
    job_id = request_reconcile()
    print(f"[run] reconcile of site 'Demo Lab' requested (POST /reconcile, job {job_id}; see 'nbzx jobs')", flush=True)
    z = ZabbixAPI(url=f"{ZABBIX}/api_jsonrpc.php")
    z.login(user=os.environ.get("ZABBIX_USER", "Admin"), password=os.environ.get("ZABBIX_PASSWORD", "zabbix"))
    deadline = time.monotonic() + 90
    while True:
        rows = z.host.get(
            output=["host", "name"],
            selectTags=["tag", "value"],
            evaltype=0,
            tags=[{"tag": "netbox:key", "value": k, "operator": 1} for k in keys],
        )
        print(f"[run] {len(rows)}/{len(keys)} hosts in Zabbix", flush=True)
        if len(rows) >= len(keys):
            break
        if time.monotonic() > deadline:
            print("[run] the hosts did not all arrive within 90 s; see the consumer log", file=sys.stderr)
            return 1
        time.sleep(2)
    for r in sorted(rows, key=lambda r: r["host"]):
        print(f"[run]   {r['host']:<14} {r['name']}")
    z.logout()
    return 0


if __name__ == "__main__":
    sys.exit(main())
