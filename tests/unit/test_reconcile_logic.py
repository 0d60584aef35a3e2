"""Pure parts of reconcile, jobs and the schedule."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from nbzx.common.config import parse_config
from nbzx.core.diff import grace_expired
from nbzx.core.model import Plan
from nbzx.jobs.reconcile import delete_cap, held_back
from nbzx.jobs.records import materialise, newest_first
from nbzx.jobs.schedule import first_slot_after, next_run, parse_time
from nbzx.jobs.system import missing_settings
from nbzx.schemas.messages import JobRecord

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("spec", "owned", "cap"),
    [
        ("10%", 200, 20),
        ("10%", 5, 1),
        ("0%", 100, 0),
        ("0", 100, 0),
        (0, 100, 0),
        ("0.5%", 100, 1),
        (3, 100, 3),
        ("25", 100, 25),
        ("2.5%", 1000, 25),
    ],
)
def test_delete_cap(spec: str | int, owned: int, cap: int) -> None:
    assert delete_cap(spec, owned) == cap


def test_deletes_over_the_cap_are_held_back_and_nothing_else() -> None:
    plans = {
        "dcim.device:1": Plan(host_key="dcim.device:1", action="create"),
        "dcim.device:2": Plan(host_key="dcim.device:2", action="update", hostid="2", changes={"status": 1}),
        "dcim.device:3": Plan(host_key="dcim.device:3", action="update", hostid="3", removes=True),
        "dcim.device:4": Plan(host_key="dcim.device:4", action="delete", hostid="4", removes=True),
        "dcim.device:5": Plan(host_key="dcim.device:5", action="noop", hostid="5"),
    }
    assert held_back(plans, 1) == ["dcim.device:3", "dcim.device:4"], "over the cap: every delete, only deletes"
    assert held_back(plans, 2) == [], "at the cap: nothing held"
    assert held_back(plans, delete_cap("0%", 5)) == ["dcim.device:3", "dcim.device:4"]


def test_grace() -> None:
    assert grace_expired("2026-10-01", "30d", "2026-11-23")
    assert not grace_expired("2026-11-20", "30d", "2026-11-23")
    assert not grace_expired("2026-10-01", None, "2026-11-23")
    assert not grace_expired("not-a-date", "1d", "2026-11-23")


def test_first_slot_after_start() -> None:
    assert first_slot_after(T0, 60, T0 - timedelta(hours=5)) == T0
    assert first_slot_after(T0, 60, T0) == T0 + timedelta(hours=1)
    assert first_slot_after(T0, 15, T0 + timedelta(minutes=31)) == T0 + timedelta(minutes=45)


def test_next_run_is_previous_plus_interval_even_after_a_failure() -> None:
    now = T0 + timedelta(minutes=1)
    assert next_run(T0, T0, 5, now) == T0 + timedelta(minutes=5)
    # scheduler down past a slot: the missed run happens now, once; then the chain continues from it
    late = T0 + timedelta(hours=3)
    assert next_run(T0, T0, 60, late) == late
    assert next_run(None, T0, 60, T0 - timedelta(minutes=1)) == T0


def test_parse_time() -> None:
    assert parse_time("2026-11-01T00:00Z") == datetime(2026, 11, 1, tzinfo=UTC)
    assert parse_time("2026-11-01T00:00") == datetime(2026, 11, 1, tzinfo=UTC)


def test_latest_record_per_job_wins() -> None:
    a1 = JobRecord(job_id="a", job_kind="reconcile", status="running", created="2026-11-23T10:00:00")
    a2 = JobRecord(job_id="a", job_kind="reconcile", status="completed", created="2026-11-23T10:00:00")
    b = JobRecord(job_id="b", job_kind="backfill", status="pending", created="2026-11-23T11:00:00")
    jobs = materialise([a1, b, a2])
    assert jobs["a"].status == "completed"
    assert [j.job_id for j in newest_first(jobs)] == ["b", "a"]


def test_settings_import_names_what_the_config_wants_and_zabbix_lacks() -> None:
    host = parse_config(
        json.dumps(
            {
                "host": {
                    "templates": [
                        {"match": {"role": "server"}, "templates": ["Linux by Zabbix agent", "Gone A"]},
                        {"match": {"role": "switch"}, "templates": ["Gone B"]},
                    ],
                    "proxy": "proxy-1",
                }
            }
        ),
        {},
    ).host
    have = ["Linux by Zabbix agent"]
    assert missing_settings(host, have, ["proxy-1"], None) == {"templates": ["Gone A", "Gone B"]}
    assert missing_settings(host, [*have, "Gone A", "Gone B"], [], None) == {"proxies": ["proxy-1"]}
    templated = msgspec.structs.replace(host, templates=[], proxy="{site.slug}-proxy", proxy_group="pg")
    assert missing_settings(templated, have, [], None) == {}, "a templated proxy depends on the host; 6.0 has no groups"
    assert missing_settings(templated, have, [], ["other"]) == {"proxy_groups": ["pg"]}
