"""Which plans can share one Zabbix write. Pure: plans in, groups of plans out.

On Zabbix 6.0 one `host.update` takes ~25 ms while a `host.massupdate` of 500 hosts takes ~0.1 s, and
`host.create` / `host.update` take arrays: a batch or a reconcile that touches many hosts costs a
handful of calls instead of one per host.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Literal

from msgspec import Struct

from nbzx.core.model import Plan

# What host.massupdate sets to one value on every host it is given (tags and interfaces are
# per-host, names are unique: those go through an array host.update instead).
MASS_FIELDS = frozenset({"status", "description", "groups", "templates", "templates_clear", "inventory_mode"})
BATCH_SIZE = 100  # hosts per array call: one failing host fails its whole call, which is then retried host by host
MASS_SIZE = 500  # hosts per host.massupdate: one statement per table, cheap however many hosts

WriteKind = Literal["single", "create", "update", "massupdate"]


class Write(Struct, frozen=True, kw_only=True):
    """One Zabbix write call and the plans it carries out."""

    kind: WriteKind
    plans: tuple[Plan, ...]


def _batchable(plan: Plan) -> bool:
    # A maintenance window needs the host's id and its own calls: such plans are written alone.
    return plan.action in ("create", "update") and plan.maintenance is None and bool(plan.changes)


def _shared_changes(plan: Plan) -> str | None:
    """A canonical form of the plan's changes when host.massupdate can carry them, else None."""
    if plan.action != "update" or not plan.changes.keys() <= MASS_FIELDS:
        return None
    return json.dumps(plan.changes, sort_keys=True)


def _chunks(kind: WriteKind, plans: list[Plan], size: int) -> list[Write]:
    if len(plans) == 1:
        return [Write(kind="single", plans=(plans[0],))]
    return [Write(kind=kind, plans=tuple(plans[i : i + size])) for i in range(0, len(plans), size)]


def group_writes(
    plans: Iterable[Plan], size: int = BATCH_SIZE, mass_size: int = MASS_SIZE, massupdate: bool = True
) -> list[Write]:
    """Group plans into as few write calls as possible: creates into array host.create calls, updates
    with identical mass-updatable changes into host.massupdate calls (when `massupdate`: Zabbix 8.0
    has none), other updates into array host.update calls; everything else (deletes, maintenance,
    no-ops) stays one plan per `Write`."""
    singles: list[Write] = []
    creates: list[Plan] = []
    same: dict[str, list[Plan]] = {}
    updates: list[Plan] = []
    for plan in plans:
        if not _batchable(plan):
            singles.append(Write(kind="single", plans=(plan,)))
        elif plan.action == "create":
            creates.append(plan)
        elif massupdate and (shared := _shared_changes(plan)) is not None:
            same.setdefault(shared, []).append(plan)
        else:
            updates.append(plan)
    writes = [*singles, *_chunks("create", creates, size)]
    for group in same.values():
        if len(group) > 1:
            writes.extend(_chunks("massupdate", group, mass_size))
        else:
            updates.extend(group)
    writes.extend(_chunks("update", updates, size))
    return writes
