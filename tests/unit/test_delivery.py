"""The delivery policy (pure): per-key fate, backoff, the outage rule and the commit watermark."""

from __future__ import annotations

from typing import Any

from nbzx.core.policy import Decision, KeyState, Policy, backoff_s, commit_offset, decide, due, is_outage, next_due_in

P = Policy(retry_base_s=1.0, retry_max_s=30.0, transient_window_s=3600.0)


def test_success_skip_and_conflict_are_done() -> None:
    for result in ("ok", "skipped", "conflict"):
        assert decide("k", result, False, None, None, 0.0, P).outcome == "done"


def test_a_permanent_error_dead_letters_that_key_with_its_error() -> None:
    d = decide("dcim.device:1", "error", False, "unknown templates in Zabbix: X", None, 0.0, P)
    assert (d.outcome, d.reason, d.state) == ("dead", "unknown templates in Zabbix: X", None)


def test_a_transient_error_parks_the_key_with_growing_capped_backoff() -> None:
    d1 = decide("k", "error", True, "Zabbix unreachable", None, 100.0, P, jitter=1.0)
    assert d1.outcome == "retry" and d1.state == KeyState(
        host_key="k", attempts=1, first_failed_at=100.0, next_at=101.0, error="Zabbix unreachable"
    )
    d2 = decide("k", "error", True, "Zabbix unreachable", d1.state, 101.0, P, jitter=1.0)
    assert d2.state is not None and (d2.state.attempts, d2.state.next_at, d2.state.first_failed_at) == (2, 103.0, 100.0)
    assert [backoff_s(n, P) for n in (1, 2, 3, 6, 7, 20)] == [1.0, 2.0, 4.0, 30.0, 30.0, 30.0]
    assert backoff_s(3, P, jitter=0.5) == 2.0


def test_a_transient_cause_is_dead_lettered_only_after_the_window() -> None:
    state = KeyState(host_key="k", attempts=500, first_failed_at=0.0, next_at=3599.0)
    assert decide("k", "error", True, "down", state, 3599.0, P).outcome == "retry", "500 attempts, still in the window"
    late = decide("k", "error", True, "down", state, 3600.0, P)
    assert late.outcome == "dead" and "501 attempts over 3600 s: down" in late.reason


def test_an_outage_is_a_round_where_every_key_failed_transiently() -> None:
    def d(outcome: Any, *servers: str) -> Decision:
        return Decision(host_key="k", outcome=outcome, failed_on=servers)

    assert is_outage([d("retry"), d("retry")])
    assert not is_outage([d("retry"), d("done")]) and not is_outage([d("retry"), d("dead")]) and not is_outage([])
    # Several servers: one of them down is its own keys' business; all of them, or NetBox, is an outage.
    assert not is_outage([d("retry", "old"), d("retry", "old")], ["old", "new"])
    assert is_outage([d("retry", "old"), d("retry", "new")], ["old", "new"])
    assert is_outage([d("retry", "old"), d("retry")], ["old", "new"])
    assert is_outage([d("retry", "old")], ["old"])


def test_due_and_next_due() -> None:
    parked = {
        "a": KeyState(host_key="a", attempts=1, first_failed_at=0, next_at=5.0),
        "b": KeyState(host_key="b", attempts=1, first_failed_at=0, next_at=9.0),
    }
    assert due(parked, 4.0) == [] and due(parked, 5.0) == ["a"] and due(parked, 10.0) == ["a", "b"]
    assert next_due_in(parked, 4.0) == 1.0 and next_due_in(parked, 20.0) == 0.0 and next_due_in({}, 0.0) is None


def test_a_partition_is_committed_up_to_its_oldest_unfinished_record() -> None:
    assert commit_offset(120, []) == 120
    assert commit_offset(120, [117, 103, 110]) == 103
