"""bench/servers: several Zabbix servers against one, same run, on the stack's 6.0 ("old") and 7.0 ("new").

Create and no-op passes of N hosts on each server alone (the one-server config: the baseline), then of
2 x N split over both by site (the two-server config, one sync path for all 2N keys), then the move of
M hosts from old to new (their site changed in NetBox: created on new, deleted from old).

    .venv/bin/python bench/servers.py [N [M]]        (default: 1000 100; needs scripts/stack up)
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.netbox_fixtures import netbox_orm
from bench.sync import BATCH, CONCURRENCY, ENV, ZABBIX_SERVERS
from nbzx.common.config import parse_config
from nbzx.engine.netbox import NetBox
from nbzx.engine.sync import SyncEngine
from nbzx.engine.zabbix import Zabbix

HOST = {"groups": ["NetBox/{site.name}"], "description": "{description}"}
BUDGET = {"rate_per_s": 100000, "concurrency": CONCURRENCY}


def one_server(url: str) -> Any:
    doc = {"zabbix": {"url": url, **BUDGET}, "host": HOST, "delete": {"mode": "hard"}}
    return parse_config(json.dumps(doc), ENV)


def two_servers(site_old: str, site_new: str) -> Any:
    creds = {"user_env": "ZABBIX_USER", "password_env": "ZABBIX_PASSWORD", **BUDGET}
    servers = {"old": {"url": ZABBIX_SERVERS["6.0"], **creds}, "new": {"url": ZABBIX_SERVERS["7.0"], **creds}}
    routes = [
        {"match": {"site": site_old}, "servers": ["old"]},
        {"match": {"site": site_new}, "servers": ["new"]},
        {"servers": []},
    ]
    doc = {"zabbix": {"servers": servers}, "routes": routes, "host": HOST, "delete": {"mode": "hard"}}
    return parse_config(json.dumps(doc), ENV)


async def engine_for(cfg: Any) -> SyncEngine:
    from nbzx.common.config import zabbix_servers

    engine = SyncEngine(cfg, NetBox(cfg), {n: Zabbix(cfg, server=n) for n in zabbix_servers(cfg)})
    await asyncio.gather(*(z.start() for z in engine.servers.values()))
    return engine


async def close(engine: SyncEngine) -> None:
    await asyncio.gather(*(z.close() for z in engine.servers.values()))
    engine.netbox.close()


async def timed(engine: SyncEngine, keys: list[str], expect: str) -> float:
    """One pass over `keys` in consumer-sized batches; every key must end with `expect`."""
    t0 = time.perf_counter()
    for i in range(0, len(keys), BATCH):
        for r in await engine.sync(keys[i : i + BATCH]):
            assert r.result in ("ok", "skipped") and r.action == expect, r
    return time.perf_counter() - t0


def writes(engine: SyncEngine) -> int:
    return sum(z.write_calls for z in engine.servers.values())


async def main(n: int, m: int) -> None:
    print(f"bench/servers: {n} hosts a server, a move of {m}; concurrency {CONCURRENCY} a server, batches of {BATCH}")
    fig: dict[str, float] = {}
    tags = {name: f"bsrv-{name}-{uuid.uuid4().hex[:6]}" for name in ("solo6", "solo7", "old", "new")}
    try:
        for name, row in (("solo6", "6.0"), ("solo7", "7.0")):  # the baseline: each server alone
            keys = [f"dcim.device:{i}" for i in await asyncio.to_thread(netbox_orm, tags[name], "create", n)]
            engine = await engine_for(one_server(ZABBIX_SERVERS[row]))
            try:
                print(f"  one server, Zabbix {row}: {n} hosts ...", flush=True)
                fig[f"{name}_create"] = await timed(engine, keys, "create")
                w0 = writes(engine)
                fig[f"{name}_noop"] = await timed(engine, keys, "noop")
                assert writes(engine) == w0
                await asyncio.to_thread(netbox_orm, tags[name], "delete")
                await engine.sync(keys)
            finally:
                await close(engine)

        old_ids = await asyncio.to_thread(netbox_orm, tags["old"], "create", n)
        new_ids = await asyncio.to_thread(netbox_orm, tags["new"], "create", n)
        keys = [f"dcim.device:{i}" for i in sorted(old_ids + new_ids)]  # mixed: each batch spans both servers
        engine = await engine_for(two_servers(tags["old"], tags["new"]))
        try:
            print(f"  two servers: 2 x {n} hosts ...", flush=True)
            fig["two_create"] = await timed(engine, keys, "create")
            w0 = writes(engine)
            fig["two_noop"] = await timed(engine, keys, "noop")
            assert writes(engine) == w0
            print(f"  move of {m} hosts from old to new ...", flush=True)
            await asyncio.to_thread(netbox_orm, tags["old"], "move", m, tags["new"])
            moved = [f"dcim.device:{i}" for i in sorted(old_ids)[:m]]
            fig["move"] = await timed(engine, moved, "create")
            assert len(await engine.servers["old"].hosts_by_key(moved)) == 0
            assert len(await engine.servers["new"].hosts_by_key(moved)) == m
            fig["move_again"] = await timed(engine, moved, "noop")
        finally:
            for name in ("old", "new"):
                await asyncio.to_thread(netbox_orm, tags[name], "delete")
            for i in range(0, len(keys), BATCH):
                await engine.sync(keys[i : i + BATCH])
            await close(engine)
    finally:
        for name in tags:
            await asyncio.to_thread(netbox_orm, tags[name], "delete")

    def rate(count: int, s: float) -> str:
        return f"{s:7.2f} s {count / s:8.1f} hosts/s"

    print(f"{'pass':34} {'time':>9} {'rate':>15}")
    for label, key, count in (
        (f"create {n} on 6.0 alone", "solo6_create", n),
        (f"create {n} on 7.0 alone", "solo7_create", n),
        (f"create 2 x {n} on both", "two_create", 2 * n),
        (f"no-op {n} on 6.0 alone", "solo6_noop", n),
        (f"no-op {n} on 7.0 alone", "solo7_noop", n),
        (f"no-op 2 x {n} on both", "two_noop", 2 * n),
        (f"move {m} from 6.0 to 7.0", "move", m),
        (f"no-op of the {m} moved", "move_again", m),
    ):
        print(f"{label:34} {rate(count, fig[key])}")
    for kind in ("create", "noop"):
        alone = fig[f"solo6_{kind}"] + fig[f"solo7_{kind}"]
        print(
            f"{kind:6}: both servers in one pass {fig[f'two_{kind}']:.2f} s vs {alone:.2f} s for the two alone one"
            f" after the other ({alone / fig[f'two_{kind}']:.2f}x), slower one alone"
            f" {max(fig[f'solo6_{kind}'], fig[f'solo7_{kind}']):.2f} s"
        )
    print(f"peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    asyncio.run(main(args[0] if args else 1000, args[1] if len(args) > 1 else 100))
