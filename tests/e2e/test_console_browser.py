"""The operator console in a real headless Chromium (Debian's chromium, driven by Selenium), against
the real local stack: a consumer process (control loop included), a console process, NetBox and
Zabbix 7.0. A failing test leaves a screenshot of every page it visited in test-artifacts/console/.

Set NBZX_DOCS_SCREENSHOTS=1 to refresh the screenshots in docs/ from this run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from nbzx.common.config import Config
from nbzx.common.kafka import Producer, create_topics
from nbzx.schemas import DeadLetter, encode
from tests.browser import Browser
from tests.conftest import ROOT, ZabbixServer, create_device, lab_ip
from tests.e2e.pipeline import ConsumerProcess, free_port, pipeline_config_doc, write_config

pytestmark = pytest.mark.e2e

OPERATOR, VIEWER = "alice:op-e2e-token", "victor:view-e2e-token"
ARTIFACTS = ROOT / "test-artifacts" / "console"
DOCS_SHOTS = os.environ.get("NBZX_DOCS_SCREENSHOTS") == "1"


class ConsoleProcess:
    """`nbzx console` as its own process, as it runs in production."""

    def __init__(self, config_path: Path, log_path: Path, port: int) -> None:
        from tests.conftest import NETBOX_TOKEN

        env = {
            **os.environ,
            "NETBOX_TOKEN": NETBOX_TOKEN,
            "ZABBIX_USER": "Admin",
            "ZABBIX_PASSWORD": "zabbix",
            "NBZX_CONSOLE_OPERATOR_TOKENS": OPERATOR,
            "NBZX_CONSOLE_VIEWER_TOKENS": VIEWER,
        }
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "nbzx.cli", "--config", str(config_path), "console", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=log_path.open("ab"),
            stderr=subprocess.STDOUT,
        )

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/readyz", timeout=2) as r:
                return bool(r.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Session:
    """What the test drives: the browser, NetBox, and a way to wait for the pages to show something."""

    def __init__(self, browser: Browser, console: ConsoleProcess, nb: Any, base: dict[str, Any], cfg: Config) -> None:
        self.b, self.console, self.nb, self.base, self.cfg = browser, console, nb, base, cfg

    def wait_page(self, path: str, check: Callable[[Browser], Any], what: str, timeout_s: float = 60) -> Any:
        """Open `path` until `check(browser)` is truthy (the pages are server-rendered: reload to see news)."""
        from selenium.common.exceptions import WebDriverException

        deadline = time.monotonic() + timeout_s
        last: Exception | None = None
        while time.monotonic() < deadline:
            self.b.open(path)
            try:
                got = check(self.b)
            except WebDriverException as exc:  # the page changed under the check (a node gone): look again
                got, last = None, exc
            if got:
                return got
            time.sleep(1)
        raise AssertionError(f"timed out after {timeout_s}s waiting for {what} on {path} (last: {last!r})")


@pytest.fixture
def console_session(
    request: pytest.FixtureRequest,
    kafka_config: Config,
    netbox_api: Any,
    netbox_objects: Any,
    zabbix7: ZabbixServer,
    tmp_path: Path,
) -> Iterator[Session]:
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.fail("Debian's chromium and chromium-driver are needed (scripts/test installs them)")
    cfg = kafka_config
    cfg.zabbix.url = zabbix7.url
    asyncio.run(create_topics(cfg))
    base = netbox_objects("console")
    doc = pipeline_config_doc(cfg)
    port = free_port()
    doc["console"] = {"host": "127.0.0.1", "port": port}
    consumer = ConsumerProcess(write_config(doc, tmp_path / "consumer.yaml"), tmp_path / "consumer.log")
    console = ConsoleProcess(write_config(doc, tmp_path / "console.yaml"), tmp_path / "console.log", port)
    browser = Browser(console.url)
    try:
        deadline = time.monotonic() + 60
        while not console.ready():
            assert time.monotonic() < deadline, (tmp_path / "console.log").read_text()[-3000:]
            time.sleep(0.3)
        yield Session(browser, console, netbox_api, base, cfg)
    finally:
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            where = ARTIFACTS / request.node.name
            shutil.rmtree(where, ignore_errors=True)
            with contextlib.suppress(Exception):
                _ = browser.path  # the page it failed on (reached by a click) counts as visited
            for i, path in enumerate(dict.fromkeys(browser.visited)):
                try:
                    browser.open(path)
                    browser.screenshot(
                        where / f"{i:02d}-{re.sub(r'[^A-Za-z0-9]+', '_', path).strip('_') or 'root'}.png"
                    )
                except Exception as exc:  # a screenshot must not hide the failure
                    print(f"screenshot of {path} failed: {exc!r}")
            for log in ("consumer.log", "console.log"):
                if (tmp_path / log).exists():
                    shutil.copy(tmp_path / log, where / log)
            print(f"screenshots and logs of the failed console test: {where}")
        browser.close()
        console.stop()
        consumer.stop()


def test_operator_reconciles_fixes_a_failing_host_retries_and_schedules(console_session: Session) -> None:
    s, b, nb = console_session, console_session.b, console_session.nb
    slug = s.base["site"].slug
    good = create_device(nb, s.base, f"{slug}-good", lab_ip(60))
    bad = create_device(nb, s.base, f"{slug}-bad", lab_ip(61))
    bad.update({"local_context_data": {"zabbix": {"templates": ["No Such Template 42"]}}})
    bad_key = f"dcim.device:{bad.id}"

    b.sign_in(OPERATOR.split(":")[1])
    assert b.path.startswith("/jobs") and b.text("#who") == "alice (operator)"

    # Reconcile now, limited to this test's site: the confirmation says how many hosts it may touch.
    b.click("#reconcile-now", then="#filter")
    b.find("#filter").send_keys(f"site={slug}")
    b.click("#count", then="#touch-count")
    assert b.text("#touch-count") == "2"
    b.click("#confirm-reconcile", then="#summary")
    job_path = b.path.split("?")[0]
    assert job_path.startswith("/jobs/")
    s.wait_page(job_path, lambda b: "completed" in b.text("h1"), "the reconcile to complete")
    counts = {el.get_attribute("data-count"): el.text for el in b.all("#counts td")}
    assert counts["create"] == "2" and counts["in_sync"] == "0"
    assert b.text("#user") == "alice"

    # The bad host fails with Zabbix's own error, on the Hosts page and in its detail.
    s.wait_page("/hosts?result=failed", lambda b: b.all(f'tr[data-host-key="{bad_key}"]'), "the failed host")
    row = b.find(f'tr[data-host-key="{bad_key}"]')
    assert "No Such Template 42" in row.text
    assert not b.all(f'tr[data-host-key="dcim.device:{good.id}"]')
    b.open(f"/hosts/{bad_key}")
    assert "No Such Template 42" in b.text("#last-error")
    differs = [el.get_attribute("data-field") for el in b.all("#difference tr.differs")]
    assert "templates" in differs and "host" in differs
    assert "No Such Template 42" in b.find('#difference tr[data-field="templates"]').text
    if DOCS_SHOTS:
        b.screenshot(ROOT / "docs" / "console-difference.png")
    # The same Difference from the JSON API, with an operator token.
    req = urllib.request.Request(
        f"{s.console.url}/api/v1/hosts/{bad_key}/difference",
        headers={"Authorization": f"Bearer {OPERATOR.split(':')[1]}"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        diff = json.loads(resp.read())
    assert diff["action"] == "create" and "templates" in diff["differs"]

    # Fixed in NetBox; the dead letter is retried from its page: the host turns green.
    bad.update({"local_context_data": None})
    s.wait_page("/dead-letters", lambda b: b.all(f'tr[data-host-key="{bad_key}"] .retry-one'), "its dead letter")
    b.click(f'tr[data-host-key="{bad_key}"] .retry-one', then="#message")
    assert "re-queued" in b.text("#message")
    s.wait_page(f"/hosts/{bad_key}", lambda b: b.all('h1 [data-result="changed"]'), "the host synced (green)")
    assert b.text("#last-error") == ""

    # "Sync now" on the host page: a host_sync job by alice; the host is in sync.
    b.click("#sync-now", then="#message")
    job_id = re.search(r"job ([0-9a-f-]{36})", b.text("#message")).group(1)  # type: ignore[union-attr]
    s.wait_page(f"/jobs/{job_id}", lambda b: "completed" in b.text("h1"), "the host sync job")
    assert b.text("#user") == "alice" and "in_sync" in b.text("#summary")
    s.wait_page(f"/hosts/{bad_key}", lambda b: b.all('h1 [data-result="in_sync"]'), "in sync")

    # A recurring schedule, then cancelled: the chain stops.
    b.open("/jobs")
    at = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    b.driver.execute_script("document.getElementById('scheduled_for').value = arguments[0]", at)
    b.find('#interval option[value="60"]').click()
    b.click("#schedule", then="#summary")
    scheduled = b.path.split("?")[0]
    s.wait_page(scheduled, lambda b: b.all("#cancel"), "the scheduled job")
    assert "every 60 min" in b.text("#summary")
    b.click("#cancel", then="#summary")
    s.wait_page(scheduled, lambda b: "skipped" in b.text("h1"), "the job cancelled")
    assert b.text("#error") == "cancelled by alice"
    b.open("/jobs?status=scheduled")
    assert not b.all("#jobs tr[data-job]"), "nothing left scheduled"
    if DOCS_SHOTS:
        b.open("/jobs")
        b.screenshot(ROOT / "docs" / "console-jobs.png")


async def _dead_letter(cfg: Config, host_key: str) -> None:
    producer = Producer(cfg)
    await producer.start()
    try:
        letter = DeadLetter(
            host_key=host_key, error="template No Such Template 42 missing", attempts=1,
            topic=cfg.kafka.topics.events, partition=0, offset=0, original="{}",
        )  # fmt: skip
        await producer.send(cfg.kafka.topics.dlq, host_key, encode(letter))
    finally:
        await producer.stop()


def test_a_viewer_reads_but_cannot_act(console_session: Session) -> None:
    s, b = console_session, console_session.b
    dev = create_device(s.nb, s.base, f"{s.base['site'].slug}-viewed", lab_ip(62))
    key = f"dcim.device:{dev.id}"
    asyncio.run(_dead_letter(s.cfg, key))  # something a viewer could retry, were it allowed
    b.sign_in(VIEWER.split(":")[1])
    assert b.text("#who") == "victor (viewer)"
    assert not b.all("#actions")
    b.open(f"/hosts/{key}")
    assert key in b.text("h1"), "the host's page is shown"
    assert not b.all("#sync-now")
    s.wait_page("/dead-letters", lambda b: b.all(f'tr[data-host-key="{key}"]'), "the dead letter listed")
    assert not b.all("#retry-all") and not b.all(".retry-one"), "listed, yet no retry for a viewer"
    cookie = b.driver.get_cookie("nbzx_session")["value"]  # type: ignore[index]
    req = urllib.request.Request(
        f"{s.console.url}/reconcile",
        data=b"csrf=whatever",
        headers={"Cookie": f"nbzx_session={cookie}", "Content-Type": "application/x-www-form-urlencoded"},
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(req, timeout=5)
    assert refused.value.code == 403
    assert "actions need the operator role" in refused.value.read().decode()
    b.open("/jobs")
    assert not b.all('#jobs tr[data-kind="reconcile"]'), "the refused POST started nothing"


def test_operator_adopts_a_hand_made_host_from_the_adoption_page(
    console_session: Session, zabbix7: ZabbixServer
) -> None:
    s, b, nb = console_session, console_session.b, console_session.nb
    zabbix_api = zabbix7.api
    name = f"{s.base['site'].slug}-legacy"
    dev = create_device(nb, s.base, name, lab_ip(66))
    key = f"dcim.device:{dev.id}"
    gid = zabbix_api.hostgroup.get(filter={"name": "Linux servers"})[0]["groupid"]
    iface = {"type": 1, "main": 1, "useip": 1, "ip": lab_ip(66), "dns": "", "port": "10050"}
    hostid = zabbix_api.host.create(host=name, groups=[{"groupid": gid}], interfaces=[iface])["hostids"][0]
    try:
        b.sign_in(OPERATOR.split(":")[1])
        b.open("/adoption")
        row = b.find(f'#adoptable tr[data-hostid="{hostid}"]')
        assert row.get_attribute("data-host-key") == key and "groups" in row.text
        assert key in [el.get_attribute("data-host-key") for el in b.all("#netbox-only tr[data-host-key]")]
        if DOCS_SHOTS:
            b.screenshot(ROOT / "docs" / "console-adoption.png")
        b.find(f'#adoptable tr[data-hostid="{hostid}"] input[type="checkbox"]').click()
        b.click("#adopt-selected", then="#summary")
        job_path = b.path.split("?")[0]
        s.wait_page(job_path, lambda b: "completed" in b.text("h1"), "the adopt job to complete")
        assert b.text("#user") == "alice" and "adopted 1" in b.text("#summary")
        [h] = zabbix_api.host.get(hostids=[hostid], output=["hostid"], selectTags=["tag", "value"])
        assert {"tag": "netbox:key", "value": key} in h["tags"], "the same host, now ours"
        b.open("/adoption")
        assert not b.all(f'tr[data-hostid="{hostid}"]'), "an adopted host is no longer listed"
    finally:
        zabbix_api.host.delete(hostid)
