"""The Kafka side of delivery: a consumer group on `netbox.events` that hands each fetch to a round.

What a round does with its records is `nbzx.delivery.rounds`'. Here (DESIGN §4 "Delivery"):
- fetch, and run a round when records came or a parked key is due;
- a round in which every key failed transiently for a shared cause (NetBox, or every Zabbix server)
  is an outage: the partitions are paused until a retry succeeds;
- a partition is committed only up to its oldest record that is neither applied nor stored as a
  dead letter; on revoke, the round in flight is finished first and the state of the revoked
  partitions is dropped (their next owner re-reads from the committed offset).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from prometheus_client import Gauge

from nbzx.common.config import Config
from nbzx.common.kafka import Producer, new_consumer
from nbzx.common.logging import get_logger
from nbzx.core.policy import KeyState, commit_offset, due, next_due_in
from nbzx.delivery.rounds import HostRounds, Tally
from nbzx.engine.sync import SyncEngine

log = get_logger(component="consumer")

LAG = Gauge("nbzx_consumer_lag", "Messages behind the end of the partition", ["partition"])


class _Revocations(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: EventConsumer) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        await self.owner.release(set(revoked))

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        log.info("partitions_assigned", partitions=sorted(tp.partition for tp in assigned))


class EventConsumer:
    """Consumes `netbox.events` (or another topic, for replay) and syncs what it reads."""

    def __init__(
        self,
        cfg: Config,
        engine: SyncEngine,
        producer: Producer,
        *,
        group: str | None = None,
        topic: str | None = None,
        **consumer_overrides: Any,
    ) -> None:
        self.cfg = cfg
        self.group = group or cfg.kafka.group
        self.topic = topic or cfg.kafka.topics.events
        self.hosts = HostRounds(cfg, engine, producer, self.topic)
        self.stopping = asyncio.Event()
        self.last_poll = 0.0
        self.rounds = 0
        self.fetched_end: dict[TopicPartition, int] = {}
        self.committed: dict[TopicPartition, int] = {}
        self.outage = False
        self._round_lock = asyncio.Lock()
        self._overrides = {
            "client_id": f"{cfg.kafka.client_id}-consumer",
            "fetch_max_wait_ms": cfg.consumer.fetch_max_wait_ms,
            **consumer_overrides,
        }
        self.consumer: AIOKafkaConsumer | None = None

    @property
    def parked(self) -> dict[str, KeyState]:
        """Host keys waiting for a retry, with their state."""
        return self.hosts.parked

    def new_kafka_consumer(self) -> AIOKafkaConsumer:
        """A Kafka consumer of this group, as `run` makes it (replay assigns partitions to it itself)."""
        return new_consumer(self.cfg, group=self.group, **self._overrides)

    async def run(self) -> None:
        """Consume until `stopping` is set; then leave the group cleanly."""
        self.consumer = self.new_kafka_consumer()
        self.consumer.subscribe([self.topic], listener=_Revocations(self))
        await self.consumer.start()
        log.info("consumer_started", group=self.group, topic=self.topic)
        outcomes = self.hosts.outcomes
        if outcomes is not None:
            outcomes.follower.start()
        try:
            while not self.stopping.is_set():
                wait = next_due_in(self.parked, time.time())
                timeout_ms = 500 if wait is None else max(10, int(min(0.5, wait) * 1000))
                batch = await self.consumer.getmany(timeout_ms=timeout_ms, max_records=self.cfg.consumer.max_batch)
                self.last_poll = time.monotonic()
                if batch or due(self.parked, time.time()):
                    await self.handle(batch)
                    await self.commit()
                    await self._update_lag()
        finally:
            if outcomes is not None:
                await outcomes.follower.stop()
            await self.consumer.stop()  # leaves the group: partitions move at once, not after a timeout
            log.info("consumer_stopped", group=self.group, parked=len(self.parked))

    async def handle(self, batch: dict[TopicPartition, list[Any]]) -> Tally:
        """One round: the fetched records plus the parked keys that are due. Never raises for one
        key's sake; what it could not finish stays held (uncommitted) for a later round."""
        async with self._round_lock:
            self.rounds += 1
            assigned = self.consumer.assignment() if self.consumer is not None else set(batch)
            records: list[Any] = []
            for tp, recs in batch.items():
                if tp in assigned and recs:
                    self.fetched_end[tp] = max(self.fetched_end.get(tp, 0), recs[-1].offset + 1)
                    records.extend(recs)
            tally = await self.hosts.run(records)
            self._outage(tally)
            return tally

    def _outage(self, tally: Tally) -> None:
        """Pause reading while every key fails transiently for a shared cause; resume at the first success."""
        outcomes = tally.outcomes
        if self.consumer is None or not outcomes:
            return
        assigned = list(self.consumer.assignment())
        if tally.outage:
            if not self.outage:
                log.warning("outage_paused", parked=len(self.parked))
            self.outage = True
            self.consumer.pause(*assigned)
        elif self.outage and any(o == "done" for o in outcomes):
            self.outage = False
            self.consumer.resume(*assigned)
            log.info("outage_over", parked=len(self.parked))

    def commit_offsets(self) -> dict[TopicPartition, int]:
        """Per partition: up to its oldest held record, else past the last one fetched."""
        held: dict[TopicPartition, list[int]] = {}
        for recs in self.hosts.held.values():
            for r in recs:
                held.setdefault(TopicPartition(r.topic, r.partition), []).append(r.offset)
        offsets = {tp: commit_offset(end, held.get(tp, [])) for tp, end in self.fetched_end.items()}
        return {tp: off for tp, off in offsets.items() if off > self.committed.get(tp, -1)}

    async def commit(self) -> bool:
        """Commit what is finished; False when nothing could be (nothing new, or the partitions moved)."""
        if self.consumer is None:
            return False
        assigned = self.consumer.assignment()
        offsets = {tp: off for tp, off in self.commit_offsets().items() if tp in assigned}
        if not offsets:
            return False
        try:
            await self.consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError, KafkaError) as exc:
            # Lost the partitions to a rebalance: their new owner re-applies; sync is idempotent.
            log.warning("commit_failed", error=repr(exc))
            return False
        self.committed.update(offsets)
        return True

    async def release(self, revoked: set[TopicPartition]) -> None:
        """Before partitions move: finish the round in flight, commit, and forget their state."""
        if not revoked:
            return
        async with self._round_lock:
            await self.commit()
            self.hosts.forget({(tp.topic, tp.partition) for tp in revoked})
            for tp in revoked:
                self.fetched_end.pop(tp, None)
                self.committed.pop(tp, None)
        log.info("partitions_revoked", partitions=sorted(tp.partition for tp in revoked), parked=len(self.parked))

    async def _update_lag(self) -> None:
        if self.consumer is None:
            return
        for tp in self.consumer.assignment():
            high = self.consumer.highwater(tp)
            if high is not None:
                LAG.labels(str(tp.partition)).set(max(0, high - await self.consumer.position(tp)))
