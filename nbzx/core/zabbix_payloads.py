"""Zabbix API request payloads and response normalisation, per API version. Pure.

Which names to send and read comes from the server's row of the capability table
(`nbzx.core.zabbix_versions`). Zabbix silently ignores names of other versions (6.0 ignores
`proxyid`, 7.0 ignores `proxy_hostid`, 7.2+ ignores `selectGroups`), so the right set matters.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from nbzx.core.model import IPMI_FIELDS, OWNER_TAG, TLS_FIELDS, ActualHost, ActualInterface, ActualMacro, Interface
from nbzx.core.zabbix_versions import Capabilities

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
HOST_OUTPUT = ["hostid", "host", "name", "status", "description", "inventory_mode", *IPMI_FIELDS, *TLS_FIELDS]


def host_get_params(
    caps: Capabilities,
    *,
    host_keys: Iterable[str] | None = None,
    names: Iterable[str] | None = None,
    unowned: bool = False,
) -> dict[str, Any]:
    """host.get with everything the diff needs: by owner tag (exact match), by technical name, every host
    without our owner tag (`unowned`), or else every host we own."""
    proxy_fields = (
        ["monitored_by", "proxyid", "proxy_groupid"] if caps.proxy_fields == "monitored_by" else ["proxy_hostid"]
    )
    params: dict[str, Any] = {
        "output": [*HOST_OUTPUT, *proxy_fields],
        caps.host_groups_select: ["name"],
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
    elif unowned:
        params["tags"] = [{"tag": OWNER_TAG, "operator": 5}]  # 5 = Not exists
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


def _monitored_by(
    caps: Capabilities,
    raw: Mapping[str, Any],
    proxies_by_id: Mapping[str, str],
    proxy_groups_by_id: Mapping[str, str],
) -> tuple[str | None, str | None]:
    """(proxy name, proxy group name) of a host.get row; at most one is set."""
    if caps.proxy_fields == "proxy_hostid":
        proxy_id = str(raw.get("proxy_hostid") or "0")
        return (proxies_by_id.get(proxy_id) if proxy_id != "0" else None), None
    # 7.0+: `proxyid` may also hold the proxy a proxy group picked; `monitored_by` says which one is set.
    monitored_by = str(raw.get("monitored_by", "0"))
    if monitored_by == "1":
        return proxies_by_id.get(str(raw.get("proxyid"))), None
    if monitored_by == "2":
        return None, proxy_groups_by_id.get(str(raw.get("proxy_groupid")))
    return None, None


def normalise_host(
    caps: Capabilities,
    raw: Mapping[str, Any],
    proxies_by_id: Mapping[str, str],
    proxy_groups_by_id: Mapping[str, str] | None = None,
) -> ActualHost:
    """A host.get row -> `ActualHost` (strings to ints, lists to sorted tuples, ids to names)."""
    inventory = raw.get("inventory")
    proxy, proxy_group = _monitored_by(caps, raw, proxies_by_id, proxy_groups_by_id or {})
    return ActualHost(
        hostid=str(raw["hostid"]),
        host=str(raw["host"]),
        name=str(raw.get("name", raw["host"])),
        status=int(raw.get("status", 0)),
        groups=tuple(sorted(g["name"] for g in raw.get(caps.host_groups_key) or [])),
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
        proxy=proxy,
        proxy_group=proxy_group,
        ipmi_authtype=int(raw.get("ipmi_authtype", -1)),
        ipmi_privilege=int(raw.get("ipmi_privilege", 2)),
        ipmi_username=str(raw.get("ipmi_username", "")),
        ipmi_password=str(raw.get("ipmi_password", "")),
        tls_connect=int(raw.get("tls_connect", 1)),
        tls_accept=int(raw.get("tls_accept", 1)),
        tls_issuer=str(raw.get("tls_issuer", "")),
        tls_subject=str(raw.get("tls_subject", "")),
    )


def write_params(
    caps: Capabilities, changes: Mapping[str, Any], ids: Mapping[str, Mapping[str, str]]
) -> dict[str, Any]:
    """host.create / host.update params from a plan's name-level changes.

    `ids` resolves names: {"groups": {name: id}, "templates": {...}, "proxies": {...}, "proxy_groups": {...}}.
    """
    params: dict[str, Any] = {}
    for key, value in changes.items():
        if key == "groups":
            params["groups"] = [{"groupid": ids["groups"][g]} for g in value]
        elif key in ("templates", "templates_clear"):
            params[key] = [{"templateid": ids["templates"][t]} for t in value]
        elif key not in ("proxy", "proxy_group"):
            params[key] = value
    if "proxy" in changes or ("proxy_group" in changes and caps.proxy_groups):
        params.update(_proxy_params(caps, changes.get("proxy"), changes.get("proxy_group"), ids))
    return params


def _proxy_params(
    caps: Capabilities, proxy: str | None, proxy_group: str | None, ids: Mapping[str, Mapping[str, str]]
) -> dict[str, Any]:
    """Who monitors the host, in the row's fields. The planner gives a host at most one of the two,
    so a plan that changes one and not the other leaves the other unset."""
    if caps.proxy_fields == "proxy_hostid":
        return {"proxy_hostid": ids["proxies"][proxy] if proxy else "0"}
    if proxy_group and caps.proxy_groups:
        return {"monitored_by": 2, "proxy_groupid": ids["proxy_groups"][proxy_group]}
    if proxy:
        return {"monitored_by": 1, "proxyid": ids["proxies"][proxy]}
    return {"monitored_by": 0}
