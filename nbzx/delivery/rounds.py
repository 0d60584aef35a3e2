"""What one round means, for the host keys in it: decode, expand, sync, decide, settle (DESIGN §4).

The delivery policy (`nbzx.core.policy`) decides each key's fate; this applies it:
- records collapse to one sync per host key (the state is re-read, so the latest wins);
- a key that fails transiently is *parked* with its records and retried on its own backoff while
  every other key goes on;
- a permanent failure dead-letters that key's records only, and records that cannot be read are
  dead-lettered once (`decode`); a letter Kafka does not take keeps its record held, never skipped.
The Kafka side (fetch, commit, pause, rebalance) is `nbzx.delivery.consumer`'s.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec
from prometheus_client import Counter, Gauge, Histogram

from nbzx.common.config import Config, parse_duration
from nbzx.common.kafka import Producer, ProduceUnavailable
from nbzx.common.logging import get_logger
from nbzx.core.planner import SyncResult
from nbzx.core.policy import Decision, KeyState, Outcome, Policy, decide, due, is_outage
from nbzx.core.status import host_status
from nbzx.delivery.decode import Work, decode_round
from nbzx.delivery.outcomes import Outcomes
from nbzx.delivery.reports import publish_statuses, write_back_outcomes
from nbzx.engine.fanout import dependent_host_keys
from nbzx.engine.netbox import NetBoxError
from nbzx.engine.sync import STAGE_SECONDS, SyncEngine
from nbzx.engine.zabbix import ZabbixError
from nbzx.schemas.messages import DeadLetter, SyncRequest, encode

log = get_logger(component="consumer")

DLQ = Counter("nbzx_dlq_total", "Messages sent to the dead-letter topic", ["reason"])
PARKED = Gauge("nbzx_parked_keys", "Host keys waiting to retry a transient failure")
EVENT_TO_ZABBIX = Histogram(
    "nbzx_event_to_zabbix_seconds",
    "Webhook received by the receiver -> change applied in Zabbix",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30, 60, 300),
)
CONFLICTS = Counter("nbzx_conflicts_total", "Hosts not synced because a same-named host is not ours")
_APPLIED = frozenset({"create", "update", "delete"})

Failed = dict[str, tuple[bool, str]]  # host key -> (transient, error) of a fan-out or owner lookup


class Tally(msgspec.Struct, kw_only=True):
    """What one round did with its records: applied (or settled), parked for a retry, dead-lettered;
    and each key's outcome."""

    done: int = 0
    parked: int = 0
    dead: int = 0
    outcomes: list[Outcome] = msgspec.field(default_factory=list)
    outage: bool = False  # every key failed transiently for a shared cause (see `policy.is_outage`)


class HostRounds:
    """The per-key side of delivery: parked keys with their held records, and `run`, one round."""

    def __init__(self, cfg: Config, engine: SyncEngine, producer: Producer, topic: str) -> None:
        self.cfg, self.engine, self.producer, self.topic = cfg, engine, producer, topic
        c = cfg.consumer
        self.policy = Policy(
            retry_base_s=c.retry_base_s,
            retry_max_s=c.retry_max_s,
            transient_window_s=float(parse_duration(c.transient_window)),
        )
        self.parked: dict[str, KeyState] = {}
        self.held: dict[str, list[Any]] = {}  # the unfinished records of each parked key
        self.outcomes = Outcomes(cfg) if cfg.netbox.write_back.enabled else None

    def forget(self, revoked: set[tuple[str, int]]) -> None:
        """Drop the keys holding records of partitions (topic, partition) that moved to another consumer."""
        for key, recs in list(self.held.items()):
            if any((r.topic, r.partition) in revoked for r in recs):
                del self.held[key]
                self.parked.pop(key, None)

    async def run(self, records: list[Any]) -> Tally:
        """One round: `records` plus the parked keys that are due. Never raises for one key's sake."""
        due_keys = due(self.parked, time.time())
        records = records + [r for key in due_keys for r in self.held.pop(key, [])]
        fetched = time.time()
        work = decode_round(records, self.topic)
        for received in work.received_at.values():  # receiver -> here: Kafka and this loop's wait
            STAGE_SECONDS.labels("kafka").observe(max(0.0, fetched - received))
        for key in due_keys:  # a key parked without records of its own (an IP's previous owner)
            if key not in work.records_by_key and not any(ev.host_key == key for ev, _ in work.fanouts):
                work.records_by_key[key] = []
        failed: Failed = {}
        await self._expand(work, failed)
        keys = set(work.records_by_key)
        try:
            results = await self.engine.sync(keys) if keys else []
        except Exception as exc:  # the engine turns known errors into results; this is a bug, not a key's fault
            log.exception("sync_crashed", keys=len(keys))
            results = []
            failed.update({k: (True, f"{type(exc).__name__}: {exc}") for k in keys})
        return await self._settle(work, self._decisions(work, results, failed, time.time()))

    async def _expand(self, work: Work, failed: Failed) -> None:
        """Fan out dependency changes (SyncRequests onto the events topic) and add IPs' previous
        owners. A failure is the failure of the event's own key (its records are parked with it)."""
        for ev, rec in work.fanouts:
            try:
                host_keys = await dependent_host_keys(self.engine.netbox, list(self.engine.servers.values()), ev)
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
                owner = await self.engine.netbox.assignment_owner(
                    ev.previous_owner.content_type_id, ev.previous_owner.object_id
                )
            except NetBoxError as exc:
                failed[ev.host_key] = (exc.transient, f"previous owner of {ev.host_key}: {exc}")
                continue
            if owner and owner != ev.host_key:
                work.records_by_key.setdefault(owner, [])

    def _decisions(
        self, work: Work, results: list[SyncResult], failed: Failed, now: float
    ) -> list[tuple[Decision, list[Any]]]:
        """The policy's decision for every key of the round, with the records it stands for."""
        decisions: list[tuple[Decision, list[Any]]] = []
        for r in results:
            if r.host_key in failed and r.result != "error":  # synced, but its fan-out or owner lookup failed
                transient, error = failed[r.host_key]
                r = msgspec.structs.replace(r, result="error", transient=transient, error=error)
            failed.pop(r.host_key, None)
            parked = self.parked.get(r.host_key)
            d = decide(
                r.host_key, r.result, r.transient, r.error, parked, now, self.policy, failed_on=tuple(r.failed_on)
            )
            decisions.append((d, work.records_by_key.get(r.host_key, [])))
            self._status(work, r, d)
            _observe(r, work)
        for key, (transient, error) in failed.items():  # keys the engine returned nothing for
            d = decide(key, "error", transient, error, self.parked.get(key), now, self.policy)
            decisions.append((d, work.records_by_key.get(key, [])))
            r = SyncResult(host_key=key, action="sync", result="error", error=error, transient=transient)
            self._status(work, r, d)
        return decisions

    def _status(self, work: Work, r: SyncResult, d: Decision) -> None:
        """The key's status for the console, and its outcome before and after for write-back (read and
        recorded here, before the status is published and the follower may bring it back)."""
        status = host_status(r, d, work.event_at.get(r.host_key), work.job_ids.get(r.host_key))
        work.statuses.append(status)
        if self.outcomes is not None:
            work.synced.append((r, status.state, self.outcomes.previous(r.host_key)))
            self.outcomes.record(status)

    async def _settle(self, work: Work, decisions: list[tuple[Decision, list[Any]]]) -> Tally:
        """Park, dead-letter or finish each key's records as decided; then report the round."""
        letters = list(work.rejected)
        outage = is_outage([d for d, _ in decisions], self.engine.servers)
        tally = Tally(outcomes=[d.outcome for d, _ in decisions], outage=outage)
        for d, recs in decisions:
            if d.outcome == "retry":
                assert d.state is not None
                self.parked[d.host_key] = d.state
                self.held.setdefault(d.host_key, []).extend(recs)
                tally.parked += len(recs)
                continue
            self.parked.pop(d.host_key, None)
            if d.outcome == "dead":
                letters.extend((rec, d.host_key, d.reason) for rec in recs)
            else:
                tally.done += len(recs)
        tally.dead = await self._dead_letter(letters, time.time())
        if tally.parked:
            log.warning("keys_parked", parked=len(self.parked), records=tally.parked)
        PARKED.set(len(self.parked))
        dead_keys = {d.host_key for d, _ in decisions if d.outcome == "dead"}
        await publish_statuses(self.cfg, self.producer, work, dead_keys)
        if self.outcomes is not None:
            await write_back_outcomes(self.cfg, self.engine.netbox, work)
        return tally

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
                why = f"dead letter not stored: {exc}"
                d = decide(host_key, "error", True, why, self.parked.get(host_key), now, self.policy)
                if d.state is not None:
                    self.parked[host_key] = d.state
                self.held.setdefault(host_key, []).append(rec)
                continue
            stored += 1
            DLQ.labels("error").inc()
            log.error("dead_lettered", host_key=host_key, error=error, partition=rec.partition, offset=rec.offset)
        return stored


def _observe(r: SyncResult, work: Work) -> None:
    if r.result == "conflict":
        CONFLICTS.inc()
        log.warning("conflict", host_key=r.host_key, reason=r.reason)
    elif r.action in _APPLIED and r.result == "ok" and r.host_key in work.received_at:
        EVENT_TO_ZABBIX.observe(max(0.0, time.time() - work.received_at[r.host_key]))
