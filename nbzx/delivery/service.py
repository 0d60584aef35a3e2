"""The consumer process: a Kafka consumer group on `netbox.events` that drives `sync()`.

The shell around the delivery policy (`consumer/delivery.py`, DESIGN §4 "Delivery"):
- each round collapses its records to one sync per host key (state is re-read, so the latest wins);
- a key that fails transiently is parked with its records and retried on its own backoff, while
  every other key and partition goes on; a round in which every key failed transiently is an outage,
  and the partitions are paused until a retry succeeds;
- a permanent failure dead-letters that key's records only; records that cannot be read (null,
  undecodable, unknown version, malformed host key) are dead-lettered once, at the edge;
- a partition is committed only up to its oldest record that is neither applied nor stored as a
  dead letter; on revoke, the round in flight is finished first and the state of the revoked
  partitions is dropped (their next owner re-reads from the committed offset).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import msgspec
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from prometheus_client import Counter, Gauge, Histogram

from nbzx.common.config import Config, parse_duration
from nbzx.common.kafka import TOPIC_MAX_MESSAGE_BYTES, Producer, ProduceUnavailable, client_kwargs
from nbzx.common.logging import get_logger
from nbzx.core.planner import SyncResult
from nbzx.core.policy import Decision, KeyState, Policy, commit_offset, decide, due, is_outage, next_due_in
from nbzx.core.status import host_status, host_sync_record
from nbzx.core.writeback import write_back
from nbzx.delivery.outcomes import Outcomes
from nbzx.engine.fanout import dependent_host_keys
from nbzx.engine.netbox import NetBoxError
from nbzx.engine.netbox_write import apply_write_backs
from nbzx.engine.sync import SyncEngine
from nbzx.engine.zabbix import ZabbixError
from nbzx.schemas.messages import (
    ChangeEvent,
    DeadLetter,
    HostStatus,
    SyncRequest,
    SyncState,
    UnknownVersion,
    decode,
    encode,
)
from nbzx.schemas.objects import DEPENDENCY_OBJECT_TYPES

log = get_logger(component="consumer")

CONSUMED = Counter("nbzx_events_consumed_total", "Messages consumed from the events topic", ["kind"])
LAG = Gauge("nbzx_consumer_lag", "Messages behind the end of the partition", ["partition"])
DLQ = Counter("nbzx_dlq_total", "Messages sent to the dead-letter topic", ["reason"])
PARKED = Gauge("nbzx_parked_keys", "Host keys waiting to retry a transient failure")
EVENT_TO_ZABBIX = Histogram(
    "nbzx_event_to_zabbix_seconds",
    "Webhook received by the receiver -> change applied in Zabbix",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30, 60, 300),
)
CONFLICTS = Counter("nbzx_conflicts_total", "Hosts not synced because a same-named host is not ours")
_APPLIED = frozenset({"create", "update", "delete"})


class Round(msgspec.Struct, kw_only=True):
    """What one round did with its records: applied (or settled), parked for a retry, dead-lettered."""

    done: int = 0
    parked: int = 0
    dead: int = 0


class _Work:
    """One round: what to sync, what to fan out, and which records each key stands for."""

    def __init__(self) -> None:
        self.records_by_key: dict[str, list[Any]] = {}
        self.fanouts: list[tuple[ChangeEvent, Any]] = []
        self.previous_owners: list[tuple[ChangeEvent, Any]] = []
        self.rejected: list[tuple[Any, str, str]] = []  # (record, key, why): letters from the edge
        self.received_at: dict[str, float] = {}  # the oldest webhook per key (event-to-Zabbix latency)
        self.event_at: dict[str, float] = {}  # the newest webhook per key (the console's "last event")
        self.job_ids: dict[str, str] = {}  # the job a key's sync belongs to (a reconcile's, a console's)
        self.host_syncs: dict[str, list[SyncRequest]] = {}  # console "sync now" requests per key
        self.statuses: list[HostStatus] = []  # what the round did per key, for the console
        # Each key's result with its settled state and the state before this round (for write-back).
        self.synced: list[tuple[SyncResult, SyncState | None, SyncState | None]] = []

    def add(self, key: str, rec: Any) -> None:
        self.records_by_key.setdefault(key, []).append(rec)


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
        self.engine = engine
        self.producer = producer
        self.group = group or cfg.kafka.group
        self.topic = topic or cfg.kafka.topics.events
        self.stopping = asyncio.Event()
        self.last_poll = 0.0
        self.rounds = 0
        c = cfg.consumer
        self.policy = Policy(
            retry_base_s=c.retry_base_s,
            retry_max_s=c.retry_max_s,
            transient_window_s=float(parse_duration(c.transient_window)),
        )
        self.parked: dict[str, KeyState] = {}
        self.held: dict[str, list[Any]] = {}  # the unfinished records of each parked key
        self.fetched_end: dict[TopicPartition, int] = {}
        self.committed: dict[TopicPartition, int] = {}
        self.outage = False
        self._round_lock = asyncio.Lock()
        # What every consumer of this group is built with (replay builds its own from it).
        self.consumer_kwargs: dict[str, Any] = {
            **client_kwargs(cfg),
            "group_id": self.group,
            "client_id": f"{cfg.kafka.client_id}-consumer",
            "enable_auto_commit": False,
            "auto_offset_reset": "earliest",
            "fetch_max_wait_ms": c.fetch_max_wait_ms,
            "max_poll_interval_ms": 3_600_000,
            "session_timeout_ms": c.session_timeout_ms,
            "heartbeat_interval_ms": c.heartbeat_interval_ms,
            "rebalance_timeout_ms": c.rebalance_timeout_ms,
            "max_partition_fetch_bytes": TOPIC_MAX_MESSAGE_BYTES,
            **consumer_overrides,
        }
        self.consumer: AIOKafkaConsumer | None = None
        self.outcomes = Outcomes(cfg) if cfg.netbox.write_back.enabled else None

    async def run(self) -> None:
        """Consume until `stopping` is set; then leave the group cleanly."""
        self.consumer = AIOKafkaConsumer(**self.consumer_kwargs)
        self.consumer.subscribe([self.topic], listener=_Revocations(self))
        await self.consumer.start()
        log.info("consumer_started", group=self.group, topic=self.topic)
        if self.outcomes is not None:
            self.outcomes.follower.start()
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
            if self.outcomes is not None:
                await self.outcomes.follower.stop()
            await self.consumer.stop()  # leaves the group: partitions move at once, not after a timeout
            log.info("consumer_stopped", group=self.group, parked=len(self.parked))

    # ---- one round ----

    async def handle(self, batch: dict[TopicPartition, list[Any]]) -> Round:
        """One round: the fetched records plus the parked keys that are due. Never raises for one
        key's sake; what it could not finish stays held (uncommitted) for a later round."""
        async with self._round_lock:
            return await self._round(batch)

    async def _round(self, batch: dict[TopicPartition, list[Any]]) -> Round:
        self.rounds += 1
        assigned = self.consumer.assignment() if self.consumer is not None else set(batch)
        records: list[Any] = []
        for tp, recs in batch.items():
            if tp in assigned and recs:
                self.fetched_end[tp] = max(self.fetched_end.get(tp, 0), recs[-1].offset + 1)
                records.extend(recs)
        due_keys = due(self.parked, time.time())
        for key in due_keys:
            records.extend(self.held.pop(key, []))
        work = self._decode(records)
        for key in due_keys:  # a key parked without records of its own (an IP's previous owner)
            if key not in work.records_by_key and not any(ev.host_key == key for ev, _ in work.fanouts):
                work.records_by_key[key] = []
        failed: dict[str, tuple[bool, str]] = {}  # key -> (transient, error) from fan-out or owner lookups
        await self._expand(work, failed)
        keys = set(work.records_by_key)
        try:
            results = await self.engine.sync(keys) if keys else []
        except Exception as exc:  # the engine turns known errors into results; this is a bug, not a key's fault
            log.exception("sync_crashed", keys=len(keys))
            results = []
            failed.update({k: (True, f"{type(exc).__name__}: {exc}") for k in keys})
        decisions = self._decisions(work, results, failed, time.time())
        return await self._settle(work, decisions)

    def _decisions(
        self, work: _Work, results: list[SyncResult], failed: dict[str, tuple[bool, str]], now: float
    ) -> list[tuple[Decision, list[Any]]]:
        """The policy's decision for every key of the round, with the records it stands for."""
        decisions: list[tuple[Decision, list[Any]]] = []
        for r in results:
            if r.host_key in failed and r.result != "error":  # synced, but its fan-out or owner lookup failed
                transient, error = failed[r.host_key]
                r = msgspec.structs.replace(r, result="error", transient=transient, error=error)
            failed.pop(r.host_key, None)
            recs = work.records_by_key.get(r.host_key, [])
            d = decide(r.host_key, r.result, r.transient, r.error, self.parked.get(r.host_key), now, self.policy)
            decisions.append((d, recs))
            self._status(work, r, d)
            self._observe(r, work)
        for key, (transient, error) in failed.items():  # keys the engine returned nothing for
            recs = work.records_by_key.get(key, [])
            d = decide(key, "error", transient, error, self.parked.get(key), now, self.policy)
            decisions.append((d, recs))
            r = SyncResult(host_key=key, action="sync", result="error", error=error, transient=transient)
            self._status(work, r, d)
        return decisions

    def _status(self, work: _Work, r: SyncResult, d: Decision) -> None:
        """The key's status for the console, and its outcome before and after for write-back (read and
        recorded here, before the status is published and the follower may bring it back)."""
        status = host_status(r, d, work.event_at.get(r.host_key), work.job_ids.get(r.host_key))
        work.statuses.append(status)
        if self.outcomes is not None:
            work.synced.append((r, status.state, self.outcomes.previous(r.host_key)))
            self.outcomes.record(status)

    async def _settle(self, work: _Work, decisions: list[tuple[Decision, list[Any]]]) -> Round:
        """Park, dead-letter or finish each key's records as decided; pause on an outage."""
        letters = [(rec, key, why) for rec, key, why in work.rejected]
        stats = Round()
        for d, recs in decisions:
            if d.outcome == "retry":
                assert d.state is not None
                self.parked[d.host_key] = d.state
                self.held.setdefault(d.host_key, []).extend(recs)
                stats.parked += len(recs)
                continue
            self.parked.pop(d.host_key, None)
            if d.outcome == "dead":
                letters.extend((rec, d.host_key, d.reason) for rec in recs)
            else:
                stats.done += len(recs)
        stats.dead = await self._dead_letter(letters, time.time())
        if stats.parked:
            log.warning("keys_parked", parked=len(self.parked), records=stats.parked)
        PARKED.set(len(self.parked))
        self._outage([d.outcome for d, _ in decisions])
        dead_keys = {d.host_key for d, _ in decisions if d.outcome == "dead"}
        await self._publish_statuses(work, dead_keys)
        await self._write_back(work)
        return stats

    async def _write_back(self, work: _Work) -> None:
        """Opt-in write-back to NetBox of the outcomes that changed (DESIGN §10): best effort, after the
        round is settled, never holding delivery back."""
        if self.outcomes is None:
            return
        cfg, now = self.cfg.netbox.write_back, datetime.now(UTC)
        writes = [
            w
            for r, state, previous in work.synced
            if (w := write_back(r, state, previous, cfg, self.cfg.zabbix.ui_url, now)).journal or w.fields
        ]
        if not writes:
            return
        try:
            await apply_write_backs(self.engine.netbox, writes)
        except Exception:  # NetBox's refusals are handled there; anything else must not stop consuming
            log.exception("write_back_crashed", writes=len(writes))

    async def _publish_statuses(self, work: _Work, dead_keys: set[str]) -> None:
        """Host statuses and console host_sync job records: best effort, never holding delivery back
        (a status not stored is refreshed by the key's next sync)."""
        sends = [(self.cfg.kafka.topics.host_status, st.host_key, encode(st)) for st in work.statuses]
        for st in work.statuses:
            for req in work.host_syncs.get(st.host_key, []):
                assert req.job_id is not None
                record = host_sync_record(req.job_id, req.user, req.produced_at, st, st.host_key in dead_keys)
                sends.append((self.cfg.kafka.topics.jobs, req.job_id, encode(record)))
        if not sends:
            return
        outcomes = await asyncio.gather(*(self.producer.send(*s) for s in sends), return_exceptions=True)
        lost = sum(isinstance(o, BaseException) for o in outcomes)
        if lost:
            log.warning("host_status_not_stored", records=lost, of=len(sends))

    def _observe(self, r: Any, work: _Work) -> None:
        if r.result == "conflict":
            CONFLICTS.inc()
            log.warning("conflict", host_key=r.host_key, reason=r.reason)
        elif r.action in _APPLIED and r.result == "ok" and r.host_key in work.received_at:
            EVENT_TO_ZABBIX.observe(max(0.0, time.time() - work.received_at[r.host_key]))

    def _outage(self, outcomes: list[Any]) -> None:
        """Pause reading while every key fails transiently; resume at the first success."""
        if self.consumer is None or not outcomes:
            return
        assigned = list(self.consumer.assignment())
        if is_outage(outcomes):
            if not self.outage:
                log.warning("outage_paused", parked=len(self.parked))
            self.outage = True
            self.consumer.pause(*assigned)
        elif self.outage and any(o == "done" for o in outcomes):
            self.outage = False
            self.consumer.resume(*assigned)
            log.info("outage_over", parked=len(self.parked))

    def _decode(self, records: list[Any]) -> _Work:
        """Records -> work; what cannot be read is rejected here, once, with the reason."""
        work = _Work()
        for rec in records:
            if rec.value is None:
                CONSUMED.labels("null").inc()
                work.rejected.append((rec, _key(rec), "null record (a tombstone carries no event)"))
                continue
            try:
                msg = decode(rec.value)
            except UnknownVersion as exc:
                CONSUMED.labels("unknown_version").inc()
                work.rejected.append((rec, _key(rec), str(exc)))
                continue
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                CONSUMED.labels("undecodable").inc()
                work.rejected.append((rec, _key(rec), f"undecodable message: {exc}"))
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
                    work.event_at[msg.host_key] = max(work.event_at.get(msg.host_key, 0.0), msg.received_at)
                work.add(msg.host_key, rec)
            elif isinstance(msg, SyncRequest):
                CONSUMED.labels("sync_request").inc()
                if msg.job_id:
                    work.job_ids[msg.host_key] = msg.job_id
                if msg.reason == "console" and msg.job_id:
                    work.host_syncs.setdefault(msg.host_key, []).append(msg)
                work.add(msg.host_key, rec)
            else:
                CONSUMED.labels("unexpected").inc()
                work.rejected.append((rec, _key(rec), f"a {type(msg).__name__} does not belong on {self.topic}"))
        return work

    async def _expand(self, work: _Work, failed: dict[str, tuple[bool, str]]) -> None:
        """Fan out dependency changes (SyncRequests onto the events topic) and add IPs' previous
        owners. A failure is the failure of the event's own key (its records are parked with it)."""
        for ev, rec in work.fanouts:
            try:
                host_keys = await dependent_host_keys(self.engine.netbox, self.engine.zabbix, ev)
                for key in host_keys:
                    req = SyncRequest(host_key=key, reason="fanout", cause=f"{ev.object_type}:{ev.object_id}")
                    await self.producer.send(self.cfg.kafka.topics.events, key, encode(req))
                log.info("fanout", cause=ev.host_key, hosts=len(host_keys))
            except (NetBoxError, ZabbixError, ProduceUnavailable) as exc:
                failed[ev.host_key] = (getattr(exc, "transient", True), f"fan-out of {ev.host_key}: {exc}")
                work.add(ev.host_key, rec)
        for ev, _rec in work.previous_owners:
            assert ev.previous_owner is not None
            try:
                owner = await self.engine.netbox.previous_owner(
                    ev.previous_owner.content_type_id, ev.previous_owner.object_id
                )
            except NetBoxError as exc:
                failed[ev.host_key] = (exc.transient, f"previous owner of {ev.host_key}: {exc}")
                continue
            if owner and owner != ev.host_key:
                work.records_by_key.setdefault(owner, [])

    async def _dead_letter(self, letters: list[tuple[Any, str, str]], now: float) -> int:
        """Store the letters; one that cannot be stored keeps its record held (retried, never skipped)."""
        stored = 0
        for rec, host_key, error in letters:
            letter = DeadLetter(
                host_key=host_key,
                error=error,
                attempts=self.parked[host_key].attempts + 1 if host_key in self.parked else 1,
                topic=rec.topic,
                partition=rec.partition,
                offset=rec.offset,
                original=rec.value.decode("utf-8", "replace") if rec.value else "",
            )
            try:
                await self.producer.send(self.cfg.kafka.topics.dlq, host_key, encode(letter))
            except ProduceUnavailable as exc:
                log.error("dlq_unavailable", host_key=host_key, error=str(exc))
                d = decide(
                    host_key,
                    "error",
                    True,
                    f"dead letter not stored: {exc}",
                    self.parked.get(host_key),
                    now,
                    self.policy,
                )
                if d.state is not None:
                    self.parked[host_key] = d.state
                self.held.setdefault(host_key, []).append(rec)
                continue
            stored += 1
            DLQ.labels("error").inc()
            log.error("dead_lettered", host_key=host_key, error=error, partition=rec.partition, offset=rec.offset)
        return stored

    # ---- offsets and rebalances ----

    def commit_offsets(self) -> dict[TopicPartition, int]:
        """Per partition: up to its oldest held record, else past the last one fetched."""
        held: dict[TopicPartition, list[int]] = {}
        for recs in self.held.values():
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
            for key, recs in list(self.held.items()):
                if any(TopicPartition(r.topic, r.partition) in revoked for r in recs):
                    del self.held[key]
                    self.parked.pop(key, None)
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


def _key(rec: Any) -> str:
    return rec.key.decode("utf-8", "replace") if rec.key else ""
