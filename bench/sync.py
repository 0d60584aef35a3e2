"""bench/sync: the sync engine against a raw zabbix-utils loop making the same Zabbix calls, same run.

For N hosts: time to create them, to no-op them (a second sync of unchanged hosts), and to update one
field (description) on each. The raw side makes exactly the Zabbix calls our plans make, with the
same concurrency, and none of our logic (no NetBox read, no mapping, no diff).

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
from consumer.netbox import NetBox
from consumer.sync import SyncEngine
from consumer.zabbix import Zabbix
from nbzx.config import parse_config

CONCURRENCY = 8
BATCH = 500  # host keys per sync() call, as the consumer's max_batch
ZABBIX_URL = "http://127.0.0.1:8081/api_jsonrpc.php"
ENV = {
    "NETBOX_TOKEN": "nbt_nbzxlocal001.NbzxLocalToken0123456789abcdefghijABCDEF",
    "ZABBIX_USER": "Admin",
    "ZABBIX_PASSWORD": "zabbix",
}


def config() -> Any:
    """Our engine's config: no rate limit in the way, the host description from NetBox."""
    doc = {
        "zabbix": {"rate_per_s": 100000, "concurrency": CONCURRENCY},
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


async def raw_calls(api: Any, method: str, params: list[dict[str, Any]]) -> float:
    sem = asyncio.Semaphore(CONCURRENCY)

    async def one(p: dict[str, Any]) -> None:
        async with sem:
            await api.send_async_request(method, p)

    t0 = time.perf_counter()
    await asyncio.gather(*(one(p) for p in params))
    return time.perf_counter() - t0


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
        raw_ids = [
            h["hostid"]
            for h in (
                await api.send_async_request(
                    "host.get", {"output": ["hostid"], "groupids": [gid], "search": {"host": f"raw-{tag}-"}}
                )
            )["result"]
        ]
        out["raw_update"] = await raw_calls(api, "host.update", [{"hostid": h, "description": "v2"} for h in raw_ids])
        await api.send_async_request("host.delete", raw_ids)
    finally:
        await asyncio.to_thread(netbox_orm, tag, "delete")
        await engine.sync(keys)  # NetBox objects gone: hard delete
    return out


async def main(sizes: list[int]) -> None:
    cfg = config()
    zabbix, netbox = Zabbix(cfg), NetBox(cfg)
    await zabbix.start()
    engine = SyncEngine(cfg, netbox, zabbix)
    session = aiohttp.ClientSession()
    api = await asyncio.to_thread(AsyncZabbixAPI, url=ZABBIX_URL, client_session=session)
    await api.login(user="Admin", password="zabbix")
    print(f"bench/sync: Zabbix {zabbix.version.text}, concurrency {CONCURRENCY}, batches of {BATCH} host keys")
    print(f"{'N':>6} {'pass':8} {'ours s':>8} {'raw s':>8} {'ours/s':>8} {'raw/s':>8} {'ours/raw rate':>14}")
    try:
        for n in sizes:
            r = await run_size(n, engine, api)
            for kind in ("create", "update"):
                o, w = r[f"ours_{kind}"], r[f"raw_{kind}"]
                print(f"{n:>6} {kind:8} {o:8.2f} {w:8.2f} {n / o:8.1f} {n / w:8.1f} {w / o:14.2f}")
            print(
                f"{n:>6} {'no-op':8} {r['ours_noop']:8.2f} {'-':>8} {n / r['ours_noop']:8.1f} {'-':>8} "
                f"{'create/no-op time ' + format(r['ours_create'] / r['ours_noop'], '.0f') + 'x':>14}"
            )
    finally:
        await zabbix.close()
        netbox.close()
        await session.close()
    print(f"peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    asyncio.run(main([int(a) for a in sys.argv[1:]] or [100, 1000]))
