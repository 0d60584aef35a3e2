"""Webhook verification and normalisation on the real NetBox 4.7.3 captures, and older body shapes."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nbzx.core.webhook import (
    Delivery,
    WebhookError,
    changed_fields,
    host_key,
    inspect_delivery,
    normalise,
    parse_body,
    sign,
)
from nbzx.schemas.objects import DEPENDENCY_OBJECT_TYPES, HOST_OBJECT_TYPES
from tests.conftest import HOOK_SECRET, captures

SCOPE = (*HOST_OBJECT_TYPES, *DEPENDENCY_OBJECT_TYPES)
CAPTURES = captures()

# What each capture must normalise to: (event, object_type, object_id, host_key, changed fields or None).
EXPECTED = {
    "01-created-dcim_device.json": ("created", "dcim.device", 1, "dcim.device:1", None),
    "02-created-dcim_interface.json": ("created", "dcim.interface", 1, "dcim.device:1", None),
    "03-created-ipam_ipaddress.json": ("created", "ipam.ipaddress", 1, "dcim.device:1", None),
    "04-updated-dcim_device.json": ("updated", "dcim.device", 1, "dcim.device:1", ["primary_ip4"]),
    "05-updated-dcim_device.json": ("updated", "dcim.device", 1, "dcim.device:1", ["name", "status", "tags"]),
    "06-updated-dcim_device.json": ("updated", "dcim.device", 1, "dcim.device:1", ["comments"]),
    "07-deleted-ipam_ipaddress.json": ("deleted", "ipam.ipaddress", 1, "dcim.device:1", None),
    "08-deleted-dcim_device.json": ("deleted", "dcim.device", 1, "dcim.device:1", None),
    "09-deleted-dcim_interface.json": ("deleted", "dcim.interface", 1, "dcim.device:1", None),
    "10-created-virtualization_virtualmachine.json": (
        "created",
        "virtualization.virtualmachine",
        1,
        "virtualization.virtualmachine:1",
        None,
    ),
    "11-updated-virtualization_virtualmachine.json": (
        "updated",
        "virtualization.virtualmachine",
        1,
        "virtualization.virtualmachine:1",
        ["memory", "status"],
    ),
    "12-deleted-virtualization_virtualmachine.json": (
        "deleted",
        "virtualization.virtualmachine",
        1,
        "virtualization.virtualmachine:1",
        None,
    ),
    "13-created-dcim_device.json": ("created", "dcim.device", 802, "dcim.device:802", None),
    "14-created-dcim_device.json": ("created", "dcim.device", 803, "dcim.device:803", None),
    "15-created-dcim_device.json": ("created", "dcim.device", 804, "dcim.device:804", None),
    "16-updated-dcim_device.json": ("updated", "dcim.device", 802, "dcim.device:802", ["comments"]),
}


def _inspect(raw: bytes, signature: str | None, content_type: str | None = "application/json") -> Any:
    return inspect_delivery(
        Delivery(raw, signature, content_type), HOOK_SECRET, max_body_bytes=1 << 20, object_types=SCOPE
    )


def test_every_capture_is_expected() -> None:
    assert sorted(c["file"] for c in CAPTURES) == sorted(EXPECTED)


@pytest.mark.parametrize("cap", CAPTURES, ids=lambda c: c["file"])
def test_capture_verifies_and_normalises(cap: dict[str, Any]) -> None:
    raw = cap["raw_body"].encode()
    result = _inspect(raw, cap["headers"]["X-Hook-Signature"], cap["headers"]["Content-Type"])
    assert result.status == 202 and result.signature_valid
    ev = result.event
    event, object_type, object_id, key, changed = EXPECTED[cap["file"]]
    assert (ev.event, ev.object_type, ev.object_id, ev.host_key) == (event, object_type, object_id, key)
    if changed is not None:
        assert ev.changed == changed
    else:  # create/delete: every snapshot field counts as changed
        snap = cap["body"]["snapshots"]["postchange"] or cap["body"]["snapshots"]["prechange"]
        assert ev.changed == sorted(snap)
    assert ev.user == "admin" and ev.request_id == cap["body"]["request"]["id"]
    assert bytes(ev.body) == raw, "the original bytes are kept as NetBox signed them"
    assert ev.body_json() == cap["body"]


@pytest.mark.parametrize("cap", CAPTURES[:4] + CAPTURES[10:11], ids=lambda c: c["file"])
def test_a_changed_byte_anywhere_is_401(cap: dict[str, Any]) -> None:
    raw = cap["raw_body"].encode()
    sig = cap["headers"]["X-Hook-Signature"]
    for pos in range(0, len(raw), max(1, len(raw) // 40)):
        tampered = raw[:pos] + bytes([raw[pos] ^ 0x01]) + raw[pos + 1 :]
        result = _inspect(tampered, sig)
        assert result.status == 401 and result.event is None
    assert _inspect(raw, None).status == 401
    assert _inspect(raw, sig[:-1] + ("0" if sig[-1] != "0" else "1")).status == 401
    assert _inspect(raw, sig.upper()).status == 202  # hex case does not matter


def _sig(body: bytes) -> str:
    return sign(HOOK_SECRET, body)


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"{not json", 400),
        (b"[1, 2, 3]", 400),
        (b'{"event": "created"}', 400),
        (b'{"data": {"id": 1}}', 400),
        (b'{"event": "exploded", "object_type": "dcim.device", "data": {"id": 1}}', 400),
        (b'{"event": "created", "object_type": "dcim.device", "data": {"id": "1"}}', 400),
        (b'{"event": "created", "data": {"id": 1}}', 400),
        (b"\xff\xfe", 400),
    ],
)
def test_bad_bodies_are_400_with_a_reason(raw: bytes, status: int) -> None:
    result = _inspect(raw, _sig(raw))
    assert result.status == status and result.event is None and result.reason


def test_huge_body_is_413_before_anything_else() -> None:
    raw = b'{"event": "created", "pad": "' + b"x" * (1 << 20) + b'"}'
    result = _inspect(raw, None)
    assert result.status == 413 and result.event is None


def test_wrong_content_type_is_415() -> None:
    raw = CAPTURES[0]["raw_body"].encode()
    assert _inspect(raw, _sig(raw), "text/plain").status == 415
    assert _inspect(raw, _sig(raw), None).status == 415
    assert _inspect(raw, _sig(raw), "application/json; charset=utf-8").status == 202


def test_out_of_scope_object_type_is_ignored_with_202() -> None:
    body = {"event": "created", "object_type": "circuits.circuit", "data": {"id": 4}}
    raw = json.dumps(body).encode()
    result = _inspect(raw, _sig(raw))
    assert result.status == 202 and result.event is None and result.ignored == "circuits.circuit"


# ---- older body versions, built from the 4.7.3 captures ----


def _v46(body: dict[str, Any]) -> dict[str, Any]:
    """4.6: request{id,method,path,user} without path_info and GET."""
    b = copy.deepcopy(body)
    b["request"] = {k: b["request"][k] for k in ("id", "method", "path", "user")}
    return b


def _v45(body: dict[str, Any]) -> dict[str, Any]:
    """4.5: object_type, username and request_id, no model, no request."""
    b = copy.deepcopy(body)
    req = b.pop("request")
    b["username"], b["request_id"] = req["user"], req["id"]
    return b


def _v44(body: dict[str, Any]) -> dict[str, Any]:
    """4.4: model as well as object_type."""
    b = _v45(body)
    b["model"] = b["object_type"].split(".")[1]
    return b


def _v43(body: dict[str, Any]) -> dict[str, Any]:
    """<= 4.3: model (no app label), username, request_id; no object_type."""
    b = _v44(body)
    del b["object_type"]
    return b


@pytest.mark.parametrize("shape", [_v46, _v45, _v44, _v43], ids=["4.6", "4.5", "4.4", "<=4.3"])
@pytest.mark.parametrize("cap", CAPTURES, ids=lambda c: c["file"])
def test_older_body_versions_parse_to_the_same_event(cap: dict[str, Any], shape: Any) -> None:
    new = normalise(cap["body"])
    old = normalise(shape(cap["body"]))
    for attr in ("event", "object_type", "object_id", "host_key", "changed", "user", "request_id", "timestamp"):
        assert getattr(old, attr) == getattr(new, attr), attr


def test_event_rule_names_are_accepted() -> None:
    body = {"event": "object_updated", "object_type": "dcim.site", "data": {"id": 3}}
    assert normalise(body).event == "updated"


# ---- host keys ----


def test_host_keys_for_parts_and_dependencies() -> None:
    assert (
        host_key("virtualization.vminterface", 9, {"virtual_machine": {"id": 4}}) == "virtualization.virtualmachine:4"
    )
    assert host_key("dcim.site", 3, {}) == "dcim.site:3"
    assert host_key("extras.tag", 2, {}) == "extras.tag:2"
    unassigned = {"assigned_object_type": None, "assigned_object": None}
    assert host_key("ipam.ipaddress", 5, unassigned) == "ipam.ipaddress:5"
    on_vm = {"assigned_object_type": "virtualization.vminterface", "assigned_object": {"virtual_machine": {"id": 8}}}
    assert host_key("ipam.ipaddress", 5, on_vm) == "virtualization.virtualmachine:8"


def test_virtual_chassis_member_maps_to_master_only_when_configured() -> None:
    data = {"id": 12, "virtual_chassis": {"id": 1, "master": {"id": 10}}}
    assert host_key("dcim.device", 12, data) == "dcim.device:12"
    assert host_key("dcim.device", 12, data, vc_as_one_host=True) == "dcim.device:10"
    assert host_key("dcim.device", 12, {"virtual_chassis": None}, vc_as_one_host=True) == "dcim.device:12"


def test_ip_moved_between_interfaces_records_previous_owner() -> None:
    cap = next(c for c in CAPTURES if c["file"].startswith("03-"))
    body = copy.deepcopy(cap["body"])
    body["event"] = "updated"
    post = dict(body["snapshots"]["postchange"])
    body["snapshots"] = {"prechange": {**post, "assigned_object_id": 77}, "postchange": post}
    ev = normalise(body)
    assert ev.host_key == "dcim.device:1"
    assert ev.previous_owner is not None and ev.previous_owner.object_id == 77
    assert ev.previous_owner.content_type_id == post["assigned_object_type"]
    assert ev.changed == ["assigned_object_id"]


def test_ip_unassigned_keys_to_itself_and_remembers_the_old_owner() -> None:
    cap = next(c for c in CAPTURES if c["file"].startswith("03-"))
    body = copy.deepcopy(cap["body"])
    body["event"] = "updated"
    pre = dict(body["snapshots"]["postchange"])
    body["data"].update(assigned_object_type=None, assigned_object_id=None, assigned_object=None)
    body["snapshots"] = {
        "prechange": pre,
        "postchange": {**pre, "assigned_object_type": None, "assigned_object_id": None},
    }
    ev = normalise(body)
    assert ev.host_key == "ipam.ipaddress:1"
    assert ev.previous_owner is not None and ev.previous_owner.object_id == pre["assigned_object_id"]


def test_changed_fields() -> None:
    assert changed_fields({"a": 1, "b": 2}, {"a": 1, "b": 3, "c": 0}) == ["b", "c"]
    assert changed_fields(None, None) == []
    assert changed_fields({"a": 1}, {"a": 1}) == []  # a no-op PATCH


# ---- property-based: the parser raises nothing but its own error ----

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=20,
)
_bodyish = st.fixed_dictionaries(
    {},
    optional={
        "event": st.sampled_from(["created", "updated", "deleted", "object_created", "x"]) | _json,
        "object_type": st.sampled_from(["dcim.device", "ipam.ipaddress", "dcim.interface"]) | _json,
        "model": st.sampled_from(["device", "dcim.device"]) | _json,
        "data": st.fixed_dictionaries(
            {},
            optional={
                "id": st.integers() | _json,
                "url": _json,
                "assigned_object_type": _json,
                "assigned_object": _json,
                "device": _json,
                "virtual_machine": _json,
            },
        )
        | _json,
        "snapshots": st.fixed_dictionaries({}, optional={"prechange": _json, "postchange": _json}) | _json,
        "request": _json,
    },
)


@settings(max_examples=400, deadline=None)
@given(st.one_of(_json, _bodyish))
def test_arbitrary_json_raises_only_webhook_error(body: Any) -> None:
    try:
        ev = normalise(body)
    except WebhookError as exc:
        assert exc.status == 400
    else:
        assert re.fullmatch(r"[a-z_]+\.[a-z_]+:-?\d+", ev.host_key), ev.host_key


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_webhook_error(raw: bytes) -> None:
    try:
        parse_body(raw)
    except WebhookError as exc:
        assert exc.status == 400


OWN = ("nbzx_zabbix_hostid", "nbzx_sync_state", "nbzx_synced_at")


def _cf_update(pre: dict[str, Any], post: dict[str, Any], other: dict[str, Any] | None = None) -> Delivery:
    """The real capture of a device update, its snapshots changed as NetBox sends them for a custom-field
    write (and `other` top-level changes), signed again."""
    body = copy.deepcopy(next(c for c in CAPTURES if c["file"] == "06-updated-dcim_device.json")["body"])
    for snap, cf in (("prechange", pre), ("postchange", post)):
        body["snapshots"][snap]["custom_fields"] = cf
        body["snapshots"][snap]["comments"] = "same"
    body["snapshots"]["postchange"].update(other or {})
    raw = json.dumps(body).encode()
    return Delivery(raw, sign(HOOK_SECRET, raw), "application/json")


def inspect_own(delivery: Delivery, own: tuple[str, ...] = OWN) -> Any:
    return inspect_delivery(delivery, HOOK_SECRET, max_body_bytes=10**6, object_types=SCOPE, own_fields=own)


def test_an_update_of_only_write_backs_own_custom_fields_is_dropped_and_anything_else_goes_on() -> None:
    before = {"nbzx_sync_state": "failed", "nbzx_zabbix_hostid": 10501, "nbzx_synced_at": None, "env": "prod"}
    ours = {**before, "nbzx_sync_state": "in_sync", "nbzx_synced_at": "2026-11-30T02:00:00Z"}
    dropped = inspect_own(_cf_update(before, ours))
    assert (dropped.status, dropped.event, dropped.reason) == (202, None, "only write-back's own custom fields changed")
    theirs = inspect_own(_cf_update(before, {**ours, "env": "dev"}))
    assert theirs.event is not None and theirs.event.changed == ["custom_fields"], "a person's change goes on"
    mixed = inspect_own(_cf_update(before, ours, {"description": "changed by hand"}))
    assert mixed.event is not None and mixed.event.changed == ["custom_fields", "description"]
    off = inspect_own(_cf_update(before, ours), own=())
    assert off.event is not None, "write-back off: nothing is ours"
