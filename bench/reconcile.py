"""bench/reconcile: a no-op reconcile of N hosts, and fixing 1 % drift, with the time split per side.

The NetBox side is loaded through NetBox's ORM (seconds); the Zabbix side through the sync engine once
(about 50 hosts/s here, so 20,000 hosts take ~7 minutes to load: pass the sizes you want).

    .venv/bin/python bench/reconcile.py [N ...]       (default: 1000 5000; needs scripts/stack up)
"""

from __future__ import annotations

import asyncio
import json
import resource
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.netbox_fixtures import netbox_orm
from nbzx.common.config import parse_config
from nbzx.common.kafka import Producer, create_topics
from nbzx.engine.netbox import NetBox
from nbzx.engine.sync import SyncEngine
from nbzx.engine.zabbix import Zabbix
from nbzx.jobs.reconcile import Reconciler
from nbzx.schemas.messages import ReconcileRequest

ENV = {
    "NETBOX_TOKEN": "nbt_nbzxlocal001.NbzxLocalToken0123456789abcdefghijABCDEF",
    "ZABBIX_USER": "Admin",
    "ZABBIX_PASSWORD": "zabbix",
}


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def run_size(n: int) -> dict[str, Any]:
    tag = f"rbench-{uuid.uuid4().hex[:6]}"
    ids = await asyncio.to_thread(netbox_orm, tag, "create", n)
    doc = {
        "kafka": {
            "bootstrap": "127.0.0.1:9092",
            "partitions": 12,
            "topics": {k: f"rbench.{k}.{tag}" for k in ("events", "control", "jobs", "dlq")},
        },
        "zabbix": {"rate_per_s": 100000, "concurrency": 8},
        "host": {"groups": ["NetBox/{site.name}"], "description": "{description}"},
        "delete": {"mode": "hard"},
        "reconcile": {"max_delete": "10%"},
    }
    cfg = parse_config(json.dumps(doc), ENV)
    await create_topics(cfg)
    zabbix, netbox = Zabbix(cfg), NetBox(cfg)
    await zabbix.start()
    engine = SyncEngine(cfg, netbox, zabbix)
    keys = [f"dcim.device:{i}" for i in ids]
    t0 = time.perf_counter()
    for i in range(0, len(keys), 500):
        await engine.sync(keys[i : i + 500])
    load_s = time.perf_counter() - t0
    # Scope the reconcile to this run's site, so other hosts on the stack do not count.
    site_id = netbox.api.dcim.sites.get(slug=tag).id
    cfg.scope.devices.filter = {"site_id": [site_id]}
    cfg.scope.virtual_machines.enabled = False
    producer = Producer(cfg)
    await producer.start()
    out: dict[str, Any] = {"n": n, "load_s": load_s}
    try:
        rec = Reconciler(cfg, engine, producer)
        writes = zabbix.write_calls
        t0 = time.perf_counter()
        job = await rec.run(ReconcileRequest(trigger="cli"))
        out["noop_s"] = time.perf_counter() - t0
        out.update(
            {
                k: job.results.get(k)
                for k in ("in_sync", "update", "netbox_read_s", "zabbix_host_get_s", "map_diff_s", "emitted")
            }
        )
        assert job.status == "completed" and job.results["in_sync"] == n and zabbix.write_calls == writes, job

        # 1 % drift by hand in Zabbix, then reconcile + apply its sync requests through sync().
        drifted = keys[::100]
        hosts = await zabbix.hosts_by_key(drifted)
        await zabbix.call(
            "host.massupdate", {"hosts": [{"hostid": h.hostid} for h in hosts.values()], "description": "drifted"}
        )
        t0 = time.perf_counter()
        job = await rec.run(ReconcileRequest(trigger="cli"))
        to_fix = [k for k in keys if k in set(drifted)]
        results = await engine.sync(to_fix)
        out["drift_s"] = time.perf_counter() - t0
        out["drift_found"] = job.results["update"]
        assert job.results["update"] == len(drifted) and all(r.action == "update" for r in results), job
    finally:
        await producer.stop()
        await asyncio.to_thread(netbox_orm, tag, "delete")
        # Bulk delete: one host.delete per 1,000 ids (a per-host sync of 20,000 deletions takes ~10 minutes).
        owned = await zabbix.hosts_by_key(keys) if len(keys) <= 5000 else await zabbix.all_owned_hosts()
        hostids = [h.hostid for k, h in owned.items() if k in set(keys)]
        for i in range(0, len(hostids), 1000):
            await zabbix.call("host.delete", hostids[i : i + 1000])
        await zabbix.close()
        netbox.close()
    return out


async def main(sizes: list[int]) -> None:
    # A reconcile sees every host we own in Zabbix; start from a pristine Zabbix so only this run's count.
    print("resetting Zabbix to its pristine database (scripts/stack reset zabbix)", file=sys.stderr)
    subprocess.run(
        [str(Path(__file__).resolve().parents[1] / "scripts" / "stack"), "reset", "zabbix"],
        check=True,
        capture_output=True,
    )
    print("bench/reconcile: no-op reconcile and 1 % drift fix (reads: NetBox paged in parallel, one host.get)")
    print(
        f"{'N':>6} {'load s':>8} {'no-op s':>8} {'netbox s':>9} {'host.get s':>10} {'map+diff s':>10} "
        f"{'drift n':>8} {'fix 1% s':>9} {'peak RSS':>9}"
    )
    for n in sizes:
        r = await run_size(n)
        print(
            f"{n:>6} {r['load_s']:8.1f} {r['noop_s']:8.2f} {r['netbox_read_s']:9.2f} {r['zabbix_host_get_s']:10.2f} "
            f"{r['map_diff_s']:10.3f} {r['drift_found']:>8} {r['drift_s']:9.2f} {rss_mb():8.0f}M"
        )


if __name__ == "__main__":
    asyncio.run(main([int(a) for a in sys.argv[1:]] or [1000, 5000]))
