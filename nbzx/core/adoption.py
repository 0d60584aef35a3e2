"""Brownfield adoption (DESIGN §11): which Zabbix hosts we do not own match which NetBox object, whether
taking one over is safe and why not, and the reverse list of NetBox objects without a host. Pure.

A match is tried by each configured method in order (technical name, visible name, primary IP); the
first method that finds any object decides. Adopting a valid host adds our owner tag and then runs the
normal sync, so the host keeps its hostid, history and items.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal

from msgspec import Struct, field

from nbzx.core.diff import plan_sync
from nbzx.core.model import INTERFACE_NAMES, ActualHost, DesiredHost

MatchBy = Literal["host", "name", "ip"]


class Adoption(Struct, kw_only=True):
    """One Zabbix host we do not own, and what adopting it would mean."""

    hostid: str
    host: str
    name: str
    host_key: str | None = None  # the NetBox object it matches (None: Zabbix-only)
    matched_by: MatchBy | None = None
    valid: bool = False
    reason: str = ""  # why it cannot be adopted ("" when it can, or when it matches nothing)
    changes: list[str] = field(default_factory=list)  # the fields the first sync would write


class Missing(Struct, kw_only=True):
    """An in-scope NetBox object with no Zabbix host of ours, and why."""

    host_key: str
    name: str
    reason: str


class AdoptionReport(Struct, kw_only=True):
    adoptable: list[Adoption] = field(default_factory=list)
    not_adoptable: list[Adoption] = field(default_factory=list)
    zabbix_only: list[Adoption] = field(default_factory=list)
    netbox_only: list[Missing] = field(default_factory=list)


class NetBoxSide(Struct, kw_only=True):
    """What NetBox says about one object: its desired host, or why it has none."""

    host_key: str
    name: str  # the NetBox name (what an object without a desired host is matched by)
    ips: tuple[str, ...] = ()  # its primary IPs, without prefix length
    desired: DesiredHost | None = None
    not_synced: str = ""  # why there is no desired host (out of scope, a skip reason, a planning error)
    in_scope: bool = True


def _values(side: NetBoxSide, by: MatchBy) -> set[str]:
    d = side.desired
    if by == "host":
        return {d.host if d else side.name}
    if by == "name":
        return {d.name if d else side.name}
    return set(side.ips)


def _host_values(h: ActualHost, by: MatchBy) -> set[str]:
    if by == "host":
        return {h.host}
    if by == "name":
        return {h.name}
    return {i.iface.ip for i in h.interfaces if i.iface.ip}


def match(
    host: ActualHost, index: Mapping[MatchBy, Mapping[str, set[str]]], order: Iterable[MatchBy]
) -> tuple[MatchBy | None, list[str]]:
    """The first method in `order` that finds NetBox objects for `host`, and their host keys (sorted)."""
    for by in order:
        keys = set().union(*(index[by].get(v, set()) for v in _host_values(host, by)))
        if keys:
            return by, sorted(keys)
    return None, []


def index_sides(sides: Iterable[NetBoxSide]) -> dict[MatchBy, dict[str, set[str]]]:
    """value -> host keys, per match method."""
    index: dict[MatchBy, dict[str, set[str]]] = {"host": {}, "name": {}, "ip": {}}
    for s in sides:
        for by in index:
            for v in _values(s, by):
                if v:
                    index[by].setdefault(v, set()).add(s.host_key)
    return index


def template_conflict(linked: Iterable[str], adding: Iterable[str], item_keys: Mapping[str, frozenset[str]]) -> str:
    """Why linking `adding` to a host that has `linked` would be refused ("" when it would not): a
    template Zabbix does not have, or an item key both a new and a linked template define."""
    linked, adding = sorted(set(linked)), sorted(set(adding) - set(linked))
    for t in adding:
        if t not in item_keys:
            return f"template {t!r} does not exist in Zabbix"
    for i, t in enumerate(adding):
        for other in [*linked, *adding[i + 1 :]]:
            shared = item_keys.get(t, frozenset()) & item_keys.get(other, frozenset())
            if shared:
                return f"template {t!r} would conflict with {other!r} (both have item key {min(shared)!r})"
    return ""


def check(
    host: ActualHost,
    side: NetBoxSide,
    owned: Mapping[str, ActualHost],
    names_taken: Mapping[str, str],
    item_keys: Mapping[str, frozenset[str]],
) -> tuple[str, list[str]]:
    """(why `host` cannot be adopted for `side`'s object or "", the fields adopting would change)."""
    if not side.in_scope:
        return f"{side.host_key} is out of scope", []
    if side.desired is None:
        return f"{side.host_key} is not synced: {side.not_synced}", []
    d = side.desired
    if side.host_key in owned:
        mine = owned[side.host_key]
        return f"{side.host_key} already has Zabbix host {mine.host!r} (hostid {mine.hostid})", []
    taken = names_taken.get(d.host)
    if taken is not None and taken != host.hostid:
        return f"the name {d.host!r} NetBox wants is taken by Zabbix hostid {taken}", []
    have = {i.iface.type for i in host.interfaces}
    want = {i.type for i in d.interfaces}
    if have - want:
        lost = ", ".join(INTERFACE_NAMES.get(t, str(t)) for t in sorted(have - want))
        wanted = ", ".join(INTERFACE_NAMES.get(t, str(t)) for t in sorted(want)) or "none"
        return f"interface type mismatch: Zabbix has {lost}, NetBox wants {wanted} (items on it would break)", []
    conflict = template_conflict(host.templates, d.templates, item_keys)
    if conflict:
        return conflict, []
    return "", sorted(plan_sync(d, host).changes)


def plan_adoption(
    sides: Iterable[NetBoxSide],
    owned: Mapping[str, ActualHost],
    unowned: Iterable[ActualHost],
    order: Iterable[MatchBy],
    item_keys: Mapping[str, frozenset[str]],
) -> AdoptionReport:
    """Every unowned Zabbix host matched, checked and sorted into the report; plus the reverse list."""
    by_key = {s.host_key: s for s in sides}
    hosts = sorted(unowned, key=lambda h: h.host)
    index, methods = index_sides(by_key.values()), list(order)
    names_taken = {h.host: h.hostid for h in [*owned.values(), *hosts]}
    matches = {h.hostid: match(h, index, methods) for h in hosts}
    claimed: dict[str, list[str]] = {}  # host key -> hostids of the unowned hosts matching only it
    for hostid, (_, keys) in matches.items():
        if len(keys) == 1:
            claimed.setdefault(keys[0], []).append(hostid)
    report = AdoptionReport()
    for h in hosts:
        by, keys = matches[h.hostid]
        a = Adoption(hostid=h.hostid, host=h.host, name=h.name, matched_by=by)
        if not keys:
            report.zabbix_only.append(a)
            continue
        if len(keys) > 1:
            a.reason = f"{by} matches {len(keys)} NetBox objects: {', '.join(keys)}"
        elif len(claimed[keys[0]]) > 1:
            a.host_key = keys[0]
            a.reason = (
                f"{len(claimed[keys[0]])} Zabbix hosts match {keys[0]} (hostids {', '.join(sorted(claimed[keys[0]]))})"
            )
        else:
            a.host_key = keys[0]
            a.reason, a.changes = check(h, by_key[keys[0]], owned, names_taken, item_keys)
        a.valid = not a.reason
        (report.adoptable if a.valid else report.not_adoptable).append(a)
    report.netbox_only = _netbox_only(by_key, owned, report)
    return report


def _netbox_only(
    sides: Mapping[str, NetBoxSide], owned: Mapping[str, ActualHost], report: AdoptionReport
) -> list[Missing]:
    """In-scope objects without a host of ours: why, from what the report and NetBox say."""
    matched = {a.host_key: a for a in [*report.adoptable, *report.not_adoptable] if a.host_key}
    out = []
    for key, s in sorted(sides.items()):
        if not s.in_scope or key in owned:
            continue
        if key in matched:
            a = matched[key]
            why = (
                f"adoptable: Zabbix host {a.host!r} (hostid {a.hostid})"
                if a.valid
                else (f"matches Zabbix host {a.host!r} (hostid {a.hostid}), not adoptable: {a.reason}")
            )
        elif s.desired is None:
            why = s.not_synced
        else:
            why = "no host yet: the next sync creates it"
        out.append(Missing(host_key=key, name=s.desired.host if s.desired else s.name, reason=why))
    return out
