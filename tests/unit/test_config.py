"""Configuration: YAML plus environment secrets, with errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from nbzx.common.config import ConfigError, load_config, parse_config, parse_duration, require


@pytest.mark.parametrize(
    ("yaml", "message"),
    [
        ("zabbix: {rate_per_s: 0}", "zabbix.rate_per_s: Expected `float` > 0.0"),
        ("zabbix: {rate_per_s: fast}", "zabbix.rate_per_s: Expected `float`, got `str`"),
        ("kafka: {partitions: 2, bogus: 1}", "kafka: Object contains unknown field `bogus`"),
        ("reconcile: {interval: 7}", "reconcile: interval must be one of 1, 5, 15"),
        ("reconcile: {max_delete: lots}", "reconcile: max_delete must be a count"),
        ("delete: {grace: 3x}", "'3x' is not a duration"),
        ("delete: {mode: shred}", "delete.mode: Invalid enum value 'shred'"),
        ("receiver: {port: 70000}", "receiver.port: Expected `int` <= 65535"),
        ("host: {templates: [{match: {role: x}, templates: 3}]}", "host.templates[0].templates: Expected `array`"),
        ("zabbix: {password: hunter2}", "zabbix.password: secrets are not read from the config file"),
        ("secrets: {api_token: x}", "secrets: secrets are not read from the config file"),
        (
            "host: {macros: {'{$PW}': {value: hunter2, secret: true}}}",
            "host.macros.{$PW}.value: a secret macro's value is not read from the config file; use value_env",
        ),
        (
            "host: {interfaces: {snmp: {version: 3, authpassphrase: hunter2}}}",
            "host.interfaces.snmp.authpassphrase: secrets are not read from the config file; use a Zabbix user macro",
        ),
        ("host: {interfaces: {snmp: {community: public}}}", "host.interfaces.snmp.community: secrets are not read"),
        ("netbox: {extra: [{api_token: abc}]}", "netbox.extra[0].api_token: secrets are not read"),
        (
            "host: {macros: {'{$PW}': {value_env: NOPE, secret: true}}}",
            "host.macros.{$PW}.value_env: environment variable NOPE is not set",
        ),
        (
            "host: {interfaces: {snmp: {version: 3, privpassphrase: hunter2}}}",
            "host.interfaces.snmp.privpassphrase: secrets are not read from the config file; use a Zabbix user macro",
        ),
        (
            "host: {interfaces: {snmp: {version: 3, privpassphrase_env: NOPE}}}",
            "host.interfaces.snmp.privpassphrase_env: environment variable NOPE is not set",
        ),
        (
            "host: {interfaces: {snmp: {version: 3, authpassphrase_env: NOPE}}}",
            "host.interfaces.snmp.authpassphrase_env: environment variable NOPE is not set",
        ),
        ("consumer: {transient_window: soon}", "'soon' is not a duration"),
        ("receiver: {max_body_bytes: 2000000}", "receiver.max_body_bytes: Expected `int` <= 1048576"),
        ("- just a list", "config must be a YAML mapping"),
        ("kafka: [", "config is not valid YAML"),
    ],
)
def test_errors_name_the_key(yaml: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(yaml, {})
    assert message in str(err.value)


def test_macro_references_name_secrets_kept_in_zabbix_and_are_accepted() -> None:
    cfg = parse_config("host: {interfaces: {snmp: {community: '{$SNMP_COMMUNITY}', privpassphrase: '{$PRIV}'}}}", {})
    assert (cfg.host.interfaces.snmp.community, cfg.host.interfaces.snmp.privpassphrase) == (
        "{$SNMP_COMMUNITY}",
        "{$PRIV}",
    )


def test_defaults_and_secrets_from_environment() -> None:
    cfg = parse_config("kafka: {bootstrap: 'k:9092'}", {"NBZX_WEBHOOK_SECRET": "s3", "NETBOX_TOKEN": "t"})
    assert cfg.kafka.bootstrap == "k:9092" and cfg.kafka.topics.events == "netbox.events"
    assert cfg.secrets.webhook_secret == "s3" and cfg.secrets.netbox_token == "t"
    assert "s3" not in repr(cfg.secrets)
    require(cfg, "webhook_secret", "netbox_token")
    with pytest.raises(ConfigError, match="NBZX_API_TOKEN"):
        require(cfg, "api_token")
    with pytest.raises(ConfigError, match="ZABBIX_TOKEN or ZABBIX_USER"):
        require(cfg, "zabbix_auth")


def test_design_sketch_config_is_valid(tmp_path: Path) -> None:
    sketch = Path(__file__).resolve().parents[2] / "examples" / "config.yaml"
    cfg = load_config(sketch, {})
    assert cfg.reconcile.interval == 60 and cfg.delete.mode == "soft"


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "nope.yaml", {})


def test_durations() -> None:
    assert parse_duration("30d") == 30 * 86400
    assert parse_duration("90s") == 90
    with pytest.raises(ValueError):
        parse_duration("soon")


def test_extra_interfaces_are_checked_at_start() -> None:
    with pytest.raises(ConfigError, match=r"extra\[0\]\.type must be agent, snmp, ipmi or jmx"):
        parse_config('{"host": {"interfaces": {"extra": [{"type": "telnet"}]}}}', {})
    with pytest.raises(ConfigError, match=r"extra\[0\]\.address must be primary or oob"):
        parse_config('{"host": {"interfaces": {"extra": [{"type": "ipmi", "address": "bmc"}]}}}', {})


@pytest.mark.parametrize("name", ["interfaces.yaml", "write-back.yaml", "adopt.yaml", "local.yaml", "servers.yaml"])
def test_the_examples_are_valid_configs(name: str) -> None:
    path = Path(__file__).resolve().parents[2] / "examples" / name
    cfg = load_config(path, {"NBZX_IPMI_PASSWORD": "from-the-environment"})
    if name == "servers.yaml":
        from nbzx.common.config import zabbix_servers
        from nbzx.core.routing import route

        assert list(zabbix_servers(cfg)) == ["eu-old", "eu-new", "us"]
        ams = {"site": {"id": 1, "slug": "ams1", "name": "AMS1"}, "tags": []}
        assert route(ams, cfg).servers == ("eu-old", "eu-new")
        pinned = {**ams, "config_context": {"zabbix": {"server": "us"}}}
        assert route(pinned, cfg).servers == ("us",)
    if name == "write-back.yaml":
        assert cfg.netbox.write_back.journal and cfg.netbox.write_back.custom_fields
    if name == "interfaces.yaml":
        assert cfg.host.interfaces.ipmi.password == "from-the-environment"
