"""Dead letters: list them, and re-queue them as SyncRequests (the state is re-read, so a retry
after the cause is fixed simply converges)."""

from __future__ import annotations

import re

from aiokafka import AIOKafkaConsumer

from nbzx.common.config import Config
from nbzx.common.kafka import Producer, client_kwargs, read_to_end
from nbzx.schemas.messages import HOST_KEY_PATTERN, DeadLetter, SyncRequest, decode, encode


async def _read(cfg: Config, group: str | None, timeout_s: float = 10.0) -> tuple[list[DeadLetter], AIOKafkaConsumer]:
    consumer = AIOKafkaConsumer(
        **client_kwargs(cfg), group_id=group, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    records = await read_to_end(consumer, cfg.kafka.topics.dlq, timeout_s)
    letters = [m for m in (decode(r.value) for r in records) if isinstance(m, DeadLetter)]
    return letters, consumer


async def list_dead_letters(cfg: Config) -> list[DeadLetter]:
    """Every dead letter still on the DLQ topic."""
    letters, consumer = await _read(cfg, None)
    await consumer.stop()
    return letters


async def retry_dead_letters(cfg: Config, host_keys: set[str] | None = None) -> list[str]:
    """Re-queue the dead letters not retried before (one SyncRequest per host key); returns the keys.

    A consumer group remembers how far retries went, so a second call re-queues only newer letters.
    """
    letters, consumer = await _read(cfg, f"{cfg.kafka.group}-dlq-retry")
    producer = Producer(cfg, client_id=f"{cfg.kafka.client_id}-dlq")
    # A letter whose key is not a host key (a tombstone's, a malformed one) has nothing to sync.
    wanted = {d.host_key for d in letters if re.match(HOST_KEY_PATTERN, d.host_key)}
    keys = sorted(k for k in wanted if host_keys is None or k in host_keys)
    try:
        for key in keys:
            await producer.send(cfg.kafka.topics.events, key, encode(SyncRequest(host_key=key, reason="retry")))
        if host_keys is None:  # a partial retry leaves the rest for a later full one
            await consumer.commit()
    finally:
        await producer.stop()
        await consumer.stop()
    return keys
