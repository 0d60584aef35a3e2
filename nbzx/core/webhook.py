"""NetBox webhook bodies -> one normalised `ChangeEvent`. Pure: no I/O, no clock unless given.

Accepts every body shape NetBox has sent: <= 4.3 (`model`, `username`, `request_id`), 4.4 (adds
`object_type`), 4.5 (drops `model`), 4.6 (`request{id,method,path,user}`), 4.7 (`request` with
`path_info` and `GET`). `/webhook` and `nbzx webhook inspect` both go through `inspect_delivery`,
so the CLI tells an operator exactly what the endpoint did.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from nbzx.schemas.messages import ChangeEvent, Event, PreviousOwner

_EVENTS: dict[str, Event] = {
    "created": "created",
    "updated": "updated",
    "deleted": "deleted",
    "object_created": "created",
    "object_updated": "updated",
    "object_deleted": "deleted",
}
# `/api/<app>/<endpoint>/<id>/` in `data.url`, for old bodies whose `model` has no app label.
_URL = re.compile(r"/api/(?P<app>[a-z_]+)/(?P<endpoint>[a-z0-9-]+)/(?P<id>\d+)/?$")


class WebhookError(Exception):
    """A delivery that is refused; `status` is the HTTP status the receiver answers."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def sign(secret: str, raw: bytes) -> str:
    """NetBox's X-Hook-Signature: hex HMAC-SHA512 of the raw body."""
    return hmac.new(secret.encode(), raw, hashlib.sha512).hexdigest()


def signature_valid(secret: str, raw: bytes, header: str | None) -> bool:
    """Constant-time check of the signature header against the raw bytes (never re-serialised JSON)."""
    if not header or not secret:
        return False
    # As bytes: compare_digest refuses str with non-ASCII characters, and a header may hold any byte.
    return hmac.compare_digest(sign(secret, raw).encode(), header.strip().lower().encode("utf-8", "replace"))


def is_json_content_type(value: str | None) -> bool:
    """application/json, with or without parameters, or any +json type."""
    if not value:
        return False
    mime = value.split(";", 1)[0].strip().lower()
    return mime == "application/json" or mime.endswith("+json")


@dataclass(frozen=True)
class Delivery:
    """A webhook as received: raw bytes and the headers that matter."""

    raw: bytes
    signature: str | None
    content_type: str | None


@dataclass
class Inspection:
    """What the receiver decides for one delivery: the status, and the event when there is one."""

    status: int
    signature_valid: bool
    reason: str = ""
    event: ChangeEvent | None = None
    ignored: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


def inspect_delivery(
    delivery: Delivery,
    secret: str,
    *,
    max_body_bytes: int,
    object_types: Collection[str],
    vc_as_one_host: bool = False,
    received_at: float | None = None,
    own_fields: Collection[str] = (),
) -> Inspection:
    """The receiver's whole decision for one delivery, in the order DESIGN.md gives.

    401 bad or missing signature, 413 over the limit, 415 not JSON, 400 not a NetBox event,
    202 with `ignored` for an object type out of scope or for an update that changed nothing but
    `own_fields` (the custom fields write-back writes), else 202 with the event to produce.
    """
    if len(delivery.raw) > max_body_bytes:
        return Inspection(413, False, f"body is {len(delivery.raw)} bytes, over the {max_body_bytes} limit")
    if not signature_valid(secret, delivery.raw, delivery.signature):
        why = "missing X-Hook-Signature" if not delivery.signature else "X-Hook-Signature does not match"
        return Inspection(401, False, why)
    if not is_json_content_type(delivery.content_type):
        return Inspection(415, True, f"Content-Type {delivery.content_type!r} is not JSON")
    try:
        event = parse_body(delivery.raw, vc_as_one_host=vc_as_one_host, received_at=received_at)
    except WebhookError as exc:
        return Inspection(exc.status, True, exc.reason)
    if skip := ignored(event, object_types, own_fields):
        return Inspection(202, True, skip, ignored=event.object_type)
    return Inspection(202, True, event=event)


def ignored(event: ChangeEvent, object_types: Collection[str], own_fields: Collection[str] = ()) -> str | None:
    """Why a change needs no sync, or None: its object type is not in scope, or it is an update that
    changed nothing but `own_fields` (the custom fields write-back writes)."""
    if event.object_type not in object_types:
        return "object type not in scope"
    if own_fields and event.event == "updated" and event.changed == ["custom_fields"]:
        changed = changed_custom_fields(event.body_json())
        if changed and changed <= set(own_fields):
            return OWN_WRITE
    return None


OWN_WRITE = "only write-back's own custom fields changed"


def changed_custom_fields(body: Mapping[str, Any]) -> set[str]:
    """The custom fields whose values differ between an update's snapshots (empty when unknown)."""
    snapshots = _dict_or_none(body.get("snapshots")) or {}
    pre = _dict_or_none((_dict_or_none(snapshots.get("prechange")) or {}).get("custom_fields"))
    post = _dict_or_none((_dict_or_none(snapshots.get("postchange")) or {}).get("custom_fields"))
    if pre is None or post is None:
        return set()
    return {k for k in pre.keys() | post.keys() if pre.get(k) != post.get(k)}


def parse_body(raw: bytes, *, vc_as_one_host: bool = False, received_at: float | None = None) -> ChangeEvent:
    """Parse and normalise a webhook body. Raises only `WebhookError` (status 400)."""
    try:
        body = msgspec.json.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise WebhookError(400, f"body is not valid JSON: {exc}") from None
    return normalise(body, vc_as_one_host=vc_as_one_host, received_at=received_at, raw=raw)


def normalise(
    body: Any, *, vc_as_one_host: bool = False, received_at: float | None = None, raw: bytes | None = None
) -> ChangeEvent:
    """A decoded body of any NetBox version -> `ChangeEvent`. Raises only `WebhookError` (400).

    `raw` is the body's original bytes, kept in the event as they are (encoded from `body` if absent).
    """
    if not isinstance(body, dict):
        raise WebhookError(400, f"body is a JSON {type(body).__name__}, not an object")
    raw_event = body.get("event")
    event = _EVENTS.get(raw_event) if isinstance(raw_event, str) else None
    if event is None:
        raise WebhookError(400, f"'event' must be one of {sorted(_EVENTS)}, got {body.get('event')!r}")
    data = body.get("data")
    if not isinstance(data, dict):
        raise WebhookError(400, "'data' must be an object (the changed NetBox object)")
    object_id = data.get("id")
    if not isinstance(object_id, int) or isinstance(object_id, bool):
        raise WebhookError(400, "'data.id' must be an integer")
    object_type = _object_type(body, data)
    snapshots = _dict_or_none(body.get("snapshots")) or {}
    pre = _dict_or_none(snapshots.get("prechange"))
    post = _dict_or_none(snapshots.get("postchange"))
    request = _dict_or_none(body.get("request")) or {}
    return ChangeEvent(
        host_key=host_key(object_type, object_id, data, vc_as_one_host=vc_as_one_host),
        event=event,
        object_type=object_type,
        object_id=object_id,
        timestamp=_str_or_none(body.get("timestamp")),
        request_id=_str_or_none(request.get("id", body.get("request_id"))),
        user=_str_or_none(request.get("user", body.get("username"))),
        changed=changed_fields(pre, post),
        previous_owner=previous_owner(object_type, pre, post),
        received_at=received_at,
        body=msgspec.Raw(raw if raw is not None else msgspec.json.encode(body)),
    )


def _object_type(body: Mapping[str, Any], data: Mapping[str, Any]) -> str:
    ot = body.get("object_type")
    if isinstance(ot, str) and re.fullmatch(r"[a-z_]+\.[a-z_]+", ot):
        return ot
    model = body.get("model")
    if isinstance(model, str) and re.fullmatch(r"[a-z_]+\.[a-z_]+", model):
        return model
    # <= 4.3 names the model without its app ("device"): the app comes from data.url.
    m = _URL.search(str(data.get("url", "")))
    if isinstance(model, str) and re.fullmatch(r"[a-z_]+", model) and m:
        return f"{m.group('app')}.{model}"
    raise WebhookError(400, "cannot tell the object type: no 'object_type', and no 'model' with a 'data.url'")


def _dict_or_none(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _nested_id(obj: Any, *path: str) -> int | None:
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj if isinstance(obj, int) and not isinstance(obj, bool) else None


def _ref_id(data: Mapping[str, Any], key: str) -> int | None:
    """A related object's id, nested as a webhook's `data` has it or flat as a change-log snapshot does."""
    ref = data.get(key)
    return ref if isinstance(ref, int) and not isinstance(ref, bool) else _nested_id(data, key, "id")


def host_key(object_type: str, object_id: int, data: Mapping[str, Any], *, vc_as_one_host: bool = False) -> str:
    """The Kafka key: "<object_type>:<id>" of the host the change belongs to (DESIGN.md section 2)."""
    if object_type == "dcim.device":
        master = _nested_id(data, "virtual_chassis", "master", "id") if vc_as_one_host else None
        return f"dcim.device:{master or object_id}"
    if object_type == "dcim.interface":
        dev = _ref_id(data, "device")
        return f"dcim.device:{dev}" if dev is not None else f"{object_type}:{object_id}"
    if object_type == "virtualization.vminterface":
        vm = _ref_id(data, "virtual_machine")
        return f"virtualization.virtualmachine:{vm}" if vm is not None else f"{object_type}:{object_id}"
    if object_type == "ipam.ipaddress":
        owner = _ip_owner(data)
        return owner or f"{object_type}:{object_id}"
    return f"{object_type}:{object_id}"


def _ip_owner(data: Mapping[str, Any]) -> str | None:
    ao_type = data.get("assigned_object_type")
    ao = data.get("assigned_object")
    if ao_type == "dcim.interface":
        dev = _nested_id(ao, "device", "id")
        return f"dcim.device:{dev}" if dev is not None else None
    if ao_type == "virtualization.vminterface":
        vm = _nested_id(ao, "virtual_machine", "id")
        return f"virtualization.virtualmachine:{vm}" if vm is not None else None
    return None


def changed_fields(pre: Mapping[str, Any] | None, post: Mapping[str, Any] | None) -> list[str]:
    """Names of the fields whose snapshot values differ (all of them on create or delete)."""
    if pre is None and post is None:
        return []
    before, after = pre or {}, post or {}
    return sorted(k for k in before.keys() | after.keys() if k not in before or k not in after or before[k] != after[k])


def previous_owner(
    object_type: str, pre: Mapping[str, Any] | None, post: Mapping[str, Any] | None
) -> PreviousOwner | None:
    """For an IP that moved or was unassigned: its assignment before the change (still to be synced)."""
    if object_type != "ipam.ipaddress" or pre is None or post is None:
        return None
    before = (pre.get("assigned_object_type"), pre.get("assigned_object_id"))
    after = (post.get("assigned_object_type"), post.get("assigned_object_id"))
    if before == after or not all(isinstance(v, int) for v in before):
        return None
    return PreviousOwner(content_type_id=int(before[0]), object_id=int(before[1]))  # type: ignore[arg-type]
