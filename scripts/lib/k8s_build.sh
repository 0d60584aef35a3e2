# Kubernetes binaries built from the Go module proxy, once per version, cached outside the repo.
# shellcheck shell=bash
# Sourced by scripts/cluster, after scripts/lib/common.sh.
#
# k8s.io/kubernetes cannot be `go install`ed (its go.mod replaces its 33 staging modules with local
# paths), so a small wrapper module requires it and replaces each staging module with its published
# v0.X.Y, then builds the cmd packages with the version ldflags.

K8S_VERSION=${NBZX_K8S_VERSION:-v1.37.2}
K8S_HOME="$CACHE_DIR/k8s"
K8S_BIN="$K8S_HOME/$K8S_VERSION/bin"
K8S_CMDS=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)

k8s_built() {
  local c
  for c in "${K8S_CMDS[@]}"; do [ -x "$K8S_BIN/$c" ] || return 1; done
  [ -f "$K8S_BIN/pause" ]
}

k8s_build() {
  k8s_built && return 0
  command -v go >/dev/null || die "Go is needed to build Kubernetes (apt-get install golang)"
  local src="$K8S_HOME/$K8S_VERSION/src" staging v0 t0 c mod
  t0=$(now)
  v0="v0.${K8S_VERSION#v1.}"
  mkdir -p "$src" "$K8S_BIN"
  log "k8s: building Kubernetes $K8S_VERSION from the Go module proxy (tens of minutes the first time; cached)"
  (cd "$src" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$K8S_VERSION" >/dev/null)
  mod=$(go env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/$K8S_VERSION.mod
  staging=$(awk '/=> \.\/staging\/src\// {print $1}' "$mod" | sort -u)
  {
    echo "module nbzx.local/k8sbuild"
    echo
    echo "go 1.26"
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    for m in $staging; do echo "replace $m => $m $v0"; done
  } >"$src/go.mod"
  {
    echo "//go:build tools"
    echo
    echo "package tools"
    echo
    echo "import ("
    for c in "${K8S_CMDS[@]}"; do echo "	_ \"k8s.io/kubernetes/cmd/$c\""; done
    echo ")"
  } >"$src/tools.go"
  log "k8s: resolving modules (go mod tidy)"
  (cd "$src" && GOFLAGS=-mod=mod go mod tidy >"$LOG_DIR/k8s-tidy.log" 2>&1) \
    || { tail -n 20 "$LOG_DIR/k8s-tidy.log" >&2; die "go mod tidy of the Kubernetes wrapper failed"; }
  local minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
  local pkg=k8s.io/component-base/version
  local ldflags="-s -w -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  for c in "${K8S_CMDS[@]}"; do
    [ -x "$K8S_BIN/$c" ] && continue
    local tc; tc=$(now)
    log "k8s: go build $c"
    (cd "$src" && GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$K8S_BIN/$c.tmp" \
      "k8s.io/kubernetes/cmd/$c" >"$LOG_DIR/k8s-build-$c.log" 2>&1) \
      || { tail -n 20 "$LOG_DIR/k8s-build-$c.log" >&2; die "go build of $c failed"; }
    mv "$K8S_BIN/$c.tmp" "$K8S_BIN/$c"
    log "k8s: $c built in $(elapsed "$tc")s"
  done
  # The pod sandbox ("pause") image's program ships in the module; no registry to pull it from.
  local kube_src; kube_src=$(go env GOMODCACHE)/k8s.io/kubernetes@$K8S_VERSION
  command -v gcc >/dev/null || apt_install gcc libc6-dev
  gcc -Os -static -o "$K8S_BIN/pause" "$kube_src/build/pause/linux/pause.c" \
    || die "building the pause program failed"
  log "k8s: Kubernetes $K8S_VERSION built in $(elapsed "$t0")s ($(du -sh "$K8S_BIN" | cut -f1) of binaries)"
}
