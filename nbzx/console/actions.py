"""What the console's buttons do: each one a Kafka request plus a job record naming the user who asked.

Nothing here writes to Zabbix: reconciles, schedules and adoptions go to the control topic (the control
loop runs them), host syncs and dead-letter retries to the events topic (the consumers run them, in order per host).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nbzx.common.config import Config
from nbzx.common.kafka import Producer
from nbzx.jobs.dead_letters import requeue
from nbzx.jobs.records import publish_record, reconcile_request, record, request_record
from nbzx.schemas.messages import (
    AdoptRequest,
    CancelRequest,
    JobRecord,
    ReconcileRequest,
    SyncRequest,
    encode,
)


class Refused(ValueError):
    """The action does not apply to this job (retry of a job that did not fail, cancel of one not
    scheduled, ...); the message says why."""


class Actions:
    """The console's actions, bound to a producer."""

    def __init__(self, cfg: Config, producer: Producer, seen: Callable[[JobRecord], None] | None = None) -> None:
        """`seen` gets every job record an action publishes: the console shows the job at once, without
        waiting for its own follower to read the record back from Kafka."""
        self.cfg, self.producer, self.seen = cfg, producer, seen

    async def _record(self, job: JobRecord) -> JobRecord:
        await publish_record(self.producer, self.cfg, job)
        return self._shown(job)

    def _shown(self, job: JobRecord) -> JobRecord:
        """A published record, shown at once (see `seen`)."""
        if self.seen is not None:
            self.seen(job)
        return job

    async def reconcile(
        self,
        user: str,
        *,
        dry_run: bool = False,
        object_types: list[str] | None = None,
        filter: dict[str, Any] | None = None,
        scheduled_for: str | None = None,
        interval: int | None = None,
        retry_of: str | None = None,
        servers: list[str] | None = None,
    ) -> ReconcileRequest:
        """Ask the control loop for a reconcile (now, at a time, and/or every `interval` minutes)."""
        req = reconcile_request(
            "console",
            user=user,
            dry_run=dry_run,
            object_types=object_types,
            filter=filter,
            servers=servers,
            scheduled_for=scheduled_for,
            interval=interval,
            retry_of=retry_of,
        )
        await self.producer.send(self.cfg.kafka.topics.control, "reconcile", encode(req))
        # Shown at once; the control loop's own records (scheduled, running, ...) follow.
        await self._record(request_record(req, "scheduled" if scheduled_for else "pending"))
        return req

    async def cancel(self, user: str, job: JobRecord) -> None:
        """Cancel a scheduled job; a recurring chain ends with it."""
        if job.status != "scheduled":
            raise Refused(f"job {job.job_id} is {job.status}; only a scheduled job is cancelled")
        await self.producer.send(
            self.cfg.kafka.topics.control, "reconcile", encode(CancelRequest(job_id=job.job_id, user=user))
        )

    async def sync_host(self, user: str, host_key: str, retry_of: str | None = None) -> str:
        """Sync one host now (through the consumers, in order with its events); returns the job id."""
        params = {"host_key": host_key, **({"retry_of": retry_of} if retry_of else {})}
        job_id = (await self._record(record("host_sync", "pending", "console", user=user, params=params))).job_id
        req = SyncRequest(host_key=host_key, reason="console", job_id=job_id, user=user)
        await self.producer.send(self.cfg.kafka.topics.events, host_key, encode(req))
        return job_id

    async def retry_letters(self, user: str, host_keys: list[str]) -> str:
        """Re-queue dead-lettered hosts as one `dlq_retry` job (as `nbzx dlq retry` does); returns its id."""
        job = await requeue(self.cfg, self.producer, host_keys, trigger="console", user=user)
        return self._shown(job).job_id

    async def adopt(self, user: str, host_keys: list[str], server: str = "") -> str:
        """Ask the control loop to take over these hosts (every valid one when empty) on `server` (the
        first when empty); returns the job id."""
        req = AdoptRequest(user=user, host_keys=sorted(set(host_keys)), server=server)
        await self.producer.send(self.cfg.kafka.topics.control, "adopt", encode(req))
        await self._record(request_record(req, "pending"))
        return req.job_id

    async def retry(self, user: str, job: JobRecord) -> str:
        """Run a failed or errored job again with the same parameters; returns the new job id."""
        if job.status not in ("failed", "errored"):
            raise Refused(f"job {job.job_id} is {job.status}; only failed or errored jobs are retried")
        p = job.params
        if job.job_kind in ("reconcile", "dry_run"):
            req = await self.reconcile(
                user,
                dry_run=job.job_kind == "dry_run",
                object_types=list(p.get("object_types") or []),
                filter=dict(p.get("filter") or {}),
                servers=list(p.get("servers") or []),
                retry_of=job.job_id,
            )
            return req.job_id
        if job.job_kind == "host_sync" and p.get("host_key"):
            return await self.sync_host(user, str(p["host_key"]), retry_of=job.job_id)
        raise Refused(
            f"a {job.job_kind} job is not retried from the console"
            + (" (run `nbzx replay` again)" if job.job_kind == "backfill" else " (it runs again on its interval)")
        )
