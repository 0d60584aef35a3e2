"""A large fleet in the local NetBox, fast: devices with an interface and a primary IPv4 each, made
through NetBox's ORM with `bulk_create` in `netbox nbshell` (the REST API makes 5-8 devices/s here).

ORM writes send no webhooks and log no changes, which is what a benchmark of reconcile wants. The
devices sit in their own site ("<tag>"), named "<tag>-000001"..., addressed from 100.64.0.0/10 (not
routed anywhere, and no test uses it).

    .venv/bin/python bench/fleet.py grow TAG N      the site's devices up to N (prints the seconds)
    .venv/bin/python bench/fleet.py delete TAG      remove them
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.netbox_fixtures import NETBOX_BIN, NETBOX_ROOT

_SCRIPT = """
import ipaddress, json, time
from django.contrib.contenttypes.models import ContentType
from dcim.models import Device, DeviceRole, DeviceType, Interface, Manufacturer, Site
from ipam.models import IPAddress
tag = {tag!r}
site, _ = Site.objects.get_or_create(slug=tag, defaults={{"name": tag}})
if {action!r} == "delete":
    # Raw deletes: Django's delete() runs NetBox's per-object handlers (about 30 devices/s here).
    # Nothing else points at these devices, interfaces and addresses.
    devices = Device.objects.filter(site=site)
    devices.update(primary_ip4=None, primary_ip6=None, oob_ip=None)
    ifaces = Interface.objects.filter(device__site=site)
    ips = IPAddress.objects.filter(interface__in=ifaces)
    ips._raw_delete(ips.db)
    ifaces._raw_delete(ifaces.db)
    devices._raw_delete(devices.db)
    site.delete()
    print("FLEET", json.dumps({{"devices": 0}}))
    raise SystemExit
manu, _ = Manufacturer.objects.get_or_create(slug="bench-acme", defaults={{"name": "Bench Acme"}})
dtype, _ = DeviceType.objects.get_or_create(slug="bench-1000", defaults={{"model": "Bench 1000", "manufacturer": manu}})
role, _ = DeviceRole.objects.get_or_create(slug="bench-server", defaults={{"name": "Bench Server", "color": "2196f3"}})
ct = ContentType.objects.get_for_model(Interface)
base = int(ipaddress.IPv4Address("100.64.0.0")) + 65536 * {net}
have = Device.objects.filter(site=site).count()
step = 5000
for lo in range(have, {count}, step):
    hi = min({count}, lo + step)
    devs = Device.objects.bulk_create([
        Device(name=f"{{tag}}-{{i:06d}}", site=site, device_type=dtype, role=role, status="active", description="v1")
        for i in range(lo, hi)
    ])
    ifaces = Interface.objects.bulk_create([Interface(device=d, name="eth0", type="1000base-t") for d in devs])
    ips = IPAddress.objects.bulk_create([
        IPAddress(address=f"{{ipaddress.IPv4Address(base + i + 1)}}/32", assigned_object_type=ct,
                  assigned_object_id=f.id)
        for i, f in zip(range(lo, hi), ifaces)
    ])
    for d, ip in zip(devs, ips):
        d.primary_ip4 = ip
    Device.objects.bulk_update(devs, ["primary_ip4"], batch_size=step)
    print("PROGRESS", hi, flush=True)
print("FLEET", json.dumps({{"devices": Device.objects.filter(site=site).count(), "site_id": site.id}}))
"""


def fleet(tag: str, action: str, count: int = 0, net: int = 0) -> dict[str, int]:
    """Grow the site `tag` to `count` devices (or delete it), printing progress; returns its size and
    site id. `net` picks one of 64 /16s of 100.64.0.0/10 (one per fleet on the stack at once)."""
    code = _SCRIPT.format(tag=tag, action=action, count=count, net=net)
    proc = subprocess.Popen(
        [str(NETBOX_BIN), "nbshell", "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "NETBOX_ROOT": str(NETBOX_ROOT)},
    )
    assert proc.stdout is not None
    result: dict[str, int] = {}
    for line in proc.stdout:
        if line.startswith("PROGRESS "):
            print(f"\r  fleet {tag}: {int(line.split()[1]):,} devices", end="", file=sys.stderr, flush=True)
        elif line.startswith("FLEET "):
            result = json.loads(line[6:])
    err = proc.stderr.read() if proc.stderr else ""
    if proc.wait() != 0 or not result:
        raise RuntimeError(f"nbshell failed: {err[-2000:]}")
    print(file=sys.stderr)
    return result


if __name__ == "__main__":
    t0 = time.perf_counter()
    out = fleet(sys.argv[2], "grow", int(sys.argv[3])) if sys.argv[1] == "grow" else fleet(sys.argv[2], "delete")
    print(json.dumps({**out, "seconds": round(time.perf_counter() - t0, 1)}))
