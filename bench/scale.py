"""bench/scale: reconcile at 20,000 / 50,000 / 100,000 hosts, in one run, against the bare cost of the
same NetBox and Zabbix listings measured in that run.

A fleet (bench/fleet.py: devices with an interface and a primary IP, made in NetBox's ORM) grows to
each size; the new devices are created in the stack's Zabbix 6.0 through the sync engine in consumer-
sized batches (that pass is also the batched write rate). Then, each in a child process of its own so
its peak RSS is its own: the bare listings (every in-scope device from NetBox, every owned host from
Zabbix, as the reconcile reads them, nothing else), a no-op reconcile (job end to end: reads, map,
diff, plan; it must find every host in sync and emit nothing), and a reconcile after 1 % drift made by
hand in Zabbix (it must find exactly those).

    .venv/bin/python bench/scale.py [N ...]      (default: 20000 50000 100000; needs scripts/stack up)

Zabbix is reset to its pristine database first (scripts/stack reset zabbix); the fleet is removed at
the end (pass --keep to leave it, and its hosts, for another run, and --reuse TAG to run on it again).
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

from bench.fleet import fleet
from nbzx.common.config import Config, parse_config
from nbzx.common.kafka import Producer, create_topics
from nbzx.engine.netbox import NetBox
from nbzx.engine.sync import SyncEngine
from nbzx.engine.zabbix import Zabbix
from nbzx.jobs.reconcile import Reconciler
from nbzx.schemas.messages import ReconcileRequest

ROOT = Path(__file__).resolve().parents[1]
ENV = {
    "NETBOX_TOKEN": "nbt_nbzxlocal001.NbzxLocalToken0123456789abcdefghijABCDEF",
    "ZABBIX_USER": "Admin",
    "ZABBIX_PASSWORD": "zabbix",
}
BATCH = 500  # a consumer's max_batch


def config(site_id: int, tag: str) -> Config:
    doc = {
        "kafka": {"topics": {k: f"bscale.{k}.{tag}" for k in ("events", "control", "jobs", "dlq", "host_status")}},
        "zabbix": {"url": "http://127.0.0.1:8081", "rate_per_s": 100000, "concurrency": 8},
        "netbox": {"threads": 6},
        "host": {"groups": ["NetBox/{site.name}"], "description": "{description}"},
        "scope": {"devices": {"filter": {"site_id": [site_id]}}, "virtual_machines": {"enabled": False}},
        "delete": {"mode": "hard"},
        "reconcile": {"max_delete": "10%"},
    }
    return parse_config(json.dumps(doc), ENV)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def child(mode: str, site_id: int, tag: str) -> dict[str, Any]:
    """One measurement in this (child) process: `bare` listings or a `reconcile`."""
    cfg = config(site_id, tag)
    zabbix, netbox = Zabbix(cfg), NetBox(cfg)
    await zabbix.start()
    out: dict[str, Any] = {}
    try:
        if mode == "bare":
            t0 = time.perf_counter()
            rows = await netbox.all_objects("dcim.device")
            out["netbox_s"], out["netbox_rows"] = time.perf_counter() - t0, len(rows)
            del rows
            t0 = time.perf_counter()
            hosts = await zabbix.all_owned_hosts()
            out["zabbix_s"], out["zabbix_rows"] = time.perf_counter() - t0, len(hosts)
        else:
            producer = Producer(cfg)
            await producer.start()
            try:
                t0 = time.perf_counter()
                job = await Reconciler(cfg, SyncEngine(cfg, netbox, zabbix), producer).run(
                    ReconcileRequest(trigger="cli")
                )
                out["seconds"] = time.perf_counter() - t0
                out["results"] = {k: v for k, v in job.results.items() if not isinstance(v, dict | list)}
                out["status"], out["error"] = job.status, job.error
            finally:
                await producer.stop()
    finally:
        await zabbix.close()
        netbox.close()
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def in_child(mode: str, site_id: int, tag: str) -> dict[str, Any]:
    run = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(site_id), tag], capture_output=True, text=True, cwd=ROOT
    )
    if run.returncode != 0:
        raise RuntimeError(run.stderr[-3000:])
    result: dict[str, Any] = json.loads(run.stdout.strip().splitlines()[-1])
    return result


async def load(cfg: Config, keys: list[str]) -> float:
    """Create `keys` in Zabbix through the sync engine, in consumer-sized batches; returns hosts/s."""
    zabbix, netbox = Zabbix(cfg), NetBox(cfg)
    await zabbix.start()
    engine = SyncEngine(cfg, netbox, zabbix)
    t0 = time.perf_counter()
    try:
        for i in range(0, len(keys), BATCH):
            results = await engine.sync(keys[i : i + BATCH])
            bad = [r for r in results if r.action != "create" or r.result != "ok"]
            assert not bad, bad[:3]
            print(f"\r  zabbix: {i + len(results):,}/{len(keys):,} created", end="", file=sys.stderr, flush=True)
    finally:
        await zabbix.close()
        netbox.close()
    print(file=sys.stderr)
    return len(keys) / (time.perf_counter() - t0)


async def drift(cfg: Config, keys: list[str]) -> None:
    """1 % of the hosts changed by hand in Zabbix (their description)."""
    zabbix = Zabbix(cfg)
    await zabbix.start()
    try:
        hosts = await zabbix.hosts_by_key(keys)
        ids = [{"hostid": h.hostid} for h in hosts.values()]
        await zabbix.call("host.massupdate", {"hosts": ids, "description": "drifted by hand"})
    finally:
        await zabbix.close()


async def main(sizes: list[int], keep: bool, reuse: str | None) -> None:
    loaded: list[str] = []
    if reuse:  # a fleet kept by an earlier --keep run: its hosts are in Zabbix already
        tag = reuse
        loaded = await owned_and_undrifted(tag)
    else:
        print("resetting Zabbix 6.0 to its pristine database (scripts/stack reset zabbix)", file=sys.stderr)
        subprocess.run([str(ROOT / "scripts" / "stack"), "reset", "zabbix"], check=True, capture_output=True)
        tag = f"bscale-{uuid.uuid4().hex[:6]}"
    print(f"bench/scale: reconcile of a growing fleet (site {tag}); each measurement in its own process")
    head = (
        f"{'N':>7} {'fleet s':>8} {'load h/s':>9} {'bare NB s':>9} {'bare ZBX s':>10} {'bare RSS':>9} "
        f"{'no-op s':>8} {'NB s':>6} {'ZBX s':>6} {'plan s':>7} {'RSS':>7} {'1% s':>6} {'found':>6}"
    )
    print(head)
    site_id = 0
    try:
        for n in sizes:
            t0 = time.perf_counter()
            made = await asyncio.to_thread(fleet, tag, "grow", n)
            fleet_s, site_id = time.perf_counter() - t0, made["site_id"]
            cfg = config(site_id, tag)
            await create_topics(cfg)
            netbox = NetBox(cfg)
            ids = sorted(int(r["id"]) for r in await netbox.all_objects("dcim.device"))
            netbox.close()
            have = set(loaded)
            new = [k for k in (f"dcim.device:{i}" for i in ids) if k not in have]
            rate = await load(cfg, new)
            loaded.extend(new)
            bare = await asyncio.to_thread(in_child, "bare", site_id, tag)
            noop = await asyncio.to_thread(in_child, "reconcile", site_id, tag)
            r = noop["results"]
            assert noop["status"] == "completed" and r["in_sync"] == n and r["emitted"] == 0, noop
            drifted = loaded[::100]
            await drift(cfg, drifted)
            fix = await asyncio.to_thread(in_child, "reconcile", site_id, tag)
            assert fix["results"]["update"] == len(drifted), fix
            # Put the drift back (the next size's no-op must find nothing to do).
            await load_fix(cfg, drifted)
            print(
                f"{n:>7} {fleet_s:8.0f} {rate:9.0f} {bare['netbox_s']:9.1f} {bare['zabbix_s']:10.1f} "
                f"{bare['peak_rss_mb']:8.0f}M {noop['seconds']:8.1f} {r['netbox_read_s']:6.1f} "
                f"{r['zabbix_host_get_s']:6.1f} {r['map_diff_s']:7.1f} {noop['peak_rss_mb']:6.0f}M "
                f"{fix['seconds']:6.1f} {fix['results']['update']:>6}",
                flush=True,
            )
    finally:
        if not keep:
            print("removing the fleet", file=sys.stderr)
            await asyncio.to_thread(fleet, tag, "delete")
            subprocess.run([str(ROOT / "scripts" / "stack"), "reset", "zabbix"], check=True, capture_output=True)


async def owned_and_undrifted(tag: str) -> list[str]:
    """The fleet's keys that have a host in Zabbix, after putting back any drift an interrupted run left."""
    zabbix = Zabbix(config(0, tag))
    await zabbix.start()
    try:
        owned = await zabbix.all_owned_hosts()
    finally:
        await zabbix.close()
    netbox = NetBox(config(0, tag))
    site_id = int(netbox.api.dcim.sites.get(slug=tag).id)
    netbox.close()
    cfg = config(site_id, tag)
    drifted = [k for k, h in owned.items() if h.description == "drifted by hand"]
    await load_fix(cfg, drifted)
    return sorted(owned)


async def load_fix(cfg: Config, keys: list[str]) -> None:
    zabbix, netbox = Zabbix(cfg), NetBox(cfg)
    await zabbix.start()
    try:
        engine = SyncEngine(cfg, netbox, zabbix)
        for i in range(0, len(keys), BATCH):
            await engine.sync(keys[i : i + BATCH])
    finally:
        await zabbix.close()
        netbox.close()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        print(json.dumps(asyncio.run(child(sys.argv[2], int(sys.argv[3]), sys.argv[4]))))
    else:
        reuse = sys.argv[sys.argv.index("--reuse") + 1] if "--reuse" in sys.argv else None
        args = [a for a in sys.argv[1:] if a not in ("--keep", "--reuse", reuse)]
        asyncio.run(main([int(a) for a in args] or [20000, 50000, 100000], "--keep" in sys.argv, reuse))
