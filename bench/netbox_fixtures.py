"""Load (and remove) many devices in the local NetBox quickly, through NetBox's own ORM.

The REST API creates about 5-8 devices/s on this machine; `bulk_create` in `netbox nbshell` does
thousands per second. ORM changes send no webhooks, which is what a benchmark of the sync engine wants.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

CACHE_HOME = Path(os.environ.get("NBZX_CACHE_HOME", Path.home() / ".cache" / "nbzx-stack"))
STATE_HOME = Path(os.environ.get("NBZX_STATE_HOME", Path.home() / ".local" / "state" / "nbzx-stack"))
NETBOX_BIN = CACHE_HOME / "netbox" / "venv-4.7.3" / "bin" / "netbox"
NETBOX_ROOT = STATE_HOME / "netbox"

_SCRIPT = """
import json
from dcim.models import Device, DeviceRole, DeviceType, Manufacturer, Site
from extras.models import Tag
tag_name = {tag!r}
site, _ = Site.objects.get_or_create(slug=tag_name, defaults={{"name": tag_name}})
manu, _ = Manufacturer.objects.get_or_create(slug="bench-acme", defaults={{"name": "Bench Acme"}})
dtype, _ = DeviceType.objects.get_or_create(slug="bench-1000", defaults={{"model": "Bench 1000", "manufacturer": manu}})
role, _ = DeviceRole.objects.get_or_create(slug="bench-server", defaults={{"name": "Bench Server", "color": "2196f3"}})
action = {action!r}
if action == "create":
    existing = Device.objects.filter(site=site).count()
    devs = [Device(name=f"{{tag_name}}-{{i:05d}}", site=site, device_type=dtype, role=role, status="active",
                   description="v1") for i in range(existing, {count})]
    Device.objects.bulk_create(devs, batch_size=1000)
elif action == "describe":
    Device.objects.filter(site=site).update(description={description!r})
elif action == "move":  # the first {count} devices to the site named by `description` (made if missing)
    target, _ = Site.objects.get_or_create(slug={description!r}, defaults={{"name": {description!r}}})
    ids = list(Device.objects.filter(site=site).order_by("id").values_list("id", flat=True)[:{count}])
    Device.objects.filter(id__in=ids).update(site=target)
elif action == "delete":  # raw: Django's delete() runs NetBox's handlers per device (~30/s); nothing points at them
    devices = Device.objects.filter(site=site)
    devices._raw_delete(devices.db)
    site.delete()
print("IDS", json.dumps(list(Device.objects.filter(site__slug=tag_name).values_list("id", flat=True))))
"""


def netbox_orm(tag: str, action: str, count: int = 0, description: str = "") -> list[int]:
    """Run one bulk action in NetBox's ORM (create, describe, move, delete); returns the ids of the
    devices in site `tag` afterwards."""
    code = _SCRIPT.format(tag=tag, action=action, count=count, description=description)
    out = subprocess.run(
        [str(NETBOX_BIN), "nbshell", "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "NETBOX_ROOT": str(NETBOX_ROOT)},
    )
    line = next(x for x in out.stdout.splitlines() if x.startswith("IDS "))
    return [int(i) for i in json.loads(line[4:])]
