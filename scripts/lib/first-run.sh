# What a run is about to install, and how long each part took on a first run here (measured, see
# README "First run"). Printed by scripts/run and scripts/test before they start. Sourced, not run.
# shellcheck shell=bash

# first_run_banner WHAT: WHAT is "stack" (scripts/run) or "all" (scripts/test: the cluster and the
# browser too). Lists only the parts whose cache is missing; prints one line when nothing is.
first_run_banner() {
  local cache=${NBZX_CACHE_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/nbzx-stack} parts=()
  # The virtualenv belongs to the checkout (every fresh clone makes one): said, but not a "first run".
  [ -x .venv/bin/python ] || printf '[%s] this checkout has no .venv yet: creating it (pip, about a minute)\n' "${0##*/}" >&2
  compgen -G "$cache/kafka/libs-*/kafka_2.13-*.jar" >/dev/null \
    || parts+=("Apache Kafka's jars (Maven) and a JDK (Debian)                     ~1-2 min")
  dpkg-query -W -f='${Status}' zabbix-server-pgsql 2>/dev/null | grep -q 'ok installed' \
    || parts+=("Zabbix 6.0 and PostgreSQL (Debian packages)                        ~1-2 min")
  [ -f "$cache/zabbix7/root-trixie/.nbzx-ready" ] \
    || parts+=("Zabbix 7.0 in a Debian trixie chroot (debootstrap + apt)           ~2-3 min")
  compgen -G "$cache/netbox/netbox-*-base.dump" >/dev/null \
    || parts+=("NetBox 4.7.3 (pip, builds psycopg) and its database migrations     ~10 min")
  command -v haproxy >/dev/null \
    || parts+=("HAProxy, the HTTPS front to NetBox and Zabbix (Debian package)     ~10 s")
  if [ "$1" = all ]; then
    compgen -G "$cache/k8s/*/bin/kubelet" >/dev/null \
      || parts+=("Kubernetes built from the Go module proxy, the image's base (podman) ~15 min")
    [ -x "$cache/tools/bin/helm" ] || parts+=("the Helm CLI built from its Go module                              ~2 min")
    command -v chromium >/dev/null || parts+=("Chromium and its driver for the console tests (Debian)            ~1 min")
  fi
  if [ ${#parts[@]} -eq 0 ]; then
    printf '[%s] everything is installed (caches in %s)\n' "${0##*/}" "$cache" >&2
    return 0
  fi
  {
    printf '[%s] first run on this machine: installing what is missing (2 cores, times measured here):\n' "${0##*/}"
    printf '        - %s\n' "${parts[@]}"
    printf '      Downloads and builds are cached in %s (about 9 GB when complete, the Go build cache included),\n' "$cache"
    printf '      so later runs take minutes. Progress lines follow; a failure names its step, command and log.\n'
  } >&2
}
