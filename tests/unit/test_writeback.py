"""Write-back decisions: which outcome changes give a journal entry (and its kind), which custom field
values are written, and that our own write, read back, asks for nothing more."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from nbzx.common.config import WriteBackConfig
from nbzx.core.planner import SyncResult
from nbzx.core.writeback import field_values, journal_entry, sync_state, write_back

CFG = WriteBackConfig(journal=True, custom_fields=True)
NOW = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)
ZBX_URL = "http://zabbix.example"
ZBX = {"default": ZBX_URL}


def result(**kw: Any) -> SyncResult:
    base: dict[str, Any] = {"host_key": "dcim.device:7", "action": "noop", "result": "skipped", "host": "srv-7"}
    base.update(kw)
    base.setdefault("hostid", "10500")
    base.setdefault("custom_fields", dict.fromkeys(("nbzx_zabbix_hostid", "nbzx_sync_state", "nbzx_synced_at")))
    return SyncResult(**base)


CREATED = result(action="create", result="ok", changed=["groups", "host"])
NOOP = result()
FAILED = result(action="update", result="error", error="Invalid params: unknown template", hostid="10500")
CONFLICT = result(action="conflict", result="conflict", hostid="10777", reason="Zabbix host 'srv-7' already exists")
ARCHIVED = result(action="update", result="ok", removes=True, reason="out of scope")
SKIPPED = result(action="skip", result="skipped", hostid=None, reason="no primary IP and require_primary_ip is set")


@pytest.mark.parametrize(
    ("r", "retrying", "state"),
    [
        (CREATED, False, "in_sync"),
        (NOOP, False, "in_sync"),
        (FAILED, False, "failed"),
        (FAILED, True, None),  # still being retried: not settled, nothing written
        (CONFLICT, False, "conflict"),
        (ARCHIVED, False, "removed"),
        (SKIPPED, False, "skipped"),
        (result(hostid=None, reason="deleted in NetBox; no host in Zabbix"), False, None),
    ],
)
def test_sync_state_of_each_outcome(r: SyncResult, retrying: bool, state: str | None) -> None:
    assert sync_state(r, retrying) == state


def kind(r: SyncResult, previous: str | None, retrying: bool = False) -> str | None:
    entry = journal_entry(r, sync_state(r, retrying), previous, ZBX)  # type: ignore[arg-type]
    return entry.kind if entry else None


def test_created_is_an_info_entry_with_a_link_to_the_zabbix_host() -> None:
    entry = journal_entry(CREATED, "in_sync", None, ZBX)
    assert entry is not None and entry.kind == "info"
    assert f"([hostid 10500]({ZBX_URL}/zabbix.php?action=host.edit&hostid=10500))" in entry.comments
    assert "Changed: groups, host." in entry.comments


def test_failing_is_danger_once_with_zabbixs_error_and_not_while_retrying() -> None:
    entry = journal_entry(FAILED, "failed", "in_sync", ZBX)
    assert entry is not None and entry.kind == "danger"
    assert "Invalid params: unknown template" in entry.comments
    assert kind(FAILED, "failed") is None, "still failing: no second entry"
    assert kind(FAILED, "in_sync", retrying=True) is None, "a transient failure being retried writes nothing"
    assert kind(FAILED, None) == "danger", "previous unknown (a fresh status topic): say it once"


def test_recovery_is_success_and_only_after_a_failure_or_conflict() -> None:
    assert kind(NOOP, "failed") == "success"
    assert kind(NOOP, "conflict") == "success"
    assert kind(NOOP, "in_sync") is None
    assert kind(NOOP, None) is None, "recovered from what? unknown previous writes nothing"


def test_removed_conflict_and_skipped_are_warnings() -> None:
    assert kind(ARCHIVED, "in_sync") == "warning"
    assert kind(result(action="noop", removes=True, reason="archived 2026-11-01"), "removed") is None
    assert kind(result(action="noop", removes=True), None) is None, "already archived: nothing happened now"
    assert kind(CONFLICT, "in_sync") == "warning"
    assert kind(CONFLICT, "conflict") is None
    assert kind(SKIPPED, "in_sync") == "warning"
    assert kind(SKIPPED, None) is None


def test_no_entry_for_an_object_gone_from_netbox() -> None:
    gone = result(action="delete", result="ok", removes=True, in_netbox=False, custom_fields=None)
    assert journal_entry(gone, "removed", "in_sync", ZBX) is None


def test_fields_written_when_they_differ_with_the_time_of_the_change() -> None:
    values = field_values(CREATED, "in_sync", CFG, NOW)
    assert values == {
        "nbzx_sync_state": "in_sync",
        "nbzx_zabbix_hostid": 10500,
        "nbzx_synced_at": "2026-11-30T03:00:00+00:00",
    }


def test_our_own_write_read_back_asks_for_nothing() -> None:
    """The no-loop promise: after the fields are written, the sync NetBox's webhook causes writes nothing."""
    values = field_values(CREATED, "in_sync", CFG, NOW)
    assert values is not None
    as_read = {**values, "nbzx_synced_at": "2026-11-30T03:00:00Z", "other_field": "x"}
    again = msgspec.structs.replace(NOOP, custom_fields=as_read)
    assert field_values(again, "in_sync", CFG, NOW) is None
    wb = write_back(again, sync_state(again, False), "in_sync", CFG, ZBX, NOW)
    assert wb.journal is None and wb.fields is None


def test_a_failure_keeps_the_hostid_and_a_hard_delete_clears_it() -> None:
    failed = field_values(msgspec.structs.replace(FAILED, hostid=None), "failed", CFG, NOW)
    assert failed is not None and "nbzx_zabbix_hostid" not in failed
    deleted = result(
        action="delete",
        result="ok",
        removes=True,
        hostid=None,
        custom_fields={"nbzx_zabbix_hostid": 5, "nbzx_sync_state": "in_sync"},
    )
    values = field_values(deleted, "removed", CFG, NOW)
    assert values is not None and values["nbzx_zabbix_hostid"] is None


def test_nothing_written_when_not_read_or_not_settled_or_turned_off() -> None:
    assert field_values(msgspec.structs.replace(CREATED, custom_fields=None), "in_sync", CFG, NOW) is None
    no_fields = msgspec.structs.replace(CREATED, custom_fields={"other": 1})
    assert field_values(no_fields, "in_sync", CFG, NOW) is None, "fields never created: not written every sync"
    assert field_values(FAILED, None, CFG, NOW) is None
    off = write_back(CREATED, "in_sync", None, WriteBackConfig(), ZBX, NOW)
    assert off.journal is None and off.fields is None
    journal_only = write_back(CREATED, "in_sync", None, WriteBackConfig(journal=True), ZBX, NOW)
    assert journal_only.journal is not None and journal_only.fields is None


def test_a_key_that_is_not_a_hosts_gets_nothing() -> None:
    fanout = SyncResult(host_key="dcim.site:5", action="sync", result="error", error="NetBox answered 400")
    wb = write_back(fanout, sync_state(fanout, False), "in_sync", CFG, ZBX, NOW)
    assert (wb.state, wb.journal, wb.fields) == (None, None, None)


def test_field_names_are_checked() -> None:
    with pytest.raises(ValueError, match="lowercase"):
        WriteBackConfig(state_field="Sync State")


def test_outcomes_keep_the_newest_state_whatever_order_statuses_come_in() -> None:
    """The consumer records a status before publishing it; its follower brings older ones later."""
    from nbzx.common.config import Config
    from nbzx.delivery.outcomes import Outcomes
    from nbzx.schemas.messages import HostStatus

    outcomes = Outcomes(Config())
    outcomes.follower.caught_up.set()
    newer = HostStatus(host_key="dcim.device:7", state="failed", synced_at="2026-11-30T03:00:01.500000+00:00")
    older = HostStatus(host_key="dcim.device:7", state="in_sync", synced_at="2026-11-30T03:00:01+00:00")
    retrying = HostStatus(host_key="dcim.device:7", state=None, synced_at="2026-11-30T03:00:02+00:00")
    for status in (newer, older, retrying):
        outcomes.record(status)
    assert outcomes.previous("dcim.device:7") == "failed"
    assert outcomes.previous("dcim.device:8") is None
    outcomes.follower.caught_up.clear()
    assert outcomes.previous("dcim.device:7") is None, "not caught up: unknown"


def test_an_adopted_host_gets_its_own_entry_with_a_link() -> None:
    from nbzx.core.writeback import adopted_entry

    adopted = result(action="update", result="ok", changed=["groups", "tags"], hostid="10777")
    entry = adopted_entry(adopted, ZBX)
    assert entry.kind == "info" and "Adopted: Zabbix host `srv-7`" in entry.comments
    assert "hostid=10777" in entry.comments and "Changed: groups, tags." in entry.comments


def test_with_several_servers_an_entry_links_the_host_on_each_server_that_keeps_it() -> None:
    urls = {"old": "http://z6", "new": "http://z7"}
    both = msgspec.structs.replace(CREATED, servers={"old": "11", "new": "22"})
    entry = journal_entry(both, "in_sync", None, urls)
    assert entry is not None
    assert "(on old: [hostid 11](http://z6/zabbix.php?action=host.edit&hostid=11), " in entry.comments
    assert "on new: [hostid 22](http://z7/zabbix.php?action=host.edit&hostid=22))" in entry.comments
