"""Zabbix API request payloads and response normalisation, per API version. Pure.

6.0 LTS names: `selectGroups`, `proxy_hostid`; 6.2+ returns groups as `hostgroups` for
`selectHostGroups`; 7.0+: `proxyid`, `proxy_groupid`, `monitored_by`, and proxies have `name`
instead of `host`. 6.0 silently ignores the names of other versions, so the right set matters.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from consumer.model import OWNER_TAG, ActualHost, ActualInterface, ActualMacro, Interface

_SNMP_KEYS = {
    1: ("version", "bulk", "community"),
    2: ("version", "bulk", "community"),
    3: (
        "version",
        "bulk",
        "securityname",
        "securitylevel",
        "authpassphrase",
        "privpassphrase",
        "authprotocol",
        "privprotocol",
        "contextname",
    ),
}
HOST_OUTPUT = ["hostid", "host", "name", "status", "description", "inventory_mode"]


class ZabbixVersion:
    """What differs between the API versions we support."""

    def __init__(self, version: str) -> None:
        parts = [int(p) for p in version.split(".")[:2]]
        self.text = version
        self.major, self.minor = parts[0], parts[1] if len(parts) > 1 else 0

    @property
    def host_groups_param(self) -> str:
        return "selectHostGroups" if (self.major, self.minor) >= (6, 2) else "selectGroups"

    @property
    def host_groups_key(self) -> str:
        return "hostgroups" if (self.major, self.minor) >= (6, 2) else "groups"

    @property
    def proxy_v7(self) -> bool:
        return self.major >= 7

    @property
    def proxy_name_field(self) -> str:
        return "name" if self.proxy_v7 else "host"


def host_get_params(
    v: ZabbixVersion, *, host_keys: Iterable[str] | None = None, names: Iterable[str] | None = None
) -> dict[str, Any]:
    """host.get with everything the diff needs, by owner tag (exact match) or technical name."""
    output = [*HOST_OUTPUT, *(["proxyid", "proxy_groupid", "monitored_by"] if v.proxy_v7 else ["proxy_hostid"])]
    params: dict[str, Any] = {
        "output": output,
        v.host_groups_param: ["name"],
        "selectParentTemplates": ["templateid", "name"],
        "selectInterfaces": ["interfaceid", "type", "main", "useip", "ip", "dns", "port", "details"],
        "selectTags": ["tag", "value"],
        "selectMacros": ["hostmacroid", "macro", "value", "type", "description"],
        "selectInventory": "extend",
    }
    if host_keys is not None:
        # operator 1 = Equals (the default 0 is Contains: "dcim.device:1" would match ":10", ":11"...);
        # conditions on the same tag name are ORed.
        params["tags"] = [{"tag": OWNER_TAG, "value": k, "operator": 1} for k in host_keys]
        params["evaltype"] = 0
    elif names is not None:
        params["filter"] = {"host": list(names)}
    else:  # every host we own
        params["tags"] = [{"tag": OWNER_TAG, "operator": 4}]
    return params


def _interface(raw: Mapping[str, Any]) -> ActualInterface:
    kind = int(raw["type"])
    details: tuple[tuple[str, str], ...] = ()
    if kind == 2 and isinstance(raw.get("details"), Mapping):
        d = raw["details"]
        version = int(d.get("version") or 2)
        details = tuple(sorted((k, str(d.get(k, ""))) for k in _SNMP_KEYS.get(version, _SNMP_KEYS[2])))
    return ActualInterface(
        interfaceid=str(raw["interfaceid"]),
        iface=Interface(
            type=kind,
            ip=str(raw.get("ip", "")),
            dns=str(raw.get("dns", "")),
            useip=int(raw.get("useip", 1)),
            port=str(raw.get("port", "")),
            main=int(raw.get("main", 1)),
            details=details,
        ),
    )


def normalise_host(v: ZabbixVersion, raw: Mapping[str, Any], proxies_by_id: Mapping[str, str]) -> ActualHost:
    """A host.get row -> `ActualHost` (strings to ints, lists to sorted tuples, ids to names)."""
    inventory = raw.get("inventory")
    proxy_id = str(raw.get("proxyid" if v.proxy_v7 else "proxy_hostid") or "0")
    return ActualHost(
        hostid=str(raw["hostid"]),
        host=str(raw["host"]),
        name=str(raw.get("name", raw["host"])),
        status=int(raw.get("status", 0)),
        groups=tuple(sorted(g["name"] for g in raw.get(v.host_groups_key) or [])),
        templates=tuple(sorted(t["name"] for t in raw.get("parentTemplates") or [])),
        interfaces=tuple(_interface(i) for i in raw.get("interfaces") or []),
        tags=tuple(sorted((t["tag"], t.get("value", "")) for t in raw.get("tags") or [])),
        macros=tuple(
            ActualMacro(
                hostmacroid=str(m["hostmacroid"]),
                macro=m["macro"],
                value=m.get("value"),
                secret=str(m.get("type", "0")) == "1",
                description=m.get("description", ""),
            )
            for m in raw.get("macros") or []
        ),
        inventory_mode=int(raw.get("inventory_mode", -1)),
        inventory={k: str(val) for k, val in inventory.items()} if isinstance(inventory, Mapping) else {},
        description=str(raw.get("description", "")),
        proxy=proxies_by_id.get(proxy_id) if proxy_id != "0" else None,
    )


def write_params(v: ZabbixVersion, changes: Mapping[str, Any], ids: Mapping[str, Mapping[str, str]]) -> dict[str, Any]:
    """host.create / host.update params from a plan's name-level changes.

    `ids` resolves names: {"groups": {name: id}, "templates": {...}, "proxies": {...}, "proxy_groups": {...}}.
    """
    params: dict[str, Any] = {}
    for key, value in changes.items():
        if key == "groups":
            params["groups"] = [{"groupid": ids["groups"][g]} for g in value]
        elif key in ("templates", "templates_clear"):
            params[key] = [{"templateid": ids["templates"][t]} for t in value]
        elif key == "proxy":
            if v.proxy_v7:
                params["monitored_by"] = 1 if value else 0
                params["proxyid"] = ids["proxies"][value] if value else "0"
            else:
                params["proxy_hostid"] = ids["proxies"][value] if value else "0"
        elif key == "proxy_group":
            if v.proxy_v7:  # proxy groups exist from 7.0 on; 6.0 has nothing to send
                params["monitored_by"] = 2 if value else params.get("monitored_by", 0)
                params["proxy_groupid"] = ids["proxy_groups"][value] if value else "0"
        else:
            params[key] = value
    return params
