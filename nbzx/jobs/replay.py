"""Replay / backfill: re-consume the events topic from a timestamp through the same sync path.

A separate consumer group starts at `offsets_for_times(since)` and stops at the end offsets taken
at start (or at `until`). Because sync re-reads NetBox, a replay converges to the present.
"""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import datetime
from typing import Any, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)

from nbzx.common.config import Config
from nbzx.common.kafka import Producer, topic_partitions
from nbzx.common.logging import get_logger
from nbzx.core.policy import due, next_due_in
from nbzx.delivery.consumer import EventConsumer
from nbzx.engine.sync import SyncEngine
from nbzx.jobs.records import Job
from nbzx.schemas.messages import JobRecord

log = get_logger(component="replay")


def progress_bar(out: TextIO) -> Progress:
    """rich's progress bar on `out`: live on a terminal; elsewhere (a pod's log) its last state once."""
    return Progress(
        TextColumn("replay"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("messages"),
        TaskProgressColumn(),
        TimeRemainingColumn(),
        console=Console(file=out),
    )


async def replay(
    cfg: Config,
    engine: SyncEngine,
    producer: Producer,
    since: datetime,
    until: datetime | None,
    group: str,
    out: TextIO = sys.stderr,
    **consumer_overrides: Any,
) -> JobRecord:
    """Re-apply every message of the events topic between `since` and `until` (default: now)."""
    params = {"since": since.isoformat(), "until": until.isoformat() if until else None, "group": group}
    job = Job(producer, cfg, "backfill", trigger="cli", params=params)
    await job.publish("running")
    worker = EventConsumer(cfg, engine, producer, group=group, **consumer_overrides)
    consumer = worker.new_kafka_consumer()
    worker.consumer = consumer
    await consumer.start()
    try:
        topic = cfg.kafka.topics.events
        tps = await topic_partitions(consumer, topic)
        consumer.assign(tps)
        starts = await consumer.offsets_for_times({tp: int(since.timestamp() * 1000) for tp in tps})
        ends = await consumer.end_offsets(tps)
        if until is not None:
            stops = await consumer.offsets_for_times({tp: int(until.timestamp() * 1000) for tp in tps})
            ends = {tp: (stops[tp].offset if stops[tp] is not None else ends[tp]) for tp in tps}
        begin = {tp: (starts[tp].offset if starts[tp] is not None else ends[tp]) for tp in tps}
        todo = {tp for tp in tps if begin[tp] < ends[tp]}
        total = sum(ends[tp] - begin[tp] for tp in todo)
        job.note(
            "replay_started",
            since=since.isoformat(),
            until=until.isoformat() if until else "start",
            messages=total,
            group=group,
        )
        for tp in tps:
            consumer.seek(tp, begin[tp])
        done = dead = read = 0
        last_published = last_logged = time.monotonic()
        with progress_bar(out) as bar:
            task = bar.add_task("replay", total=total)
            while todo or worker.parked:
                if todo:
                    batch = await consumer.getmany(*todo, timeout_ms=1000, max_records=cfg.consumer.max_batch)
                else:  # everything read; keys that failed transiently are still waiting for their retry
                    await asyncio.sleep(min(1.0, next_due_in(worker.parked, time.time()) or 0.0))
                    batch = {}
                batch = {tp: [r for r in recs if r.offset < ends[tp]] for tp, recs in batch.items()}
                batch = {tp: recs for tp, recs in batch.items() if recs}
                if batch or due(worker.parked, time.time()):
                    stats = await worker.handle(batch)
                    await worker.commit()
                    done, dead = done + stats.done, dead + stats.dead
                    read += sum(len(r) for r in batch.values())
                    bar.update(task, completed=read)
                    if time.monotonic() - last_published > 1.0:  # live progress for the console
                        last_published = time.monotonic()
                        live = {"messages": total, "read": read, "applied": done, "dead_lettered": dead}
                        await job.publish("running", results={"progress": live})
                        if time.monotonic() - last_logged > 10.0:  # and for a log that is not a terminal
                            last_logged = time.monotonic()
                            log.info("replay_progress", job_id=job.id, **live)
                todo = {tp for tp in todo if await consumer.position(tp) < ends[tp]}
        results = {"messages": total, "applied": done, "dead_lettered": dead, "rounds": worker.rounds}
        job.note("replay_done", **results)
        return await job.publish("completed", results=results)
    except Exception as exc:
        job.note("replay_errored", error=str(exc))
        return await job.publish("errored", error=f"{type(exc).__name__}: {exc}")
    finally:
        await consumer.stop()
