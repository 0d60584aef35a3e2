"""A short chaos soak (bench/chaos.py) in the test command: two minutes of NetBox changes under
consumer kills, rebalances, broker, Zabbix and NetBox outages, then every invariant, with no reconcile.
It runs with two Zabbix servers (6.0 and 7.0, routed by site, devices moving between them, either one
taken down), which covers the one-server path too, on the secure three-broker cluster (SASL_SSL, each
process with its own ACLs), whose broker faults start with kill -9 of a partition leader.
`bench/chaos.py --minutes 20 --seed N --servers 2 --secure` runs the long one."""

from __future__ import annotations

from typing import Any

from bench.chaos import print_report, soak
from tests.conftest import ensure_stack


async def test_two_minutes_of_changes_and_faults_on_two_servers_and_the_secure_cluster_lose_nothing(
    netbox_api: Any, zabbix_api: Any
) -> None:
    ensure_stack("kafka3", "zabbix", "zabbix7", "netbox")
    report = await soak(minutes=2.0, seed=7, servers=2, secure=True)
    print_report(report)
    assert sum(report.faults.values()) >= 3, "faults were injected"
    assert report.faults.get("leader_kill9", 0) >= 1, "a partition leader was killed"
    # NetBox's API sets the pace (0.5-1.5 changes/s here, slower under load): enough to mean something.
    assert sum(report.changes.values()) >= 10, "changes were made"
    assert report.violations == [], "\n".join(report.violations)
    assert report.converge_s is not None
