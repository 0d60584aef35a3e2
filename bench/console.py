"""bench/console: how fast the console serves its pages from a status topic of 20,000 hosts and a jobs
topic of 5,000 jobs, against a bare aiohttp handler (same page size, no state) in the same run, and
how much memory the console process holds for that state.

Both servers are real processes (`nbzx console` and bench/console_bare.py); each URL is fetched
sequentially over loopback, and "over bare" is the console's median minus the bare handler's.

    .venv/bin/python bench/console.py [--hosts 20000] [--jobs 5000] [--requests 60]   (needs Kafka up)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
from aiokafka import AIOKafkaProducer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nbzx.common.config import parse_config  # noqa: E402
from nbzx.common.kafka import create_topics  # noqa: E402
from nbzx.schemas.messages import HostStatus, JobRecord, encode  # noqa: E402

RESULTS = ["in_sync"] * 90 + ["changed"] * 6 + ["failed"] * 2 + ["conflict", "skipped"]
KINDS = ["reconcile", "dry_run", "host_sync", "maintenance_cleanup", "settings_import", "dlq_retry"]
STATUSES = ["completed"] * 8 + ["failed", "errored"]
TOKEN = "bench-operator-token"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def fill(cfg: object, hosts: int, jobs: int) -> None:
    from nbzx.common.config import Config

    assert isinstance(cfg, Config)
    await create_topics(cfg)
    producer = AIOKafkaProducer(bootstrap_servers=cfg.kafka.bootstrap, linger_ms=20, max_batch_size=512 * 1024)
    await producer.start()
    rnd = random.Random(7)
    t0 = datetime.now(UTC)
    try:
        futures = []
        for i in range(hosts):
            result = rnd.choice(RESULTS)
            st = HostStatus(
                host_key=f"dcim.device:{i + 1}",
                host=f"sw-{i + 1:05d}",
                hostid=str(10000 + i),
                action="noop" if result == "in_sync" else "update",
                result=result,  # type: ignore[arg-type]
                changed=["name", "tags"] if result == "changed" else [],
                error="unknown templates in Zabbix: Template X" if result == "failed" else None,
                synced_at=(t0 - timedelta(seconds=rnd.randrange(86400))).isoformat(),
            )
            futures.append(await producer.send(cfg.kafka.topics.host_status, encode(st), key=st.host_key.encode()))
        for i in range(jobs):
            created = t0 - timedelta(minutes=i)
            rec = JobRecord(
                job_id=str(uuid.UUID(int=i + 1)),
                job_kind=rnd.choice(KINDS),  # type: ignore[arg-type]
                status=rnd.choice(STATUSES),  # type: ignore[arg-type]
                trigger="schedule",
                created=created.isoformat(),
                started=created.isoformat(),
                completed=(created + timedelta(seconds=2)).isoformat(),
                duration_s=2.0,
                results={"in_sync": 990, "create": 3, "update": 7, "delete": 0, "conflicts": 0, "errors": 0},
                log=[f"12:00:0{n} reconcile_step n={n}" for n in range(5)],
            )
            futures.append(await producer.send(cfg.kafka.topics.jobs, encode(rec), key=rec.job_id.encode()))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def timed(session: aiohttp.ClientSession, url: str, n: int, headers: dict[str, str]) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        async with session.get(url, headers=headers) as r:
            await r.read()
            assert r.status == 200, (url, r.status)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def wait_ready(url: str, timeout_s: float) -> float:
    import urllib.request

    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return time.monotonic() - t0
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} not ready after {timeout_s}s")


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", type=int, default=20_000)
    ap.add_argument("--jobs", type=int, default=5_000)
    ap.add_argument("--requests", type=int, default=60)
    args = ap.parse_args()
    suffix = uuid.uuid4().hex[:8]
    doc = {
        "kafka": {
            "bootstrap": os.environ.get("NBZX_KAFKA", "127.0.0.1:9092"),
            "partitions": 6,
            "topics": {
                "events": f"bench.events.{suffix}",
                "control": f"bench.control.{suffix}",
                "jobs": f"bench.jobs.{suffix}",
                "dlq": f"bench.dlq.{suffix}",
                "host_status": f"bench.host-status.{suffix}",
            },
        },
        "console": {"max_jobs": args.jobs, "page_size": 50},
        "logging": {"level": "warning"},
    }
    cfg = parse_config(json.dumps(doc), {})
    t0 = time.monotonic()
    await fill(cfg, args.hosts, args.jobs)
    print(f"filled {args.hosts} host statuses and {args.jobs} jobs in {time.monotonic() - t0:.1f}s", file=sys.stderr)

    tmp = Path(tempfile.mkdtemp())
    (tmp / "console.yaml").write_text(json.dumps(doc))
    env = {**os.environ, "NBZX_CONSOLE_OPERATOR_TOKENS": f"bench:{TOKEN}"}
    port, bare_port = 18092, 18093
    console = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "nbzx.cli",
            "--config",
            str(tmp / "console.yaml"),
            "console",
            "--port",
            str(port),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,  # it has no Zabbix credentials here: its login retries are noise
    )
    bare = subprocess.Popen([sys.executable, str(ROOT / "bench" / "console_bare.py"), str(bare_port), "50"])
    try:
        wait_ready(f"http://127.0.0.1:{bare_port}/", 30)
        loaded_s = wait_ready(f"http://127.0.0.1:{port}/readyz", 300)
        rss_console, rss_bare = rss_mb(console.pid), rss_mb(bare.pid)
        auth = {"Authorization": f"Bearer {TOKEN}"}
        async with aiohttp.ClientSession() as s:
            async with s.post(f"http://127.0.0.1:{port}/login", data={"token": TOKEN}, allow_redirects=False) as r:
                cookie = r.cookies["nbzx_session"].value
            page = {"Cookie": f"nbzx_session={cookie}"}
            await timed(s, f"http://127.0.0.1:{bare_port}/", 20, {})  # warm-up
            base = statistics.median(await timed(s, f"http://127.0.0.1:{bare_port}/", args.requests, {}))
            urls = [
                ("Hosts page, first page", "/hosts", page),
                ("Hosts page, filter result=failed", "/hosts?result=failed", page),
                ("Hosts page, search 'sw-1234'", "/hosts?q=sw-1234", page),
                ("Jobs page, first page", "/jobs", page),
                ("Jobs page, filter status=failed", "/jobs?status=failed", page),
                ("API /api/v1/hosts?result=failed", "/api/v1/hosts?result=failed", auth),
                ("API /api/v1/jobs", "/api/v1/jobs", auth),
            ]
            print(f"\nconsole: {args.hosts} hosts, {args.jobs} jobs; {args.requests} sequential requests per URL")
            print(f"state loaded from Kafka in {loaded_s:.1f}s")
            print(f"bare aiohttp handler (same page size): median {base:.2f} ms\n")
            print(f"| {'page':<36} | median ms | p95 ms | over bare ms | goal |")
            print(f"|{'-' * 38}|-----------|--------|--------------|------|")
            for name, path, headers in urls:
                await timed(s, f"http://127.0.0.1:{port}{path}", 5, headers)  # warm-up
                ms = sorted(await timed(s, f"http://127.0.0.1:{port}{path}", args.requests, headers))
                med, p95 = statistics.median(ms), ms[int(len(ms) * 0.95) - 1]
                ok = "ok" if med - base < 100 else "OVER"
                print(f"| {name:<36} | {med:9.2f} | {p95:6.2f} | {med - base:12.2f} | {ok:>4} |")
        print(
            f"\nmemory (RSS): console {rss_console:.0f} MB, bare handler {rss_bare:.0f} MB, "
            f"state ~{rss_console - rss_bare:.0f} MB for {args.hosts} hosts + {args.jobs} jobs"
        )
    finally:
        console.terminate()
        bare.terminate()
        console.wait(20)
        bare.wait(20)


if __name__ == "__main__":
    asyncio.run(main())
