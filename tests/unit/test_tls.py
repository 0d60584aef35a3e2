"""Agent encryption per host (PSK and certificate): config, mapping, and a diff that stays a zero-write
no-op although Zabbix never returns a PSK. Against the real servers: tests/e2e/test_sync_engine.py."""

from __future__ import annotations

import json
from typing import Any

import pytest

from nbzx.common.config import Config, ConfigError, parse_config
from nbzx.core.diff import create_changes, plan_sync
from nbzx.core.mapping import map_host
from nbzx.core.model import PSK_MACRO
from nbzx.core.redact import MASK, redacted
from nbzx.core.zabbix_payloads import normalise_host
from nbzx.core.zabbix_versions import capabilities
from tests.unit.test_diff import zabbix_row
from tests.unit.test_mapping import device

pytestmark = pytest.mark.unit

KEY_A, KEY_B, KEY_DC2 = "a1" * 16, "b2" * 32, "c3" * 16
KEY = "dcim.device:1"
V60 = capabilities("6.0.14")


def cfg(env: dict[str, str] | None = None, /, **tls: Any) -> Config:
    doc = {"host": {"tls": {"connect": "psk", "accept": ["psk"], "psk_identity": "nbzx-{name}", **tls}}}
    return parse_config(json.dumps(doc), {"NBZX_PSK": KEY_A, "NBZX_PSK_DC2": KEY_DC2} if env is None else env)


PSK: dict[str, Any] = {"psk_env": "NBZX_PSK", "psks": {"dc2": "NBZX_PSK_DC2"}}


def with_context(tls: dict[str, Any]) -> dict[str, Any]:
    return device(config_context={"zabbix": {"tls": tls}})


def test_psk_from_the_environment_with_a_rendered_identity() -> None:
    d = map_host(device(), KEY, cfg(**PSK))
    assert (d.tls_connect, d.tls_accept, d.tls_psk_identity, d.tls_psk) == (2, 2, "nbzx-srv-01-renamed", KEY_A)
    changes = create_changes(d)
    assert (changes["tls_connect"], changes["tls_psk"], changes["tls_psk_identity"]) == (2, KEY_A, d.tls_psk_identity)
    [digest] = [m for m in changes["macros"] if m["macro"] == PSK_MACRO]
    assert digest["value"].startswith("sha256:") and KEY_A not in json.dumps(digest)
    shown = json.dumps(redacted(changes))
    assert KEY_A not in shown and MASK in shown


def test_a_config_context_picks_another_key_by_name_and_its_own_modes() -> None:
    d = map_host(with_context({"psk": "dc2", "accept": ["unencrypted", "psk"]}), KEY, cfg(**PSK))
    assert (d.tls_connect, d.tls_accept, d.tls_psk) == (2, 3, KEY_DC2)
    cert = map_host(with_context({"connect": "cert", "accept": ["cert"], "subject": "CN={name}"}), KEY, cfg(**PSK))
    assert (cert.tls_connect, cert.tls_accept, cert.tls_subject, cert.tls_psk) == (4, 4, "CN=srv-01-renamed", "")
    assert PSK_MACRO not in {m.macro for m in cert.macros}


@pytest.mark.parametrize(
    ("tls", "message"),
    [
        ({"psk": "nope"}, "host.tls.psks has no key named 'nope' \\(named: dc2\\)"),
        ({"connect": "tls13"}, "'tls13' is not one of unencrypted, psk, cert"),
        ({"psk_identity": ""}, "needs a psk_identity"),
    ],
)
def test_a_host_whose_encryption_cannot_be_mapped_fails_alone_with_a_reason(tls: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        map_host(with_context(tls), KEY, cfg(**PSK))


def test_psk_without_a_key_in_the_environment_is_a_mapping_error_naming_the_setting() -> None:
    with pytest.raises(ValueError, match=r"host\.tls\.psk_env is not set"):
        map_host(device(), KEY, cfg())


@pytest.mark.parametrize(
    ("doc", "env", "message"),
    [
        ({"psk": KEY_A}, {}, "host.tls.psk: secrets are not read from the config file"),
        ({"keys": {"": KEY_A}}, {}, "host.tls.keys: PSKs are not read from the config file"),
        ({"psk_env": "NBZX_PSK"}, {"NBZX_PSK": "not-hex-and-short"}, "host.tls.psk_env: NBZX_PSK is not a PSK"),
        ({"psks": {"dc2": "NBZX_PSK_DC2"}}, {}, "host.tls.psks.dc2: environment variable NBZX_PSK_DC2 is not set"),
    ],
)
def test_a_key_comes_only_from_the_environment_and_must_be_one(
    doc: dict[str, Any], env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        parse_config(json.dumps({"host": {"tls": doc}}), env)
    assert "not-hex-and-short" not in str(err.value)  # a bad key is never repeated back


def _zabbix_after(changes: dict[str, Any]) -> Any:
    return normalise_host(V60, zabbix_row(changes), {})


def test_a_second_pass_is_a_no_op_and_a_rotated_key_is_one_update_with_it() -> None:
    d = map_host(device(), KEY, cfg(**PSK))
    actual = _zabbix_after(create_changes(d))
    assert plan_sync(d, actual).action == "noop", "Zabbix returned no PSK, yet nothing is written"

    rotated = map_host(device(), KEY, cfg({"NBZX_PSK": KEY_B, "NBZX_PSK_DC2": KEY_DC2}, **PSK))
    plan = plan_sync(rotated, actual)
    assert plan.action == "update"
    assert sorted(plan.changes) == ["macros", "tls_psk", "tls_psk_identity"]
    assert plan.changes["tls_psk"] == KEY_B
    assert plan_sync(rotated, _zabbix_after(create_changes(rotated))).action == "noop"


def test_a_new_identity_or_mode_pushes_the_key_again_and_turning_psk_off_drops_the_digest() -> None:
    d = map_host(device(), KEY, cfg(**PSK))
    actual = _zabbix_after(create_changes(d))
    renamed = map_host(device(), KEY, cfg(psk_identity="ops-{name}", **PSK))
    assert {"tls_psk", "tls_psk_identity"} <= plan_sync(renamed, actual).changes.keys()
    both = map_host(device(), KEY, cfg(accept=["unencrypted", "psk"], **PSK))
    assert plan_sync(both, actual).changes.keys() == {"tls_accept", "tls_psk", "tls_psk_identity"}

    off = map_host(device(), KEY, parse_config("{}", {}))
    plan = plan_sync(off, actual)
    assert (plan.changes["tls_connect"], plan.changes["tls_accept"]) == (1, 1)
    assert "tls_psk" not in plan.changes
    assert PSK_MACRO not in {m["macro"] for m in plan.changes["macros"] if "macro" in m}


def test_someone_switching_encryption_off_by_hand_is_put_back_with_the_key() -> None:
    d = map_host(device(), KEY, cfg(**PSK))
    by_hand = zabbix_row(create_changes(d)) | {"tls_connect": "1", "tls_accept": "1"}
    plan = plan_sync(d, normalise_host(V60, by_hand, {}))
    assert plan.changes.keys() == {"tls_connect", "tls_accept", "tls_psk", "tls_psk_identity"}
