"""The capability table: which row each Zabbix version gets, and what the rows say."""

from __future__ import annotations

import pytest

from nbzx.core.zabbix_versions import UnsupportedZabbix, capabilities, parse_version, row


@pytest.mark.parametrize(
    ("version", "expected_row"),
    [
        ("6.0.14", "6.0"),
        ("6.4.21", "6.0"),
        ("7.0.29", "7.0"),
        ("7.2.0", "7.2"),
        ("7.4.0", "7.2"),
        ("8.0.1", "8.0"),
        ("8.0.0rc1", "8.0"),
        ("8.4.0", "8.0"),
        ("9.0.0", "8.0"),
    ],
)
def test_each_version_gets_the_newest_row_not_above_it(version: str, expected_row: str) -> None:
    caps = capabilities(version)
    assert (caps.row, caps.version) == (expected_row, version)


def test_what_72_74_and_80_can_do() -> None:
    v72, v74, v80 = capabilities("7.2.3"), capabilities("7.4.0"), capabilities("8.0.1")
    for caps in (v72, v74, v80):
        assert caps.token_transport == "header", "7.2+ refuses the JSON auth field"
        assert (caps.host_groups_select, caps.host_groups_key) == ("selectHostGroups", "hostgroups")
        assert (caps.proxy_fields, caps.proxy_name_field, caps.proxy_groups) == ("monitored_by", "name", True)
        assert caps.maintenance_hosts_param == "hosts", "7.2+ refuses hostids in a maintenance"
    assert v72.host_massupdate and v74.host_massupdate
    assert not v80.host_massupdate, "8.0 removed host.massupdate"
    assert not any(c.newer_than_known for c in (v72, v74, v80))


def test_60_and_70_rows() -> None:
    v60, v70 = capabilities("6.0.14"), capabilities("7.0.29")
    assert (v60.token_transport, v60.host_groups_select, v60.proxy_fields, v60.proxy_groups) == (
        "auth_field",
        "selectGroups",
        "proxy_hostid",
        False,
    )
    assert (v70.token_transport, v70.host_groups_select, v70.proxy_fields, v70.proxy_groups) == (
        "header",
        "selectHostGroups",
        "monitored_by",
        True,
    )
    assert v60.host_massupdate and v70.host_massupdate


def test_a_major_above_the_newest_row_is_flagged_and_gets_the_newest_capabilities() -> None:
    caps = capabilities("9.0.0")
    assert caps.newer_than_known and caps.row == "8.0" and not caps.host_massupdate
    assert not capabilities("8.2.0").newer_than_known


@pytest.mark.parametrize("version", ["5.4.9", "5.0.40", "4.0.0"])
def test_below_60_is_refused_with_the_version_named(version: str) -> None:
    with pytest.raises(UnsupportedZabbix, match=rf"Zabbix {version} is not supported.*6\.0 or newer"):
        capabilities(version)


def test_an_unreadable_version_is_refused() -> None:
    with pytest.raises(UnsupportedZabbix, match="cannot read"):
        parse_version("unknown")


def test_a_row_can_be_named_to_force_its_code_path() -> None:
    assert row("8.0").row == "8.0" and not row("8.0").host_massupdate
