"""Routing: which Zabbix servers an object belongs on, from the ordered `routes` rules. Pure.

The first rule that matches decides; a rule may name several servers (a migration window keeps a
host on the old and the new one) or none ("not monitored"). A config with one server and no rules
routes everything to it. `region` and `site_group` match the site's own and every parent's, which
NetBox keeps outside the object: `Geography` carries them (docs/DESIGN.md §12).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from nbzx.common.config import DEFAULT_SERVER, Config, RouteRule, zabbix_servers
from nbzx.core.mapping import lookup, match_failure


class Place(msgspec.Struct, frozen=True):
    """A region or site group: its names and its parent's id."""

    slug: str
    name: str
    parent: int | None = None


class Geography(msgspec.Struct, frozen=True):
    """NetBox's sites with their region and site group, and the two trees."""

    sites: dict[int, tuple[int | None, int | None]] = msgspec.field(default_factory=dict)
    regions: dict[int, Place] = msgspec.field(default_factory=dict)
    site_groups: dict[int, Place] = msgspec.field(default_factory=dict)


class Route(msgspec.Struct, frozen=True):
    """Where an object goes: its servers (none: not monitored), the rule that decided (None: no rule
    matched, or the one-server default) and why, in words. `error` is set when the rule that matched
    cannot be followed (a config context naming a server that does not exist)."""

    servers: tuple[str, ...]
    rule: int | None
    why: str
    error: str = ""


class RuleCheck(msgspec.Struct, frozen=True):
    """One rule as `explain` saw it: whether it matched, and why not when it did not."""

    rule: int
    name: str
    servers: tuple[str, ...]
    matched: bool
    why: str


def uses_geography(rules: list[RouteRule]) -> bool:
    """Whether any rule needs the region and site group trees."""
    return any(k in ("region", "site_group") for r in rules for k in r.match)


def route(obj: Mapping[str, Any], cfg: Config, geo: Geography | None = None) -> Route:
    """The servers one in-scope NetBox object is routed to."""
    if not cfg.routes:
        only = next(iter(zabbix_servers(cfg)), DEFAULT_SERVER)
        return Route(servers=(only,), rule=None, why="the only Zabbix server")
    for check in explain(obj, cfg, geo):
        if check.matched:
            rule = cfg.routes[check.rule]
            servers, error = check.servers, ""
            if rule.from_context:
                unknown = sorted(set(servers) - set(zabbix_servers(cfg)))
                error = (
                    f"config context {rule.from_context} names unknown server {', '.join(unknown)}" if unknown else ""
                )
            return Route(servers=() if error else servers, rule=check.rule, why=check.why, error=error)
    return Route(servers=(), rule=None, why="no route matched: not monitored")


def explain(obj: Mapping[str, Any], cfg: Config, geo: Geography | None = None) -> list[RuleCheck]:
    """Every rule up to and including the first that matches, with what it decided or why it did not."""
    checks: list[RuleCheck] = []
    extra = _ancestry(obj, geo or Geography())
    for i, rule in enumerate(cfg.routes):
        label = rule.name or f"routes[{i}]"
        failure = match_failure(rule.match, obj, extra)
        servers: tuple[str, ...] = tuple(rule.servers)
        if failure is None and rule.from_context:
            value = lookup(obj.get("config_context") or {}, rule.from_context)
            if not value:
                failure = f"config context has no {rule.from_context}"
            else:
                servers = tuple(str(v) for v in (value if isinstance(value, list) else [value]))
        if failure is not None:
            checks.append(RuleCheck(rule=i, name=label, servers=servers, matched=False, why=failure))
            continue
        where = ", ".join(servers) or "no server (not monitored)"
        criteria = ", ".join(f"{k}={v}" for k, v in rule.match.items()) or "every object"
        source = f" named by config context {rule.from_context}" if rule.from_context else ""
        checks.append(
            RuleCheck(rule=i, name=label, servers=servers, matched=True, why=f"{criteria} -> {where}{source}")
        )
        break
    return checks


def _ancestry(obj: Mapping[str, Any], geo: Geography) -> dict[str, set[str]]:
    """The names and slugs of the object's site's region and site group, and of all their parents."""
    site = obj.get("site")
    site_id = site.get("id") if isinstance(site, Mapping) else None
    region, group = geo.sites.get(int(site_id), (None, None)) if site_id is not None else (None, None)
    return {"region": _up(region, geo.regions), "site_group": _up(group, geo.site_groups)}


def _up(node: int | None, tree: Mapping[int, Place]) -> set[str]:
    names: set[str] = set()
    seen: set[int] = set()
    while node is not None and node in tree and node not in seen:
        seen.add(node)
        names |= {tree[node].slug, tree[node].name}
        node = tree[node].parent
    return names
