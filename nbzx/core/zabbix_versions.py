"""What each Zabbix API generation can do, as one table keyed by the server's `apiinfo.version`. Pure.

The rest of the code asks the row it was given (`Capabilities`) and never compares version strings.
A row covers every version from its own up to the next row's: 6.2 and 6.4 use the 6.0 row (they
still accept its names), 7.4 uses 7.2, 8.2 uses 8.0. Below 6.0 is refused with the version named;
a major above the newest row connects with the newest row and a warning (`newer_than_known`).

What differs, and what each difference costs when ignored (docs/DESIGN.md, "Zabbix versions"):
- token transport: 6.0 only reads the JSON `auth` field; 7.2+ refuses it (`unexpected parameter
  "auth"`), so from 7.0 on the token goes in `Authorization: Bearer`;
- host groups in host.get: `selectGroups` -> `groups` on 6.0; 7.2+ silently ignores it, so 7.0+
  asks `selectHostGroups` -> `hostgroups`;
- proxies: 6.0 has `proxy_hostid` and proxies named by `host`; 7.0 has `monitored_by` (0 server,
  1 proxy, 2 proxy group) with `proxyid` / `proxy_groupid`, proxies named by `name`, and proxy
  groups (`proxygroup.*`). 7.0 silently ignores `proxy_hostid`;
- maintenance targets: `hosts` / `groups` objects work on every row (7.2+ refuses `hostids`);
- `host.massupdate` is gone in 8.0 (with `hostgroup.massupdate`, `template.massupdate`,
  `hostinterface.replacehostinterfaces`): the same batches go out as array `host.update`.
Logging in is the same on every row (`user.login` with `username`, or an API token).
"""

from __future__ import annotations

import re
from typing import Literal

import msgspec


class UnsupportedZabbix(Exception):
    """The server's API is older than the oldest row (6.0 LTS), or its version cannot be read."""


class Capabilities(msgspec.Struct, frozen=True, kw_only=True):
    """One row of the table, plus the version the server reported."""

    row: str  # the first version this row covers: "6.0", "7.0", "7.2", "8.0"
    token_transport: Literal["auth_field", "header"]
    host_groups_select: Literal["selectGroups", "selectHostGroups"]
    host_groups_key: Literal["groups", "hostgroups"]
    proxy_fields: Literal["proxy_hostid", "monitored_by"]
    proxy_name_field: Literal["host", "name"]
    proxy_groups: bool
    maintenance_hosts_param: Literal["hosts"]
    host_massupdate: bool
    version: str = ""  # what apiinfo.version answered
    newer_than_known: bool = False  # a major above the newest row: its capabilities are assumed


_V60 = Capabilities(
    row="6.0",
    token_transport="auth_field",
    host_groups_select="selectGroups",
    host_groups_key="groups",
    proxy_fields="proxy_hostid",
    proxy_name_field="host",
    proxy_groups=False,
    maintenance_hosts_param="hosts",
    host_massupdate=True,
)
_V70 = msgspec.structs.replace(
    _V60,
    row="7.0",
    token_transport="header",
    host_groups_select="selectHostGroups",
    host_groups_key="hostgroups",
    proxy_fields="monitored_by",
    proxy_name_field="name",
    proxy_groups=True,
)
# 7.2 changes nothing the 7.0 row does not already avoid (the `auth` field, `selectGroups`, `hostids`
# in maintenances); it is its own row so the table says where those were removed.
_V72 = msgspec.structs.replace(_V70, row="7.2")
_V80 = msgspec.structs.replace(_V72, row="8.0", host_massupdate=False)

ROWS: dict[tuple[int, int], Capabilities] = {(6, 0): _V60, (7, 0): _V70, (7, 2): _V72, (8, 0): _V80}
OLDEST = min(ROWS)
NEWEST_MAJOR = max(ROWS)[0]


def parse_version(version: str) -> tuple[int, int]:
    """(major, minor) of an `apiinfo.version` answer such as "7.0.29" or "8.0.0rc1"."""
    m = re.match(r"\s*(\d+)\.(\d+)", version)
    if m is None:
        raise UnsupportedZabbix(f"cannot read the Zabbix API version {version!r}")
    return int(m.group(1)), int(m.group(2))


def capabilities(version: str) -> Capabilities:
    """The row for a server that reports `version`; `UnsupportedZabbix` below 6.0."""
    key = parse_version(version)
    if key < OLDEST:
        raise UnsupportedZabbix(
            f"Zabbix {version} is not supported: netbox-zabbix-stream needs Zabbix {OLDEST[0]}.{OLDEST[1]} or newer"
        )
    row = ROWS[max(k for k in ROWS if k <= key)]
    return msgspec.structs.replace(row, version=version, newer_than_known=key[0] > NEWEST_MAJOR)


def row(name: str) -> Capabilities:
    """A row by its name ("8.0"), to run one version's code path against another server in tests."""
    return ROWS[parse_version(name)]
