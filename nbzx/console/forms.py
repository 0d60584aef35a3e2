"""Request parameters -> checked values, for pages and API alike. Pure; a bad value is a `BadInput`."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from nbzx.common.config import RECONCILE_INTERVALS
from nbzx.console.views import HOST_RESULTS, JOB_KINDS, JOB_STATUSES
from nbzx.jobs.schedule import parse_time
from nbzx.schemas.objects import HOST_TYPES, is_host_key

# The times the console takes: ISO 8601 dates and times as docs/console-api.yaml states them.
ISO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?$")
# A JSON reconcile body: each field's type.
RECONCILE_FIELDS: dict[str, type] = {
    "dry_run": bool,
    "object_types": list,
    "filter": dict,
    "scheduled_for": str,
    "interval": int,
    "servers": list,
}


class BadInput(ValueError):
    """A parameter the console cannot use; the message names it."""


def _time(query: Mapping[str, Any], name: str) -> datetime | None:
    text = str(query.get(name) or "").strip()
    if not text:
        return None
    if not ISO_TIME.match(text):
        raise BadInput(f"{name}: {text!r} is not a date and time (2026-11-30T08:00, UTC)")
    try:
        return parse_time(text)
    except ValueError as exc:
        raise BadInput(f"{name}: {text!r} is not a date and time (2026-11-30T08:00, UTC)") from exc


def page_number(query: Mapping[str, Any]) -> int:
    """The 1-based page asked for (1 when none is); anything but a whole number of at least 1 is refused."""
    try:
        page = int(str(query.get("page", "1")))
    except ValueError as exc:
        raise BadInput("page must be a whole number") from exc
    if page < 1:
        raise BadInput("page must be at least 1")
    return page


def job_filters(query: Mapping[str, Any]) -> dict[str, Any]:
    """kind, status, since, until and page of a jobs listing."""
    kind, status = str(query.get("kind") or ""), str(query.get("status") or "")
    if kind and kind not in JOB_KINDS:
        raise BadInput(f"kind must be one of {', '.join(JOB_KINDS)}")
    if status and status not in JOB_STATUSES:
        raise BadInput(f"status must be one of {', '.join(JOB_STATUSES)}")
    return {
        "kind": kind,
        "status": status,
        "since": _time(query, "since"),
        "until": _time(query, "until"),
        "page": page_number(query),
    }


def host_filters(query: Mapping[str, Any]) -> dict[str, Any]:
    """result, q, server and page of a hosts listing."""
    result = str(query.get("result") or "")
    if result and result not in HOST_RESULTS:
        raise BadInput(f"result must be one of {', '.join(HOST_RESULTS)}")
    server = str(query.get("server") or "")[:64]
    return {"result": result, "q": str(query.get("q") or "")[:200], "server": server, "page": page_number(query)}


def server_name(value: Any, servers: Sequence[str]) -> str:
    """One of the configured Zabbix `servers`, named by a query, form or JSON field; empty means the first."""
    if value == "":
        return servers[0]
    if not isinstance(value, str) or value not in servers:
        raise BadInput(f"server must be one of {', '.join(servers)}")
    return value


def host_key(text: str) -> str:
    """`text` when it is a host key (`dcim.device:12`)."""
    if not is_host_key(text):
        raise BadInput(f"{text!r} is not a host key such as dcim.device:12")
    return text


def host_keys(value: Any) -> list[str]:
    """A JSON list of host keys."""
    if not isinstance(value, list):
        raise BadInput("host_keys must be a list of host keys such as dcim.device:12")
    return [host_key(v) for v in value]


def only_fields(body: Mapping[str, Any], *known: str) -> Mapping[str, Any]:
    """The JSON body, when it has no field but these (a misspelt field is refused, not silently ignored)."""
    unknown = sorted(set(body) - set(known))
    if unknown:
        raise BadInput(f"unknown field(s): {', '.join(unknown)} (known: {', '.join(known)})")
    return body


def reconcile_json(body: Mapping[str, Any], servers: Sequence[str] = ()) -> dict[str, Any]:
    """A JSON reconcile body, typed as docs/console-api.yaml says (forms send text; JSON may not)."""
    only_fields(body, *RECONCILE_FIELDS)
    for name, kind in RECONCILE_FIELDS.items():
        value = body.get(name)
        if name in body and (not isinstance(value, kind) or (kind is int and isinstance(value, bool))):
            raise BadInput(f"{name} must be of type {kind.__name__}")
    return reconcile_request(body, servers=servers)


def netbox_filter(text: str) -> dict[str, Any]:
    """ "site=lab tag=core tag=edge" -> {"site": "lab", "tag": ["core", "edge"]} (NetBox's query parameters)."""
    out: dict[str, Any] = {}
    for part in text.split():
        name, sep, value = part.partition("=")
        if not sep or not name or not value:
            raise BadInput(f"filter: {part!r} is not name=value (e.g. site=lab tag=core)")
        if name in out:
            out[name] = [*(out[name] if isinstance(out[name], list) else [out[name]]), value]
        else:
            out[name] = value
    return out


def reconcile_request(
    body: Mapping[str, Any], now: datetime | None = None, servers: Sequence[str] = ()
) -> dict[str, Any]:
    """Arguments of `Actions.reconcile` from a form or a JSON body: dry_run, object_types, filter,
    scheduled_for (in the future, UTC), interval (one of NetBox's intervals, minutes) and servers
    (some of `servers`, the configured ones; none: all)."""
    dry = body.get("dry_run")
    dry_run = dry is True or str(dry).lower() in ("1", "true", "on", "yes")
    types = body.get("object_types") or []
    if isinstance(types, str):
        types = [t for t in types.split(",") if t]
    if not isinstance(types, list) or any(t not in HOST_TYPES for t in types):
        raise BadInput(f"object_types must be a list of {', '.join(HOST_TYPES)}")
    filt = body.get("filter") or {}
    if isinstance(filt, str):
        filt = netbox_filter(filt)
    if not isinstance(filt, dict):
        raise BadInput("filter must be an object of NetBox filter parameters")
    at = _time(body, "scheduled_for")
    now = now or datetime.now(UTC)
    if at is not None and at <= now:
        raise BadInput("scheduled_for must be in the future")
    interval: int | None = None
    raw = body.get("interval")
    if raw not in (None, "", 0, "0"):
        try:
            interval = int(str(raw))
        except ValueError as exc:
            raise BadInput("interval must be a number of minutes") from exc
        if interval not in RECONCILE_INTERVALS:
            raise BadInput(f"interval must be one of {', '.join(map(str, RECONCILE_INTERVALS))} minutes")
        at = at or now
    chosen = body.get("servers") or []
    if isinstance(chosen, str):
        chosen = [c for c in chosen.split(",") if c]
    if not isinstance(chosen, list) or any(c not in servers for c in chosen):
        raise BadInput(f"servers must be a list of Zabbix servers: {', '.join(servers)}")
    return {
        "servers": list(chosen),
        "dry_run": dry_run,
        "object_types": list(types),
        "filter": dict(filt),
        "scheduled_for": at.isoformat() if at else None,
        "interval": interval,
    }
