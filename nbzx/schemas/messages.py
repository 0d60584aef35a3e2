"""The Kafka message contract: every message on every topic, defined once.

Each message is a versioned envelope ``{"v": 1, "kind": ..., "id": <uuid>, "produced_at": ..., ...}``
encoded as JSON. Unknown newer fields are ignored on decode; an unknown ``v`` is an
`UnknownVersion` error, which consumers send to the dead-letter topic instead of crashing.
The JSON Schema files beside this module are exported from these types (`nbzx.schemas.export`).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Struct, field

VERSION = 1

Event = Literal["created", "updated", "deleted"]
JobKind = Literal[
    "reconcile", "dry_run", "backfill", "settings_import", "maintenance_cleanup", "host_sync", "dlq_retry", "adopt"
]
JobStatus = Literal["scheduled", "pending", "running", "completed", "errored", "failed", "skipped"]
Trigger = Literal["schedule", "api", "cli", "console"]
# "<app>.<model>:<id>" of the host a message is about; a record with any other key is rejected at decode.
HOST_KEY_PATTERN = r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*:[0-9]+$"
HostKey = Annotated[str, msgspec.Meta(pattern=HOST_KEY_PATTERN)]


def new_id() -> str:
    """A fresh message or job id."""
    return str(uuid.uuid4())


def utc_now() -> str:
    """Now, as an ISO 8601 UTC timestamp."""
    return datetime.now(UTC).isoformat()


class _Envelope(Struct, kw_only=True, tag_field="kind"):
    v: int = VERSION
    id: str = field(default_factory=new_id)
    produced_at: str = field(default_factory=utc_now)


class PreviousOwner(Struct, kw_only=True):
    """An IP address's assignment before the change, as NetBox's snapshot has it (numeric content type)."""

    content_type_id: int
    object_id: int


class ChangeEvent(_Envelope, tag="change_event"):
    """One NetBox change, from a webhook or from NetBox's change log (DESIGN §13). A hint: consumers
    re-read NetBox for the state."""

    host_key: HostKey
    event: Event
    object_type: str
    object_id: int
    timestamp: str | None = None
    request_id: str | None = None
    user: str | None = None
    changed: list[str] = field(default_factory=list)
    # An IP moved away from (or was unassigned from) this interface: its old host needs a sync too.
    previous_owner: PreviousOwner | None = None
    received_at: float | None = None  # epoch seconds at the receiver, for event-to-Zabbix latency
    # The original webhook body, byte for byte as NetBox signed it (embedded as JSON, not re-encoded):
    # replay and the DLQ lose nothing.
    body: msgspec.Raw = field(default_factory=lambda: msgspec.Raw(b"{}"))
    source: Literal["webhook", "changelog"] = "webhook"
    change_id: int | None = None  # the NetBox object change it was read from (source "changelog")

    def body_json(self) -> dict[str, Any]:
        """The original body, decoded."""
        doc = msgspec.json.decode(self.body)
        return doc if isinstance(doc, dict) else {}


class SyncRequest(_Envelope, tag="sync_request"):
    """Sync one host key now (from reconcile, dependency fan-out or a DLQ retry)."""

    host_key: HostKey
    reason: Literal["reconcile", "fanout", "retry", "cli", "previous_owner", "console"] = "reconcile"
    job_id: str | None = None  # the job this sync belongs to (a reconcile's, or a console host_sync's)
    cause: str | None = None  # e.g. the dependency that fanned out: "dcim.site:3"
    user: str | None = None  # who asked (a console host_sync): carried into the job's final record


class ReconcileScope(Struct, kw_only=True, forbid_unknown_fields=True):
    """Limits a reconcile to some object types, a NetBox filter and some Zabbix servers (none: all)."""

    object_types: list[str] = field(default_factory=list)
    filter: dict[str, Any] = field(default_factory=dict)
    servers: list[str] = field(default_factory=list)


class ReconcileRequest(_Envelope, tag="reconcile_request"):
    """Start a reconcile (keyed "reconcile" on the control topic)."""

    job_id: str = field(default_factory=new_id)
    trigger: Trigger = "api"
    user: str | None = None
    dry_run: bool = False
    scope: ReconcileScope = field(default_factory=ReconcileScope)
    # In the future: the control loop holds the request until then. With an interval, every run
    # requests the next one (previous scheduled time + interval) until the chain is cancelled.
    scheduled_for: str | None = None
    interval: int | None = None  # minutes
    retry_of: str | None = None  # the job this one retries


class CancelRequest(_Envelope, tag="cancel_request"):
    """Cancel a scheduled (or recurring) reconcile: its pending run is dropped and the chain stops."""

    job_id: str
    user: str | None = None


class AdoptRequest(_Envelope, tag="adopt_request"):
    """Take over Zabbix hosts we do not own (keyed "adopt" on the control topic): the valid matches of
    these host keys, or every valid one when the list is empty (DESIGN §11)."""

    job_id: str = field(default_factory=new_id)
    trigger: Trigger = "console"
    user: str | None = None
    host_keys: list[HostKey] = field(default_factory=list)
    server: str = ""  # the Zabbix server whose hosts are taken over ("": the first configured)


class JobRecord(_Envelope, tag="job_record"):
    """The latest state of one job (keyed by job id on the compacted jobs topic)."""

    job_id: str
    job_kind: JobKind
    status: JobStatus
    trigger: Trigger = "api"
    user: str | None = None
    created: str = field(default_factory=utc_now)
    started: str | None = None
    completed: str | None = None
    duration_s: float | None = None
    interval: int | None = None
    scheduled_for: str | None = None
    results: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    log: list[str] = field(default_factory=list)
    # What the job was asked to do (scope, dry_run, host_key): enough to run it again (retry).
    params: dict[str, Any] = field(default_factory=dict)


HostResult = Literal["in_sync", "changed", "failed", "conflict", "skipped"]
# A key's settled outcome (what write-back compares with; DESIGN §10): "removed" by the delete policy.
SyncState = Literal["in_sync", "failed", "conflict", "skipped", "removed"]


class HostStatus(_Envelope, tag="host_status"):
    """A host key's last sync (keyed by host key on the compacted host-status topic)."""

    host_key: HostKey
    host: str = ""  # the Zabbix technical name (what NetBox names it)
    hostid: str | None = None
    action: str = ""  # what the planner decided: noop, create, update, delete, conflict, skip, ...
    result: HostResult = "in_sync"
    reason: str = ""
    changed: list[str] = field(default_factory=list)
    error: str | None = None
    retrying: bool = False  # failed transiently: parked, retried on its own backoff
    attempts: int = 0
    event_at: str | None = None  # when the receiver took the latest webhook for it
    synced_at: str = field(default_factory=utc_now)
    job_id: str | None = None
    state: SyncState | None = None  # None while a failure is retried (the last settled state holds)
    servers: dict[str, str] = field(default_factory=dict)  # Zabbix server -> hostid, where the host is kept


class ChangelogCursor(_Envelope, tag="changelog_cursor"):
    """How far the change-log follower has read NetBox's object changes (keyed "cursor" on the
    compacted changelog topic; written in the same Kafka transaction as the events of its window).

    Every change with an id up to `top` has been emitted, except the `holes`: ids below `top` that
    NetBox had not shown yet (a transaction still open, or one rolled back), each with the epoch
    second it was first missed; a hole is given up after `changelog.settle_s`."""

    top: int
    holes: dict[int, float] = field(default_factory=dict)
    window_from: int = 0  # the window this record closes: changes after window_from up to top
    emitted: int = 0  # events emitted in that window
    emitted_total: int = 0
    gave_up: int = 0  # holes given up since the follower first started
    newest_change_at: str | None = None  # NetBox's time of the newest change read
    polled_at: str = field(default_factory=utc_now)
    leader: str = ""  # which process wrote it


class DeadLetter(_Envelope, tag="dead_letter"):
    """A message that could not be applied, with why (on the DLQ topic, keyed by host key)."""

    host_key: str
    error: str
    attempts: int
    topic: str
    partition: int
    offset: int
    original: str  # the original message, verbatim, as text


Message = (
    ChangeEvent
    | SyncRequest
    | ReconcileRequest
    | CancelRequest
    | AdoptRequest
    | JobRecord
    | DeadLetter
    | HostStatus
    | ChangelogCursor
)
MESSAGE_TYPES: tuple[type[Struct], ...] = (
    ChangeEvent,
    SyncRequest,
    ReconcileRequest,
    CancelRequest,
    AdoptRequest,
    JobRecord,
    DeadLetter,
    HostStatus,
    ChangelogCursor,
)


class UnknownVersion(ValueError):
    """The envelope's `v` is not one this code understands."""


class _Head(Struct):
    v: int = 0
    kind: str = ""


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Message)
_head_decoder = msgspec.json.Decoder(_Head)


def encode(msg: Message) -> bytes:
    """A message as JSON bytes."""
    return _encoder.encode(msg)


def decode(data: bytes) -> Message:
    """Decode any message. Raises `UnknownVersion` or `msgspec.DecodeError`/`ValidationError`."""
    head = _head_decoder.decode(data)
    if head.v != VERSION:
        raise UnknownVersion(f"message version {head.v!r} is not supported (this consumer reads v{VERSION})")
    msg: Message = _decoder.decode(data)
    return msg


def decode_records(records: list[Any]) -> list[Message]:
    """The messages in Kafka records (anything with a `value`), skipping tombstones and what cannot be
    decoded (an unknown version, a foreign record): for views that show what they can read."""
    out: list[Message] = []
    for r in records:
        if r.value is None:
            continue
        try:
            out.append(decode(r.value))
        except (UnknownVersion, ValueError, msgspec.DecodeError, msgspec.ValidationError):
            continue
    return out
