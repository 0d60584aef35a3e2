"""A whole pipeline for end-to-end tests: NetBox webhook -> receiver -> Kafka -> consumer process(es) -> Zabbix.

The receiver runs in the test's event loop; each consumer is a real `nbzx consumer` process, so a
test can kill -9 it.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nbzx.common.config import Config
from nbzx.engine.zabbix import WRITE_METHODS
from tests.conftest import HOOK_SECRET, NETBOX_TOKEN, ROOT, lab_ip
from tests.metrics import metric_value


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ConsumerProcess:
    """One `nbzx consumer` process with its own config file and metrics port."""

    def __init__(
        self, config_path: Path, log_path: Path, netbox_token: str = NETBOX_TOKEN, env: dict[str, str] | None = None
    ) -> None:
        self.port = json.loads(config_path.read_text())["consumer"]["http_port"]
        env = {
            **os.environ,
            "NBZX_WEBHOOK_SECRET": HOOK_SECRET,
            "NETBOX_TOKEN": netbox_token,
            "ZABBIX_USER": "Admin",
            "ZABBIX_PASSWORD": "zabbix",
            "NBZX_API_TOKEN": "test-api-token",
            **(env or {}),
        }
        self.log_path = log_path
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "nbzx.cli", "--config", str(config_path), "consumer"],
            cwd=ROOT,
            env=env,
            stdout=log_path.open("ab"),
            stderr=subprocess.STDOUT,
        )

    def metric(self, name: str, **labels: str) -> float:
        """Sum of a metric's samples with these labels (0 when not counted yet; an error when not exposed)."""
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as resp:
            return metric_value(resp.read().decode(), name, **labels)

    def zabbix_writes(self) -> float:
        """Successful Zabbix calls of every method the client counts as a write."""
        return sum(self.metric("nbzx_zabbix_calls_total", method=m, result="ok") for m in WRITE_METHODS)

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return int(self.proc.returncode)


def write_config(cfg_doc: dict[str, Any], path: Path) -> Path:
    path.write_text(json.dumps(cfg_doc))  # JSON is YAML
    return path


async def wait_until(check: Callable[[], Any], timeout_s: float, what: str, interval_s: float = 0.5) -> Any:
    """Poll `check` (sync, run in a thread) until it returns something truthy."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = await asyncio.to_thread(check)
        if last:
            return last
        await asyncio.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what} (last: {last!r})")


def owned_hosts(zapi: Any, host_keys: list[str]) -> dict[str, list[dict[str, Any]]]:
    """host key -> every Zabbix host carrying it (more than one would be a duplicate)."""
    rows = zapi.host.get(
        output=["hostid", "host", "name", "status"],
        selectTags=["tag", "value"],
        selectInterfaces=["ip"],
        tags=[{"tag": "netbox:key", "value": k, "operator": 1} for k in host_keys],
        evaltype=0,
    )
    out: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        key = next(t["value"] for t in r["tags"] if t["tag"] == "netbox:key")
        out.setdefault(key, []).append(r)
    return out


def pipeline_config_doc(cfg: Config, **host: Any) -> dict[str, Any]:
    """The YAML document for consumer processes: the test's topics, fast group joins, quick retries."""
    return {
        "netbox": {"url": cfg.netbox.url},
        "zabbix": {"url": cfg.zabbix.url, "rate_per_s": 200, "concurrency": 8},
        "kafka": {
            "bootstrap": cfg.kafka.bootstrap,
            "partitions": cfg.kafka.partitions,
            "group": cfg.kafka.group,
            "topics": {
                "events": cfg.kafka.topics.events,
                "control": cfg.kafka.topics.control,
                "jobs": cfg.kafka.topics.jobs,
                "dlq": cfg.kafka.topics.dlq,
                "host_status": cfg.kafka.topics.host_status,
                "changelog": cfg.kafka.topics.changelog,
            },
        },
        "changelog": {"enabled": cfg.changelog.enabled, "poll_s": 0.5},
        "consumer": {
            "session_timeout_ms": 1000,
            "heartbeat_interval_ms": 200,
            "rebalance_timeout_ms": 2000,
            "retry_base_s": 0.5,
            "retry_max_s": 4,
            "http_host": "127.0.0.1",
            "http_port": free_port(),
            "fetch_max_wait_ms": 50,
        },
        "host": {"groups": ["NetBox/{site.name}"], **host},
        "delete": {"mode": "soft"},
        "logging": {"level": "info"},
    }


def new_name(prefix: str = "e2e") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


class Pipeline:
    def __init__(
        self, cfg: Config, nb: Any, zapi: Any, base: dict[str, Any], tmp: Path, zabbix_service: str = "zabbix"
    ) -> None:
        self.cfg, self.nb, self.zapi, self.base, self.tmp = cfg, nb, zapi, base, tmp
        self.zabbix_service = zabbix_service  # scripts/stack's name for the Zabbix the consumers write to
        self.consumers: list[ConsumerProcess] = []
        self.host_overrides: dict[str, Any] = {}
        self.kafka_overrides: dict[str, Any] = {}  # e.g. the secure cluster's settings (tests/kafka3.py)
        self.consumer_env: dict[str, str] = {}  # e.g. its SASL credentials
        self.made: list[Any] = []

    def consumer(self, **zabbix: Any) -> ConsumerProcess:
        """A new consumer process; `zabbix` overrides its Zabbix settings (a low `rate_per_s` spaces its calls)."""
        n = len(self.consumers)
        doc = pipeline_config_doc(self.cfg, **self.host_overrides)
        doc["zabbix"].update(zabbix)
        doc["kafka"].update(self.kafka_overrides)
        path = write_config(doc, self.tmp / f"consumer{n}.yaml")
        c = ConsumerProcess(path, self.tmp / f"consumer{n}.log", env=self.consumer_env)
        self.consumers.append(c)
        return c

    def devices(self, names: list[str], with_ip: bool = False, **fields: Any) -> list[Any]:
        """Create devices in one bulk POST (one webhook each)."""
        b = self.base
        devs = self.nb.dcim.devices.create(
            [
                {
                    "name": n,
                    "device_type": b["device_type"].id,
                    "role": b["role"].id,
                    "site": b["site"].id,
                    "status": "active",
                    **fields,
                }
                for n in names
            ]
        )
        self.made.extend(devs)
        if with_ip:
            for i, d in enumerate(devs):
                iface = self.nb.dcim.interfaces.create(device=d.id, name="eth0", type="1000base-t")
                ip = self.nb.ipam.ip_addresses.create(
                    address=f"{lab_ip(10 + i)}/24", assigned_object_type="dcim.interface", assigned_object_id=iface.id
                )
                d.update({"primary_ip4": ip.id})
        return list(devs)

    def hosts(self, keys: list[str]) -> dict[str, list[dict[str, Any]]]:
        return owned_hosts(self.zapi, keys)

    async def converged(self, keys: list[str], check: Any = None, timeout_s: float = 60) -> dict[str, Any]:
        """Wait until each key has exactly one host (passing `check`, if given); fail on duplicates."""

        def ok() -> dict[str, Any] | None:
            hosts = self.hosts(keys)
            dups = {k: len(v) for k, v in hosts.items() if len(v) > 1}
            assert not dups, f"duplicated hosts: {dups}"
            if set(hosts) != set(keys):
                return None
            flat = {k: v[0] for k, v in hosts.items()}
            return flat if check is None or all(check(k, h) for k, h in flat.items()) else None

        result: dict[str, Any] = await wait_until(ok, timeout_s, f"{len(keys)} hosts in Zabbix")
        return result
