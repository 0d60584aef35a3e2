"""A round's records, read: what to sync, what to fan out, and which records each host key stands for.

Records that cannot be read (null, undecodable, an unknown version, a message that does not belong on
the topic) are rejected here, once, with the reason; the round dead-letters them (DESIGN §4).
"""

from __future__ import annotations

from typing import Any

import msgspec
from prometheus_client import Counter

from nbzx.core.planner import SyncResult
from nbzx.schemas.messages import ChangeEvent, HostStatus, SyncRequest, SyncState, UnknownVersion, decode
from nbzx.schemas.objects import DEPENDENCY_OBJECT_TYPES

SOURCES = Counter("nbzx_change_events_total", "Change events consumed, by source: webhook or changelog", ["source"])
CONSUMED = Counter("nbzx_events_consumed_total", "Messages consumed from the events topic", ["kind"])


class Work:
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


def record_key(rec: Any) -> str:
    """A record's Kafka key as text ("" for none)."""
    return rec.key.decode("utf-8", "replace") if rec.key else ""


def decode_round(records: list[Any], topic: str) -> Work:
    """Records -> work; what cannot be read is rejected here, once, with the reason."""
    work = Work()
    for rec in records:
        if rec.value is None:
            CONSUMED.labels("null").inc()
            work.rejected.append((rec, record_key(rec), "null record (a tombstone carries no event)"))
            continue
        try:
            msg = decode(rec.value)
        except UnknownVersion as exc:
            CONSUMED.labels("unknown_version").inc()
            work.rejected.append((rec, record_key(rec), str(exc)))
            continue
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            CONSUMED.labels("undecodable").inc()
            work.rejected.append((rec, record_key(rec), f"undecodable message: {exc}"))
            continue
        if isinstance(msg, ChangeEvent):
            CONSUMED.labels("change_event").inc()
            SOURCES.labels(msg.source).inc()
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
            work.rejected.append((rec, record_key(rec), f"a {type(msg).__name__} does not belong on {topic}"))
    return work
