"""The chart installed for real on the local Kubernetes (scripts/cluster), with the image built here
(scripts/image), in namespaces that enforce the restricted Pod Security level: hooks, Ready pods, and
the whole pipeline through the cluster (NetBox -> receiver Service -> Kafka -> consumer pods -> Zabbix),
on the stack's secure Kafka cluster: SASL_SSL, its CA and each component's own user from Secrets."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from typing import Any

from tests.conftest import ROOT, create_device, create_webhook, lab_ip
from tests.e2e.pipeline import owned_hosts
from tests.k8s.conftest import API_TOKEN, Cluster

MINIMAL = ROOT / "examples" / "helm-minimal.yaml"
PRODUCTION = ROOT / "examples" / "helm-production.yaml"
CRD = ROOT / "tests" / "k8s" / "servicemonitor-crd.yaml"


def _http(url: str, method: str = "GET", body: dict[str, Any] | None = None) -> tuple[int, Any]:
    req = urllib.request.Request(
        url,
        data=json.dumps(body).encode() if body is not None else None,
        method=method,
        headers={"Authorization": f"Bearer {API_TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp.status, json.loads(resp.read())


def _finished_job(url: str, job_id: str) -> dict[str, Any] | None:
    """The job's record once it ended; None while the receiver has not seen it or it still runs."""
    try:
        record: dict[str, Any] = _http(f"{url}/jobs/{job_id}")[1]
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise
    return record if record["status"] in ("completed", "failed", "errored", "skipped") else None


def _until(check: Any, what: str, timeout_s: float = 120) -> Any:
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what} (last: {last!r})")


def _in_zabbix(zapi: Any, keys: list[str], timeout_s: float = 180) -> dict[str, Any]:
    return _until(
        lambda: (h := owned_hosts(zapi, keys)) and all(len(h.get(k, [])) == 1 for k in keys) and h,
        f"{len(keys)} hosts in Zabbix",
        timeout_s,
    )


def test_minimal_values_run_the_pipeline_in_pods(
    cluster: Cluster, release: Any, netbox_api: Any, netbox_objects: Any, zabbix_api: Any
) -> None:
    nb, zapi = netbox_api, zabbix_api
    rel = release(MINIMAL)
    rel.secure()  # SASL_SSL with the CA and each component's credentials from Secrets, ACLs enforced
    rel.sets += ["config.netbox.write_back.journal=true", "config.netbox.write_back.custom_fields=true"]
    rel.install()  # --wait: the hook Job (topics, write-back's custom fields) succeeded, every Deployment Ready
    for component in ("receiver", "consumer"):
        pods = rel.pods(component)
        assert pods and all(c["ready"] for p in pods for c in p["status"]["containerStatuses"]), (
            f"{component} pods not Ready"
        )
    base = netbox_objects("k8s")
    slug = base["site"].slug
    hooks: list[Any] = []
    try:
        url = rel.service_url("receiver", 8090)
        hooks = create_webhook(
            nb, f"{url}/webhook", ["dcim.device", "dcim.interface", "ipam.ipaddress"], f"test-{slug}"
        )
        # A NetBox change reaches Zabbix through the receiver Service and the consumer pods.
        first = create_device(nb, base, f"{slug}-a", lab_ip(70))
        _in_zabbix(zapi, [f"dcim.device:{first.id}"])

        # Write-back from the pods: the state in the device's custom fields, a journal entry.
        def state() -> Any:
            return nb.dcim.devices.get(first.id).custom_fields.get("nbzx_sync_state")

        _until(lambda: state() == "in_sync", "the sync state written back to NetBox")
        entries = nb.extras.journal_entries.filter(assigned_object_type="dcim.device", assigned_object_id=first.id)
        kinds = [e.kind.value for e in entries]
        assert kinds == ["info"], kinds

        # POST /reconcile through the Service runs a job.
        status, body = _http(f"{url}/reconcile", "POST", {"filter": {"site": slug}})
        assert status == 202
        job_id = body["job_id"]
        job = _until(lambda: _finished_job(url, job_id), "the reconcile job")
        r = job["results"]
        assert job["status"] == "completed" and r["in_sync"] + r["update"] + r["create"] == 1, job

        # The reconcile CronJob's Job completes.
        cron = f"{rel.fullname}-reconcile"
        cluster.kubectl("-n", rel.ns, "create", "job", "manual-reconcile", f"--from=cronjob/{cron}")
        cluster.kubectl("-n", rel.ns, "wait", "job/manual-reconcile", "--for=condition=complete", "--timeout=180s")

        # helm upgrade to three consumers while changes stream in: none is lost.
        names = [f"{slug}-u{i}" for i in range(8)]
        made: list[Any] = []
        stream = threading.Thread(target=lambda: made.extend(_create_slowly(nb, base, names, 80)))
        stream.start()
        rel.upgrade("consumer.replicas=3")
        stream.join()
        assert len(rel.pods("consumer")) == 3
        _in_zabbix(zapi, [f"dcim.device:{d.id}" for d in made])

        # A consumer pod deleted mid-stream loses nothing.
        names = [f"{slug}-d{i}" for i in range(8)]
        made = []
        stream = threading.Thread(target=lambda: made.extend(_create_slowly(nb, base, names, 100)))
        stream.start()
        time.sleep(2)
        victim = rel.pods("consumer")[0]["metadata"]["name"]
        cluster.kubectl("-n", rel.ns, "delete", "pod", victim, "--wait=false")
        stream.join()
        _in_zabbix(zapi, [f"dcim.device:{d.id}" for d in made])
    finally:
        for h in reversed(hooks):
            h.delete()
    rel.uninstall()
    _until(lambda: rel.objects() == [], "helm uninstall to leave nothing behind", 90)


def _create_slowly(nb: Any, base: dict[str, Any], names: list[str], first_ip: int) -> list[Any]:
    out = []
    for i, name in enumerate(names):
        out.append(create_device(nb, base, name, lab_ip(first_ip + i)))
        time.sleep(0.5)
    return out


def test_production_values_install_without_and_with_the_prometheus_operators_crd(
    cluster: Cluster, release: Any
) -> None:
    rel = release(PRODUCTION)
    notes = rel.install()
    kinds = set(cluster.kubectl("-n", rel.ns, "get", "hpa,pdb,ingress,cronjob,deploy", "-o", "name").split())
    assert f"deployment.apps/{rel.fullname}-console" in kinds
    assert f"horizontalpodautoscaler.autoscaling/{rel.fullname}-consumer" in kinds
    assert "no ServiceMonitor CRD" in notes
    rel.uninstall()

    cluster.kubectl("apply", "-f", str(CRD))
    try:
        cluster.kubectl("wait", "crd/servicemonitors.monitoring.coreos.com", "--for=condition=Established")
        rel2 = release(PRODUCTION)
        rel2.install()
        monitors = cluster.kubectl("-n", rel2.ns, "get", "servicemonitors", "-o", "name").split()
        assert monitors == [f"servicemonitor.monitoring.coreos.com/{rel2.fullname}"]
        rel2.uninstall()
    finally:
        cluster.kubectl("delete", "-f", str(CRD), "--wait=false", check=False)
