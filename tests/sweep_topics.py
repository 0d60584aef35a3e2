"""Delete the throwaway topics earlier test and benchmark runs left on the local broker.

Every test makes its own topics (`test.<kind>.<suffix>`) and benchmarks theirs (`bench.*`,
`rbench.*`), so nothing is shared between runs; but thousands of partitions pile up over time and
make the single local broker slow to restart and slow to serve. `scripts/test` runs this before
pytest, while no test is running. The project's own topics (`netbox.*`, `nbzx.*`) are never touched.

    .venv/bin/python -m tests.sweep_topics [BOOTSTRAP]
"""

from __future__ import annotations

import asyncio
import sys
import time

from aiokafka.admin import AIOKafkaAdminClient

PREFIXES = ("test.", "bench.", "rbench.")
CHUNK = 200  # topics per DeleteTopics request


async def sweep(bootstrap: str) -> int:
    """Delete every topic with a throwaway prefix; returns how many."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="nbzx-sweep")
    await admin.start()
    try:
        doomed = sorted(t for t in await admin.list_topics() if t.startswith(PREFIXES))
        for i in range(0, len(doomed), CHUNK):
            await admin.delete_topics(doomed[i : i + CHUNK], timeout_ms=60_000)
        return len(doomed)
    finally:
        await admin.close()


def main() -> int:
    t0 = time.monotonic()
    n = asyncio.run(sweep(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:9092"))
    print(f"[tests] deleted {n} throwaway topics of earlier runs in {time.monotonic() - t0:.1f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
