"""The delivery policy: what becomes of each host key after a sync, and how far each partition may be
committed. Pure: results, per-key retry state, offsets and the clock in; decisions out. The consumer
(`nbzx/delivery/`) applies them to Kafka. DESIGN §4 "Delivery".

The sync is level-triggered (it re-reads NetBox), so what matters per key is one successful sync
after its last change, not replaying each record in order. A key that fails transiently is *parked*:
the consumer keeps going with every other key and partition, retries the parked key on its own
backoff, and commits each partition only up to its oldest record that is neither applied nor stored
as a dead letter. A crash or rebalance therefore re-reads, and re-syncs, at most what was unfinished.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Literal

import msgspec

from nbzx.common import retry

Outcome = Literal["done", "retry", "dead"]


class Policy(msgspec.Struct, frozen=True, kw_only=True):
    """How long and how often a transient failure is retried before it is dead-lettered."""

    retry_base_s: float = 0.5
    retry_max_s: float = 30.0
    # A transient cause (Zabbix or NetBox down, a busy database) is never dead-lettered while it lasts
    # less than this; after it, the key's records are dead-lettered with the last error.
    transient_window_s: float = 86_400.0


class KeyState(msgspec.Struct, frozen=True, kw_only=True):
    """A parked key: since when it fails, how often, and when to try it next."""

    host_key: str
    attempts: int
    first_failed_at: float
    next_at: float
    error: str = ""


class Decision(msgspec.Struct, frozen=True, kw_only=True):
    """What to do with one key's records now."""

    host_key: str
    outcome: Outcome
    reason: str = ""
    state: KeyState | None = None  # the new parked state when `outcome` is "retry"
    failed_on: tuple[str, ...] = ()  # the Zabbix servers a retry waits for (none: not one server's failure)


def backoff_s(attempts: int, policy: Policy, jitter: float = 1.0) -> float:
    """Delay before a parked key's attempt `attempts + 1`: the service's one backoff, on the policy's numbers."""
    return retry.backoff_s(attempts, policy.retry_base_s, policy.retry_max_s, jitter)


def decide(
    host_key: str,
    result: str,
    transient: bool,
    error: str | None,
    state: KeyState | None,
    now: float,
    policy: Policy,
    jitter: float | None = None,
    failed_on: tuple[str, ...] = (),
) -> Decision:
    """One key's fate from its sync result ("ok", "skipped", "conflict" or "error"); `failed_on`, the
    servers it failed on, goes with a retry."""
    if result != "error":
        return Decision(host_key=host_key, outcome="done")
    if not transient:
        return Decision(host_key=host_key, outcome="dead", reason=error or "error")
    attempts = (state.attempts if state else 0) + 1
    first = state.first_failed_at if state else now
    if now - first >= policy.transient_window_s:
        why = f"still failing after {attempts} attempts over {now - first:.0f} s: {error}"
        return Decision(host_key=host_key, outcome="dead", reason=why)
    j = retry.jitter() if jitter is None else jitter  # consumers do not retry in lockstep
    nxt = KeyState(
        host_key=host_key,
        attempts=attempts,
        first_failed_at=first,
        next_at=now + backoff_s(attempts, policy, j),
        error=error or "",
    )
    return Decision(host_key=host_key, outcome="retry", reason=error or "", state=nxt, failed_on=failed_on)


def is_outage(decisions: Iterable[Decision], servers: Collection[str] = ()) -> bool:
    """True when a round had retries and nothing else, and they share a cause: every key failed
    transiently, on every server (or on something that is no one server's, NetBox). Reading further
    would then only park more keys. One server down of several holds back only its own keys."""
    seen = list(decisions)
    if not seen or any(d.outcome != "retry" for d in seen):
        return False
    if len(servers) <= 1 or any(not d.failed_on for d in seen):
        return True
    return {s for d in seen for s in d.failed_on} >= set(servers)


def due(parked: Mapping[str, KeyState], now: float) -> list[str]:
    """Parked keys whose next attempt is due."""
    return sorted(k for k, s in parked.items() if s.next_at <= now)


def next_due_in(parked: Mapping[str, KeyState], now: float) -> float | None:
    """Seconds until the next parked key is due (None when nothing is parked)."""
    return max(0.0, min(s.next_at for s in parked.values()) - now) if parked else None


def commit_offset(fetched_end: int, unfinished: Iterable[int]) -> int:
    """The offset a partition may be committed to: its oldest unfinished record, else past the last
    record fetched (`fetched_end` is that record's offset + 1)."""
    return min(unfinished, default=fetched_end)
