"""The ACLs each component gets (nbzx/core/acls.py): what its code does and nothing more. That they are
enough is shown on the secure cluster (tests/e2e/test_secure_kafka.py)."""

from __future__ import annotations

import pytest

from nbzx.common.config import TopicsConfig
from nbzx.core.acls import COMPONENTS, acls, kafka_acls_commands, needs

pytestmark = pytest.mark.unit

T = TopicsConfig()
USERS = {c: f"nbzx-{c}" for c in COMPONENTS}


def rights(component: str) -> set[tuple[str, str, str]]:
    return {(r, n, op) for r, n, _, op in needs(T, "grp")[component]}


def test_the_receiver_writes_events_and_control_and_reads_only_jobs() -> None:
    r = rights("receiver")
    assert {("TOPIC", T.events, "WRITE"), ("TOPIC", T.control, "WRITE"), ("TOPIC", T.jobs, "READ")} <= r
    assert ("TOPIC", T.events, "READ") not in r and not any(res == "GROUP" for res, _, _ in r)
    assert {op for _, _, op in r} == {"WRITE", "READ", "DESCRIBE"}


def test_only_the_consumer_joins_groups_and_owns_the_change_log_transaction() -> None:
    for component in COMPONENTS:
        groups = {n for res, n, _ in rights(component) if res in ("GROUP", "TRANSACTIONAL_ID")}
        assert groups == ({"grp", "grp-changelog"} if component == "consumer" else set()), component
    [group] = [g for g in needs(T, "grp")["consumer"] if g[0] == "GROUP"]
    assert group == ("GROUP", "grp", "PREFIXED", "READ")  # grp, grp-control, grp-changelog, backfills


def test_the_console_reads_what_it_shows_and_writes_only_requests() -> None:
    r = rights("console")
    assert {(T.jobs, "READ"), (T.host_status, "READ"), (T.dlq, "READ"), (T.changelog, "READ")} <= {
        (n, op) for _, n, op in r
    }
    assert {n for _, n, op in r if op == "WRITE"} == {T.control, T.events, T.jobs}


def test_the_hook_creates_topics_and_does_nothing_else() -> None:
    assert {op for _, _, op in rights("hook")} == {"CREATE", "DESCRIBE"}


def test_rules_are_per_user_without_repeats_and_print_as_kafka_acls_lines() -> None:
    rules = acls(T, "grp", USERS)
    assert len(rules) == len(set(rules)) and rules == sorted(rules)
    assert {r.principal for r in rules} == {f"User:nbzx-{c}" for c in COMPONENTS}
    only_receiver = acls(T, "grp", {"receiver": "web"})
    assert {r.principal for r in only_receiver} == {"User:web"}
    lines = kafka_acls_commands(only_receiver, "k:9093", "admin.properties")
    assert (
        f"kafka-acls.sh --bootstrap-server k:9093 --command-config admin.properties --add --allow-principal "
        f"User:web --operation Describe --operation Write --topic {T.events}"
    ) in lines
    consumer = kafka_acls_commands(acls(T, "grp", {"consumer": "c"}), "k:9093", "a.properties")
    assert any(line.endswith("--operation Read --group grp --resource-pattern-type prefixed") for line in consumer)
