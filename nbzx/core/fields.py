"""Which fields of a device or VM the sync asks NetBox for (`?fields=`), from the config. Pure.

NetBox serialises every field it is not told to leave out, and most of a listing's time is that:
a device with all its fields costs about 1.4 ms of NetBox's CPU, with the ones a usual config needs
about 0.9 ms (DESIGN §6). What the code reads on its own (`ALWAYS`), plus the first part of every
placeholder and rule key anywhere in the config. A config context can hold placeholders too, and is
only known once read: `context_needs` tells which objects must be read again in full.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from nbzx.common.config import Config
from nbzx.core.mapping import PLACEHOLDER

# Read whatever the config says: status (the host's status and the scope), tags (maintenance, tags
# from NetBox), the primary and out-of-band IPs (interfaces), the virtual chassis (one host per chassis),
# the site (routes by region), custom fields (write-back compares them).
ALWAYS = (
    "id",
    "name",
    "status",
    "site",
    "tags",
    "primary_ip4",
    "primary_ip6",
    "oob_ip",
    "virtual_chassis",
    "custom_fields",
)
# A rule's key -> the field it reads (region and site group come from the site).
_RULE_FIELDS = {"tag": "tags", "manufacturer": "device_type", "region": "site", "site_group": "site"}


def read_fields(cfg: Config) -> list[str]:
    """The `fields` to ask for: `ALWAYS`, `config_context` when config contexts are used, and every
    field a template, a rule's `match` or a `when` anywhere in the config names."""
    names = set(ALWAYS)
    if cfg.host.use_config_context or any(r.from_context for r in cfg.routes):
        names.add("config_context")
    doc = msgspec.to_builtins(msgspec.structs.replace(cfg, secrets=type(cfg.secrets)()))
    names |= _named(doc)
    return sorted(names)


def _named(value: Any, *, rule: bool = False) -> set[str]:
    """Top-level field names in templates (`{site.name}` -> site) and, under a `match` or a `*_when`
    mapping, in its keys (`custom_fields.env` -> custom_fields)."""
    out: set[str] = set()
    if isinstance(value, str):
        out.update(m.group(1).split(".", 1)[0] for m in PLACEHOLDER.finditer(value))
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if rule:
                first = str(key).split(".", 1)[0]
                out.add(_RULE_FIELDS.get(first, first))
            out |= _named(item, rule=key == "match" or str(key).endswith("_when"))
    elif isinstance(value, list):
        for item in value:
            out |= _named(item)
    return out


def context_needs(obj: Mapping[str, Any], fields: Iterable[str]) -> set[str]:
    """Fields the object's config context names (in a placeholder) that were not read."""
    context = obj.get("config_context")
    if not isinstance(context, Mapping):
        return set()
    return _named(dict(context)) - set(fields)
