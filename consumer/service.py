"""The consumer process: a Kafka consumer group on `netbox.events` that drives `sync()`.

At least once, in order, without losing a change:
- each fetched batch collapses to one sync per host key (state is re-read, so the latest wins);
- offsets are committed only after every message up to them was applied or dead-lettered;
- transient errors (NetBox/Zabbix down, 5xx, timeouts) retry with exponential backoff and jitter
  while the batch's partitions are paused and their offsets held;
- permanent errors, unknown envelope versions and undecodable messages go to the DLQ, and the
  partition moves on.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Iterable
from typing import Any

import msgspec
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from prometheus_client import Counter, Gauge, Histogram

from consumer.fanout import dependent_host_keys
from consumer.netbox import NetBoxError
from consumer.sync import SyncEngine, SyncResult
from consumer.zabbix import ZabbixError
from nbzx.config import DEPENDENCY_OBJECT_TYPES, Config
from nbzx.kafka import Producer, ProduceUnavailable, client_kwargs
from nbzx.logging import get_logger
from schemas.messages import ChangeEvent, DeadLetter, SyncRequest, UnknownVersion, decode, encode

log = get_logger(component="consumer")

CONSUMED = Counter("nbzx_events_consumed_total", "Messages consumed from the events topic", ["kind"])
LAG = Gauge("nbzx_consumer_lag", "Messages behind the end of the partition", ["partition"])
DLQ = Counter("nbzx_dlq_total", "Messages sent to the dead-letter topic", ["reason"])
EVENT_TO_ZABBIX = Histogram(
    "nbzx_event_to_zabbix_seconds",
    "Webhook received by the receiver -> change applied in Zabbix",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30, 60, 300),
)
CONFLICTS = Counter("nbzx_conflicts_total", "Hosts not synced because a same-named host is not ours")
_APPLIED = frozenset({"create", "update", "delete"})


class _Work:
    """One batch: what to sync, what to fan out, and which records each host key stands for."""

    def __init__(self) -> None:
        self.records_by_key: dict[str, list[Any]] = {}
        self.fanouts: list[tuple[ChangeEvent, Any]] = []
        self.previous_owners: list[tuple[ChangeEvent, Any]] = []
        self.dead: list[tuple[Any, str, str]] = []  # (record, host key, error)
        self.received_at: dict[str, float] = {}


class _Revocations(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: EventConsumer) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        self.owner.revoked.update(revoked)
        if revoked:
            log.info("partitions_revoked", partitions=sorted(tp.partition for tp in revoked))

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        self.owner.revoked.difference_update(assigned)
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
        self.engine = engine
        self.producer = producer
        self.group = group or cfg.kafka.group
        self.topic = topic or cfg.kafka.topics.events
        self.stopping = asyncio.Event()
        self.revoked: set[TopicPartition] = set()
        self.last_poll = 0.0
        self.batches = 0
        c = cfg.consumer
        # What every consumer of this group is built with (replay builds its own from it).
        self.consumer_kwargs: dict[str, Any] = {
            **client_kwargs(cfg),
            "group_id": self.group,
            "client_id": f"{cfg.kafka.client_id}-consumer",
            "enable_auto_commit": False,
            "auto_offset_reset": "earliest",
            "fetch_max_wait_ms": c.fetch_max_wait_ms,
            "max_poll_interval_ms": 3_600_000,  # long Zabbix outages are retried in-process, not rebalanced
            "session_timeout_ms": c.session_timeout_ms,
            "heartbeat_interval_ms": c.heartbeat_interval_ms,
            "rebalance_timeout_ms": c.rebalance_timeout_ms,
            **consumer_overrides,
        }
        self.consumer: AIOKafkaConsumer | None = None

    async def run(self) -> None:
        """Consume until `stopping` is set; then leave the group cleanly."""
        self.consumer = AIOKafkaConsumer(**self.consumer_kwargs)
        self.consumer.subscribe([self.topic], listener=_Revocations(self))
        await self.consumer.start()
        log.info("consumer_started", group=self.group, topic=self.topic)
        try:
            while not self.stopping.is_set():
                batch = await self.consumer.getmany(timeout_ms=500, max_records=self.cfg.consumer.max_batch)
                self.last_poll = time.monotonic()
                if batch:
                    await self.handle(batch)
                    await self._update_lag()
        finally:
            await self.consumer.stop()  # leaves the group: partitions move at once, not after a timeout
            log.info("consumer_stopped", group=self.group)

    # ---- one batch ----

    async def handle(self, batch: dict[TopicPartition, list[Any]]) -> bool:
        """Process one fetched batch; True when its offsets were committed."""
        self.batches += 1
        batch = {tp: recs for tp, recs in batch.items() if tp not in self.revoked}
        work = self._decode(batch)
        pending = set(work.records_by_key)
        attempt, paused = 0, False
        while True:
            attempt += 1
            error = None
            try:
                await self._expand(work, pending)
                results = await self.engine.sync(pending) if pending else []
                pending = self._settle(work, results, attempt)
                error = next((r.error for r in results if r.host_key in pending), None)
            except (NetBoxError, ZabbixError, ProduceUnavailable) as exc:
                if not getattr(exc, "transient", True) or attempt >= self._max_attempts:
                    self._give_up(work, pending, f"still failing after {attempt} attempts: {exc}")
                    pending = set()
                error = str(exc)
            if not pending and not work.fanouts and not work.previous_owners:
                break
            if self.stopping.is_set():
                log.warning("batch_abandoned_on_shutdown", pending=len(pending))
                return False  # nothing committed: whoever owns these partitions next redoes them
            if not paused and self.consumer is not None:
                self.consumer.pause(*batch)
                paused = True
            delay = min(self.cfg.consumer.retry_max_s, self.cfg.consumer.retry_base_s * 2 ** (attempt - 1))
            delay *= random.uniform(0.5, 1.0)  # jitter: consumers do not retry in lockstep
            log.warning("batch_retry", attempt=attempt, pending=len(pending), delay_s=round(delay, 2), error=error)
            await self._sleep(delay)
        if paused and self.consumer is not None:
            self.consumer.resume(*batch)
        try:
            await self._dead_letter(work.dead, attempt)
        except ProduceUnavailable as exc:
            log.error("dlq_unavailable", error=str(exc))
            return False
        return await self._commit(batch)

    def _give_up(self, work: _Work, pending: set[str], why: str) -> None:
        for key in pending:
            work.dead.extend((rec, key, why) for rec in work.records_by_key.get(key, []))
        work.dead.extend((rec, ev.host_key, why) for ev, rec in [*work.fanouts, *work.previous_owners])
        work.fanouts.clear()
        work.previous_owners.clear()

    @property
    def _max_attempts(self) -> int:
        return self.cfg.consumer.max_transient_attempts

    def _decode(self, batch: dict[TopicPartition, list[Any]]) -> _Work:
        work = _Work()
        for records in batch.values():
            for rec in records:
                try:
                    msg = decode(rec.value)
                except UnknownVersion as exc:
                    CONSUMED.labels("unknown_version").inc()
                    work.dead.append((rec, _key(rec), str(exc)))
                    continue
                except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                    CONSUMED.labels("undecodable").inc()
                    work.dead.append((rec, _key(rec), f"undecodable message: {exc}"))
                    continue
                if isinstance(msg, ChangeEvent):
                    CONSUMED.labels("change_event").inc()
                    if msg.object_type in DEPENDENCY_OBJECT_TYPES:
                        work.fanouts.append((msg, rec))
                        continue
                    if msg.previous_owner is not None:
                        work.previous_owners.append((msg, rec))
                    if msg.received_at:
                        work.received_at[msg.host_key] = min(work.received_at.get(msg.host_key, 1e18), msg.received_at)
                    work.records_by_key.setdefault(msg.host_key, []).append(rec)
                elif isinstance(msg, SyncRequest):
                    CONSUMED.labels("sync_request").inc()
                    work.records_by_key.setdefault(msg.host_key, []).append(rec)
                else:
                    CONSUMED.labels("unexpected").inc()
                    work.dead.append((rec, _key(rec), f"a {type(msg).__name__} does not belong on {self.topic}"))
        return work

    async def _expand(self, work: _Work, keys: set[str]) -> None:
        """Fan out dependency changes (SyncRequests onto the events topic) and add IPs' previous owners.
        Each item leaves its list once done, so a retry does not repeat it."""
        while work.fanouts:
            ev, _rec = work.fanouts[0]
            host_keys = await dependent_host_keys(self.engine.netbox, self.engine.zabbix, ev)
            for key in host_keys:
                req = SyncRequest(host_key=key, reason="fanout", cause=f"{ev.object_type}:{ev.object_id}")
                await self.producer.send(self.cfg.kafka.topics.events, key, encode(req))
            log.info("fanout", cause=ev.host_key, hosts=len(host_keys))
            work.fanouts.pop(0)
        while work.previous_owners:
            ev, _rec = work.previous_owners[0]
            assert ev.previous_owner is not None
            owner = await self.engine.netbox.previous_owner(
                ev.previous_owner.content_type_id, ev.previous_owner.object_id
            )
            if owner and owner != ev.host_key:
                keys.add(owner)
            work.previous_owners.pop(0)

    def _settle(self, work: _Work, results: list[SyncResult], attempt: int) -> set[str]:
        """Record results; return the keys to retry. Permanent errors and exhausted retries are dead-lettered."""
        retry: set[str] = set()
        now = time.time()
        for r in results:
            if r.result == "error" and r.transient and attempt < self._max_attempts:
                retry.add(r.host_key)
            elif r.result == "error":
                why = f"still failing after {attempt} attempts: {r.error}" if r.transient else (r.error or "error")
                for rec in work.records_by_key.get(r.host_key, []):
                    work.dead.append((rec, r.host_key, why))
            elif r.result == "conflict":
                CONFLICTS.inc()
                log.warning("conflict", host_key=r.host_key, reason=r.reason)
            elif r.action in _APPLIED and r.host_key in work.received_at:
                EVENT_TO_ZABBIX.observe(max(0.0, now - work.received_at[r.host_key]))
        return retry

    async def _dead_letter(self, dead: list[tuple[Any, str, str]], attempts: int) -> None:
        for rec, host_key, error in dead:
            letter = DeadLetter(
                host_key=host_key,
                error=error,
                attempts=attempts,
                topic=rec.topic,
                partition=rec.partition,
                offset=rec.offset,
                original=rec.value.decode("utf-8", "replace") if rec.value else "",
            )
            await self.producer.send(self.cfg.kafka.topics.dlq, host_key, encode(letter))
            DLQ.labels("error").inc()
            log.error("dead_lettered", host_key=host_key, error=error, partition=rec.partition, offset=rec.offset)

    async def _commit(self, batch: dict[TopicPartition, list[Any]]) -> bool:
        if self.consumer is None:
            return False
        assigned = self.consumer.assignment()
        offsets = {tp: recs[-1].offset + 1 for tp, recs in batch.items() if recs and tp in assigned}
        if not offsets:
            return False
        try:
            await self.consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError, KafkaError) as exc:
            # Lost the partitions to a rebalance: their new owner re-applies; sync is idempotent.
            log.warning("commit_failed", error=repr(exc))
            return False
        return True

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), seconds)

    async def _update_lag(self) -> None:
        if self.consumer is None:
            return
        for tp in self.consumer.assignment():
            high = self.consumer.highwater(tp)
            if high is not None:
                LAG.labels(str(tp.partition)).set(max(0, high - await self.consumer.position(tp)))


def _key(rec: Any) -> str:
    return rec.key.decode("utf-8", "replace") if rec.key else ""
