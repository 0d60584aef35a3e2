"""The NetBox edge for write-back (DESIGN §10): journal entries, custom field values, and the custom
fields themselves. Bulk requests; NetBox applies a bulk request all or nothing, so when one is refused
(an object deleted meanwhile) each item is sent alone and only that one is lost."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from prometheus_client import Counter

from nbzx.common.config import WriteBackConfig
from nbzx.common.logging import get_logger
from nbzx.core.writeback import JournalEntry, WriteBack
from nbzx.engine.netbox import NetBox, NetBoxError
from nbzx.schemas.objects import ENDPOINTS, list_path, split_key

log = get_logger(component="netbox_write")

WRITES = Counter("nbzx_netbox_writes_total", "Write-back requests to NetBox by kind and result", ["kind", "result"])


def field_specs(cfg: WriteBackConfig) -> list[dict[str, Any]]:
    """The custom fields write-back uses, as NetBox's API creates them."""
    common = {
        "object_types": sorted(ENDPOINTS),
        "group_name": "Zabbix",
        "ui_editable": "no",  # written by the service; a hand edit would be overwritten anyway
        "required": False,
    }
    return [
        {**common, "name": cfg.hostid_field, "type": "integer", "label": "Zabbix host id", "weight": 100},
        {
            **common,
            "name": cfg.state_field,
            "type": "text",
            "label": "Zabbix sync state",
            "description": "in_sync, failed, conflict, skipped or removed (netbox-zabbix-stream)",
            "weight": 101,
        },
        {**common, "name": cfg.time_field, "type": "datetime", "label": "Zabbix sync state since", "weight": 102},
    ]


async def ensure_custom_fields(netbox: NetBox, cfg: WriteBackConfig) -> dict[str, str]:
    """Create the custom fields write-back needs, or add our object types to existing ones. Idempotent:
    field name -> "created", "updated" or "present"."""
    out: dict[str, str] = {}
    for spec in field_specs(cfg):
        have = await _custom_field(netbox, spec["name"])
        if have is None:
            await netbox.send("POST", "extras/custom-fields/", spec)
            out[spec["name"]] = "created"
            continue
        if have["type"]["value"] != spec["type"]:
            raise NetBoxError(
                f"custom field {spec['name']!r} exists with type {have['type']['value']}, write-back needs"
                f" {spec['type']}: choose another name in netbox.write_back",
                transient=False,
            )
        types = sorted({*have.get("object_types", []), *spec["object_types"]})
        if types != sorted(have.get("object_types", [])):
            await netbox.send("PATCH", f"extras/custom-fields/{have['id']}/", {"object_types": types})
            out[spec["name"]] = "updated"
        else:
            out[spec["name"]] = "present"
    return out


async def missing_custom_fields(netbox: NetBox, cfg: WriteBackConfig) -> list[str]:
    """The write-back custom fields NetBox does not have (on devices and VMs)."""
    missing = []
    for spec in field_specs(cfg):
        have = await _custom_field(netbox, spec["name"])
        if have is None or not set(spec["object_types"]) <= set(have.get("object_types", [])):
            missing.append(spec["name"])
    return missing


async def _custom_field(netbox: NetBox, name: str) -> dict[str, Any] | None:
    """NetBox's custom field of that name, or None."""
    found = (await netbox.send("GET", f"extras/custom-fields/?name={name}"))["results"]
    return dict(found[0]) if found else None


async def apply_write_backs(netbox: NetBox, writes: Sequence[WriteBack]) -> int:
    """Write the journal entries and custom field values; the number of objects that got a write.
    NetBox refusing or unreachable raises nothing: it is logged and counted (the next change of outcome
    writes again)."""
    entries = [w.journal for w in writes if w.journal is not None]
    by_type: dict[str, list[dict[str, Any]]] = {}
    for w in writes:
        if w.fields:
            object_type, object_id = split_key(w.host_key)
            by_type.setdefault(object_type, []).append({"id": object_id, "custom_fields": w.fields})
    sends = [_bulk(netbox, "journal", "extras/journal-entries/", "POST", [_journal_body(e) for e in entries])]
    for object_type, rows in by_type.items():
        sends.append(_bulk(netbox, "custom_fields", list_path(object_type), "PATCH", rows))
    done = await asyncio.gather(*sends)
    return sum(done)


def _journal_body(e: JournalEntry) -> dict[str, Any]:
    object_type, object_id = split_key(e.host_key)
    return {
        "assigned_object_type": object_type,
        "assigned_object_id": object_id,
        "kind": e.kind,
        "comments": e.comments,
    }


async def _bulk(netbox: NetBox, kind: str, path: str, method: str, items: list[dict[str, Any]]) -> int:
    """Items written (all in one request; each alone after a refusal)."""
    if not items:
        return 0
    try:
        await netbox.send(method, path, items)
        WRITES.labels(kind, "ok").inc()
        return len(items)
    except NetBoxError as exc:
        if exc.transient or len(items) == 1:
            WRITES.labels(kind, "error").inc()
            log.warning("write_back_failed", kind=kind, items=len(items), error=str(exc))
            return 0
    return sum(await asyncio.gather(*(_bulk(netbox, kind, path, method, [item]) for item in items)))
