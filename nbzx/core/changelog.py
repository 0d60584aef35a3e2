"""NetBox's change log as a second source of events (DESIGN §13). Pure: the follower's cursor step
and one object change -> one `ChangeEvent`, shaped as the webhook of the same change would be.

The cursor is an object-change id, not a time: ids are unique and ordered, times are not (two changes
in one request share a timestamp). But ids are handed out when a change is saved, inside its NetBox
transaction, and become visible at commit: a bulk edit still open can show later ids first. So the
cursor keeps the ids it skipped over (`holes`) and asks for them again until they appear or have been
missing for `settle_s` (a transaction rolled back leaves a hole that never fills).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec

from nbzx.core.webhook import WebhookError, normalise
from nbzx.schemas.messages import ChangeEvent, ChangelogCursor

MAX_HOLES = 20_000  # ids one gap may leave waiting: a bulk edit of thousands of objects in one transaction
_ACTIONS = {"create": "created", "update": "updated", "delete": "deleted"}


@dataclass(frozen=True)
class Step:
    """What one poll did to the cursor: the ids to emit now (new and holes filled), in id order, and
    the holes given up."""

    cursor: ChangelogCursor
    emit: list[int]
    gave_up: list[int]


def step(cursor: ChangelogCursor, new: Iterable[int], filled: Iterable[int], now: float, settle_s: float) -> Step:
    """The cursor after a poll that read `new` (ids above `cursor.top`) and `filled` (holes that
    NetBox now shows). Ids skipped between the old top and the new ones become holes, noticed `now`;
    holes missing for longer than `settle_s` are given up. Nothing already emitted is emitted again."""
    fresh = sorted({i for i in new if i > cursor.top})
    holes = dict(cursor.holes)
    filled_now = sorted(i for i in set(filled) if i in holes)
    for i in filled_now:
        del holes[i]
    top = cursor.top
    for i in fresh:
        if top:  # a first cursor (top 0, an empty change log) has nothing below it to wait for
            holes.update(dict.fromkeys(range(max(top + 1, i - MAX_HOLES), i), now))
        top = i
    gave_up = sorted(i for i, since in holes.items() if now - since > settle_s)
    for i in gave_up:
        del holes[i]
    emit = sorted([*filled_now, *fresh])
    nxt = msgspec.structs.replace(
        cursor,
        top=top,
        holes=holes,
        window_from=cursor.top,
        emitted=len(emit),
        emitted_total=cursor.emitted_total + len(emit),
        gave_up=cursor.gave_up + len(gave_up),
    )
    return Step(nxt, emit, gave_up)


def change_event(change: Mapping[str, Any], owner: str | None = None, *, vc_as_one_host: bool = False) -> ChangeEvent:
    """One NetBox object change (`core/object-changes/` REST row) as the `ChangeEvent` its webhook
    would have made: same host key, event, changed fields, previous owner, and a body with the
    webhook's `data` and `snapshots` (the fan-out reads names and slugs there). `owner` is the host
    key of an IP's current assignment, which the change's flat snapshot has only as content type and
    id (the caller reads it from NetBox). Raises `WebhookError` for a row that is not an object change."""
    action = change.get("action")
    value = action.get("value") if isinstance(action, Mapping) else action
    if value not in _ACTIONS:
        raise WebhookError(400, f"object change {change.get('id')!r} has no known action: {action!r}")
    pre, post = change.get("prechange_data"), change.get("postchange_data")
    # A delete's postchange_data is {} (a create's prechange_data null): the object is the side it has.
    data = dict(post if isinstance(post, Mapping) and post else pre if isinstance(pre, Mapping) else {})
    data["id"] = change.get("changed_object_id")
    body = {
        "event": _ACTIONS[value],
        "object_type": change.get("changed_object_type"),
        "timestamp": change.get("time"),
        "request_id": change.get("request_id"),
        "username": change.get("user_name"),
        "data": data,
        "snapshots": {"prechange": pre, "postchange": post},
    }
    ev = normalise(body, vc_as_one_host=vc_as_one_host)
    key = owner if owner and ev.object_type == "ipam.ipaddress" else ev.host_key
    return msgspec.structs.replace(ev, host_key=key, source="changelog", change_id=int(change["id"]))


def ip_assignment(change: Mapping[str, Any]) -> tuple[int, int] | None:
    """The (content type id, object id) an IP address is assigned to after the change, or None."""
    if change.get("changed_object_type") != "ipam.ipaddress":
        return None
    post = change.get("postchange_data")
    if not isinstance(post, Mapping):
        return None
    ct, oid = post.get("assigned_object_type"), post.get("assigned_object_id")
    if isinstance(ct, int) and isinstance(oid, int):
        return ct, oid
    return None


def follower_view(cursor: ChangelogCursor | None, now: float, stale_s: float) -> dict[str, Any]:
    """What the console shows of the follower: its cursor, how long ago the leader last read the
    change log (`read_ago_s`), and `stale` when that is longer than `stale_s` (no leader, or NetBox
    away). No cursor yet: `cursor` None and stale."""
    if cursor is None:
        return {"cursor": None, "read_ago_s": None, "stale": True}
    try:
        ago: float | None = round(max(0.0, now - datetime.fromisoformat(cursor.polled_at).timestamp()), 1)
    except ValueError:
        ago = None
    return {
        "cursor": msgspec.to_builtins(cursor),
        "read_ago_s": ago,
        "stale": ago is None or ago > stale_s,
    }
