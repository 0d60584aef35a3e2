"""NetBox and Zabbix behind TLS with a private CA (the stack's HTTPS front, scripts/lib/tls.sh): the
right CA works, a CA that did not sign the certificate is a clear error and nothing is written, and
`verify_tls: false` works and says so at start."""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from nbzx.common.config import Config
from nbzx.engine.netbox import NetBox
from nbzx.engine.sync import SyncEngine
from nbzx.engine.zabbix import Zabbix, ZabbixError
from tests.conftest import ZabbixServer, create_device, ensure_stack, lab_ip

pytestmark = pytest.mark.e2e

CA = os.environ.get("NBZX_TLS_CA", str(Path.home() / ".local/state/nbzx-stack/tls/ca.crt"))
NETBOX_TLS = os.environ.get("NBZX_NETBOX_TLS_URL", "https://127.0.0.1:8443")
ZABBIX_TLS = {
    "6.0": os.environ.get("NBZX_ZABBIX_TLS_URL", "https://127.0.0.1:8444"),
    "7.0": os.environ.get("NBZX_ZABBIX7_TLS_URL", "https://127.0.0.1:8445"),
}


@pytest.fixture(scope="module")
def https_front() -> None:
    ensure_stack("netbox", "zabbix", "zabbix7", "tls")


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A CA that signed nothing the stack serves."""
    d = tmp_path_factory.mktemp("other-ca")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=someone else",
         "-keyout", str(d / "ca.key"), "-out", str(d / "ca.crt")],
        check=True, capture_output=True,
    )  # fmt: skip
    yield str(d / "ca.crt")


def _config(server: ZabbixServer, ca: str | None, verify: bool = True) -> Config:
    tls = {"ca_file": ca, "verify_tls": verify}
    cfg = server.config(zabbix={"url": ZABBIX_TLS[server.row], **tls})
    cfg.netbox.url, cfg.netbox.ca_file, cfg.netbox.verify_tls = NETBOX_TLS, ca, verify
    return cfg


async def _sync_one(cfg: Config, netbox_api: Any, base: dict[str, Any], server: ZabbixServer) -> tuple[Any, str]:
    name = f"tls-{uuid.uuid4().hex[:6]}"
    dev = await asyncio.to_thread(create_device, netbox_api, base, name, lab_ip(97))
    zabbix, netbox = Zabbix(cfg), NetBox(cfg)
    await zabbix.start()
    try:
        [res] = await SyncEngine(cfg, netbox, zabbix).sync([f"dcim.device:{dev.id}"])
    finally:
        await zabbix.close()
        netbox.close()
    return res, name


async def test_with_the_private_ca_netbox_and_zabbix_are_read_and_written_over_https(
    https_front: None, zabbix_server: ZabbixServer, netbox_api: Any, netbox_objects: Any
) -> None:
    res, name = await _sync_one(_config(zabbix_server, CA), netbox_api, netbox_objects("tls"), zabbix_server)
    assert (res.action, res.result) == ("create", "ok"), res
    assert zabbix_server.api.host.get(filter={"host": name}, output=["hostid"])


async def test_a_ca_that_did_not_sign_zabbix_is_a_clear_error_at_start(
    https_front: None, zabbix_server: ZabbixServer, other_ca: str
) -> None:
    zabbix = Zabbix(_config(zabbix_server, other_ca))
    with pytest.raises(ZabbixError) as err:
        await zabbix.start()
    assert f"is not signed by zabbix.ca_file ({other_ca})" in str(err.value)
    assert "CERTIFICATE_VERIFY_FAILED" in str(err.value) and not err.value.transient


async def test_a_ca_that_did_not_sign_netbox_fails_the_sync_plainly_and_writes_nothing(
    https_front: None, zabbix_server: ZabbixServer, netbox_api: Any, netbox_objects: Any, other_ca: str
) -> None:
    cfg = _config(zabbix_server, CA)
    cfg.netbox.ca_file = other_ca
    res, name = await _sync_one(cfg, netbox_api, netbox_objects("tls"), zabbix_server)
    assert (res.action, res.result, res.transient) == ("read", "error", True), res  # waits and is retried
    assert f"is not signed by netbox.ca_file ({other_ca})" in res.error
    assert zabbix_server.api.host.get(filter={"host": name}, output=["hostid"]) == []


async def test_verify_tls_false_works_and_warns_once_per_endpoint_at_start(
    https_front: None, zabbix_server: ZabbixServer, netbox_api: Any, netbox_objects: Any
) -> None:
    with capture_logs() as logs:
        res, _ = await _sync_one(
            _config(zabbix_server, None, verify=False), netbox_api, netbox_objects("tls"), zabbix_server
        )
    assert (res.action, res.result) == ("create", "ok"), res
    warned = [(e["endpoint"], e["url"]) for e in logs if e["event"] == "tls_not_verified"]
    assert sorted(warned) == [("netbox", NETBOX_TLS), ("zabbix", f"{ZABBIX_TLS[zabbix_server.row]}/api_jsonrpc.php")]
