"""The change-log follower's pure core: the cursor step (ids, holes, settling) and object change ->
ChangeEvent, on object-change rows copied from NetBox 4.7's `core/object-changes/`."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from nbzx.core.changelog import MAX_HOLES, change_event, ip_assignment, step
from nbzx.core.webhook import OWN_WRITE, WebhookError, ignored
from nbzx.engine.fanout import fanout_filters
from nbzx.schemas.messages import ChangelogCursor, decode, encode

ROWS = Path(__file__).resolve().parents[1] / "fixtures" / "netbox-changelog"
TYPES = ["dcim.device", "dcim.interface", "ipam.ipaddress", "dcim.site"]


def row(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((ROWS / f"{name}.json").read_text())
    return loaded


# The cursor


def test_new_ids_are_emitted_once_in_order_and_move_the_top() -> None:
    s = step(ChangelogCursor(top=10), [13, 11, 12], [], now=100.0, settle_s=300)
    assert s.emit == [11, 12, 13]
    assert s.cursor.top == 13 and s.cursor.holes == {}
    assert (s.cursor.window_from, s.cursor.emitted, s.cursor.emitted_total) == (10, 3, 3)
    again = step(s.cursor, [12, 13], [], now=101.0, settle_s=300)  # NetBox asked again: nothing twice
    assert again.emit == [] and again.cursor.top == 13


def test_an_id_skipped_over_is_a_hole_until_it_appears_then_emitted_once() -> None:
    s = step(ChangelogCursor(top=10), [11, 14], [], now=100.0, settle_s=300)
    assert s.emit == [11, 14]
    assert s.cursor.holes == {12: 100.0, 13: 100.0}  # a transaction still open when 14 committed
    s2 = step(s.cursor, [15], [13], now=105.0, settle_s=300)
    assert s2.emit == [13, 15]
    assert s2.cursor.holes == {12: 100.0}
    s3 = step(s2.cursor, [], [13], now=106.0, settle_s=300)  # a filled hole shown again is not re-emitted
    assert s3.emit == []


def test_a_hole_missing_longer_than_settle_is_given_up_and_counted() -> None:
    s = step(ChangelogCursor(top=10), [12], [], now=100.0, settle_s=300)
    assert step(s.cursor, [], [], now=399.0, settle_s=300).gave_up == []
    late = step(s.cursor, [], [], now=401.0, settle_s=300)
    assert late.gave_up == [11]
    assert late.cursor.holes == {} and late.cursor.gave_up == 1


def test_a_first_cursor_on_an_empty_change_log_waits_for_nothing_below() -> None:
    s = step(ChangelogCursor(top=0), [5_000_000], [], now=1.0, settle_s=300)
    assert s.emit == [5_000_000] and s.cursor.holes == {}


def test_one_gap_keeps_at_most_max_holes() -> None:
    s = step(ChangelogCursor(top=1), [MAX_HOLES * 3], [], now=1.0, settle_s=300)
    assert len(s.cursor.holes) == MAX_HOLES
    assert max(s.cursor.holes) == MAX_HOLES * 3 - 1


def test_the_cursor_survives_the_wire_with_its_holes() -> None:
    s = step(ChangelogCursor(top=10, leader="a"), [11, 14], [], now=100.5, settle_s=300)
    back = decode(encode(s.cursor))
    assert isinstance(back, ChangelogCursor)
    assert back.holes == {12: 100.5, 13: 100.5} and back.top == 14


# Object change -> ChangeEvent


def test_a_device_update_is_its_own_key_from_the_change_log() -> None:
    r = row("device-update")
    ev = change_event(r)
    assert ev.host_key == f"dcim.device:{r['changed_object_id']}"
    assert (ev.event, ev.object_type, ev.source, ev.change_id) == ("updated", "dcim.device", "changelog", r["id"])
    assert ev.request_id == r["request_id"] and ev.user == r["user_name"]
    pre, post = r["prechange_data"], r["postchange_data"]
    assert ev.changed == sorted(k for k in pre.keys() | post.keys() if pre.get(k) != post.get(k))


def test_an_interface_change_belongs_to_its_device_from_the_flat_snapshot() -> None:
    r = row("interface-create")
    assert isinstance(r["postchange_data"]["device"], int)  # flat, not nested as in a webhook's data
    assert change_event(r).host_key == f"dcim.device:{r['postchange_data']['device']}"


def test_a_delete_is_read_from_the_prechange_side() -> None:
    r = row("device-delete")
    assert r["postchange_data"] in ({}, None)
    ev = change_event(r)
    assert ev.event == "deleted" and ev.host_key == f"dcim.device:{r['changed_object_id']}"
    assert ev.body_json()["data"]["name"] == r["prechange_data"]["name"]


def test_an_ip_belongs_to_the_owner_read_for_it_and_a_move_names_the_old_one() -> None:
    r = row("ipaddress-update")
    assert ip_assignment(r) == (
        r["postchange_data"]["assigned_object_type"],
        r["postchange_data"]["assigned_object_id"],
    )
    assert change_event(r, owner="dcim.device:7").host_key == "dcim.device:7"
    assert change_event(r).host_key == f"ipam.ipaddress:{r['changed_object_id']}"  # owner unknown
    moved = copy.deepcopy(r)
    moved["postchange_data"]["assigned_object_id"] = r["prechange_data"]["assigned_object_id"] + 1000
    ev = change_event(moved, owner="dcim.device:7")
    assert ev.previous_owner is not None
    assert ev.previous_owner.object_id == r["prechange_data"]["assigned_object_id"]


def test_a_site_change_fans_out_like_its_webhook() -> None:
    r = row("site-update")
    ev = change_event(r)
    assert ev.host_key == f"dcim.site:{r['changed_object_id']}"
    assert fanout_filters(ev) == ({"site_id": r["changed_object_id"]}, {"site_id": r["changed_object_id"]})


def test_an_update_of_write_backs_own_fields_only_is_ignored() -> None:
    r = copy.deepcopy(row("device-update"))
    r["prechange_data"] = copy.deepcopy(r["postchange_data"])
    r["postchange_data"]["custom_fields"] = {**(r["postchange_data"].get("custom_fields") or {}), "nbzx_state": "x"}
    ev = change_event(r)
    assert ev.changed == ["custom_fields"]
    assert ignored(ev, TYPES, ("nbzx_state",)) == OWN_WRITE
    assert ignored(ev, TYPES, ()) is None
    assert ignored(ev, ["virtualization.virtualmachine"]) == "object type not in scope"


def test_a_row_without_a_known_action_is_refused() -> None:
    r = row("device-update")
    with pytest.raises(WebhookError, match="no known action"):
        change_event({**r, "action": {"value": "archive"}})


def test_a_change_whose_webhook_is_on_the_topic_is_known_delivered_for_ten_minutes() -> None:
    from nbzx.common.config import parse_config
    from nbzx.jobs.changelog import Delivered

    seen = Delivered(parse_config("{}", {}))
    webhook = change_event(row("device-update"))
    webhook = msgspec.structs.replace(webhook, source="webhook", change_id=None)
    assert not seen.has(change_event(row("device-update")))
    seen.add(webhook, now=100.0)
    assert seen.has(change_event(row("device-update")))  # same request, object type and id
    assert not seen.has(change_event(row("interface-create")))
    seen.add(msgspec.structs.replace(webhook, source="changelog", request_id="other"), now=101.0)
    assert len(seen.seen) == 1  # the follower's own events are not webhooks
    seen.add(change_event(row("interface-create")), now=100.0 + Delivered.KEEP_S + 1)
    assert not seen.has(change_event(row("device-update")))  # forgotten after KEEP_S
