"""bench/adopt: brownfield adoption of N hand-made Zabbix hosts, against the raw reads it needs.

N devices are loaded into NetBox through its ORM and N hosts of the same names into Zabbix with plain
array host.create calls (no owner tag: what people made by hand). Then, in the same run:
- baseline: the two listings adoption cannot do without (every NetBox device, every unowned host);
- `adopt plan` (those reads, the desired host of every object, matching and checks), and the pure
  decision alone;
- `adopt apply --all`: owner tags in array host.update calls, then the normal sync of every key.

    .venv/bin/python bench/adopt.py [N ...]       (default: 1000; needs scripts/stack up)
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.netbox_fixtures import netbox_orm
from bench.scale import ENV, peak_rss_mb
from nbzx.common.config import parse_config
from nbzx.common.kafka import Producer, create_topics
from nbzx.core.adoption import plan_adoption
from nbzx.engine.netbox import NetBox
from nbzx.engine.sync import SyncEngine
from nbzx.engine.zabbix import Zabbix
from nbzx.jobs.adopt import adopt, adoption_report, netbox_sides


async def run_size(n: int) -> dict[str, Any]:
    tag = f"abench-{uuid.uuid4().hex[:6]}"
    await asyncio.to_thread(netbox_orm, tag, "create", n)
    doc = {
        "kafka": {"bootstrap": "127.0.0.1:9092", "topics": {k: f"abench.{k}.{tag}" for k in ("control", "jobs")}},
        "zabbix": {"rate_per_s": 100000, "concurrency": 8},
        "host": {"groups": ["NetBox/{site.name}"], "interfaces": {"default": "none"}},
        "scope": {"virtual_machines": {"enabled": False}},
    }
    cfg = parse_config(json.dumps(doc), ENV)
    await create_topics(cfg)
    zabbix, netbox = Zabbix(cfg), NetBox(cfg)
    await zabbix.start()
    engine = SyncEngine(cfg, netbox, zabbix)
    cfg.scope.devices.filter = {"site_id": [netbox.api.dcim.sites.get(slug=tag).id]}
    producer = Producer(cfg)
    await producer.start()
    gid = (await zabbix.call("hostgroup.get", {"filter": {"name": ["Linux servers"]}}))[0]["groupid"]
    hostids: list[str] = []
    out: dict[str, Any] = {"n": n}
    try:
        t0 = time.perf_counter()
        for i in range(0, n, 500):
            rows = [{"host": f"{tag}-{j:05d}", "groups": [{"groupid": gid}]} for j in range(i, min(n, i + 500))]
            hostids += (await zabbix.call("host.create", rows))["hostids"]
        out["load_s"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        await asyncio.gather(netbox.all_objects("dcim.device", scoped=False), zabbix.unowned_hosts())
        out["raw_reads_s"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        report = await adoption_report(engine)
        out["plan_s"] = time.perf_counter() - t0
        mine = [a for a in report.adoptable if a.host.startswith(tag)]
        assert len(mine) == n, (len(mine), report.not_adoptable[:3])

        sides, owned, unowned = await asyncio.gather(
            netbox_sides(engine), zabbix.all_owned_hosts(), zabbix.unowned_hosts()
        )
        t0 = time.perf_counter()
        plan_adoption(sides, owned, unowned, cfg.host.adopt_match, {})
        out["decide_ms"] = (time.perf_counter() - t0) * 1000

        writes = zabbix.write_calls
        t0 = time.perf_counter()
        record = await adopt(engine, producer, [a.host_key for a in mine if a.host_key])
        out["apply_s"] = time.perf_counter() - t0
        out["apply_writes"] = zabbix.write_calls - writes
        assert record.status == "completed" and record.results["adopted"] == n, record.results
    finally:
        await producer.stop()
        await asyncio.to_thread(netbox_orm, tag, "delete")
        for i in range(0, len(hostids), 1000):
            await zabbix.call("host.delete", hostids[i : i + 1000])
        await zabbix.close()
        netbox.close()
    return out


async def main(sizes: list[int]) -> None:
    print("bench/adopt: adoption of N hand-made hosts (Zabbix 6.0), against the two listings it needs")
    print(
        f"{'N':>6} {'load s':>7} {'raw reads s':>11} {'plan s':>7} {'decide ms':>9} {'apply s':>8} "
        f"{'hosts/s':>8} {'writes':>7} {'peak RSS':>9}"
    )
    for n in sizes:
        r = await run_size(n)
        print(
            f"{n:>6} {r['load_s']:7.1f} {r['raw_reads_s']:11.2f} {r['plan_s']:7.2f} {r['decide_ms']:9.1f} "
            f"{r['apply_s']:8.2f} {n / r['apply_s']:8.0f} {r['apply_writes']:>7} {peak_rss_mb():8.0f}M"
        )


if __name__ == "__main__":
    asyncio.run(main([int(a) for a in sys.argv[1:]] or [1000]))
