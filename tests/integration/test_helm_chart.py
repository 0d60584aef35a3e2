"""The Helm chart and the image recipe: lint, render, Kubernetes schema validation, bad values,
and the rendered ConfigMap read back by nbzx's own config loader."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from nbzx.common.config import parse_config
from tests.conftest import ROOT

CHART = ROOT / "helm" / "netbox-zabbix-stream"
EXAMPLES = [ROOT / "examples" / "helm-minimal.yaml", ROOT / "examples" / "helm-production.yaml"]
SERVERS = ROOT / "examples" / "helm-servers.yaml"
K8S_VERSION = "1.34.0"
CRD_KINDS = {"ServiceMonitor"}  # not in the Kubernetes OpenAPI schemas
SERVICE_MONITOR = "monitoring.coreos.com/v1/ServiceMonitor"


@pytest.fixture(scope="session")
def helm() -> str:
    """The Helm CLI, built by scripts/tools when it is not there yet."""
    out = subprocess.run([str(ROOT / "scripts" / "tools")], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"scripts/tools failed:\n{out.stderr[-3000:]}")
    return str(Path(out.stdout.strip()) / "helm")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, check=False)


def render(
    helm: str, *values: Path, sets: tuple[str, ...] = (), api_versions: tuple[str, ...] = (SERVICE_MONITOR,)
) -> subprocess.CompletedProcess[str]:
    """`helm template`, as on a cluster that has these extra APIs (by default the Prometheus operator's)."""
    cmd = [helm, "template", "nbzx", str(CHART), "--namespace", "monitoring", "--kube-version", K8S_VERSION]
    for api in api_versions:
        cmd += ["--api-versions", api]
    for v in values:
        cmd += ["-f", str(v)]
    for s in sets:
        cmd += ["--set", s]
    return run(*cmd)


def docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


@pytest.mark.parametrize("values", [None, *EXAMPLES, SERVERS], ids=["defaults", "minimal", "production", "servers"])
def test_helm_lint_strict(helm: str, values: Path | None) -> None:
    cmd = [helm, "lint", "--strict", "--kube-version", K8S_VERSION, str(CHART)] + (
        ["-f", str(values)] if values else []
    )
    out = run(*cmd)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("values", [None, *EXAMPLES], ids=["defaults", "minimal", "production"])
def test_rendered_manifests_validate_against_kubernetes_schemas(helm: str, values: Path | None, tmp_path: Path) -> None:
    out = render(helm, *([values] if values else []))
    assert out.returncode == 0, out.stderr
    manifests = docs(out.stdout)
    kinds = {m["kind"] for m in manifests}
    assert {"Deployment", "Service", "ConfigMap", "CronJob", "Job", "PodDisruptionBudget"} <= kinds
    files = []
    for i, m in enumerate(m for m in manifests if m["kind"] not in CRD_KINDS):
        f = tmp_path / f"{i:02d}-{m['kind']}.yaml"
        f.write_text(yaml.safe_dump(m))
        files.append(str(f))
    check = run(str(ROOT / ".venv" / "bin" / "kubernetes-validate"), "--strict", "-k", K8S_VERSION, "--quiet", *files)
    assert check.returncode == 0, check.stdout + check.stderr


def test_security_probes_and_secrets_in_the_pods(helm: str) -> None:
    manifests = docs(render(helm, EXAMPLES[1]).stdout)
    deployments = {m["metadata"]["name"]: m for m in manifests if m["kind"] == "Deployment"}
    assert set(deployments) == {
        "nbzx-netbox-zabbix-stream-receiver",
        "nbzx-netbox-zabbix-stream-consumer",
        "nbzx-netbox-zabbix-stream-console",
    }
    for name, d in deployments.items():
        pod = d["spec"]["template"]["spec"]
        [c] = pod["containers"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert c["securityContext"]["readOnlyRootFilesystem"] is True
        assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
        assert (
            c["livenessProbe"]["httpGet"]["path"] == "/healthz" and c["readinessProbe"]["httpGet"]["path"] == "/readyz"
        )
        env = {e["name"]: e for e in c["env"]}
        assert env["NBZX_KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
            "name": "nbzx-kafka-user",
            "key": "password",
        }
        assert "ZABBIX_TOKEN" not in env and "value" not in env["NETBOX_TOKEN"]
        # The console sign-in tokens reach the console pod only.
        if name.endswith("-console"):
            assert env["NBZX_CONSOLE_OPERATOR_TOKENS"]["valueFrom"]["secretKeyRef"] == {
                "name": "nbzx-console",
                "key": "operator-tokens",
            }
            assert "NBZX_CONSOLE_VIEWER_TOKENS" in env
        else:
            assert not {"NBZX_CONSOLE_OPERATOR_TOKENS", "NBZX_CONSOLE_VIEWER_TOKENS"} & set(env)
    ingresses = {m["spec"]["rules"][0]["host"]: m for m in manifests if m["kind"] == "Ingress"}
    console_backend = ingresses["nbzx-console.example.com"]["spec"]["rules"][0]["http"]["paths"][0]["backend"]
    assert console_backend["service"] == {"name": "nbzx-netbox-zabbix-stream-console", "port": {"name": "http"}}
    cron = next(m for m in manifests if m["kind"] == "CronJob")
    assert cron["spec"]["concurrencyPolicy"] == "Forbid" and cron["spec"]["schedule"] == "17 * * * *"
    hook = next(m for m in manifests if m["kind"] == "Job")
    assert hook["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert hook["spec"]["template"]["spec"]["containers"][0]["args"] == ["kafka", "init"]
    assert any(m["kind"] == "ServiceMonitor" for m in manifests)
    dash = next(m for m in manifests if m["metadata"]["name"].endswith("-dashboard"))
    assert dash["metadata"]["labels"]["grafana_dashboard"] == "1" and "nbzx_consumer_lag" in str(dash["data"])


@pytest.mark.parametrize("values", [None, *EXAMPLES], ids=["defaults", "minimal", "production"])
def test_configmap_round_trips_into_a_valid_nbzx_config(helm: str, values: Path | None) -> None:
    manifests = docs(render(helm, *([values] if values else [])).stdout)
    cm = next(m for m in manifests if m["kind"] == "ConfigMap" and m["metadata"]["name"] == "nbzx-netbox-zabbix-stream")
    cfg = parse_config(cm["data"]["config.yaml"], {})
    chosen = yaml.safe_load(values.read_text()) if values else yaml.safe_load((CHART / "values.yaml").read_text())
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    consumer = {**defaults["consumer"], **chosen.get("consumer", {})}
    hpa = {**defaults["consumer"]["hpa"], **consumer.get("hpa", {})}
    replicas = hpa["maxReplicas"] if hpa["enabled"] else consumer["replicas"]
    total = {**defaults["zabbix"], **chosen.get("zabbix", {})}["ratePerSecond"]
    assert cfg.zabbix.rate_per_s == pytest.approx(total / replicas), "the budget is divided per consumer replica"
    assert cfg.kafka.bootstrap == {**defaults["kafka"], **chosen.get("kafka", {})}["bootstrap"]
    assert (cfg.receiver.port, cfg.consumer.http_port, cfg.console.port) == (8090, 8091, 8092)


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (("consumer.replicas=two",), "at '/consumer/replicas': got string, want integer"),
        (("consumer.replicas=13",), "consumer replicas (13) exceed kafka.partitions (12)"),
        (
            ("consumer.hpa.enabled=true", "consumer.hpa.maxReplicas=20"),
            "consumer replicas (20) exceed kafka.partitions",
        ),
        (("secrets.netboxToken.name=",), "secrets.netboxToken.name is required"),
        (("secrets.zabbixToken.name=",), "secrets.zabbixToken.name (or secrets.zabbixUser.name"),
        (("kafka.securityProtocol=SASL_SSL",), "secrets.kafkaSaslPassword.name are required"),
        (("colour=blue",), "additional properties 'colour' not allowed"),
        (("kafka.partitionz=3",), "at '/kafka': additional properties 'partitionz' not allowed"),
        (("zabbix.ratePerSecond=0",), "at '/zabbix/ratePerSecond': exclusiveMinimum"),
        (("console.enabled=true",), "console.enabled needs secrets.consoleViewerTokens.name and/or"),
        (
            ("zabbix.servers.old.tokenSecret.name=zbx", "zabbix.servers.old.tokenSecret.key=token"),
            "zabbix.servers.old: config.zabbix.servers has no server old",
        ),
    ],
)
def test_bad_values_fail_with_a_readable_message(helm: str, sets: tuple[str, ...], message: str) -> None:
    out = render(helm, sets=sets)
    assert out.returncode != 0
    assert message in out.stderr, out.stderr


def test_dockerfile_lints_clean() -> None:
    out = run(str(ROOT / ".venv" / "bin" / "hadolint"), str(ROOT / "Dockerfile"))
    assert out.returncode == 0, out.stdout + out.stderr


def test_secrets_the_config_names_by_env_come_from_secrets(helm: str) -> None:
    sets = (
        "secrets.extra[0].env=NBZX_DB_PASS",
        "secrets.extra[0].name=nbzx-macros",
        "secrets.extra[0].key=db-pass",
    )
    manifests = docs(render(helm, sets=sets).stdout)
    for d in (m for m in manifests if m["kind"] == "Deployment"):
        [c] = d["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e for e in c["env"]}
        assert env["NBZX_DB_PASS"] == {
            "name": "NBZX_DB_PASS",
            "valueFrom": {"secretKeyRef": {"name": "nbzx-macros", "key": "db-pass"}},
        }


def test_no_service_monitor_where_the_cluster_has_no_prometheus_operator(helm: str) -> None:
    out = render(helm, EXAMPLES[1], api_versions=())
    assert out.returncode == 0, out.stderr
    kinds = {m["kind"] for m in docs(out.stdout)}
    assert "ServiceMonitor" not in kinds and "Deployment" in kinds


def test_our_helm_knows_a_current_kubernetes_without_being_told(helm: str) -> None:
    # Built with its version ldflags, helm's default --kube-version is current, so the chart's
    # kubeVersion (>= 1.25) is met without passing one.
    out = run(helm, "template", "nbzx", str(CHART))
    assert out.returncode == 0, out.stderr


def test_write_back_custom_fields_are_created_by_the_install_hook(helm: str) -> None:
    def hook_args(*sets: str) -> list[list[str]]:
        out = render(helm, sets=sets)
        assert out.returncode == 0, out.stderr
        [job] = [d for d in docs(out.stdout) if d["kind"] == "Job" and d["metadata"]["name"].endswith("-topics")]
        return [c["args"] for c in job["spec"]["template"]["spec"]["containers"]]

    assert hook_args() == [["kafka", "init"]]
    assert hook_args("config.netbox.write_back.journal=true") == [["kafka", "init"]], "journal entries need none"
    assert hook_args("config.netbox.write_back.custom_fields=true") == [["kafka", "init"], ["netbox", "setup-fields"]]


def test_several_servers_get_their_own_budget_and_credentials_from_their_own_secrets(helm: str) -> None:
    out = render(helm, SERVERS)
    assert out.returncode == 0, out.stderr
    manifests = docs(out.stdout)
    cm = next(m for m in manifests if m["kind"] == "ConfigMap" and m["metadata"]["name"] == "nbzx-netbox-zabbix-stream")
    env = {"ZABBIX_OLD_TOKEN": "t", "ZABBIX_NEW_USER": "u", "ZABBIX_NEW_PASSWORD": "p"}
    cfg = parse_config(cm["data"]["config.yaml"], env)
    replicas = yaml.safe_load((CHART / "values.yaml").read_text())["consumer"]["replicas"]
    old, new = cfg.zabbix.servers["old"], cfg.zabbix.servers["new"]
    assert (old.url, new.url) == ("http://zabbix6-web.zabbix:8080", "http://zabbix7-web.zabbix:8080")
    assert (old.rate_per_s, new.rate_per_s) == (pytest.approx(50 / replicas), pytest.approx(30 / replicas))
    assert [r.servers for r in cfg.routes] == [[], ["old", "new"], ["new"], ["old"]]
    assert "token" not in cm["data"]["config.yaml"].replace("token_env", "")
    for d in (m for m in manifests if m["kind"] == "Deployment"):
        [c] = d["spec"]["template"]["spec"]["containers"]
        refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in c["env"] if "valueFrom" in e}
        assert refs["ZABBIX_OLD_TOKEN"] == {"name": "zbx-old", "key": "token"}
        assert refs["ZABBIX_NEW_USER"] == {"name": "zbx-new", "key": "username"}
        assert refs["ZABBIX_NEW_PASSWORD"] == {"name": "zbx-new", "key": "password"}
        assert "ZABBIX_TOKEN" not in refs
    missing = render(helm, SERVERS, sets=("zabbix.servers.new.userSecret.name=",))
    assert (
        "zabbix.servers.new: tokenSecret.name (or userSecret.name and passwordSecret.name) is required"
        in missing.stderr
    )


@pytest.mark.parametrize("source", ["secretName", "configMapName"])
def test_a_private_ca_is_mounted_and_becomes_every_endpoints_ca_file(helm: str, source: str) -> None:
    out = render(
        helm, SERVERS, sets=(f"privateCA.{source}=corp-ca", "config.zabbix.servers.new.ca_file=/etc/other.pem")
    )
    assert out.returncode == 0, out.stderr
    manifests = docs(out.stdout)
    cm = next(m for m in manifests if m["kind"] == "ConfigMap" and m["metadata"]["name"] == "nbzx-netbox-zabbix-stream")
    cfg = parse_config(
        cm["data"]["config.yaml"], {"ZABBIX_OLD_TOKEN": "t", "ZABBIX_NEW_USER": "u", "ZABBIX_NEW_PASSWORD": "p"}
    )
    assert cfg.netbox.ca_file == cfg.zabbix.servers["old"].ca_file == "/etc/nbzx/ca/ca.crt"
    assert cfg.zabbix.servers["new"].ca_file == "/etc/other.pem", "a server's own CA file is kept"
    for d in (m for m in manifests if m["kind"] == "Deployment"):
        spec = d["spec"]["template"]["spec"]
        [volume] = [v for v in spec["volumes"] if v["name"] == "private-ca"]
        ref = volume.get("secret", {}).get("secretName") or volume.get("configMap", {}).get("name")
        assert ref == "corp-ca"
        [c] = spec["containers"]
        assert {"name": "private-ca", "mountPath": "/etc/nbzx/ca", "readOnly": True} in c["volumeMounts"]


def test_each_component_can_be_its_own_kafka_user_from_its_own_secret(helm: str) -> None:
    sets = ["kafka.securityProtocol=SASL_SSL", "kafka.saslMechanism=SCRAM-SHA-512", "console.enabled=true"]
    sets += ["secrets.consoleViewerTokens.name=nbzx-console"]
    for c in ("receiver", "consumer", "console", "hook"):
        sets.append(f"secrets.kafkaUsers.{c}.name=kafka-{c}")
    out = render(helm, sets=tuple(sets))
    assert out.returncode == 0, out.stderr
    users = {}
    for m in docs(out.stdout):
        spec = m.get("spec", {})
        pod = spec.get("jobTemplate", {}).get("spec", spec).get("template", {}).get("spec")
        if not pod:
            continue
        for c in pod["containers"]:
            refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in c.get("env", []) if "valueFrom" in e}
            users[m["metadata"]["name"] + "/" + c["name"]] = (
                refs["NBZX_KAFKA_SASL_USERNAME"]["name"],
                refs["NBZX_KAFKA_SASL_PASSWORD"]["name"],
            )
    by_workload = {k.split("/")[0].removeprefix("nbzx-netbox-zabbix-stream-"): v[0] for k, v in users.items()}
    assert by_workload["receiver"] == "kafka-receiver" and by_workload["consumer"] == "kafka-consumer"
    assert by_workload["console"] == "kafka-console" and by_workload["reconcile"] == "kafka-receiver"
    assert by_workload["topics"] == "kafka-hook"
    assert all(u == p for u, p in users.values())
    missing = render(helm, sets=("kafka.securityProtocol=SASL_SSL", "secrets.kafkaUsers.receiver.name=kafka-receiver"))
    assert "(or secrets.kafkaUsers.consumer for the consumer)" in missing.stderr
