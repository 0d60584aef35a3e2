"""bench/sync: the sync engine against raw zabbix-utils calls, same run, on each Zabbix of the stack
(6.0 LTS and 7.0 LTS) side by side.

For N hosts: time to create them, to no-op them (a second sync of unchanged hosts), and to update one
field (description) on each. Two raw baselines, both with the same concurrency and none of our logic
(no NetBox read, no mapping, no diff): the naive one call per host (host.create / host.update), and
the same batched calls our engine makes (array host.create of 100, host.massupdate of 500). The
batched update is also timed as array host.update calls of 100 (what 8.0, without host.massupdate,
gets), so the cost of keeping host.massupdate where it exists is printed, not assumed.

    .venv/bin/python bench/sync.py [N ...]        (default: 100 1000; needs scripts/stack up)
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
from zabbix_utils import AsyncZabbixAPI

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.netbox_fixtures import netbox_orm
from nbzx.common.config import parse_config
from nbzx.core.batch import BATCH_SIZE, MASS_SIZE
from nbzx.engine.netbox import NetBox
from nbzx.engine.sync import SyncEngine
from nbzx.engine.zabbix import Zabbix

CONCURRENCY = 8
BATCH = 500  # host keys per sync() call, as the consumer's max_batch
ZABBIX_SERVERS = {"6.0": "http://127.0.0.1:8081", "7.0": "http://127.0.0.1:8082"}
ENV = {
    "NETBOX_TOKEN": "nbt_nbzxlocal001.NbzxLocalToken0123456789abcdefghijABCDEF",
    "ZABBIX_USER": "Admin",
    "ZABBIX_PASSWORD": "zabbix",
}


def config(url: str) -> Any:
    """Our engine's config: no rate limit in the way, the host description from NetBox."""
    doc = {
        "zabbix": {"url": url, "rate_per_s": 100000, "concurrency": CONCURRENCY},
        "host": {"groups": ["NetBox/{site.name}"], "description": "{description}"},
        "delete": {"mode": "hard"},
    }
    return parse_config(json.dumps(doc), ENV)


async def ours(engine: SyncEngine, keys: list[str]) -> tuple[float, dict[str, int]]:
    t0 = time.perf_counter()
    actions: dict[str, int] = {}
    for i in range(0, len(keys), BATCH):
        for r in await engine.sync(keys[i : i + BATCH]):
            assert r.result in ("ok", "skipped"), r
            actions[r.action] = actions.get(r.action, 0) + 1
    return time.perf_counter() - t0, actions


async def raw_calls(api: Any, method: str, params: list[Any]) -> float:
    sem = asyncio.Semaphore(CONCURRENCY)

    async def one(p: Any) -> None:
        async with sem:
            await api.send_async_request(method, p)

    t0 = time.perf_counter()
    await asyncio.gather(*(one(p) for p in params))
    return time.perf_counter() - t0


async def raw_hostids(api: Any, groupid: str, prefix: str) -> list[str]:
    params = {"output": ["hostid"], "groupids": [groupid], "search": {"host": prefix}, "startSearch": True}
    return [h["hostid"] for h in (await api.send_async_request("host.get", params))["result"]]


async def run_size(n: int, engine: SyncEngine, api: Any) -> dict[str, float]:
    tag = f"bench-{uuid.uuid4().hex[:6]}"
    ids = await asyncio.to_thread(netbox_orm, tag, "create", n)
    keys = [f"dcim.device:{i}" for i in ids]
    out: dict[str, float] = {}
    try:
        out["ours_create"], acts = await ours(engine, keys)
        assert acts.get("create") == n, acts
        w0 = engine.zabbix.write_calls
        out["ours_noop"], acts = await ours(engine, keys)
        assert acts.get("noop") == n and engine.zabbix.write_calls == w0, acts
        await asyncio.to_thread(netbox_orm, tag, "describe", 0, "v2")
        out["ours_update"], acts = await ours(engine, keys)
        assert acts.get("update") == n, acts

        # The raw loop: the same host.create / host.update calls, built once up front.
        gid = engine.zabbix.groups[f"NetBox/{tag}"]
        creates = [
            {
                "host": f"raw-{tag}-{i}",
                "name": f"raw-{tag}-{i}",
                "status": 0,
                "groups": [{"groupid": gid}],
                "tags": [{"tag": "netbox:key", "value": f"raw:{tag}:{i}"}],
                "description": "v1",
                "inventory_mode": -1,
            }
            for i in range(n)
        ]
        out["raw_create"] = await raw_calls(api, "host.create", creates)
        raw_ids = await raw_hostids(api, gid, f"raw-{tag}-")
        out["raw_update"] = await raw_calls(api, "host.update", [{"hostid": h, "description": "v2"} for h in raw_ids])
        await api.send_async_request("host.delete", raw_ids)

        batched = [{**c, "host": f"rawb-{c['host']}", "name": f"rawb-{c['name']}"} for c in creates]
        out["rawb_create"] = await raw_calls(
            api, "host.create", [batched[i : i + BATCH_SIZE] for i in range(0, n, BATCH_SIZE)]
        )
        raw_ids = await raw_hostids(api, gid, f"rawb-raw-{tag}-")
        mass = [
            {"hosts": [{"hostid": h} for h in raw_ids[i : i + MASS_SIZE]], "description": "v2"}
            for i in range(0, n, MASS_SIZE)
        ]
        out["rawb_update"] = await raw_calls(api, "host.massupdate", mass)
        arrays = [
            [{"hostid": h, "description": "v3"} for h in raw_ids[i : i + BATCH_SIZE]] for i in range(0, n, BATCH_SIZE)
        ]
        out["rawb_update_array"] = await raw_calls(api, "host.update", arrays)
        await api.send_async_request("host.delete", raw_ids)
    finally:
        await asyncio.to_thread(netbox_orm, tag, "delete")
        await engine.sync(keys)  # NetBox objects gone: hard delete
    return out


async def run_server(url: str, sizes: list[int]) -> tuple[str, dict[int, dict[str, float]]]:
    """Every size against one Zabbix; returns its version and the figures per size."""
    cfg = config(url)
    zabbix, netbox = Zabbix(cfg), NetBox(cfg)
    await zabbix.start()
    engine = SyncEngine(cfg, netbox, zabbix)
    session = aiohttp.ClientSession()
    api = await asyncio.to_thread(AsyncZabbixAPI, url=f"{url}/api_jsonrpc.php", client_session=session)
    await api.login(user="Admin", password="zabbix")
    try:
        figures = {}
        for n in sizes:
            print(f"  Zabbix {zabbix.caps.version}: {n} hosts ...", flush=True)
            figures[n] = await run_size(n, engine, api)
        return zabbix.caps.version, figures
    finally:
        await zabbix.close()
        netbox.close()
        await api.logout()
        await session.close()


async def main(sizes: list[int]) -> None:
    print(f"bench/sync: concurrency {CONCURRENCY}, batches of {BATCH} host keys, Zabbix {', '.join(ZABBIX_SERVERS)}")
    results = [await run_server(url, sizes) for url in ZABBIX_SERVERS.values()]
    print(
        f"{'zabbix':>7} {'N':>6} {'pass':8} {'ours s':>8} {'raw s':>8} {'rawb s':>8} {'ours/s':>8} {'raw/s':>8} "
        f"{'rawb/s':>8} {'ours/raw':>9} {'ours/rawb':>9}"
    )
    print("  (raw: one call per host; rawb: the same batched calls as ours)")
    for version, figures in results:
        for n, r in figures.items():
            for kind in ("create", "update"):
                o, w, b = r[f"ours_{kind}"], r[f"raw_{kind}"], r[f"rawb_{kind}"]
                print(
                    f"{version:>7} {n:>6} {kind:8} {o:8.2f} {w:8.2f} {b:8.2f} {n / o:8.1f} {n / w:8.1f} {n / b:8.1f} "
                    f"{w / o:9.2f} {b / o:9.2f}"
                )
            print(
                f"{version:>7} {n:>6} {'no-op':8} {r['ours_noop']:8.2f}   no-op pass "
                f"{r['ours_create'] / r['ours_noop']:.0f}x faster than the create pass"
            )
    print("batched update of one shared field: host.massupdate (500 a call) vs array host.update (100 a call)")
    for version, figures in results:
        for n, r in figures.items():
            m, a = r["rawb_update"], r["rawb_update_array"]
            print(
                f"{version:>7} {n:>6} massupdate {m:6.2f} s   array update {a:6.2f} s   massupdate {a / m:5.1f}x faster"
            )
    print(f"peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    asyncio.run(main([int(a) for a in sys.argv[1:]] or [100, 1000]))
