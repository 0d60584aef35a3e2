#!/usr/bin/env bash
# `scripts/run --k8s`: the demo pipeline in pods. The chart is installed (or upgraded) as release nbzx
# in namespace nbzx-demo with examples/helm-minimal.yaml + examples/helm-local.yaml and the console on;
# NetBox's webhook points at the receiver Service (its cluster IP, which kube-proxy makes reachable
# from this machine), and the demo devices land in Zabbix through the consumer pods.
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
# shellcheck source=scripts/lib/fail.sh
. scripts/lib/fail.sh
scripts/dev-env
scripts/stack up
eval "$(scripts/stack env)"
scripts/cluster up
eval "$(scripts/cluster env)"
K="$NBZX_K8S_BIN/kubectl"
HELM="$(scripts/tools)/helm"
NS=nbzx-demo
export NBZX_WEBHOOK_SECRET=${NBZX_WEBHOOK_SECRET:-local-demo-webhook-secret}
export NBZX_API_TOKEN=${NBZX_API_TOKEN:-local-demo-api-token}
OPERATOR_TOKEN=local-demo-operator-token VIEWER_TOKEN=local-demo-viewer-token

echo "[run] namespace $NS (Pod Security: restricted) and its Secret"
"$K" get namespace "$NS" >/dev/null 2>&1 || "$K" create namespace "$NS" >/dev/null
"$K" label --overwrite namespace "$NS" pod-security.kubernetes.io/enforce=restricted >/dev/null
"$K" -n "$NS" create secret generic nbzx --dry-run=client -o yaml \
  --from-literal=netbox-token="$NETBOX_TOKEN" --from-literal=zabbix-user="$ZABBIX_USER" \
  --from-literal=zabbix-password="$ZABBIX_PASSWORD" --from-literal=webhook-secret="$NBZX_WEBHOOK_SECRET" \
  --from-literal=api-token="$NBZX_API_TOKEN" --from-literal=console-operator-tokens="alice:$OPERATOR_TOKEN" \
  --from-literal=console-viewer-tokens="victor:$VIEWER_TOKEN" | "$K" apply -f - >/dev/null
echo "[run] helm upgrade --install nbzx (pods Ready within a minute or two)"
"$HELM" upgrade --install nbzx helm/netbox-zabbix-stream -n "$NS" -f examples/helm-minimal.yaml \
  -f examples/helm-local.yaml --set console.enabled=true --set config.kafka.group=nbzx-demo --wait --timeout 8m
"$K" -n "$NS" get pods

svc() { "$K" -n "$NS" get svc "nbzx-netbox-zabbix-stream-$1" -o jsonpath='{.spec.clusterIP}'; }
RECEIVER="http://$(svc receiver):8090" CONSOLE="http://$(svc console):8092"
for _ in $(seq 1 60); do curl -sf -o /dev/null "$RECEIVER/readyz" && break; sleep 0.5; done
.venv/bin/nbzx netbox register-webhook --url "$RECEIVER/webhook" >/dev/null
echo "[run] NetBox webhook 'netbox-zabbix-stream' points at the receiver Service ($RECEIVER)"
NBZX_RECEIVER_URL=$RECEIVER .venv/bin/python scripts/demo.py
cat <<MSG

[run] The pipeline is running in pods (namespace $NS). Where to look:
      Pods     $K -n $NS get pods      (KUBECONFIG=$KUBECONFIG)
      Zabbix   http://127.0.0.1:8081/  (Admin / zabbix)  -> host group "NetBox/Demo Lab"
      NetBox   http://127.0.0.1:8000/  (admin / AdminPass12345)  -> change a device; Zabbix follows
      Console  $CONSOLE/ -> operator token: $OPERATOR_TOKEN   viewer token: $VIEWER_TOKEN
      The release stays: 'helm uninstall nbzx -n $NS' removes it, 'scripts/cluster down' stops the cluster.
MSG
