"""The stack's secure Kafka cluster (scripts/lib/kafka3.sh) for tests: client settings per component,
the ACLs of nbzx/core/acls.py granted with an admin client, and a broker's process by node."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import msgspec
from kafka.admin import (
    ACL,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    KafkaAdminClient,
    ResourcePattern,
    ResourceType,
)

from nbzx.common.config import Config
from nbzx.core.acls import acls
from tests.conftest import ROOT

BOOTSTRAP = os.environ.get("NBZX_KAFKA3_BOOTSTRAP", "127.0.0.1:9291,127.0.0.1:9292,127.0.0.1:9293")
CA = os.environ.get("NBZX_TLS_CA", str(Path.home() / ".local/state/nbzx-stack/tls/ca.crt"))
STATE_FILE = Path(os.environ.get("NBZX_STATE_HOME", str(Path.home() / ".local/state/nbzx-stack"))) / "stack.state"
USERS = {c: f"nbzx-{c}" for c in ("receiver", "consumer", "console", "hook")}


def password(user: str) -> str:
    """The local stack's SCRAM password of `user` (scripts/lib/kafka3.sh kafka3_password)."""
    return f"{user}-local-secret"


def on_cluster(cfg: Config, user: str, secret: str | None = None) -> Config:
    """`cfg` pointed at the secure cluster as `user` (its password, or `secret`)."""
    kafka = msgspec.structs.replace(
        cfg.kafka,
        bootstrap=BOOTSTRAP,
        replication=3,
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        ssl_cafile=CA,
    )
    secrets = msgspec.structs.replace(
        cfg.secrets, kafka_sasl_username=user, kafka_sasl_password=password(user) if secret is None else secret
    )
    return msgspec.structs.replace(cfg, kafka=kafka, secrets=secrets)


def kafka_doc() -> dict[str, object]:
    """The `kafka:` settings of a process config file for the secure cluster (credentials go by env)."""
    return {
        "bootstrap": BOOTSTRAP,
        "replication": 3,
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "ssl_cafile": CA,
    }


def credentials(user: str, secret: str | None = None) -> dict[str, str]:
    """The environment a process reads its SASL credentials from."""
    return {"NBZX_KAFKA_SASL_USERNAME": user, "NBZX_KAFKA_SASL_PASSWORD": password(user) if secret is None else secret}


def grant(cfg: Config, users: dict[str, str] = USERS) -> int:
    """Create, as admin, the ACLs `nbzx kafka acls` gives these components for `cfg`'s topics and group."""
    admin = KafkaAdminClient(
        bootstrap_servers=BOOTSTRAP.split(","),
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_plain_username="admin",
        sasl_plain_password=password("admin"),
        ssl_cafile=CA,
        client_id="nbzx-tests-acls",
    )
    try:
        rules = [
            ACL(
                principal=a.principal,
                host="*",
                operation=ACLOperation[a.operation],
                permission_type=ACLPermissionType.ALLOW,
                resource_pattern=ResourcePattern(ResourceType[a.resource], a.name, ACLResourcePatternType[a.pattern]),
            )
            for a in acls(cfg.kafka.topics, cfg.kafka.group, users)
        ]
        result = admin.create_acls(rules)
        assert not result["failed"], result["failed"]
        return len(rules)
    finally:
        admin.close()


def node_pid(node: int) -> int:
    """The PID of the stack's kafka3 node (1-3)."""
    for line in STATE_FILE.read_text().splitlines():
        name, pid, *_ = line.split()
        if name == f"kafka3-{node}":
            return int(pid)
    raise LookupError(f"kafka3 node {node} is not running")


def broker(action: str, node: int) -> None:
    """`scripts/stack broker start|stop|kill N`: start waits until the cluster has three brokers again."""
    subprocess.run([str(ROOT / "scripts" / "stack"), "broker", action, str(node)], check=True, capture_output=True)
