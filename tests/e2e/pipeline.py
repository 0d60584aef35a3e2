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

from nbzx.config import Config
from tests.conftest import HOOK_SECRET, NETBOX_TOKEN, ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ConsumerProcess:
    """One `nbzx consumer` process with its own config file and metrics port."""

    def __init__(self, config_path: Path, log_path: Path) -> None:
        self.port = json.loads(config_path.read_text())["consumer"]["http_port"]
        env = {
            **os.environ,
            "NBZX_WEBHOOK_SECRET": HOOK_SECRET,
            "NETBOX_TOKEN": NETBOX_TOKEN,
            "ZABBIX_USER": "Admin",
            "ZABBIX_PASSWORD": "zabbix",
            "NBZX_API_TOKEN": "test-api-token",
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
        """Sum of a Prometheus counter/gauge's samples with these labels (0 when absent)."""
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
        total = 0.0
        for line in text.splitlines():
            if not line.startswith(name + "{") and not line.startswith(name + " "):
                continue
            if all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def zabbix_writes(self) -> float:
        return sum(
            self.metric("nbzx_zabbix_calls_total", method=m, result="ok")
            for m in ("host.create", "host.update", "host.delete", "host.massupdate")
        )

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
        selectGroups=["name"],
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
            },
        },
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
