"""Dead letters as operators handle them: list them, and re-queue them as one `dlq_retry` job.

`nbzx dlq retry` and the console's Retry use the same two steps: `retry_keys` picks the host keys,
`requeue` sends one SyncRequest per key and records the job. The state is re-read on every sync, so a
retry after the cause is fixed simply converges, and re-queuing a key twice costs one no-op sync.
"""

from __future__ import annotations

from collections.abc import Iterable

from nbzx.common.config import Config
from nbzx.common.kafka import Producer, new_consumer, read_to_end
from nbzx.jobs.records import publish_record, record
from nbzx.schemas.messages import DeadLetter, JobRecord, SyncRequest, Trigger, decode, encode, new_id, utc_now
from nbzx.schemas.objects import is_host_key


def retry_keys(lettered: Iterable[str], wanted: Iterable[str] = ()) -> tuple[list[str], list[str]]:
    """(host keys to re-queue, wanted keys without a dead letter): the wanted ones, or every key that
    has a letter when none is named; a letter whose key is not a host key has nothing to sync. Pure."""
    known = set(lettered)
    keys = sorted(set(wanted)) or sorted(known)
    return [k for k in keys if k in known and is_host_key(k)], sorted(set(keys) - known)


async def list_dead_letters(cfg: Config, timeout_s: float = 10.0) -> list[DeadLetter]:
    """Every dead letter still on the dead-letter topic, oldest first."""
    consumer = new_consumer(cfg)
    await consumer.start()
    try:
        records = await read_to_end(consumer, cfg.kafka.topics.dlq, timeout_s)
    finally:
        await consumer.stop()
    return [m for m in (decode(r.value) for r in records) if isinstance(m, DeadLetter)]


async def requeue(
    cfg: Config, producer: Producer, host_keys: list[str], *, trigger: Trigger, user: str | None = None
) -> JobRecord:
    """Send one SyncRequest per host key (reason "retry", carrying the job id) to the events topic, then
    publish and return the completed `dlq_retry` job that lists them."""
    job_id = new_id()
    keys = sorted(set(host_keys))
    for key in keys:
        req = SyncRequest(host_key=key, reason="retry", job_id=job_id, user=user)
        await producer.send(cfg.kafka.topics.events, key, encode(req))
    params = {"host_keys": keys}
    now = utc_now()
    job = record(
        "dlq_retry", "completed", trigger, job_id=job_id, user=user, started=now, completed=now, duration_s=0.0,
        params=params, results=params,
    )  # fmt: skip
    await publish_record(producer, cfg, job)
    return job
