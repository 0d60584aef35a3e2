"""Each host key's last settled outcome, for write-back to tell a change of outcome (DESIGN §10).

Followed from the compacted host-status topic, which every consumer writes after each sync: so a
consumer that takes over a partition, or restarts, knows what the last one recorded."""

from __future__ import annotations

from typing import Any

from nbzx.common.config import Config
from nbzx.common.follow import Follower
from nbzx.schemas.messages import HostStatus, SyncState, decode_records


class Outcomes:
    """host key -> its last settled `SyncState`; unknown (None) for every key until caught up."""

    def __init__(self, cfg: Config) -> None:
        self.states: dict[str, tuple[str, SyncState]] = {}  # host key -> (synced_at, state)
        self.follower = Follower(cfg, cfg.kafka.topics.host_status, self.apply)

    def apply(self, records: list[Any]) -> None:
        for msg in decode_records(records):
            if isinstance(msg, HostStatus):
                self.record(msg)

    def record(self, status: HostStatus) -> None:
        """Keep a status's settled state (a failure still being retried keeps the one before). The
        follower may bring a status older than one recorded here first: the newer one stays."""
        if status.state is None:
            return
        known = self.states.get(status.host_key)
        if known is None or status.synced_at >= known[0]:
            self.states[status.host_key] = (status.synced_at, status.state)

    def previous(self, host_key: str) -> SyncState | None:
        if not self.follower.caught_up.is_set():
            return None
        known = self.states.get(host_key)
        return known[1] if known else None
