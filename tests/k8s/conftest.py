"""The local Kubernetes (scripts/cluster) and releases of the chart on it, for the k8s tier."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import HOOK_SECRET, NETBOX_TOKEN, ROOT, ensure_stack

CHART = ROOT / "helm" / "netbox-zabbix-stream"
LOCAL_VALUES = ROOT / "examples" / "helm-local.yaml"
API_TOKEN = "k8s-api-token"
OPERATOR_TOKEN = "k8s-operator-token"


def _run(*args: str, timeout: float = 600, check: bool = True, env: dict[str, str] | None = None) -> str:
    out = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, check=False, env=env)
    if check and out.returncode != 0:
        raise AssertionError(
            f"{' '.join(args[:4])} ... failed ({out.returncode}):\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}"
        )
    return out.stdout


class Cluster:
    """kubectl and helm against the local cluster."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = {**os.environ, **env}
        self.kubectl_bin = str(Path(env["NBZX_K8S_BIN"]) / "kubectl")
        tools = subprocess.run([str(ROOT / "scripts" / "tools")], capture_output=True, text=True, check=True)
        self.helm_bin = str(Path(tools.stdout.strip()) / "helm")

    def kubectl(self, *args: str, timeout: float = 300, check: bool = True) -> str:
        return _run(self.kubectl_bin, *args, timeout=timeout, check=check, env=self.env)

    def helm(self, *args: str, timeout: float = 600) -> str:
        return _run(self.helm_bin, *args, timeout=timeout, env=self.env)

    def namespace(self) -> str:
        """A new namespace that enforces the restricted Pod Security level."""
        ns = f"nbzx-{uuid.uuid4().hex[:6]}"
        self.kubectl("create", "namespace", ns)
        self.kubectl("label", "namespace", ns, "pod-security.kubernetes.io/enforce=restricted")
        return ns


class Release:
    """One install of the chart, with its own namespace, Secret and Kafka topics."""

    def __init__(self, cluster: Cluster, values: Path, name: str = "nbzx") -> None:
        self.k, self.values, self.name = cluster, values, name
        self.ns = cluster.namespace()
        suffix = uuid.uuid4().hex[:8]
        self.topics = {
            "events": f"test.events.{suffix}",
            "control": f"test.control.{suffix}",
            "jobs": f"test.jobs.{suffix}",
            "dlq": f"test.dlq.{suffix}",
            "host_status": f"test.host-status.{suffix}",
            "changelog": f"test.changelog.{suffix}",
        }
        self.sets = [f"config.kafka.topics.{k}={v}" for k, v in self.topics.items()]
        self.group = f"nbzx-k8s-{suffix}"
        self.sets.append(f"config.kafka.group={self.group}")
        cluster.kubectl(
            "-n", self.ns, "create", "secret", "generic", "nbzx",
            f"--from-literal=netbox-token={NETBOX_TOKEN}",
            "--from-literal=zabbix-user=Admin",
            "--from-literal=zabbix-password=zabbix",
            f"--from-literal=webhook-secret={HOOK_SECRET}",
            f"--from-literal=api-token={API_TOKEN}",
            "--from-literal=console-viewer-tokens=viewer:k8s-viewer-token",
            f"--from-literal=console-operator-tokens=alice:{OPERATOR_TOKEN}",
        )  # fmt: skip
        self.fullname = f"{name}-netbox-zabbix-stream"
        self.own_secrets: list[str] = []  # made by the test, like secret/nbzx: not the chart's to remove

    def secure(self) -> None:
        """Run this release on the stack's secure Kafka cluster (scripts/lib/kafka3.sh): SASL_SSL, the CA
        from a Secret, each component its own user from its own Secret, with the ACLs `nbzx kafka acls`
        gives it for this release's topics and group (granted here, as an operator would)."""
        from tests import kafka3
        from tests.conftest import make_config

        self.k.kubectl("-n", self.ns, "create", "secret", "generic", "kafka-ca", f"--from-file=ca.crt={kafka3.CA}")
        self.own_secrets += ["secret/kafka-ca", *(f"secret/kafka-{c}" for c in kafka3.USERS)]
        for component, user in kafka3.USERS.items():
            self.k.kubectl(
                "-n", self.ns, "create", "secret", "generic", f"kafka-{component}",
                f"--from-literal=username={user}", f"--from-literal=password={kafka3.password(user)}",
            )  # fmt: skip
            self.sets.append(f"secrets.kafkaUsers.{component}.name=kafka-{component}")
        bootstrap = os.environ.get("NBZX_KAFKA3_PODS_BOOTSTRAP", "10.244.0.1:19291,10.244.0.1:19292,10.244.0.1:19293")
        self.sets += [
            f"kafka.bootstrap={bootstrap.replace(',', chr(92) + ',')}",  # --set splits on unescaped commas
            "kafka.securityProtocol=SASL_SSL",
            "kafka.saslMechanism=SCRAM-SHA-512",
            "kafka.replication=3",
            "kafka.tls.secretName=kafka-ca",
        ]
        kafka3.grant(make_config(kafka={"topics": self.topics, "group": self.group}))

    def _helm(self, verb: str, *extra: str) -> str:
        args = [verb, self.name, str(CHART), "-n", self.ns, "-f", str(self.values), "-f", str(LOCAL_VALUES)]
        for s in [*self.sets, *extra]:
            args += ["--set", s]
        return self.k.helm(*args, "--wait", "--timeout", "8m")

    def install(self, *sets: str) -> str:
        return self._helm("install", *sets)

    def upgrade(self, *sets: str) -> str:
        return self._helm("upgrade", *sets)

    def uninstall(self) -> None:
        self.k.helm("uninstall", self.name, "-n", self.ns, "--wait", "--timeout", "3m")

    def objects(self) -> list[str]:
        """Everything left in the namespace, besides what Kubernetes itself puts in every namespace."""
        kinds = "all,configmaps,secrets,jobs,cronjobs,pdb,ingresses,serviceaccounts,hpa,roles,rolebindings"
        names = self.k.kubectl("-n", self.ns, "get", kinds, "-o", "name").split()
        ignore = {"configmap/kube-root-ca.crt", "serviceaccount/default", "secret/nbzx", *self.own_secrets}
        return [n for n in names if n not in ignore]

    def pods(self, component: str) -> list[dict[str, Any]]:
        """The component's pods that are not being deleted."""
        sel = f"app.kubernetes.io/instance={self.name},app.kubernetes.io/component={component}"
        doc = json.loads(self.k.kubectl("-n", self.ns, "get", "pods", "-l", sel, "-o", "json"))
        return [p for p in doc["items"] if not p["metadata"].get("deletionTimestamp")]  # not the ones leaving

    def service_url(self, component: str, port: int) -> str:
        """The component's Service, by its cluster IP (kube-proxy makes it reachable from this machine)."""
        ip = self.k.kubectl(
            "-n", self.ns, "get", "svc", f"{self.fullname}-{component}", "-o", "jsonpath={.spec.clusterIP}"
        )
        return f"http://{ip}:{port}"


@pytest.fixture(scope="session")
def cluster() -> Cluster:
    """The local Kubernetes, started (and built, the first time) by scripts/cluster."""
    ensure_stack("kafka", "kafka3", "zabbix", "netbox")
    up = subprocess.run([str(ROOT / "scripts" / "cluster"), "up"], capture_output=True, text=True, check=False)
    if up.returncode != 0:
        raise RuntimeError(f"scripts/cluster up failed:\n{up.stderr[-4000:]}")
    env_text = _run(str(ROOT / "scripts" / "cluster"), "env")
    env = dict(
        line.removeprefix("export ").split("=", 1) for line in env_text.splitlines() if line.startswith("export ")
    )
    return Cluster(env)


@pytest.fixture
def release(cluster: Cluster) -> Iterator[Any]:
    """Factory of releases; their namespaces are deleted afterwards."""
    made: list[Release] = []

    def make(values: Path, name: str = "nbzx") -> Release:
        r = Release(cluster, values, name)
        made.append(r)
        return r

    yield make
    for r in made:
        cluster.kubectl("delete", "namespace", r.ns, "--wait=false", check=False)
