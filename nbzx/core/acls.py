"""The Kafka ACLs each process of the service needs on a cluster that enforces them, and no more
(DESIGN §3). Pure: from the topic names and the consumer group of the config.

What each one does, from the code:
- receiver: produces events (webhooks) and control records (reconcile requests, its scheduler);
  reads the jobs topic for `GET /jobs` (no group).
- consumer: the delivery group on events; the control loop (group `<group>-control`); the change-log
  follower (group and transactional id `<group>-changelog`); fan-out and "sync now" write events;
  writes dead letters, host statuses, job records and cursors, and reads them back (outcomes, jobs,
  the change log). `nbzx jobs backfill` and `nbzx dlq retry`, run with the consumer's credentials,
  use groups under the same prefix.
- console: reads jobs, host statuses, dead letters and the change-log cursor (no group); writes
  control records, events ("sync now", retries) and job records.
- hook: `nbzx kafka init` (the chart's pre-install Job) lists and creates the topics.
Every topic a process touches also needs DESCRIBE (metadata).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal

from msgspec import Struct

from nbzx.common.config import TopicsConfig

Resource = Literal["TOPIC", "GROUP", "TRANSACTIONAL_ID"]
Pattern = Literal["LITERAL", "PREFIXED"]
COMPONENTS = ("receiver", "consumer", "console", "hook")


class Acl(Struct, frozen=True, order=True):
    """One ALLOW rule: `principal` may do `operation` on the resource named `name` (or prefixed so)."""

    principal: str
    resource: Resource
    name: str
    pattern: Pattern
    operation: str


def _topics(topics: Iterable[str], *operations: str) -> list[tuple[Resource, str, Pattern, str]]:
    return [("TOPIC", t, "LITERAL", op) for t in topics for op in ("DESCRIBE", *operations)]


def needs(topics: TopicsConfig, group: str) -> dict[str, list[tuple[Resource, str, Pattern, str]]]:
    """component -> (resource, name, pattern, operation) it needs; see the module's docstring."""
    t = topics
    return {
        "receiver": [*_topics([t.events, t.control], "WRITE"), *_topics([t.jobs], "READ")],
        "consumer": [
            *_topics([t.events, t.control, t.dlq, t.host_status, t.jobs, t.changelog], "READ", "WRITE"),
            ("GROUP", group, "PREFIXED", "READ"),
            ("TRANSACTIONAL_ID", f"{group}-changelog", "LITERAL", "WRITE"),
            ("TRANSACTIONAL_ID", f"{group}-changelog", "LITERAL", "DESCRIBE"),
        ],
        "console": [
            *_topics([t.jobs, t.host_status, t.dlq, t.changelog], "READ"),
            *_topics([t.control, t.events, t.jobs], "WRITE"),
        ],
        "hook": _topics([t.events, t.control, t.dlq, t.host_status, t.jobs, t.changelog], "CREATE"),
    }


def acls(topics: TopicsConfig, group: str, users: Mapping[str, str]) -> list[Acl]:
    """The ACLs of the components named in `users` (component -> SCRAM or certificate user), sorted
    and without repeats."""
    wanted = needs(topics, group)
    out = {
        Acl(principal=f"User:{user}", resource=r, name=n, pattern=p, operation=op)
        for component, user in users.items()
        for r, n, p, op in wanted[component]
    }
    return sorted(out)


def kafka_acls_commands(rules: Iterable[Acl], bootstrap: str, command_config: str) -> list[str]:
    """The rules as `kafka-acls.sh` command lines, one per principal, resource and operation set."""
    flag = {"TOPIC": "--topic", "GROUP": "--group", "TRANSACTIONAL_ID": "--transactional-id"}
    grouped: dict[tuple[str, str, str, str], list[str]] = {}
    for a in rules:
        grouped.setdefault((a.principal, a.resource, a.name, a.pattern), []).append(a.operation)
    lines = []
    for (principal, resource, name, pattern), ops in grouped.items():
        operations = " ".join(f"--operation {op.title().replace('_', '')}" for op in ops)
        prefixed = " --resource-pattern-type prefixed" if pattern == "PREFIXED" else ""
        lines.append(
            f"kafka-acls.sh --bootstrap-server {bootstrap} --command-config {command_config} --add "
            f"--allow-principal {principal} {operations} {flag[resource]} {name}{prefixed}"
        )
    return lines
