"""The object-type vocabulary: which NetBox object types are hosts, parts of hosts, or what hosts use.

Every layer names object types from here: the receiver's filters, the planner, the NetBox edge, reconcile
and the console's forms (docs/DESIGN.md §2).
"""

from __future__ import annotations

import re
from typing import Literal, get_args

from nbzx.schemas.messages import HOST_KEY_PATTERN

HostType = Literal["dcim.device", "virtualization.virtualmachine"]
HOST_TYPES: tuple[HostType, ...] = get_args(HostType)

# A host type's NetBox API endpoint, as pynetbox names it: (app, endpoint).
ENDPOINTS = {
    "dcim.device": ("dcim", "devices"),
    "virtualization.virtualmachine": ("virtualization", "virtual_machines"),
}

# Object types whose changes map to a Zabbix host (the host itself, or a part of it).
HOST_OBJECT_TYPES = (
    "dcim.device",
    "virtualization.virtualmachine",
    "dcim.interface",
    "virtualization.vminterface",
    "ipam.ipaddress",
)
# Object types that many hosts depend on: a change fans out to the hosts that use them.
DEPENDENCY_OBJECT_TYPES = (
    "dcim.site",
    "dcim.region",
    "dcim.sitegroup",
    "dcim.location",
    "dcim.devicerole",
    "dcim.platform",
    "dcim.devicetype",
    "dcim.manufacturer",
    "dcim.virtualchassis",
    "tenancy.tenant",
    "tenancy.tenantgroup",
    "virtualization.cluster",
    "virtualization.clustergroup",
    "extras.configcontext",
    "extras.tag",
)


def split_key(host_key: str) -> tuple[str, int]:
    """ "dcim.device:12" -> ("dcim.device", 12)."""
    object_type, _, raw_id = host_key.rpartition(":")
    return object_type, int(raw_id)


def list_path(object_type: str) -> str:
    """ "dcim.device" -> "dcim/devices/": where a host type's objects are, under /api/ and in the UI."""
    app, endpoint = ENDPOINTS[object_type]
    return f"{app}/{endpoint.replace('_', '-')}/"


def object_url(base_url: str, host_key: str) -> str:
    """The NetBox UI address of a host key's object under `base_url`; "" for a key that is not a host's."""
    object_type, _, object_id = host_key.rpartition(":")
    if object_type not in ENDPOINTS:
        return ""
    return f"{base_url.rstrip('/')}/{list_path(object_type)}{object_id}/"


def is_host_key(text: str) -> bool:
    """True for a host key ("dcim.device:12"); dead letters of malformed records carry other keys."""
    return isinstance(text, str) and bool(re.match(HOST_KEY_PATTERN, text))
