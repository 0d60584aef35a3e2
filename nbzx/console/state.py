"""The console's state, in memory, rebuilt from four topics: jobs, host statuses, dead letters and the
change-log follower's cursor."""

from __future__ import annotations

from collections import Counter, deque
from datetime import UTC, datetime
from typing import Any

from nbzx.common.config import Config, parse_duration
from nbzx.common.follow import Follower
from nbzx.console.views import prune_jobs
from nbzx.jobs.dead_letters import retry_keys
from nbzx.schemas.messages import ChangelogCursor, DeadLetter, HostStatus, JobRecord, decode_records

MAX_LETTERS = 10_000  # the newest dead letters kept for the page


class ConsoleState:
    """Jobs (bounded by count and age), the last status and recent syncs of every host, dead letters."""

    def __init__(self, cfg: Config, follow: bool = True) -> None:
        """`follow=False` builds an empty state fed only by the `apply_*` methods (tests, benchmarks)."""
        c = cfg.console
        self.max_jobs, self.max_job_age_s, self.history_len = c.max_jobs, parse_duration(c.max_job_age), c.history
        self.jobs: dict[str, JobRecord] = {}
        self.hosts: dict[str, HostStatus] = {}
        self.history: dict[str, deque[HostStatus]] = {}
        self.letters: deque[tuple[int, int, DeadLetter]] = deque(maxlen=MAX_LETTERS)  # (partition, offset, letter)
        self.applied: dict[str, Counter[str]] = {}  # job id -> host results of the syncs it caused
        self.changelog: ChangelogCursor | None = None  # the follower's last committed cursor
        t = cfg.kafka.topics
        self._cursor_topic = t.changelog
        self.followers = (
            [
                Follower(cfg, t.jobs, self.apply_jobs),
                Follower(cfg, t.host_status, self.apply_statuses),
                Follower(cfg, t.dlq, self.apply_letters),
                Follower(cfg, t.changelog, self.apply_cursors),
            ]
            if follow
            else []
        )
        self._since_prune = 0

    def start(self) -> None:
        for f in self.followers:
            f.start()

    async def stop(self) -> None:
        for f in self.followers:
            await f.stop()

    @property
    def caught_up(self) -> bool:
        """Jobs, statuses and letters read to their end (the cursor is shown as it comes)."""
        return all(f.caught_up.is_set() for f in self.followers if f.topic != self._cursor_topic)

    def apply_jobs(self, records: list[Any]) -> None:
        for msg in decode_records(records):
            if isinstance(msg, JobRecord):
                self.jobs[msg.job_id] = msg
                self._since_prune += 1
        if len(self.jobs) > self.max_jobs or self._since_prune > 1000:
            self.prune(datetime.now(UTC))

    def add_job(self, record: JobRecord) -> None:
        """A record this console just published: shown before the follower reads it back."""
        self.jobs[record.job_id] = record

    def prune(self, now: datetime) -> None:
        """Forget ended jobs beyond the configured count and age."""
        for job_id in prune_jobs(self.jobs, self.max_jobs, self.max_job_age_s, now):
            del self.jobs[job_id]
            self.applied.pop(job_id, None)
        self._since_prune = 0

    def apply_statuses(self, records: list[Any]) -> None:
        for msg in decode_records(records):
            if not isinstance(msg, HostStatus):
                continue
            self.hosts[msg.host_key] = msg
            recent = self.history.setdefault(msg.host_key, deque(maxlen=self.history_len))
            recent.appendleft(msg)
            if msg.job_id:
                self.applied.setdefault(msg.job_id, Counter())[msg.result] += 1

    def apply_cursors(self, records: list[Any]) -> None:
        for msg in decode_records(records):
            if isinstance(msg, ChangelogCursor):
                self.changelog = msg

    def apply_letters(self, records: list[Any]) -> None:
        for r in records:
            for msg in decode_records([r]):
                if isinstance(msg, DeadLetter):
                    self.letters.appendleft((r.partition, r.offset, msg))

    def letter_keys(self, wanted: list[str]) -> tuple[list[str], list[str]]:
        """(host keys to retry, wanted keys without a dead letter), as `nbzx dlq retry` picks them."""
        return retry_keys((d.host_key for _, _, d in self.letters), wanted)

    def letter(self, partition: int, offset: int) -> DeadLetter | None:
        return next((d for p, o, d in self.letters if p == partition and o == offset), None)
