# A single-node Kubernetes on this machine: etcd (Debian), the control plane and kubelet (built by
# shellcheck shell=bash
# scripts/lib/k8s_build.sh), containerd (Debian) with its CRI plugin and a CNI bridge. Sourced by
# scripts/cluster, after common.sh and k8s_build.sh. Every process is started with start_bg and
# stopped by PID, like the rest of the stack.
#
# Pods reach the stack on the pod bridge's host address ($POD_GATEWAY): Kafka has a listener there
# (scripts/lib/kafka.sh), and NetBox and both Zabbix APIs are relayed to it from 127.0.0.1 by socat.
# kube-proxy (iptables mode) makes Services' cluster IPs reachable from this machine too, so NetBox
# posts its webhooks to the receiver Service itself. There is no cluster DNS: pods are given addresses.

# Certificates, etcd, containerd and kubelet data: state, made anew after `scripts/stack wipe`.
K8S_RUN="$STATE_DIR/k8s"
KUBECONFIG_FILE="$K8S_RUN/admin.kubeconfig"
K8S_API_PORT=6443
POD_BRIDGE=nbzxpods0
CONTAINERD_SOCK="$K8S_RUN/containerd/containerd.sock"
RELAYS=("netbox:$NETBOX_PORT" "zabbix:$ZABBIX_PORT" "zabbix7:$ZABBIX7_PORT")

kctl() { "$K8S_BIN/kubectl" --kubeconfig "$KUBECONFIG_FILE" "$@"; }
kctr() { ctr --address "$CONTAINERD_SOCK" -n k8s.io "$@"; }

k8s_install() {
  apt_install etcd-server containerd runc containernetworking-plugins socat openssl iproute2 buildah podman \
    iptables conntrack
  k8s_build
}

k8s_pki() {
  [ -f "$K8S_RUN/apiserver.crt" ] && [ -f "$K8S_RUN/sa.key" ] && [ -f "$K8S_RUN/tokens.csv" ] && return 0
  mkdir -p "$K8S_RUN"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=kube-apiserver" \
    -addext "subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes.default.svc" \
    -keyout "$K8S_RUN/apiserver.key" -out "$K8S_RUN/apiserver.crt" 2>/dev/null
  openssl genrsa -out "$K8S_RUN/sa.key" 2048 2>/dev/null
  openssl rsa -in "$K8S_RUN/sa.key" -pubout -out "$K8S_RUN/sa.pub" 2>/dev/null
  echo "$(openssl rand -hex 24),admin,admin,system:masters" >"$K8S_RUN/tokens.csv"
  chmod 600 "$K8S_RUN"/*.key "$K8S_RUN/tokens.csv"
  cat >"$KUBECONFIG_FILE" <<KC
apiVersion: v1
kind: Config
clusters:
- name: nbzx-local
  cluster: {server: "https://127.0.0.1:$K8S_API_PORT", certificate-authority-data: "$(base64 -w0 "$K8S_RUN/apiserver.crt")"}
users:
- name: admin
  user: {token: "$(cut -d, -f1 "$K8S_RUN/tokens.csv")"}
contexts:
- name: nbzx-local
  context: {cluster: nbzx-local, user: admin}
current-context: nbzx-local
KC
  chmod 600 "$KUBECONFIG_FILE"
}

k8s_node_config() {
  mkdir -p "$K8S_RUN/cni" "$K8S_RUN/containerd" "$K8S_RUN/kubelet"
  cat >"$K8S_RUN/cni/10-nbzx-pods.conflist" <<CNI
{"cniVersion": "1.0.0", "name": "nbzx-pods", "plugins": [
  {"type": "bridge", "bridge": "$POD_BRIDGE", "isGateway": true, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$POD_GATEWAY"}]],
            "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "$K8S_RUN/cni-ipam"}}
]}
CNI
  cat >"$K8S_RUN/containerd.toml" <<TOML
version = 2
root = "$K8S_RUN/containerd/root"
state = "$K8S_RUN/containerd/state"
[grpc]
  address = "$CONTAINERD_SOCK"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "localhost/pause:nbzx"
  # This VM may not lower oom_score_adj (no CAP_SYS_RESOURCE); without this runc fails every start.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$K8S_RUN/cni"
TOML
  cat >"$K8S_RUN/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
readOnlyPort: 0
authentication: {anonymous: {enabled: true}, webhook: {enabled: false}}
authorization: {mode: AlwaysAllow}
# Hybrid cgroups v1 without systemd: the kubelet manages no QoS cgroups of its own here.
cgroupDriver: cgroupfs
cgroupsPerQOS: false
enforceNodeAllocatable: []
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: "unix://$CONTAINERD_SOCK"
serializeImagePulls: false
evictionHard: {memory.available: "200Mi", nodefs.available: "2%", imagefs.available: "2%"}
imageGCHighThresholdPercent: 99
imageGCLowThresholdPercent: 98
YAML
}

k8s_bridge() {
  ip link show "$POD_BRIDGE" >/dev/null 2>&1 || ip link add "$POD_BRIDGE" type bridge
  # Not `ip | grep -q`: under pipefail grep's early exit makes the pipeline fail (SIGPIPE).
  case "$(ip addr show dev "$POD_BRIDGE")" in
    *"inet $POD_GATEWAY/"*) ;;
    *) ip addr add "$POD_GATEWAY/24" dev "$POD_BRIDGE" ;;
  esac
  ip link set "$POD_BRIDGE" up
}

api_ready() { kctl get --raw /readyz >/dev/null 2>&1; }
node_ready() { kctl get node localhost -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null | grep -qx True; }

k8s_images() {
  # The pause image and the project's image, from podman's store into containerd's. scripts/image
  # first: it installs podman and writes the containers.conf the podman calls below use.
  local image id
  image=$(scripts/image)
  export CONTAINERS_CONF="$CACHE_DIR/image/containers.conf"
  if [ -z "$(kctr images ls -q name==localhost/pause:nbzx)" ]; then
    if ! podman image exists localhost/pause:nbzx; then
      local c; c=$(buildah from scratch)
      buildah copy "$c" "$K8S_BIN/pause" /pause >/dev/null
      buildah config --entrypoint '["/pause"]' "$c"
      buildah commit -q "$c" localhost/pause:nbzx >/dev/null
      buildah rm "$c" >/dev/null
    fi
    podman save --format docker-archive localhost/pause:nbzx | kctr images import - >/dev/null
  fi
  id=$(podman image inspect -f '{{.Id}}' "$image")
  if [ "$(cat "$K8S_RUN/image.id" 2>/dev/null)" != "$id" ]; then
    log "k8s: loading $image into containerd"
    podman save --format docker-archive "$image" | kctr images import - >/dev/null
    echo "$id" >"$K8S_RUN/image.id"
  fi
}

k8s_up() {
  local t0; t0=$(now)
  k8s_install
  k8s_pki
  k8s_node_config
  k8s_bridge
  local r name port
  for r in "${RELAYS[@]}"; do
    name=${r%%:*}; port=${r##*:}
    pid_alive "$(state_pid "relay-$name")" && continue
    start_bg "relay-$name" "$port" "$LOG_DIR/relay-$name.log" \
      socat "TCP-LISTEN:$port,bind=$POD_GATEWAY,reuseaddr,fork" "TCP:127.0.0.1:$port"
  done
  if ! pid_alive "$(state_pid etcd)"; then
    log "k8s: starting etcd"
    start_bg etcd 2379 "$LOG_DIR/k8s-etcd.log" etcd --name nbzx --data-dir "$K8S_RUN/etcd" \
      --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
      --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
      --initial-cluster nbzx=http://127.0.0.1:2380
  fi
  wait_for "etcd" 60 "$LOG_DIR/k8s-etcd.log" port_open 2379 || die "etcd did not start"
  if ! pid_alive "$(state_pid kube-apiserver)"; then
    log "k8s: starting kube-apiserver $K8S_VERSION"
    start_bg kube-apiserver "$K8S_API_PORT" "$LOG_DIR/k8s-apiserver.log" "$K8S_BIN/kube-apiserver" \
      --etcd-servers=http://127.0.0.1:2379 --bind-address=127.0.0.1 --advertise-address=127.0.0.1 \
      --secure-port="$K8S_API_PORT" --service-cluster-ip-range=10.96.0.0/24 \
      --token-auth-file="$K8S_RUN/tokens.csv" --authorization-mode=Node,RBAC \
      --service-account-issuer=https://kubernetes.default.svc.cluster.local \
      --service-account-key-file="$K8S_RUN/sa.pub" --service-account-signing-key-file="$K8S_RUN/sa.key" \
      --tls-cert-file="$K8S_RUN/apiserver.crt" --tls-private-key-file="$K8S_RUN/apiserver.key" \
      --endpoint-reconciler-type=none --kubelet-preferred-address-types=Hostname --allow-privileged=true
  fi
  wait_for "kube-apiserver" 120 "$LOG_DIR/k8s-apiserver.log" api_ready || die "kube-apiserver is not ready"
  if ! pid_alive "$(state_pid kube-controller-manager)"; then
    start_bg kube-controller-manager 10257 "$LOG_DIR/k8s-controller-manager.log" "$K8S_BIN/kube-controller-manager" \
      --kubeconfig="$KUBECONFIG_FILE" --leader-elect=false --bind-address=127.0.0.1 \
      --service-account-private-key-file="$K8S_RUN/sa.key" --root-ca-file="$K8S_RUN/apiserver.crt" \
      --use-service-account-credentials=false
  fi
  if ! pid_alive "$(state_pid kube-scheduler)"; then
    start_bg kube-scheduler 10259 "$LOG_DIR/k8s-scheduler.log" "$K8S_BIN/kube-scheduler" \
      --kubeconfig="$KUBECONFIG_FILE" --leader-elect=false --bind-address=127.0.0.1
  fi
  if ! pid_alive "$(state_pid containerd)"; then
    log "k8s: starting containerd"
    start_bg containerd 0 "$LOG_DIR/k8s-containerd.log" containerd --config "$K8S_RUN/containerd.toml"
  fi
  # Not the socket file: one left by a containerd that was killed is there before the new one listens.
  wait_for "containerd" 60 "$LOG_DIR/k8s-containerd.log" kctr version || die "containerd did not start"
  k8s_images
  if ! pid_alive "$(state_pid kubelet)"; then
    log "k8s: starting the kubelet (node localhost)"
    start_bg kubelet 10250 "$LOG_DIR/k8s-kubelet.log" "$K8S_BIN/kubelet" \
      --kubeconfig="$KUBECONFIG_FILE" --config="$K8S_RUN/kubelet.yaml" --hostname-override=localhost \
      --root-dir="$K8S_RUN/kubelet" --cert-dir="$K8S_RUN/kubelet/pki"
  fi
  wait_for "node localhost Ready" 180 "$LOG_DIR/k8s-kubelet.log" node_ready || die "the node did not become Ready"
  if ! pid_alive "$(state_pid kube-proxy)"; then
    start_bg kube-proxy 10256 "$LOG_DIR/k8s-proxy.log" "$K8S_BIN/kube-proxy" --kubeconfig="$KUBECONFIG_FILE" \
      --hostname-override=localhost --cluster-cidr="$POD_CIDR" --proxy-mode=iptables \
      --bind-address=127.0.0.1 --healthz-bind-address=127.0.0.1:10256 --metrics-bind-address=127.0.0.1:10249
  fi
  wait_for "kube-proxy" 60 "$LOG_DIR/k8s-proxy.log" curl -sf http://127.0.0.1:10256/healthz || die "kube-proxy is not healthy"
  log "k8s: cluster up in $(elapsed "$t0")s (kubectl --kubeconfig $KUBECONFIG_FILE)"
}

k8s_down() {
  stop_service kube-proxy kubelet kube-scheduler kube-controller-manager kube-apiserver etcd relay-netbox relay-zabbix relay-zabbix7
  # The kubelet leaves its pods' containers to containerd: stop them before containerd itself.
  if pid_alive "$(state_pid containerd)"; then
    local t
    for t in $(kctr tasks ls -q 2>/dev/null); do kctr tasks kill -s KILL "$t" >/dev/null 2>&1 || true; done
  fi
  stop_service containerd
}

k8s_status() {
  local s pid
  for s in etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet kube-proxy relay-netbox relay-zabbix relay-zabbix7; do
    pid=$(state_pid "$s")
    if pid_alive "$pid"; then printf '%-24s up    pid %s\n' "$s" "$pid"; else printf '%-24s down\n' "$s"; fi
  done
  if api_ready; then kctl get nodes -o wide 2>/dev/null | sed 's/^/  /'; fi
}
