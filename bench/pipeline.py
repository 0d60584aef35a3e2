"""bench/pipeline: the whole pipeline on the local stack, next to the raw Zabbix write rate.

1. Latency of single changes: PATCH a device in NetBox's API, time until Zabbix shows it.
   Reported split in two: NetBox's own delivery (API call returned -> receiver got the webhook)
   and ours (receiver got it -> written to Zabbix), and one sync's stages (the consumer's metrics).
   "Written" is when the consumer's Zabbix call returned, from its log: polling Zabbix to see the
   change would load the very servers being timed.
2. Lost webhooks: the same with NetBox's event rule disabled, so the change-log follower alone
   carries each change.
3. Backfill: N creates queued in Kafka while no consumer runs, then CONSUMERS processes apply them;
   compared with the batched Zabbix write rate (array host.create of 500) measured in the same run.

    .venv/bin/python bench/pipeline.py [CHANGES] [BACKLOG] [CONSUMERS]   (100, 10000, 2; needs scripts/stack up)
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import pynetbox
from aiokafka import AIOKafkaConsumer
from zabbix_utils import ZabbixAPI

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.netbox_fixtures import netbox_orm  # noqa: E402
from nbzx.common.config import parse_config  # noqa: E402
from nbzx.common.kafka import Producer, create_topics  # noqa: E402
from nbzx.schemas.messages import ChangeEvent, SyncRequest, decode, encode  # noqa: E402

TOKEN = "nbt_nbzxlocal001.NbzxLocalToken0123456789abcdefghijABCDEF"
ENV = {
    **os.environ,
    "NETBOX_TOKEN": TOKEN,
    "ZABBIX_USER": "Admin",
    "ZABBIX_PASSWORD": "zabbix",
    "NBZX_WEBHOOK_SECRET": "bench-secret",
    "NBZX_API_TOKEN": "bench-api",
}
NBZX = str(ROOT / ".venv" / "bin" / "nbzx")


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q / 100 * (len(s) - 1)))]


def zabbix() -> Any:
    z = ZabbixAPI(url="http://127.0.0.1:8081/api_jsonrpc.php")
    z.login(user="Admin", password="zabbix")
    return z


def descriptions(z: Any, keys: list[str]) -> dict[str, str]:
    rows = z.host.get(
        output=["description"],
        selectTags=["tag", "value"],
        evaltype=0,
        tags=[{"tag": "netbox:key", "value": k, "operator": 1} for k in keys],
    )
    return {next(t["value"] for t in r["tags"] if t["tag"] == "netbox:key"): r["description"] for r in rows}


def stage_sums() -> dict[str, tuple[float, float]]:
    """The consumer's nbzx_sync_stage_seconds: stage -> (sum, count)."""
    import urllib.request

    with urllib.request.urlopen("http://127.0.0.1:18191/metrics", timeout=5) as resp:
        text = resp.read().decode()
    out: dict[str, list[float]] = {}
    if os.environ.get("BENCH_BUCKETS"):
        print("\n".join(line for line in text.splitlines() if line.startswith("nbzx_sync_stage_seconds_bucket")))
    for line in text.splitlines():
        for part, idx in (("_sum{", 0), ("_count{", 1)):
            if line.startswith(f"nbzx_sync_stage_seconds{part}"):
                stage = line.split('stage="')[1].split('"')[0]
                out.setdefault(stage, [0.0, 0.0])[idx] = float(line.rsplit(" ", 1)[1])
    return {k: (v[0], v[1]) for k, v in out.items()}


class SyncLog:
    """The consumer's JSON log, read as it grows: when each host's Zabbix write was done (the "sync"
    line is logged as the write returns), without polling Zabbix (which loads it while it is timed)."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset = path, 0

    def written(self, key: str, after: float) -> float | None:
        """When the newest update of `key` done after `after` (epoch s) was written, or None yet."""
        with self.path.open("rb") as f:
            f.seek(self.offset)
            chunk = f.read()
        found = None
        for line in chunk.splitlines():
            if b'"sync"' not in line:
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if rec.get("host_key") == key and rec.get("action") == "update" and rec.get("result") == "ok":
                at = datetime.fromisoformat(rec["timestamp"]).timestamp()
                if at >= after:
                    found = at
        return found


async def one_at_a_time(
    nb: Any, log: SyncLog, keys: list[str], changes: int, prefix: str
) -> tuple[list[float], dict[str, float], dict[str, float]]:
    """`changes` description updates through NetBox's API, one at a time: the latencies from the API
    call's return (NetBox has saved) to the consumer's Zabbix write, and when each value was sent and written."""
    total: list[float] = []
    seen_at: dict[str, float] = {}
    api_done: dict[str, float] = {}
    for i in range(changes):
        k = keys[i % len(keys)]
        value = f"{prefix}-{i}"
        dev = nb.dcim.devices.get(int(k.split(":")[1]))
        dev.update({"description": value})
        t_done = time.time()
        deadline = time.monotonic() + 30
        while (t_written := log.written(k, t_done)) is None and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert t_written is not None, f"{k} was not written within 30 s"
        total.append(t_written - t_done)
        seen_at[value], api_done[value] = t_written, t_done
        await asyncio.sleep(0.2)  # the follower's duplicate, if any, is not timed with the next change
    return total, seen_at, api_done


def created(z: Any, prefix: str) -> int:
    """How many hosts whose name starts with `prefix` Zabbix has."""
    return int(z.host.get(countOutput=True, search={"host": prefix}, startSearch=True))


def delete_hosts(z: Any, prefix: str) -> None:
    """Delete the hosts whose name starts with `prefix`, 1,000 at a time."""
    ids = [h["hostid"] for h in z.host.get(output=["hostid"], search={"host": prefix}, startSearch=True)]
    for i in range(0, len(ids), 1000):
        z.host.delete(*ids[i : i + 1000])


def start(args: list[str], log: Path, cfg_path: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [NBZX, "--config", str(cfg_path), *args], env=ENV, stdout=log.open("ab"), stderr=subprocess.STDOUT
    )


async def main(changes: int, backlog: int, consumers: int) -> None:
    run = uuid.uuid4().hex[:6]
    work = Path(f"/tmp/nbzx-bench-{run}")
    work.mkdir()
    doc = {
        "kafka": {
            "bootstrap": "127.0.0.1:9092",
            "partitions": 12,
            "group": f"bench-{run}",
            "topics": {
                "events": f"bench.events.{run}",
                "control": f"bench.control.{run}",
                "jobs": f"bench.jobs.{run}",
                "dlq": f"bench.dlq.{run}",
                "host_status": f"bench.host-status.{run}",
                "changelog": f"bench.changelog.{run}",
            },
        },
        "changelog": {"poll_s": 1.0, "enabled": os.environ.get("BENCH_CHANGELOG", "1") == "1"},
        "zabbix": {"rate_per_s": 100000, "concurrency": 8},
        "receiver": {"host": "127.0.0.1", "port": 18190},
        "consumer": {
            "http_host": "127.0.0.1",
            "http_port": 18191,
            "fetch_max_wait_ms": 10,
            "session_timeout_ms": 1000,
            "heartbeat_interval_ms": 200,
            "rebalance_timeout_ms": 2000,
        },
        "host": {"groups": ["NetBox/{site.name}"], "description": "{description}"},
        "delete": {"mode": "hard"},
        "logging": {"level": "info", "json": True},
    }
    cfg_path = work / "config.yaml"
    cfg_path.write_text(json.dumps(doc))
    cfg = parse_config(cfg_path.read_text(), ENV)
    await create_topics(cfg)
    nb = pynetbox.api("http://127.0.0.1:8000", token=TOKEN)
    z = zabbix()
    tag = f"pipe-{run}"
    procs = [
        start(["receiver"], work / "receiver.log", cfg_path),
        start(["consumer"], work / "consumer.log", cfg_path),
    ]
    hook = rule = None
    try:
        await asyncio.sleep(3)
        hook = nb.extras.webhooks.create(
            name=tag,
            payload_url="http://127.0.0.1:18190/webhook",
            http_method="POST",
            http_content_type="application/json",
            secret="bench-secret",
        )
        rule = nb.extras.event_rules.create(
            name=tag,
            object_types=["dcim.device"],
            event_types=["object_created", "object_updated", "object_deleted"],
            action_type="webhook",
            action_object_type="extras.webhook",
            action_object_id=hook.id,
            enabled=True,
        )
        ids = await asyncio.to_thread(netbox_orm, tag, "create", 10)  # ORM: no webhooks; sync them directly
        keys = [f"dcim.device:{i}" for i in ids]
        producer = Producer(cfg)
        await producer.start()
        for k in keys:
            await producer.send(cfg.kafka.topics.events, k, encode(SyncRequest(host_key=k, reason="cli")))
        while len(descriptions(z, keys)) < len(keys):
            await asyncio.sleep(0.2)

        # 1. single changes, one at a time
        before = stage_sums()
        sync_log = SyncLog(work / "consumer.log")
        total, seen_at, api_done = await one_at_a_time(nb, sync_log, keys, changes, "change")
        after = stage_sums()
        stages = {
            k: (after[k][0] - before.get(k, (0, 0))[0]) / max(1, after[k][1] - before.get(k, (0, 0))[1]) for k in after
        }
        # NetBox's delivery delay vs ours, from the receiver's timestamps on the events topic.
        c = AIOKafkaConsumer(
            cfg.kafka.topics.events,
            bootstrap_servers=cfg.kafka.bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await c.start()
        by_value: dict[str, float] = {}
        deadline = time.monotonic() + 15
        while len(by_value) < changes and time.monotonic() < deadline:
            for recs in (await c.getmany(timeout_ms=300)).values():
                for r in recs:
                    ev = decode(r.value)
                    if isinstance(ev, ChangeEvent) and ev.received_at:
                        desc = ev.body_json().get("data", {}).get("description", "")
                        by_value.setdefault(desc, ev.received_at)
        await c.stop()
        netbox_delay = [by_value[v] - api_done[v] for v in api_done if v in by_value]
        ours = [seen_at[v] - by_value[v] for v in seen_at if v in by_value]
        print(f"bench/pipeline: {changes} single changes through NetBox's API (one at a time)")
        print(
            f"  API call returned -> Zabbix write done : p50 {pct(total, 50) * 1000:7.0f} ms  "
            f"p99 {pct(total, 99) * 1000:7.0f} ms  (p90 {pct(total, 90) * 1000:.0f}, p95 {pct(total, 95) * 1000:.0f}, "
            f"slowest {', '.join(f'{v * 1000:.0f}' for v in sorted(total)[-5:])} ms)"
        )
        print(
            f"  of which NetBox's webhook delivery     : p50 {pct(netbox_delay, 50) * 1000:7.0f} ms  "
            f"p99 {pct(netbox_delay, 99) * 1000:7.0f} ms"
        )
        print(
            f"  receiver got it -> Zabbix write done   : p50 {pct(ours, 50) * 1000:7.0f} ms  "
            f"p99 {pct(ours, 99) * 1000:7.0f} ms"
        )
        print(
            "  one sync, mean per stage (the reads run at once): "
            + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in sorted(stages.items()))
        )

        # 2. lost webhooks: the event rule disabled, the change log alone carries the changes
        if not doc["changelog"]["enabled"]:
            print("(no change-log follower: BENCH_CHANGELOG=0)")
        else:
            rule.update({"enabled": False})
            lost, _, _ = await one_at_a_time(nb, sync_log, keys, max(10, changes // 4), "lost")
            rule.update({"enabled": True})
            print(f"{len(lost)} changes with the webhook disabled (the change-log follower alone, poll 1 s):")
            print(
                f"  API call returned -> Zabbix write done : p50 {pct(lost, 50) * 1000:7.0f} ms  "
                f"p99 {pct(lost, 99) * 1000:7.0f} ms  max {max(lost) * 1000:.0f} ms"
            )

        # 3. backlog drain: stop the consumer, queue N changes, start it, time until all are applied.
        if not backlog:
            return
        procs[1].terminate()
        procs[1].wait(30)
        bids = await asyncio.to_thread(netbox_orm, f"{tag}-b", "create", backlog)
        bkeys = [f"dcim.device:{i}" for i in bids]
        for k in bkeys:
            await producer.send(cfg.kafka.topics.events, k, encode(SyncRequest(host_key=k, reason="cli")))
        prefix = f"{tag}-b-"
        t0 = time.perf_counter()
        stage_before: dict[str, tuple[float, float]] = {}
        procs[1] = start(["consumer"], work / "consumer.log", cfg_path)
        for n in range(1, consumers):  # more consumer processes: one reads NetBox while another writes
            more = json.loads(cfg_path.read_text())
            more["consumer"]["http_port"] = 18191 + 10 * n
            (work / f"config{n}.yaml").write_text(json.dumps(more))
            procs.append(start(["consumer"], work / f"consumer{n}.log", work / f"config{n}.yaml"))
        t_first = None
        while (done := created(z, prefix)) < backlog:
            if done and t_first is None:
                t_first = time.perf_counter()
            print(f"\r  backfill: {done:,}/{backlog:,} hosts", end="", file=sys.stderr, flush=True)
            await asyncio.sleep(0.2)
        print(file=sys.stderr)
        drain = time.perf_counter() - t0
        stage_after = stage_sums()
        backfill_stages = {
            k: (v[0] - stage_before.get(k, (0, 0))[0], v[1] - stage_before.get(k, (0, 0))[1])
            for k, v in stage_after.items()
        }
        steady = time.perf_counter() - (t_first or t0)
        # The batched write rate, same run: array host.create calls of a consumer's batch size (500), with the
        # payload shape ours has (a group, the owner tag, a description), one call at a time and two at once.
        gid = z.hostgroup.get(filter={"name": f"NetBox/{tag}-b"})[0]["groupid"]
        raw_rates = {}
        for concurrency in (1, 2):
            names = [f"raw-{run}-{concurrency}-{i}" for i in range(backlog)]
            batches = [names[i : i + 500] for i in range(0, backlog, 500)]
            sem = asyncio.Semaphore(concurrency)

            async def raw(batch: list[str], sem: asyncio.Semaphore = sem) -> None:
                async with sem:
                    await asyncio.to_thread(
                        z.host.create,
                        [
                            {
                                "host": n,
                                "groups": [{"groupid": gid}],
                                "tags": [{"tag": "netbox:key", "value": f"raw:{n}"}],
                                "description": "v1",
                            }
                            for n in batch
                        ],
                    )

            t1 = time.perf_counter()
            await asyncio.gather(*(raw(b) for b in batches))
            raw_rates[concurrency] = backlog / (time.perf_counter() - t1)
            delete_hosts(z, f"raw-{run}-{concurrency}-")
        best = max(raw_rates.values())
        print(
            f"backfill of {backlog} queued creates by {consumers} consumer(s): "
            f"applied in {drain:.1f} s = {backlog / drain:.0f}/s "
            f"(from the first host on: {steady:.1f} s = {backlog / steady:.0f}/s; the rest is process start-up "
            "and the group join)"
        )
        print(
            f"batched host.create, arrays of 500, same run: {raw_rates[1]:.0f}/s one call at a time, "
            f"{raw_rates[2]:.0f}/s two at once; ours / the better: {backlog / drain / best:.2f} (whole), "
            f"{backlog / steady / best:.2f} (from the first host)"
        )
        print(
            "  backfill, seconds spent per stage over all rounds (the reads run at once): "
            + ", ".join(f"{k} {v[0]:.1f} s in {v[1]:.0f}" for k, v in sorted(backfill_stages.items()) if k != "kafka")
        )
        await producer.stop()
        await asyncio.to_thread(netbox_orm, f"{tag}-b", "delete")
    finally:
        if rule is not None:
            rule.delete()
        if hook is not None:
            hook.delete()
        await asyncio.to_thread(netbox_orm, tag, "delete")
        for p in procs:
            p.terminate()
            p.wait(30)
        delete_hosts(z, f"pipe-{run}")
    print(f"logs: {work}")


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    asyncio.run(main(args[0] if args else 100, args[1] if len(args) > 1 else 10000, args[2] if len(args) > 2 else 2))
