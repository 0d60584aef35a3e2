"""Which fields a reconcile asks NetBox for (`core.fields`): every field the config reads, so the host
mapped from the reduced object is the host mapped from the whole one."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from nbzx.common.config import Config, parse_config
from nbzx.core.fields import ALWAYS, context_needs, read_fields
from nbzx.core.mapping import map_host

ROOT = Path(__file__).resolve().parents[2]
HOOK = ROOT / "tests" / "fixtures" / "netbox-webhooks" / "06-updated-dcim_device.json"
ENV = {"NETBOX_TOKEN": "t", "ZABBIX_TOKEN": "t", "ZABBIX_OLD_TOKEN": "t", "ZABBIX_NEW_TOKEN": "t"}

RICH = {
    "host": {
        "name": "{name}",
        "visible_name": "{name} ({device_type.model})",
        "description": "{custom_fields.owner} in {rack.name}",
        "groups": ["NetBox/{site.name}", "Role/{role.name}"],
        "templates": [{"match": {"manufacturer": "acme", "platform": "junos"}, "templates": ["T"]}],
        "inventory": {"mode": "manual", "fields": {"serialno_a": "{serial}"}},
        "tags": {"fields": {"tenant": "{tenant.slug}"}},
        "interfaces": {"snmp_when": {"location": "lab"}},
    },
    "routes": [{"match": {"region": "europe"}, "servers": ["default"]}, {"servers": ["default"]}],
}


def device() -> dict[str, Any]:
    body = json.loads(HOOK.read_text())["body"]
    data: dict[str, Any] = body["data"]
    return data


def reduced(obj: dict[str, Any], cfg: Config) -> dict[str, Any]:
    """The object as NetBox answers `?fields=` with the fields the config reads."""
    return {k: v for k, v in obj.items() if k in read_fields(cfg)}


def test_the_fields_are_what_the_code_reads_and_what_the_config_names() -> None:
    cfg = parse_config(json.dumps(RICH), ENV)
    fields = set(read_fields(cfg))
    assert set(ALWAYS) <= fields and "config_context" in fields
    # templates: {device_type.model}, {custom_fields.owner}, {rack.name}, {role.name}, {serial}, {tenant.slug};
    # rule keys: manufacturer (of the device type), platform, location, region (of the site)
    assert {"device_type", "rack", "role", "serial", "tenant", "platform", "location"} <= fields
    assert "comments" not in fields and "interface_count" not in fields


def test_without_config_contexts_none_is_asked_for() -> None:
    cfg = parse_config(json.dumps({"host": {"use_config_context": False}}), ENV)
    assert "config_context" not in read_fields(cfg)


def test_no_secret_is_walked_for_placeholders() -> None:
    cfg = parse_config("{}", {**ENV, "NETBOX_TOKEN": "{leaked_field}"})
    assert "leaked_field" not in read_fields(cfg)


@pytest.mark.parametrize(
    "config",
    [RICH, {}, *[p for p in (ROOT / "examples").glob("*.yaml") if not p.name.startswith("helm")]],
    ids=lambda c: c.name if isinstance(c, Path) else ("rich" if c else "defaults"),
)
def test_the_host_mapped_from_the_reduced_object_is_the_host_mapped_from_the_whole(config: Any) -> None:
    text = config.read_text() if isinstance(config, Path) else json.dumps(config)
    named = {var: "x" for var in re.findall(r"_env:\s*([A-Z0-9_]+)", text)}  # the secrets an example reads
    cfg = parse_config(text, {**ENV, **named})
    obj = device()
    assert map_host(reduced(obj, cfg), "dcim.device:1", cfg) == map_host(obj, "dcim.device:1", cfg)


def test_a_config_context_naming_a_field_not_read_asks_for_the_whole_object() -> None:
    obj = {"id": 1, "config_context": {"zabbix": {"macros": {"{$RACK}": "{rack.name}"}, "proxy": "{site.slug}-p"}}}
    assert context_needs(obj, ["id", "site", "config_context"]) == {"rack"}
    assert context_needs(obj, ["id", "site", "rack", "config_context"]) == set()
    assert context_needs({"id": 1, "config_context": None}, ["id"]) == set()
