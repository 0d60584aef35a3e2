"""What the console shows per host: a sync's result and the delivery decision, as a `HostStatus`. Pure.

The consumer writes one after every sync of a key to the compacted host-status topic (DESIGN §7), so
any console replica serves the same view and it survives restarts.
"""

from __future__ import annotations

from datetime import UTC, datetime

from nbzx.core.planner import SyncResult
from nbzx.core.policy import Decision
from nbzx.core.writeback import sync_state
from nbzx.schemas.messages import HostResult, HostStatus, JobRecord, JobStatus, utc_now


def host_result(r: SyncResult) -> HostResult:
    """The console's word for a sync result."""
    if r.result == "conflict":
        return "conflict"
    if r.result == "error":
        return "failed"
    if r.action == "skip":
        return "skipped"
    if r.action == "noop" or r.result == "skipped":
        return "in_sync"
    return "changed"


def host_status(
    r: SyncResult, decision: Decision, event_at: float | None = None, job_id: str | None = None
) -> HostStatus:
    """The status record of one key after one sync and the policy's decision about it."""
    retrying = decision.outcome == "retry"
    state = sync_state(r, retrying)
    attempts = decision.state.attempts if decision.state is not None else (0 if r.result != "error" else 1)
    return HostStatus(
        host_key=r.host_key,
        host=r.host,
        hostid=r.hostid,
        action=r.action,
        result=host_result(r),
        reason=r.reason,
        changed=list(r.changed),
        error=r.error,
        retrying=retrying,
        attempts=attempts,
        event_at=datetime.fromtimestamp(event_at, UTC).isoformat() if event_at else None,
        job_id=job_id,
        state=state,
        servers=dict(r.servers),
    )


def host_sync_record(job_id: str, user: str | None, created: str, status: HostStatus, dead_lettered: bool) -> JobRecord:
    """The final (or, while the key is parked, running) record of a console "sync now" job."""
    state: JobStatus = "running" if status.retrying else ("failed" if status.result == "failed" else "completed")
    record = JobRecord(
        job_id=job_id,
        job_kind="host_sync",
        status=state,
        trigger="console",
        user=user,
        created=created,
        started=status.synced_at,
        completed=None if state == "running" else utc_now(),
        duration_s=None if state == "running" else _seconds_between(created, utc_now()),
        error=status.error if status.result == "failed" else None,
        params={"host_key": status.host_key},
        results={
            "host_key": status.host_key,
            "host": status.host,
            "hostid": status.hostid,
            "action": status.action,
            "result": status.result,
            "changed": status.changed,
            "reason": status.reason,
            "attempts": status.attempts,
            "dead_lettered": dead_lettered,
        },
    )
    return record


def _seconds_between(start: str, end: str) -> float:
    return round((datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds(), 3)
