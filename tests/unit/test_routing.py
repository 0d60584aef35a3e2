"""Several Zabbix servers: their config, the routes, and what each server is told about a key (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from nbzx.common.config import ConfigError, auth_of, parse_config, require, zabbix_servers
from nbzx.core.model import NotRouted
from nbzx.core.placement import is_move_out, merge_results, server_views
from nbzx.core.planner import SyncResult, plan_host
from nbzx.core.routing import Geography, Place, explain, route

TWO = """
zabbix:
  servers:
    old: {url: http://127.0.0.1:8081}
    new: {url: http://127.0.0.1:8082, token_env: NEW_TOKEN, rate_per_s: 20, concurrency: 2}
routes:
  - {name: pinned, from_context: zabbix.server}
  - {name: migrating, match: {site: ams1}, servers: [old, new]}
  - {name: europe, match: {region: europe}, servers: [new]}
  - {name: lab, match: {site_group: lab, tag: [unmonitored]}, servers: []}
  - {name: rest, servers: [old]}
"""
ENV = {"ZABBIX_OLD_USER": "Admin", "ZABBIX_OLD_PASSWORD": "zabbix", "NEW_TOKEN": "t0ken"}
# Europe > Benelux > ams1/ams2; site group lab > lab-east
GEO = Geography(
    sites={1: (12, None), 2: (12, 21), 3: (None, None)},
    regions={11: Place(slug="europe", name="Europe"), 12: Place(slug="benelux", name="Benelux", parent=11)},
    site_groups={20: Place(slug="lab", name="Lab"), 21: Place(slug="lab-east", name="Lab East", parent=20)},
)


def device(site_id: int, slug: str, **extra: object) -> dict[str, object]:
    return {"id": 7, "name": "sw1", "site": {"id": site_id, "slug": slug, "name": slug}, "tags": [], **extra}


def test_named_servers_with_their_own_credentials_budget_and_order() -> None:
    cfg = parse_config(TWO, ENV)
    servers = zabbix_servers(cfg)
    assert list(servers) == ["old", "new"]
    assert (servers["new"].rate_per_s, servers["new"].concurrency) == (20, 2)
    assert (auth_of(cfg, "old").user, auth_of(cfg, "old").password, auth_of(cfg, "new").token) == (
        "Admin",
        "zabbix",
        "t0ken",
    )
    assert "t0ken" not in repr(cfg.secrets)
    require(cfg, "zabbix_auth")


def test_a_server_without_credentials_is_named_at_start() -> None:
    cfg = parse_config(TWO, {"NEW_TOKEN": "t"})
    with pytest.raises(ConfigError, match=r"ZABBIX_OLD_TOKEN or ZABBIX_OLD_USER\+ZABBIX_OLD_PASSWORD \(server old\)"):
        require(cfg, "zabbix_auth")


def test_the_one_server_config_is_the_default_server_with_the_zabbix_variables() -> None:
    cfg = parse_config("zabbix: {url: http://z:8081}", {"ZABBIX_TOKEN": "tok"})
    assert list(zabbix_servers(cfg)) == ["default"] and zabbix_servers(cfg)["default"].url == "http://z:8081"
    assert auth_of(cfg, "default").token == "tok"
    assert route(device(1, "ams1"), cfg).servers == ("default",)


@pytest.mark.parametrize(
    ("yaml", "message"),
    [
        ("zabbix: {servers: {a: {url: x}, b: {url: y}}}", "several Zabbix servers need routes"),
        ("zabbix: {servers: {a: {url: x}}}\nroutes: [{servers: [b]}]", r"routes\[0\].servers: no server named b"),
        ("zabbix: {servers: {Bad Name: {url: x}}}", "server name 'Bad Name'"),
        ("zabbix: {servers: {a: {url: x, token: abc}}}", "secrets are not read from the config file"),
        ("zabbix: {servers: {a: {url: x}}}\nroutes: [{servers: [a], from_context: zabbix.server}]", "not both"),
    ],
)
def test_bad_server_and_route_configs_are_clear_errors(yaml: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(yaml, {})


def test_first_matching_rule_wins_and_region_and_site_group_match_their_parents() -> None:
    cfg = parse_config(TWO, ENV)
    assert route(device(1, "ams1"), cfg, GEO).servers == ("old", "new")  # before the europe rule
    europe = route(device(1, "ams2"), cfg, GEO)
    assert (europe.servers, europe.rule) == (("new",), 2)  # Benelux is in Europe
    assert route(device(3, "nyc1"), cfg, GEO).servers == ("old",)
    lab = device(2, "lab-east-1", tags=[{"slug": "unmonitored", "name": "unmonitored"}])
    assert route(lab, cfg, GEO).servers == ("new",)  # europe matched first (Benelux), lab rule never reached
    assert route(device(2, "x"), parse_config(TWO.replace("region: europe", "region: asia"), ENV), GEO).servers == (
        "old",
    )


def test_not_monitored_and_no_match() -> None:
    cfg = parse_config(TWO.replace("region: europe", "region: asia"), ENV)
    lab = device(2, "lab-east-1", tags=[{"slug": "unmonitored", "name": "unmonitored"}])
    r = route(lab, cfg, GEO)
    assert (r.servers, r.rule) == ((), 3) and "not monitored" in r.why
    none = parse_config(TWO.replace("  - {name: rest, servers: [old]}\n", ""), ENV)
    r = route(device(3, "nyc1"), none, GEO)
    assert (r.servers, r.rule, r.why) == ((), None, "no route matched: not monitored")


def test_the_config_context_names_the_server_and_an_unknown_one_is_an_error_not_a_route() -> None:
    cfg = parse_config(TWO, ENV)
    assert route(device(3, "nyc1", config_context={"zabbix": {"server": "new"}}), cfg, GEO).servers == ("new",)
    both = route(device(3, "nyc1", config_context={"zabbix": {"server": ["old", "new"]}}), cfg, GEO)
    assert both.servers == ("old", "new")
    bad = route(device(3, "nyc1", config_context={"zabbix": {"server": "moon"}}), cfg, GEO)
    assert bad.servers == () and "unknown server moon" in bad.error


def test_explain_says_why_each_rule_before_the_match_did_not_match() -> None:
    cfg = parse_config(TWO, ENV)
    checks = explain(device(1, "ams2"), cfg, GEO)
    assert [(c.name, c.matched) for c in checks] == [("pinned", False), ("migrating", False), ("europe", True)]
    assert checks[0].why == "config context has no zabbix.server"
    assert checks[1].why == "site is ams2, not ams1"
    assert checks[2].why == "region=europe -> new"


def test_each_server_sees_the_object_where_it_is_routed_and_not_routed_elsewhere() -> None:
    cfg = parse_config(TWO, ENV)
    objects = {"dcim.device:7": device(1, "ams2"), "dcim.device:8": None}
    routes = {k: route(o, cfg, GEO) for k, o in objects.items() if isinstance(o, dict)}
    views = server_views(objects, routes, ["old", "new"])
    assert views["new"]["dcim.device:7"] == objects["dcim.device:7"]
    assert views["old"]["dcim.device:7"] == NotRouted(reason="routed to new, not old")
    assert is_move_out(views["old"]["dcim.device:7"]) and not is_move_out(views["new"]["dcim.device:7"])
    assert views["old"]["dcim.device:8"] is None and views["new"]["dcim.device:8"] is None  # gone: the same everywhere


def test_a_route_that_cannot_be_followed_is_an_error_on_every_server_and_takes_nothing_away() -> None:
    from nbzx.core.model import ActualHost

    cfg = parse_config(TWO, ENV)
    obj = device(3, "nyc1", config_context={"zabbix": {"server": "moon"}})
    routes = {"dcim.device:7": route(obj, cfg, GEO)}
    views = server_views({"dcim.device:7": obj}, routes, ["old", "new"])
    for view in views.values():
        found = view["dcim.device:7"]
        assert isinstance(found, NotRouted) and found.broken and "unknown server moon" in found.reason
    assert not is_move_out(views["old"]["dcim.device:7"])
    tags = (("netbox:key", "dcim.device:7"),)
    host = ActualHost(hostid="42", host="sw1", name="sw1", status=0, groups=(), templates=(), interfaces=(), tags=tags)
    plan = plan_host("dcim.device:7", views["old"]["dcim.device:7"], host, {}, cfg, "2026-12-04")
    assert plan.action == "error" and "names unknown server moon" in plan.reason


def test_a_host_on_a_server_it_is_no_longer_routed_to_gets_the_delete_policy() -> None:
    from nbzx.core.model import ActualHost

    cfg = parse_config(TWO + "delete: {mode: hard}\n", ENV)
    tags = (("netbox:key", "dcim.device:7"),)
    host = ActualHost(hostid="42", host="sw1", name="sw1", status=0, groups=(), templates=(), interfaces=(), tags=tags)
    plan = plan_host("dcim.device:7", NotRouted(reason="routed to new, not old"), host, {}, cfg, "2026-12-04")
    assert (plan.action, plan.hostid, plan.removes, plan.reason) == ("delete", "42", True, "routed to new, not old")
    absent = plan_host("dcim.device:7", NotRouted(reason="routed to new, not old"), None, {}, cfg, "2026-12-04")
    assert absent.action == "noop" and not absent.removes


def result(server: str, result: str = "ok", action: str = "update", **kw: Any) -> SyncResult:
    return SyncResult(host_key="dcim.device:7", action=action, result=result, server=server, **kw)


def test_one_server_result_is_that_servers_own() -> None:
    r = result("default", hostid="5", changed=["name"])
    merged = merge_results("dcim.device:7", [r], ("default",), several=False)
    assert (merged.action, merged.changed, merged.hostid, merged.servers) == ("update", ["name"], "5", {"default": "5"})


def test_results_merge_into_the_worst_with_fields_and_errors_named_by_server() -> None:
    ok = result("new", hostid="9", changed=["host"], action="create")
    down = result("old", "error", error="Zabbix unreachable", transient=True)
    merged = merge_results("dcim.device:7", [down, ok], ("old", "new"), several=True)
    assert (merged.result, merged.transient, merged.error) == ("error", True, "old: Zabbix unreachable")
    assert merged.changed == ["new:host"] and merged.servers == {"new": "9"}
    moved = merge_results(
        "dcim.device:7",
        [result("old", action="delete", removes=True, hostid="3"), result("new", hostid="9", action="create")],
        ("new",),
        several=True,
    )
    assert (moved.result, moved.action, moved.hostid, moved.servers, moved.removes) == (
        "ok",
        "create",
        "9",
        {"new": "9"},
        False,
    )
    gone = merge_results(
        "dcim.device:7",
        [result("old", action="delete", removes=True), result("new", "skipped", action="noop")],
        (),
        True,
    )
    assert gone.removes and gone.result == "ok"
    permanent = merge_results(
        "dcim.device:7", [result("old", "error", error="bad", transient=False), ok], ("old", "new"), True
    )
    assert permanent.transient is False
