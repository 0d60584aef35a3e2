"""The wire types of netbox-zabbix-stream's Kafka topics (see `nbzx.schemas.messages`)."""

from nbzx.schemas.messages import (
    MESSAGE_TYPES,
    ChangeEvent,
    DeadLetter,
    JobRecord,
    Message,
    PreviousOwner,
    ReconcileRequest,
    ReconcileScope,
    SyncRequest,
    UnknownVersion,
    decode,
    encode,
)

__all__ = [
    "MESSAGE_TYPES",
    "ChangeEvent",
    "DeadLetter",
    "JobRecord",
    "Message",
    "PreviousOwner",
    "ReconcileRequest",
    "ReconcileScope",
    "SyncRequest",
    "UnknownVersion",
    "decode",
    "encode",
]
