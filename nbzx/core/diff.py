"""desired vs actual -> `Plan`. Pure: no I/O, no clock (today's date is passed in).

Only what differs goes into the plan, and only fields we manage are compared: host groups under
the managed prefixes, tag names our config produces (and `netbox:*`), templates and macros our
rules can produce. Whatever people added by hand in Zabbix outside that stays.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from nbzx.common.config import DeleteConfig, parse_duration
from nbzx.core.mapping import group_is_managed, is_ours, safe_host_name, secret_digest
from nbzx.core.model import (
    DELETED_TAG,
    IPMI_DEFAULTS,
    IPMI_FIELDS,
    PSK_MACRO,
    SECRET_HASH_PREFIX,
    TLS_DEFAULTS,
    TLS_FIELDS,
    ActualHost,
    ActualInterface,
    ActualMacro,
    DesiredHost,
    Interface,
    Macro,
    Plan,
)


def interface_payload(iface: Interface, interfaceid: str | None = None) -> dict[str, Any]:
    """An interface as host.create / host.update take it."""
    out: dict[str, Any] = {
        "type": iface.type,
        "main": iface.main,
        "useip": iface.useip,
        "ip": iface.ip,
        "dns": iface.dns,
        "port": iface.port,
    }
    if iface.details:
        out["details"] = dict(iface.details)
    if interfaceid:
        out["interfaceid"] = interfaceid
    return out


def macro_description(m: Macro) -> str:
    """What the macro's description must be; for a secret it carries the hash of its value."""
    if not m.secret:
        return m.description
    mark = f"{SECRET_HASH_PREFIX}{secret_digest(m.value)}"
    return f"{m.description} {mark}" if m.description else mark


def macro_payload(m: Macro, hostmacroid: str | None = None) -> dict[str, Any]:
    """A macro as host.create / host.update take it."""
    out: dict[str, Any] = {
        "macro": m.macro,
        "value": m.value,
        "type": 1 if m.secret else 0,
        "description": macro_description(m),
    }
    if hostmacroid:
        out["hostmacroid"] = hostmacroid
    return out


def create_changes(d: DesiredHost) -> dict[str, Any]:
    """Everything host.create needs, by name."""
    changes: dict[str, Any] = {
        "host": d.host,
        "name": d.name,
        "status": d.status,
        "groups": list(d.groups),
        "templates": list(d.templates),
        "interfaces": [interface_payload(i) for i in d.interfaces],
        "tags": [{"tag": t, "value": v} for t, v in d.tags],
        "macros": [macro_payload(m) for m in d.macros],
        "inventory_mode": d.inventory_mode,
        "description": d.description,
    }
    if d.inventory_mode != -1 and d.inventory:
        changes["inventory"] = dict(d.inventory)
    changes.update({f: getattr(d, f) for f in IPMI_FIELDS if getattr(d, f) != IPMI_DEFAULTS[f]})
    changes.update({f: getattr(d, f) for f in TLS_FIELDS if getattr(d, f) != TLS_DEFAULTS[f]})
    if d.tls_psk:
        changes.update(tls_psk_identity=d.tls_psk_identity, tls_psk=d.tls_psk)
    if d.proxy:
        changes["proxy"] = d.proxy
    if d.proxy_group:
        changes["proxy_group"] = d.proxy_group
    return changes


def _match_interfaces(desired: tuple[Interface, ...], actual: tuple[ActualInterface, ...]) -> list[dict[str, Any]]:
    """Desired interfaces with the ids of actual ones of the same type, main first: updating in
    place keeps the items that use an interface (replacing it fails in Zabbix)."""
    free: dict[int, list[ActualInterface]] = {}
    for a in sorted(actual, key=lambda a: (a.iface.type, -a.iface.main, int(a.interfaceid))):
        free.setdefault(a.iface.type, []).append(a)
    out = []
    for d in sorted(desired, key=lambda i: (i.type, -i.main)):
        match = free.get(d.type, [])
        out.append(interface_payload(d, match.pop(0).interfaceid if match else None))
    return out


def plan_sync(d: DesiredHost, a: ActualHost | None) -> Plan:
    """Create when there is no host, else an update carrying only what differs (or a no-op)."""
    if a is None:
        return Plan(host_key=d.host_key, action="create", changes=create_changes(d))
    changes: dict[str, Any] = {}
    for attr in ("host", "name", "status", "description", "proxy", "proxy_group", *IPMI_FIELDS, *TLS_FIELDS):
        if getattr(d, attr) != getattr(a, attr):
            changes[attr] = getattr(d, attr)
    if d.tls_psk and (_psk_differs(d, a) or any(f in changes for f in TLS_FIELDS)):
        # Zabbix never returns the identity or key: the digest macro tells whether ours are there.
        changes.update(tls_psk_identity=d.tls_psk_identity, tls_psk=d.tls_psk)

    groups_auth = "groups" in d.authoritative
    kept_groups = {g for g in a.groups if not group_is_managed(g, d.managed_group_prefixes, groups_auth)}
    if set(d.groups) | kept_groups != set(a.groups):
        changes["groups"] = sorted(set(d.groups) | kept_groups)

    tmpl_auth = "templates" in d.authoritative
    managed_t = {t for t in a.templates if tmpl_auth or t in d.managed_templates or t in d.templates}
    to_clear = managed_t - set(d.templates)
    if to_clear or set(d.templates) - set(a.templates):
        changes["templates"] = sorted((set(a.templates) - to_clear) | set(d.templates))
        if to_clear:
            changes["templates_clear"] = sorted(to_clear)

    if tuple(sorted(x.iface for x in a.interfaces)) != tuple(sorted(d.interfaces)):
        changes["interfaces"] = _match_interfaces(d.interfaces, a.interfaces)

    kept_tags = {(t, v) for t, v in a.tags if not is_ours(t, d)}
    if set(d.tags) | kept_tags != set(a.tags):
        changes["tags"] = [{"tag": t, "value": v} for t, v in sorted(set(d.tags) | kept_tags)]

    macros = _macro_changes(d, a)
    if macros is not None:
        changes["macros"] = macros

    if d.inventory_mode != a.inventory_mode:
        changes["inventory_mode"] = d.inventory_mode
    if d.inventory_mode != -1:
        inv = {f: v for f, v in d.inventory if a.inventory.get(f, "") != v}
        if inv:
            changes["inventory"] = inv
    if not changes:
        return Plan(host_key=d.host_key, action="noop", hostid=a.hostid)
    return Plan(host_key=d.host_key, action="update", hostid=a.hostid, changes=changes)


def _psk_differs(d: DesiredHost, a: ActualHost) -> bool:
    wanted = next((m.value for m in d.macros if m.macro == PSK_MACRO), None)
    have = next((m.value for m in a.macros if m.macro == PSK_MACRO), None)
    return wanted != have


def _macro_differs(cur: ActualMacro | None, m: Macro) -> bool:
    # A secret's value is never readable: the hash in its description tells whether it changed.
    if cur is None or cur.secret != m.secret or cur.description != macro_description(m):
        return True
    return not m.secret and cur.value != m.value


def _macro_changes(d: DesiredHost, a: ActualHost) -> list[dict[str, Any]] | None:
    """The full macro list for host.update when any managed macro differs, else None."""
    wanted = {m.macro: m for m in d.macros}
    managed = set(wanted) | set(d.managed_macros)
    have = {m.macro: m for m in a.macros}
    differs = any(_macro_differs(have.get(name), m) for name, m in wanted.items())
    authoritative = "macros" in d.authoritative
    if any((name in managed or authoritative) and name not in wanted for name in have):
        differs = True
    if not differs:
        return None
    out: list[dict[str, Any]] = []
    for name, cur in sorted(have.items()):
        if name in wanted or name in managed or authoritative:
            continue
        out.append({"hostmacroid": cur.hostmacroid})  # someone else's macro: keep it as it is
    for name, m in sorted(wanted.items()):
        out.append(macro_payload(m, have[name].hostmacroid if name in have else None))
    return out


def plan_absent(host_key: str, a: ActualHost | None, cfg: DeleteConfig, today: str, reason: str) -> Plan:
    """The delete policy for a host whose NetBox object is gone or out of scope.

    `disable` sets status disabled and tags `netbox:deleted=<date>`; `soft` also renames it
    `<name> (archived <date>)` and moves it to the graveyard group (the NetBox Zabbix plugin's soft
    delete); `hard` deletes it. A host already archived is left as it is, so repeats are no-ops,
    until `delete.grace` has passed since its archive date: then it is deleted.
    """
    if a is None:
        return Plan(host_key=host_key, action="noop", reason=f"{reason}; no host in Zabbix")
    if cfg.mode == "hard":
        return Plan(host_key=host_key, action="delete", hostid=a.hostid, reason=reason, removes=True)
    if a.deleted_on is not None:
        if grace_expired(a.deleted_on, cfg.grace, today):
            why = f"{reason}; archived {a.deleted_on}, past delete.grace {cfg.grace}"
            return Plan(host_key=host_key, action="delete", hostid=a.hostid, reason=why, removes=True)
        return Plan(
            host_key=host_key, action="noop", hostid=a.hostid, reason=f"{reason}; archived {a.deleted_on}", removes=True
        )
    tags = sorted({*a.tags, (DELETED_TAG, today)})
    changes: dict[str, Any] = {"status": 1, "tags": [{"tag": t, "value": v} for t, v in tags]}
    if cfg.mode == "soft":
        compact = today.replace("-", "")
        changes["host"] = safe_host_name(f"{a.host}_archived_{compact}", a.host)
        changes["name"] = f"{a.name} (archived {today})"
        changes["groups"] = [cfg.graveyard_group]
    return Plan(host_key=host_key, action="update", hostid=a.hostid, changes=changes, reason=reason, removes=True)


def grace_expired(deleted_on: str, grace: str | None, today: str) -> bool:
    """Whether a host archived on `deleted_on` is past `delete.grace` and may be hard-deleted."""
    if grace is None:
        return False
    try:
        days = (date.fromisoformat(today) - date.fromisoformat(deleted_on)).days
    except ValueError:
        return False
    return days * 86400 >= parse_duration(grace)
